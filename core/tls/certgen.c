#include "tls/certgen.h"

#include <stdio.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define BACKDATE_S (-3600) /* tolerate devices whose clock is a bit behind */
#define SERIAL_BYTES 16

void certgen_crypto_err(struct provd_err *err, const char *code,
                        const char *what)
{
  unsigned long e = ERR_peek_last_error();
  char reason[256] = "unknown error";
  if (e)
    ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  perr_set(err, code, "%s: %s", what, reason);
}

int certgen_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext)
    return -1;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

static int set_random_serial(X509 *cert)
{
  unsigned char raw[SERIAL_BYTES];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return -1;
  raw[0] &= 0x7f; /* positive */
  raw[0] |= 0x01; /* and exactly SERIAL_BYTES long */
  BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
  int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
  BN_free(bn);
  return ok ? 0 : -1;
}

static int set_common_name(X509_NAME *name, const char *cn)
{
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0)
             ? 0
             : -1;
}

static int add_profile(X509 *cert, X509 *issuer,
                       const struct certgen_ext *profile)
{
  for (const struct certgen_ext *e = profile; e->value; e++)
    if (certgen_add_ext(cert, issuer, e->nid, e->value) < 0)
      return -1;
  if (certgen_add_ext(cert, cert, NID_subject_key_identifier, "hash") < 0 ||
      certgen_add_ext(cert, issuer, NID_authority_key_identifier,
                      "keyid:always") < 0)
    return -1;
  return 0;
}

X509 *certgen_sign(EVP_PKEY *key, const char *cn, long days,
                   const struct certgen_ext *profile,
                   const struct certgen_signer *signer)
{
  X509 *cert = certgen_new(key, cn, days);
  if (!cert)
    return NULL;
  X509 *issuer = signer->cert ? signer->cert : cert;
  /* A certificate outliving its issuer would only fail later, elsewhere. */
  if (signer->cert && ASN1_TIME_compare(X509_get0_notAfter(cert),
                                        X509_get0_notAfter(issuer)) > 0 &&
      !X509_set1_notAfter(cert, X509_get0_notAfter(issuer)))
    goto fail;
  if (!X509_set_issuer_name(cert, X509_get_subject_name(issuer)) ||
      add_profile(cert, issuer, profile) < 0 ||
      X509_sign(cert, signer->key, signer->md) <= 0)
    goto fail;
  return cert;
fail:
  X509_free(cert);
  return NULL;
}

X509 *certgen_new(EVP_PKEY *key, const char *cn, long days)
{
  X509 *cert = X509_new();
  if (!cert)
    return NULL;
  if (!X509_set_version(cert, 2) || set_random_serial(cert) < 0 ||
      !X509_gmtime_adj(X509_getm_notBefore(cert), BACKDATE_S) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) ||
      set_common_name(X509_get_subject_name(cert), cn) < 0 ||
      !X509_set_pubkey(cert, key)) {
    X509_free(cert);
    return NULL;
  }
  return cert;
}
