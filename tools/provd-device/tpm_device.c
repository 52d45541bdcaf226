/* Device-side TPM operations for the DPS TPM flow, with tpm2-tss ESAPI. */
#include "tpm_device.h"

#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

struct tpm_device {
  TSS2_TCTI_CONTEXT *tcti;
  ESYS_CONTEXT *esys;
};

/* PolicySecret(TPM_RH_ENDORSEMENT): the standard EK policy. */
static const uint8_t EK_POLICY[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
    0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
    0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

static int tpm_failed(struct provd_err *err, const char *what, TSS2_RC rc)
{
  perr_set(err, "TPM", "%s: 0x%08x %s", what, (unsigned)rc,
           Tss2_RC_Decode(rc));
  return -1;
}

int tpm_device_open(const char *tcti, struct tpm_device **out,
                    struct provd_err *err)
{
  struct tpm_device *dev = calloc(1, sizeof(*dev));
  if (!dev) {
    perr_set(err, "TPM", "out of memory");
    return -1;
  }
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti, &dev->tcti);
  if (rc == TSS2_RC_SUCCESS)
    rc = Esys_Initialize(&dev->esys, dev->tcti, NULL);
  if (rc != TSS2_RC_SUCCESS) {
    tpm_device_close(dev);
    return tpm_failed(err, "opening the TPM", rc);
  }
  *out = dev;
  return 0;
}

void tpm_device_close(struct tpm_device *dev)
{
  if (!dev)
    return;
  if (dev->esys)
    Esys_Finalize(&dev->esys);
  if (dev->tcti)
    Tss2_TctiLdr_Finalize(&dev->tcti);
  free(dev);
}

/* RSA-2048 restricted decryption key, AES-128-CFB: EK and SRK templates
 * of the Azure SDKs. */
static TPM2B_PUBLIC storage_template(TPMA_OBJECT attributes,
                                     const uint8_t *policy, size_t plen)
{
  TPM2B_PUBLIC t;
  memset(&t, 0, sizeof(t));
  t.publicArea.type = TPM2_ALG_RSA;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = attributes;
  t.publicArea.authPolicy.size = (UINT16)plen;
  if (plen)
    memcpy(t.publicArea.authPolicy.buffer, policy, plen);
  TPMS_RSA_PARMS *r = &t.publicArea.parameters.rsaDetail;
  r->symmetric.algorithm = TPM2_ALG_AES;
  r->symmetric.keyBits.aes = 128;
  r->symmetric.mode.aes = TPM2_ALG_CFB;
  r->scheme.scheme = TPM2_ALG_NULL;
  r->keyBits = 2048;
  return t;
}

/* The persistent key at handle, created under hierarchy from tmpl when
 * absent.  *out is a persistent ESYS_TR (close it, never flush it). */
static int persistent_key(struct tpm_device *dev, TPM2_HANDLE handle,
                          ESYS_TR hierarchy, const TPM2B_PUBLIC *tmpl,
                          ESYS_TR *out, struct provd_err *err)
{
  if (Esys_TR_FromTPMPublic(dev->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE,
                            ESYS_TR_NONE, out) == TSS2_RC_SUCCESS)
    return 0;
  TPM2B_SENSITIVE_CREATE sens;
  memset(&sens, 0, sizeof(sens));
  TPM2B_DATA outside = {.size = 0};
  TPML_PCR_SELECTION pcrs = {.count = 0};
  ESYS_TR transient = ESYS_TR_NONE;
  TSS2_RC rc = Esys_CreatePrimary(dev->esys, hierarchy, ESYS_TR_PASSWORD,
                                  ESYS_TR_NONE, ESYS_TR_NONE, &sens, tmpl,
                                  &outside, &pcrs, &transient, NULL, NULL,
                                  NULL, NULL);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_failed(err, "CreatePrimary", rc);
  rc = Esys_EvictControl(dev->esys, ESYS_TR_RH_OWNER, transient,
                         ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         handle, out);
  Esys_FlushContext(dev->esys, transient);
  return rc == TSS2_RC_SUCCESS ? 0 : tpm_failed(err, "EvictControl", rc);
}

static int marshal_public(struct tpm_device *dev, ESYS_TR key, uint8_t *out,
                          size_t *out_len, struct provd_err *err)
{
  TPM2B_PUBLIC *pub = NULL;
  size_t off = 0;
  TSS2_RC rc = Esys_ReadPublic(dev->esys, key, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, &pub, NULL, NULL);
  if (rc == TSS2_RC_SUCCESS)
    rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, out, TPM_DEVICE_PUBLIC_MAX,
                                      &off);
  Esys_Free(pub);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_failed(err, "ReadPublic", rc);
  *out_len = off;
  return 0;
}

/* The EK and SRK as ESYS_TRs; close both with Esys_TR_Close. */
static int ek_and_srk(struct tpm_device *dev, ESYS_TR *ek, ESYS_TR *srk,
                      struct provd_err *err)
{
  const TPM2B_PUBLIC ek_tmpl = storage_template(
      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
      EK_POLICY, sizeof(EK_POLICY));
  const TPM2B_PUBLIC srk_tmpl = storage_template(
      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
          TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
      NULL, 0);
  *ek = *srk = ESYS_TR_NONE;
  if (persistent_key(dev, TPM_DEVICE_EK_HANDLE, ESYS_TR_RH_ENDORSEMENT,
                     &ek_tmpl, ek, err) != 0)
    return -1;
  if (persistent_key(dev, TPM_DEVICE_SRK_HANDLE, ESYS_TR_RH_OWNER,
                     &srk_tmpl, srk, err) != 0) {
    Esys_TR_Close(dev->esys, ek);
    return -1;
  }
  return 0;
}

int tpm_device_keys(struct tpm_device *dev, uint8_t *ek, size_t *ek_len,
                    uint8_t *srk, size_t *srk_len, struct provd_err *err)
{
  ESYS_TR ek_tr, srk_tr;
  if (ek_and_srk(dev, &ek_tr, &srk_tr, err) != 0)
    return -1;
  int rc = marshal_public(dev, ek_tr, ek, ek_len, err);
  if (rc == 0)
    rc = marshal_public(dev, srk_tr, srk, srk_len, err);
  Esys_TR_Close(dev->esys, &ek_tr);
  Esys_TR_Close(dev->esys, &srk_tr);
  return rc;
}

/* The activation blob's parts, in wire order. */
struct activation {
  TPM2B_ID_OBJECT credential;
  TPM2B_ENCRYPTED_SECRET secret;
  TPM2B_PRIVATE duplicate;
  TPM2B_ENCRYPTED_SECRET sym_seed;
  TPM2B_PUBLIC id_public;
  TPM2B_DATA uri; /* optional, unused */
};

static int parse_activation(const uint8_t *b, size_t len,
                            struct activation *a, struct provd_err *err)
{
  memset(a, 0, sizeof(*a));
  size_t off = 0;
  TSS2_RC rc = Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(b, len, &off,
                                                 &a->credential);
  if (rc == TSS2_RC_SUCCESS)
    rc = Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(b, len, &off, &a->secret);
  if (rc == TSS2_RC_SUCCESS)
    rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(b, len, &off, &a->duplicate);
  if (rc == TSS2_RC_SUCCESS)
    rc = Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(b, len, &off,
                                                  &a->sym_seed);
  if (rc == TSS2_RC_SUCCESS)
    rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(b, len, &off, &a->id_public);
  if (rc == TSS2_RC_SUCCESS && off < len)
    rc = Tss2_MU_TPM2B_DATA_Unmarshal(b, len, &off, &a->uri);
  if (rc != TSS2_RC_SUCCESS) {
    perr_set(err, "BAD_RESPONSE", "authenticationKey is not an activation "
             "blob: %s", Tss2_RC_Decode(rc));
    return -1;
  }
  return 0;
}

/* ActivateCredential(SRK, EK) under PolicySecret(endorsement): the inner
 * wrapping key of the duplicate.  Caller Esys_Free()s *out. */
static int activate(struct tpm_device *dev, ESYS_TR ek, ESYS_TR srk,
                    const struct activation *a, TPM2B_DIGEST **out,
                    struct provd_err *err)
{
  const TPMT_SYM_DEF none = {.algorithm = TPM2_ALG_NULL};
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(dev->esys, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, NULL, TPM2_SE_POLICY,
                                     &none, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_failed(err, "StartAuthSession", rc);
  rc = Esys_PolicySecret(dev->esys, ESYS_TR_RH_ENDORSEMENT, session,
                         ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                         NULL, NULL, 0, NULL, NULL);
  if (rc == TSS2_RC_SUCCESS)
    rc = Esys_ActivateCredential(dev->esys, srk, ek, ESYS_TR_PASSWORD,
                                 session, ESYS_TR_NONE, &a->credential,
                                 &a->secret, out);
  Esys_FlushContext(dev->esys, session);
  return rc == TSS2_RC_SUCCESS ? 0 : tpm_failed(err, "ActivateCredential",
                                                rc);
}

/* TPM2_Import under the SRK: the key re-encrypted for this TPM (caller
 * Esys_Free()s *out). */
static int import_key(struct tpm_device *dev, ESYS_TR srk,
                      const struct activation *a,
                      const TPM2B_DIGEST *inner_key, TPM2B_PRIVATE **out,
                      struct provd_err *err)
{
  TPM2B_DATA enc_key = {.size = inner_key->size};
  memcpy(enc_key.buffer, inner_key->buffer, inner_key->size);
  const TPMT_SYM_DEF_OBJECT sym = {.algorithm = TPM2_ALG_AES,
                                   .keyBits.aes = (UINT16)(8 * inner_key->size),
                                   .mode.aes = TPM2_ALG_CFB};
  TSS2_RC rc = Esys_Import(dev->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, &enc_key, &a->id_public,
                           &a->duplicate, &a->sym_seed, &sym, out);
  memset(&enc_key, 0, sizeof(enc_key));
  return rc == TSS2_RC_SUCCESS ? 0 : tpm_failed(err, "Import", rc);
}

/* TPM2_Load under the SRK: a transient handle (caller flushes). */
static int load_key(struct tpm_device *dev, ESYS_TR srk,
                    const TPM2B_PRIVATE *priv, const TPM2B_PUBLIC *pub,
                    ESYS_TR *out, struct provd_err *err)
{
  TSS2_RC rc = Esys_Load(dev->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, priv, pub, out);
  return rc == TSS2_RC_SUCCESS ? 0 : tpm_failed(err, "Load", rc);
}

/* Makes `loaded` the persistent identity key, evicting the old one. */
static int persist_identity(struct tpm_device *dev, ESYS_TR loaded,
                            struct provd_err *err)
{
  ESYS_TR old = ESYS_TR_NONE, gone = ESYS_TR_NONE, kept = ESYS_TR_NONE;
  if (Esys_TR_FromTPMPublic(dev->esys, TPM_DEVICE_ID_KEY_HANDLE,
                            ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            &old) == TSS2_RC_SUCCESS) {
    TSS2_RC rc = Esys_EvictControl(dev->esys, ESYS_TR_RH_OWNER, old,
                                   ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, TPM_DEVICE_ID_KEY_HANDLE,
                                   &gone);
    if (rc != TSS2_RC_SUCCESS) {
      Esys_TR_Close(dev->esys, &old);
      return tpm_failed(err, "EvictControl (old identity key)", rc);
    }
    /* ESAPI keeps the evicted handle's object: drop it, or the next
     * lookup of the handle finds two. */
    Esys_TR_Close(dev->esys, &old);
  }
  TSS2_RC rc = Esys_EvictControl(dev->esys, ESYS_TR_RH_OWNER, loaded,
                                 ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                 ESYS_TR_NONE, TPM_DEVICE_ID_KEY_HANDLE,
                                 &kept);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_failed(err, "EvictControl (identity key)", rc);
  Esys_TR_Close(dev->esys, &kept);
  return 0;
}

/* Marshals the imported object for keeping outside the TPM. */
static int key_object_of(const TPM2B_PRIVATE *priv, const TPM2B_PUBLIC *pub,
                         struct tpm_device_key_object *out,
                         struct provd_err *err)
{
  size_t priv_len = 0, pub_len = 0;
  TSS2_RC rc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv, out->priv,
                                             sizeof(out->priv), &priv_len);
  if (rc == TSS2_RC_SUCCESS)
    rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, out->pub, sizeof(out->pub),
                                      &pub_len);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_failed(err, "marshalling the imported key", rc);
  out->priv_len = priv_len;
  out->pub_len = pub_len;
  return 0;
}

/* ActivateCredential + Import of an activation blob; then either persist
 * the key (keep == NULL) or hand the imported object out. */
static int import_blob(struct tpm_device *dev, const uint8_t *blob,
                       size_t blob_len, struct tpm_device_key_object *keep,
                       struct provd_err *err)
{
  struct activation *a = malloc(sizeof(*a));
  if (!a) {
    perr_set(err, "TPM", "out of memory");
    return -1;
  }
  ESYS_TR ek, srk, loaded = ESYS_TR_NONE;
  TPM2B_DIGEST *inner_key = NULL;
  TPM2B_PRIVATE *priv = NULL;
  int rc = parse_activation(blob, blob_len, a, err);
  if (rc == 0 && (rc = ek_and_srk(dev, &ek, &srk, err)) == 0) {
    rc = activate(dev, ek, srk, a, &inner_key, err);
    if (rc == 0)
      rc = import_key(dev, srk, a, inner_key, &priv, err);
    if (rc == 0 && keep)
      rc = key_object_of(priv, &a->id_public, keep, err);
    else if (rc == 0 &&
             (rc = load_key(dev, srk, priv, &a->id_public, &loaded, err)) == 0)
      rc = persist_identity(dev, loaded, err);
    if (loaded != ESYS_TR_NONE)
      Esys_FlushContext(dev->esys, loaded);
    Esys_TR_Close(dev->esys, &ek);
    Esys_TR_Close(dev->esys, &srk);
  }
  if (inner_key)
    memset(inner_key, 0, sizeof(*inner_key));
  Esys_Free(inner_key);
  Esys_Free(priv);
  free(a);
  return rc;
}

int tpm_device_import(struct tpm_device *dev, const uint8_t *blob,
                      size_t blob_len, struct provd_err *err)
{
  return import_blob(dev, blob, blob_len, NULL, err);
}

int tpm_device_import_object(struct tpm_device *dev, const uint8_t *blob,
                             size_t blob_len,
                             struct tpm_device_key_object *out,
                             struct provd_err *err)
{
  memset(out, 0, sizeof(*out));
  return import_blob(dev, blob, blob_len, out, err);
}

/* TPM2_HMAC(SHA-256) with a loaded or persistent key. */
static int hmac_with(struct tpm_device *dev, ESYS_TR key,
                     const uint8_t *data, size_t len,
                     uint8_t out[TPM_DEVICE_HMAC_LEN], struct provd_err *err)
{
  TPM2B_MAX_BUFFER in;
  if (len > TPM_DEVICE_HMAC_INPUT_MAX || len > sizeof(in.buffer)) {
    perr_set(err, "BAD_INPUT", "HMAC input of %zu bytes is too long", len);
    return -1;
  }
  in.size = (UINT16)len;
  memcpy(in.buffer, data, len);
  TPM2B_DIGEST *mac = NULL;
  TSS2_RC rc = Esys_HMAC(dev->esys, key, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, &in, TPM2_ALG_SHA256, &mac);
  if (rc == TSS2_RC_SUCCESS && mac->size != TPM_DEVICE_HMAC_LEN)
    rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
  if (rc == TSS2_RC_SUCCESS)
    memcpy(out, mac->buffer, TPM_DEVICE_HMAC_LEN);
  Esys_Free(mac);
  return rc == TSS2_RC_SUCCESS ? 0 : tpm_failed(err, "HMAC", rc);
}

int tpm_device_hmac(struct tpm_device *dev, const uint8_t *data, size_t len,
                    uint8_t out[TPM_DEVICE_HMAC_LEN], struct provd_err *err)
{
  ESYS_TR key = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(dev->esys, TPM_DEVICE_ID_KEY_HANDLE,
                                     ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, &key);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_failed(err, "no identity key at 0x81000100", rc);
  int r = hmac_with(dev, key, data, len, out, err);
  Esys_TR_Close(dev->esys, &key);
  return r;
}

int tpm_device_hmac_object(struct tpm_device *dev,
                           const struct tpm_device_key_object *key,
                           const uint8_t *data, size_t len,
                           uint8_t out[TPM_DEVICE_HMAC_LEN],
                           struct provd_err *err)
{
  TPM2B_PRIVATE priv;
  TPM2B_PUBLIC pub;
  size_t off_priv = 0, off_pub = 0;
  memset(&priv, 0, sizeof(priv));
  memset(&pub, 0, sizeof(pub));
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(key->priv, key->priv_len, &off_priv,
                                      &priv) != TSS2_RC_SUCCESS ||
      off_priv != key->priv_len ||
      Tss2_MU_TPM2B_PUBLIC_Unmarshal(key->pub, key->pub_len, &off_pub,
                                     &pub) != TSS2_RC_SUCCESS ||
      off_pub != key->pub_len) {
    perr_set(err, "BAD_CREDENTIALS", "the kept TPM key is not a "
             "TPM2B_PRIVATE and TPM2B_PUBLIC");
    return -1;
  }
  ESYS_TR srk = ESYS_TR_NONE, loaded = ESYS_TR_NONE;
  if (Esys_TR_FromTPMPublic(dev->esys, TPM_DEVICE_SRK_HANDLE, ESYS_TR_NONE,
                            ESYS_TR_NONE, ESYS_TR_NONE,
                            &srk) != TSS2_RC_SUCCESS) {
    perr_set(err, "TPM", "this TPM has no storage root key at 0x81000001: "
             "not the TPM the device registered with");
    return -1;
  }
  int rc = load_key(dev, srk, &priv, &pub, &loaded, err);
  Esys_TR_Close(dev->esys, &srk);
  if (rc == 0) {
    rc = hmac_with(dev, loaded, data, len, out, err);
    Esys_FlushContext(dev->esys, loaded);
  }
  return rc;
}
