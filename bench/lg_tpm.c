#include "lg_tpm.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <tss2/tss2_mu.h>

#include "tpm_crypto.h"
#include "util/b64.h"

/* PolicySecret(TPM_RH_ENDORSEMENT), the EK template's policy. */
static const uint8_t EK_POLICY[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
    0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
    0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

/* The SDK template (RSA-2048, AES-128-CFB) around key's modulus,
 * marshalled: TPM2B_PUBLIC into out2b, and the name of the TPMT_PUBLIC. */
static int marshal_public(EVP_PKEY *key, int is_ek, char **b64_out,
                          uint8_t name[34])
{
  TPM2B_PUBLIC p;
  BIGNUM *n = NULL;
  memset(&p, 0, sizeof(p));
  p.publicArea.type = TPM2_ALG_RSA;
  p.publicArea.nameAlg = TPM2_ALG_SHA256;
  p.publicArea.objectAttributes = is_ek ? 0x000300b2 : 0x00030472;
  if (is_ek) {
    p.publicArea.authPolicy.size = sizeof(EK_POLICY);
    memcpy(p.publicArea.authPolicy.buffer, EK_POLICY, sizeof(EK_POLICY));
  }
  TPMS_RSA_PARMS *r = &p.publicArea.parameters.rsaDetail;
  r->symmetric.algorithm = TPM2_ALG_AES;
  r->symmetric.keyBits.aes = 128;
  r->symmetric.mode.aes = TPM2_ALG_CFB;
  r->scheme.scheme = TPM2_ALG_NULL;
  r->keyBits = 2048;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
      BN_bn2binpad(n, p.publicArea.unique.rsa.buffer, 256) != 256) {
    BN_free(n);
    return -1;
  }
  BN_free(n);
  p.publicArea.unique.rsa.size = 256;
  uint8_t buf[sizeof(TPM2B_PUBLIC)];
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Marshal(&p, buf, sizeof(buf), &off) != 0)
    return -1;
  name[0] = 0x00;
  name[1] = 0x0b;
  if (EVP_Digest(buf + 2, off - 2, name + 2, NULL, EVP_sha256(), NULL) != 1)
    return -1;
  *b64_out = b64_encode(buf, off);
  return *b64_out ? 0 : -1;
}

int lg_tpm_load(const char *pem_file, struct lg_tpm *t, char *err,
                size_t err_len)
{
  uint8_t ek_name[34];
  memset(t, 0, sizeof(*t));
  FILE *f = fopen(pem_file, "r");
  if (f) {
    t->ek = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    t->srk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
  }
  if (!t->ek || !t->srk || EVP_PKEY_get_bits(t->ek) != 2048 ||
      EVP_PKEY_get_bits(t->srk) != 2048 ||
      marshal_public(t->ek, 1, &t->ek_b64, ek_name) != 0 ||
      marshal_public(t->srk, 0, &t->srk_b64, t->srk_name) != 0) {
    snprintf(err, err_len, "%s: want two PEM RSA-2048 private keys (EK, "
             "SRK)", pem_file);
    lg_tpm_free(t);
    return -1;
  }
  return 0;
}

void lg_tpm_free(struct lg_tpm *t)
{
  EVP_PKEY_free(t->ek);
  EVP_PKEY_free(t->srk);
  free(t->ek_b64);
  free(t->srk_b64);
  memset(t, 0, sizeof(*t));
}

/* The outer wrapper (TPM2B_DIGEST integrity || data), checked and
 * decrypted in place: seed from `secret` with the private key. */
static int outer_unwrap(EVP_PKEY *key, const char *label, const uint8_t *name,
                        size_t name_len, const uint8_t *secret,
                        size_t secret_len, uint8_t *wrapped, size_t len,
                        uint8_t **data, size_t *data_len)
{
  /* OpenSSL wants room for a whole RSA block, whatever the seed's size. */
  uint8_t seed[512], sym[16], mac_key[32], mac[EVP_MAX_MD_SIZE];
  size_t seed_len = sizeof(seed);
  unsigned int mac_len = 0;
  if (len < 2)
    return -1;
  size_t ilen = (size_t)((wrapped[0] << 8) | wrapped[1]);
  if (ilen != 32 || len < 2 + ilen)
    return -1;
  *data = wrapped + 2 + ilen;
  *data_len = len - 2 - ilen;
  int ok = tpm_oaep(key, EVP_sha256(), label, 0, secret, secret_len, seed,
                    &seed_len) == 0 &&
           tpm_kdfa(EVP_sha256(), seed, seed_len, "STORAGE", name, name_len,
                    128, sym) == 0 &&
           tpm_kdfa(EVP_sha256(), seed, seed_len, "INTEGRITY", NULL, 0, 256,
                    mac_key) == 0 &&
           tpm_hmac(EVP_sha256(), mac_key, sizeof(mac_key), *data,
                    *data_len, name, name_len, mac, &mac_len) == 0 &&
           CRYPTO_memcmp(mac, wrapped + 2, 32) == 0 &&
           tpm_cfb(sym, sizeof(sym), *data, *data_len, 0) == 0;
  OPENSSL_cleanse(seed, sizeof(seed));
  OPENSSL_cleanse(sym, sizeof(sym));
  return ok ? 0 : -1;
}

int lg_tpm_activate(const struct lg_tpm *t, const uint8_t *blob, size_t len,
                    uint8_t key[LG_TPM_KEY_LEN])
{
  TPM2B_ID_OBJECT cred = {0};
  TPM2B_ENCRYPTED_SECRET secret = {0}, sym_seed = {0};
  TPM2B_PRIVATE dup = {0};
  TPM2B_PUBLIC pub = {0};
  TPM2B_SENSITIVE sens = {0};
  size_t off = 0, pub_at, data_len;
  uint8_t *data, id_name[34] = {0x00, 0x0b};
  int ok = Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, len, &off, &cred) == 0 &&
           Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(blob, len, &off,
                                                    &secret) == 0 &&
           Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, len, &off, &dup) == 0 &&
           Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(blob, len, &off,
                                                    &sym_seed) == 0;
  pub_at = off;
  ok = ok && Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, len, &off, &pub) == 0 &&
       EVP_Digest(blob + pub_at + 2, off - pub_at - 2, id_name + 2, NULL,
                  EVP_sha256(), NULL) == 1;
  /* ActivateCredential: the inner wrapper key. */
  uint8_t inner[2 + 32];
  ok = ok && outer_unwrap(t->ek, "IDENTITY", t->srk_name, 34,
                          secret.secret, secret.size, cred.credential,
                          cred.size, &data, &data_len) == 0 &&
       data_len >= 2 && data_len <= sizeof(inner);
  if (ok)
    memcpy(inner, data, data_len);
  size_t inner_len = ok ? (size_t)((inner[0] << 8) | inner[1]) : 0;
  ok = ok && inner_len == 16 && data_len == 2 + inner_len;
  /* Import: both wrappers off, then the sensitive area. */
  ok = ok && outer_unwrap(t->srk, "DUPLICATE", id_name, 34, sym_seed.secret,
                          sym_seed.size, dup.buffer, dup.size, &data,
                          &data_len) == 0 &&
       tpm_cfb(inner + 2, 16, data, data_len, 0) == 0 && data_len > 34;
  off = 0;
  ok = ok && Tss2_MU_TPM2B_SENSITIVE_Unmarshal(data + 34, data_len - 34, &off,
                                               &sens) == 0 &&
       sens.sensitiveArea.sensitive.bits.size == LG_TPM_KEY_LEN;
  if (ok)
    memcpy(key, sens.sensitiveArea.sensitive.bits.buffer, LG_TPM_KEY_LEN);
  OPENSSL_cleanse(&sens, sizeof(sens));
  OPENSSL_cleanse(inner, sizeof(inner));
  return ok ? 0 : -1;
}
