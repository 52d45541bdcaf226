/* Software MakeCredential and Duplicate, as a TPM would check them on
 * ActivateCredential and Import.  Structures are marshalled by tss2-mu;
 * KDFa, RSA-OAEP, AES-CFB and HMAC come from OpenSSL. */
#include "tpm_blob.h"
#include "tpm_crypto.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

/* PolicyCommandCode(TPM2_CC_Duplicate): the identity key may only be
 * duplicated, as Microsoft's DPS sets it. */
static const uint8_t DUPLICATE_ONLY_POLICY[32] = {
    0xbe, 0xf5, 0x6b, 0x8c, 0x1c, 0xc8, 0x4e, 0x11, 0xed, 0xd7, 0x17,
    0x52, 0x8d, 0x2c, 0xd9, 0x93, 0x56, 0xbd, 0x2b, 0xbf, 0x8f, 0x01,
    0x52, 0x09, 0xc3, 0xf8, 0x4a, 0xee, 0xab, 0xa8, 0xe8, 0xa2};

#define INNER_WRAP_KEY_LEN 16 /* AES-128: the SDKs import with 8*len bits */
#define IDENTITY_KEY_ATTRIBUTES                                          \
  (TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT)

static int random_bytes(uint8_t *buf, size_t len)
{
  return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* A growing byte string with a fixed capacity; `bad` sticks. */
struct buf {
  uint8_t *p;
  size_t cap, len;
  int bad;
};

static void put(struct buf *b, const void *data, size_t n)
{
  if (n == 0)
    return;
  if (b->bad || n > b->cap - b->len) {
    b->bad = 1;
    return;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_u16(struct buf *b, size_t v)
{
  uint8_t be[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  if (v > 0xffff)
    b->bad = 1;
  put(b, be, 2);
}

static int hmac_of(const EVP_MD *md, const uint8_t *key, size_t key_len,
                   const uint8_t *a, size_t a_len, const uint8_t *b,
                   size_t b_len, TPM2B_DIGEST *out)
{
  unsigned int n = 0;
  int rc = tpm_hmac(md, key, key_len, a, a_len, b, b_len, out->buffer, &n);
  out->size = (UINT16)n;
  return rc;
}

/* Symmetric key bits of a storage key's AES definition. */
static size_t sym_bits(const struct tpm_key *k)
{
  return k->pub.parameters.rsaDetail.symmetric.keyBits.aes;
}

/* The outer wrapper both MakeCredential and Duplicate use: a seed
 * encrypted to `to`, a key from it that encrypts `data` in place (bound to
 * `name`), and an integrity HMAC over the result.  TPM 2.0 Part 1 §22/23. */
struct wrapped {
  uint8_t secret[TPM2_MAX_RSA_KEY_BYTES];
  size_t secret_len;
  TPM2B_DIGEST integrity;
};

static int outer_wrap(const struct tpm_key *to, const char *seed_label,
                      const uint8_t *name, size_t name_len, uint8_t *data,
                      size_t data_len,
                      struct wrapped *w)
{
  uint8_t seed[EVP_MAX_MD_SIZE], sym[32], mac_key[EVP_MAX_MD_SIZE];
  size_t seed_len = (size_t)EVP_MD_get_size(to->name_md);
  size_t sym_len = sym_bits(to) / 8;
  w->secret_len = sizeof(w->secret);
  int rc = random_bytes(seed, seed_len) == 0 &&
                   tpm_oaep(to->rsa, to->name_md, seed_label, 1, seed,
                            seed_len, w->secret, &w->secret_len) == 0 &&
                   tpm_kdfa(to->name_md, seed, seed_len, "STORAGE", name,
                        name_len, sym_len * 8, sym) == 0 &&
                   tpm_cfb(sym, sym_len, data, data_len, 1) == 0 &&
                   tpm_kdfa(to->name_md, seed, seed_len, "INTEGRITY", NULL, 0,
                        seed_len * 8, mac_key) == 0 &&
                   hmac_of(to->name_md, mac_key, seed_len, data, data_len,
                           name, name_len, &w->integrity) == 0
               ? 0
               : -1;
  OPENSSL_cleanse(seed, sizeof(seed));
  OPENSSL_cleanse(sym, sizeof(sym));
  OPENSSL_cleanse(mac_key, sizeof(mac_key));
  return rc;
}

/* TPM2B(TPM2B_DIGEST integrity || data): TPM2B_ID_OBJECT and
 * TPM2B_PRIVATE have this shape. */
static void put_integrity_and(struct buf *b, const TPM2B_DIGEST *integrity,
                              const uint8_t *data, size_t len)
{
  put_u16(b, 2 + integrity->size + len);
  put_u16(b, integrity->size);
  put(b, integrity->buffer, integrity->size);
  put(b, data, len);
}

/* TPM2_MakeCredential(ek, credential, object name) into b. */
static int make_credential(const struct tpm_key *ek,
                           const uint8_t *credential, size_t cred_len,
                           const struct tpm_key *bound_to,
                           struct buf *b)
{
  TPM2B_DIGEST cred2b = {.size = (UINT16)cred_len};
  memcpy(cred2b.buffer, credential, cred_len);
  uint8_t enc_identity[2 + sizeof(cred2b.buffer)];
  size_t n = 0;
  struct wrapped w;
  int rc = -1;
  if (Tss2_MU_TPM2B_DIGEST_Marshal(&cred2b, enc_identity,
                                   sizeof(enc_identity),
                                   &n) == TSS2_RC_SUCCESS &&
      outer_wrap(ek, "IDENTITY", bound_to->name, bound_to->name_len,
                 enc_identity, n, &w) == 0) {
    put_integrity_and(b, &w.integrity, enc_identity, n);
    put_u16(b, w.secret_len);
    put(b, w.secret, w.secret_len);
    rc = 0;
  }
  OPENSSL_cleanse(&cred2b, sizeof(cred2b));
  OPENSSL_cleanse(enc_identity, sizeof(enc_identity));
  return rc;
}

/* The identity key's public area: keyed-hash HMAC-SHA256, importable
 * (fixedTPM/fixedParent clear), unique = H(seedValue || key). */
static int identity_public(const uint8_t *obfuscate, const uint8_t *key,
                           TPMT_PUBLIC *pub)
{
  memset(pub, 0, sizeof(*pub));
  pub->type = TPM2_ALG_KEYEDHASH;
  pub->nameAlg = TPM2_ALG_SHA256;
  pub->objectAttributes = IDENTITY_KEY_ATTRIBUTES;
  pub->authPolicy.size = sizeof(DUPLICATE_ONLY_POLICY);
  memcpy(pub->authPolicy.buffer, DUPLICATE_ONLY_POLICY,
         sizeof(DUPLICATE_ONLY_POLICY));
  pub->parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_HMAC;
  pub->parameters.keyedHashDetail.scheme.details.hmac.hashAlg =
      TPM2_ALG_SHA256;
  unsigned int n = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(ctx, obfuscate, 32) == 1 &&
           EVP_DigestUpdate(ctx, key, TPM_IDENTITY_KEY_LEN) == 1 &&
           EVP_DigestFinal_ex(ctx, pub->unique.keyedHash.buffer, &n) == 1;
  EVP_MD_CTX_free(ctx);
  pub->unique.keyedHash.size = (UINT16)n;
  return ok ? 0 : -1;
}

/* Marshalled TPMT_PUBLIC of the identity key and its name. */
struct identity {
  TPMT_PUBLIC pub;
  uint8_t pub_bytes[sizeof(TPMT_PUBLIC)];
  size_t pub_len;
  uint8_t name[2 + 32];
};

static int identity_named(const uint8_t *obfuscate, const uint8_t *key,
                          struct identity *id)
{
  id->pub_len = 0;
  if (identity_public(obfuscate, key, &id->pub) != 0 ||
      Tss2_MU_TPMT_PUBLIC_Marshal(&id->pub, id->pub_bytes,
                                  sizeof(id->pub_bytes),
                                  &id->pub_len) != TSS2_RC_SUCCESS)
    return -1;
  id->name[0] = (uint8_t)(TPM2_ALG_SHA256 >> 8);
  id->name[1] = (uint8_t)TPM2_ALG_SHA256;
  return EVP_Digest(id->pub_bytes, id->pub_len, id->name + 2, NULL,
                    EVP_sha256(), NULL) == 1
             ? 0
             : -1;
}

/* Inner wrapper: AES-CFB(inner key, TPM2B(H(sens2B || name)) || sens2B). */
static int inner_wrap(const uint8_t *obfuscate, const uint8_t *key,
                      const struct identity *id, const uint8_t *inner_key,
                      uint8_t *out, size_t cap, size_t *out_len)
{
  TPM2B_SENSITIVE sens;
  memset(&sens, 0, sizeof(sens));
  sens.sensitiveArea.sensitiveType = TPM2_ALG_KEYEDHASH;
  sens.sensitiveArea.seedValue.size = 32;
  memcpy(sens.sensitiveArea.seedValue.buffer, obfuscate, 32);
  sens.sensitiveArea.sensitive.bits.size = TPM_IDENTITY_KEY_LEN;
  memcpy(sens.sensitiveArea.sensitive.bits.buffer, key, TPM_IDENTITY_KEY_LEN);
  uint8_t sens2b[sizeof(TPM2B_SENSITIVE)];
  size_t sens_len = 0, off = 0;
  TPM2B_DIGEST integrity = {.size = 32};
  int rc = -1;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (Tss2_MU_TPM2B_SENSITIVE_Marshal(&sens, sens2b, sizeof(sens2b),
                                      &sens_len) == TSS2_RC_SUCCESS &&
      ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
      EVP_DigestUpdate(ctx, sens2b, sens_len) == 1 &&
      EVP_DigestUpdate(ctx, id->name, sizeof(id->name)) == 1 &&
      EVP_DigestFinal_ex(ctx, integrity.buffer, NULL) == 1 &&
      Tss2_MU_TPM2B_DIGEST_Marshal(&integrity, out, cap, &off) ==
          TSS2_RC_SUCCESS &&
      sens_len <= cap - off) {
    memcpy(out + off, sens2b, sens_len);
    *out_len = off + sens_len;
    rc = tpm_cfb(inner_key, INNER_WRAP_KEY_LEN, out, *out_len, 1);
  }
  EVP_MD_CTX_free(ctx);
  OPENSSL_cleanse(&sens, sizeof(sens));
  OPENSSL_cleanse(sens2b, sizeof(sens2b));
  return rc;
}

/* TPM2_Duplicate of the identity key to the SRK, then its public area. */
static int duplicate_identity(const struct tpm_key *srk, const uint8_t *key,
                              const uint8_t *inner_key,
                              struct buf *b)
{
  uint8_t obfuscate[32], dup[sizeof(TPM2B_SENSITIVE) + 2 + 64];
  size_t dup_len = 0;
  struct identity id;
  struct wrapped w;
  int rc = -1;
  if (random_bytes(obfuscate, sizeof(obfuscate)) == 0 &&
      identity_named(obfuscate, key, &id) == 0 &&
      inner_wrap(obfuscate, key, &id, inner_key, dup, sizeof(dup),
                 &dup_len) == 0 &&
      outer_wrap(srk, "DUPLICATE", id.name, sizeof(id.name), dup, dup_len,
                 &w) == 0) {
    put_integrity_and(b, &w.integrity, dup, dup_len); /* TPM2B_PRIVATE */
    put_u16(b, w.secret_len);                          /* inSymSeed */
    put(b, w.secret, w.secret_len);
    put_u16(b, id.pub_len);                            /* TPM2B_PUBLIC */
    put(b, id.pub_bytes, id.pub_len);
    rc = 0;
  }
  OPENSSL_cleanse(obfuscate, sizeof(obfuscate));
  OPENSSL_cleanse(dup, sizeof(dup));
  return rc;
}

int tpm_activation_blob(const struct tpm_key *ek, const struct tpm_key *srk,
                        const uint8_t key[TPM_IDENTITY_KEY_LEN],
                        uint8_t *out, size_t out_cap,
                        size_t *out_len, char *why, size_t why_len)
{
  struct buf b = {.p = out, .cap = out_cap};
  uint8_t inner_key[INNER_WRAP_KEY_LEN];
  /* ActivateCredential(activate = SRK, key = EK) recovers the inner key
   * only in the TPM that holds both; Import then needs the SRK again. */
  int rc = random_bytes(inner_key, sizeof(inner_key)) == 0 &&
                   make_credential(ek, inner_key, sizeof(inner_key), srk,
                                   &b) == 0 &&
                   duplicate_identity(srk, key, inner_key, &b) == 0
               ? 0
               : -1;
  put_u16(&b, 0); /* encUriData: nothing */
  OPENSSL_cleanse(inner_key, sizeof(inner_key));
  if (rc != 0 || b.bad) {
    snprintf(why, why_len, "%s", b.bad ? "activation blob too large"
                                       : "activation blob: crypto failed");
    OPENSSL_cleanse(out, out_cap);
    return -1;
  }
  *out_len = b.len;
  return 0;
}
