/* EK and SRK public areas: tss2-mu does the parsing, OpenSSL the keys. */
#include "tpm_keys.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#define DEFAULT_RSA_EXPONENT 65537u

const EVP_MD *tpm_md_of(TPMI_ALG_HASH alg)
{
  switch (alg) {
  case TPM2_ALG_SHA1: return EVP_sha1();
  case TPM2_ALG_SHA256: return EVP_sha256();
  case TPM2_ALG_SHA384: return EVP_sha384();
  case TPM2_ALG_SHA512: return EVP_sha512();
  default: return NULL;
  }
}

static EVP_PKEY *rsa_from(const uint8_t *n, size_t n_len, uint32_t e)
{
  EVP_PKEY *pkey = NULL;
  BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
  BIGNUM *bn_e = BN_new();
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
  if (bn_n && bn_e && bld && ctx && BN_set_word(bn_e, e) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) &&
      (params = OSSL_PARAM_BLD_to_param(bld)) &&
      EVP_PKEY_fromdata_init(ctx) == 1 &&
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    pkey = NULL;
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  EVP_PKEY_CTX_free(ctx);
  BN_free(bn_n);
  BN_free(bn_e);
  return pkey;
}

/* What a key must be for MakeCredential / duplication to target it. */
static const char *unusable_because(const TPMT_PUBLIC *p)
{
  if (p->type != TPM2_ALG_RSA)
    return "not an RSA key (ECC endorsement keys are not supported)";
  if (!tpm_md_of(p->nameAlg))
    return "name algorithm is not SHA-1/256/384/512";
  const TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;
  if (r->symmetric.algorithm != TPM2_ALG_AES ||
      r->symmetric.mode.aes != TPM2_ALG_CFB ||
      (r->symmetric.keyBits.aes != 128 && r->symmetric.keyBits.aes != 192 &&
       r->symmetric.keyBits.aes != 256))
    return "symmetric definition is not AES-128/192/256-CFB";
  const TPM2B_PUBLIC_KEY_RSA *n = &p->unique.rsa;
  if (r->keyBits < 2048 || r->keyBits > 4096 || r->keyBits % 8 ||
      n->size != r->keyBits / 8 || !(n->buffer[0] & 0x80))
    return "RSA modulus is not 2048..4096 bits as declared";
  /* An even modulus or exponent is no RSA key (OpenSSL cannot even
   * encrypt to an even modulus). */
  if (!(n->buffer[n->size - 1] & 1) ||
      (r->exponent != 0 && (r->exponent < 3 || !(r->exponent & 1))))
    return "RSA modulus or exponent is not odd";
  return NULL;
}

static void say(char *why, size_t why_len, const char *text)
{
  if (why && why_len)
    snprintf(why, why_len, "%s", text);
}

int tpm_key_parse(const uint8_t *buf, size_t len, struct tpm_key *out,
                  char *why, size_t why_len)
{
  memset(out, 0, sizeof(*out));
  if (len < 2 || len > TPM_KEY_MAX_BYTES) {
    say(why, why_len, "TPM2B_PUBLIC length out of range");
    return -1;
  }
  TPM2B_PUBLIC pub2b;
  memset(&pub2b, 0, sizeof(pub2b));
  size_t off = 0;
  /* tss2-mu reads the TPMT_PUBLIC whatever the size field says. */
  if ((size_t)((buf[0] << 8) | buf[1]) != len - 2 ||
      Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &pub2b) !=
          TSS2_RC_SUCCESS ||
      off != len) {
    say(why, why_len, "not a TPM2B_PUBLIC (or bytes after it)");
    return -1;
  }
  out->pub = pub2b.publicArea;
  const char *bad = unusable_because(&out->pub);
  if (bad) {
    say(why, why_len, bad);
    return -1;
  }
  /* The name covers the TPMT_PUBLIC exactly as the TPM marshalled it. */
  out->name_md = tpm_md_of(out->pub.nameAlg);
  unsigned int md_len = 0;
  out->name[0] = (uint8_t)(out->pub.nameAlg >> 8);
  out->name[1] = (uint8_t)out->pub.nameAlg;
  if (EVP_Digest(buf + 2, len - 2, out->name + 2, &md_len, out->name_md,
                 NULL) != 1) {
    say(why, why_len, "digest failed");
    return -1;
  }
  out->name_len = 2 + md_len;
  uint32_t e = out->pub.parameters.rsaDetail.exponent;
  out->exponent = e ? e : DEFAULT_RSA_EXPONENT;
  out->rsa = rsa_from(out->pub.unique.rsa.buffer, out->pub.unique.rsa.size,
                      out->exponent);
  if (!out->rsa) {
    say(why, why_len, "RSA public key rejected by OpenSSL");
    return -1;
  }
  return 0;
}

void tpm_key_clear(struct tpm_key *k)
{
  EVP_PKEY_free(k->rsa);
  k->rsa = NULL;
}

/* The enrolled key as an OpenSSL RSA key, whatever form it was given in. */
static EVP_PKEY *enrolled_rsa(const uint8_t *buf, size_t len)
{
  struct tpm_key k;
  if (tpm_key_parse(buf, len, &k, NULL, 0) == 0)
    return k.rsa;
  tpm_key_clear(&k);
  TPMT_PUBLIC bare;
  memset(&bare, 0, sizeof(bare));
  size_t off = 0;
  if (len <= TPM_KEY_MAX_BYTES &&
      Tss2_MU_TPMT_PUBLIC_Unmarshal(buf, len, &off, &bare) ==
          TSS2_RC_SUCCESS &&
      off == len && bare.type == TPM2_ALG_RSA)
    return rsa_from(bare.unique.rsa.buffer, bare.unique.rsa.size,
                    bare.parameters.rsaDetail.exponent
                        ? bare.parameters.rsaDetail.exponent
                        : DEFAULT_RSA_EXPONENT);
  const unsigned char *p = buf;
  EVP_PKEY *spki = len <= TPM_KEY_MAX_BYTES ? d2i_PUBKEY(NULL, &p, (long)len)
                                            : NULL;
  if (spki && (EVP_PKEY_get_base_id(spki) != EVP_PKEY_RSA ||
               p != buf + len)) {
    EVP_PKEY_free(spki);
    spki = NULL;
  }
  return spki;
}

int tpm_key_matches_enrolled(const struct tpm_key *device_ek,
                             const uint8_t *enrolled, size_t enrolled_len)
{
  EVP_PKEY *want = enrolled_rsa(enrolled, enrolled_len);
  if (!want)
    return -1;
  /* Public parameters only (n, e): the comparison leaks nothing. */
  int same = EVP_PKEY_eq(want, device_ek->rsa) == 1;
  EVP_PKEY_free(want);
  return same ? 1 : 0;
}
