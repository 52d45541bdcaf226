#include "tls/csr.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "provd/plugin.h"
#include "util/b64.h"

#define RSA_MIN_BITS 2048

static int refuse(struct provd_err *err, const char *code, const char *msg)
{
  ERR_clear_error();
  perr_set(err, code, "%s", msg);
  return PROVD_E_INVAL;
}

/* The request in `b64`, or NULL: not base64, too large, not one DER
 * PKCS#10 structure, or bytes after it. */
static X509_REQ *decode(const char *b64)
{
  unsigned char der[CSR_MAX_DER];
  size_t n = strlen(b64), der_len = 0;
  if (n == 0 || n > b64_encoded_len(CSR_MAX_DER) ||
      b64_decode_n(b64, n, der, sizeof der, &der_len) != 0)
    return NULL;
  const unsigned char *p = der;
  X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)der_len);
  if (req && p != der + der_len) {
    X509_REQ_free(req);
    req = NULL;
  }
  return req;
}

static int key_allowed(EVP_PKEY *key, enum csr_key_rule rule)
{
  char group[64] = "";
  size_t glen = 0;
  int is_ec = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
              EVP_PKEY_get_group_name(key, group, sizeof group, &glen) == 1;
  if (is_ec && strcmp(group, "secp384r1") == 0)
    return 1;
  if (rule == CSR_KEY_P384)
    return 0;
  if (is_ec)
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "secp521r1") == 0;
  return EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA &&
         EVP_PKEY_get_bits(key) >= RSA_MIN_BITS;
}

/* 1 when the subject has exactly one CN and it is `want`, byte for byte
 * (no embedded NUL can pass). */
static int cn_is(const X509_REQ *req, const char *want)
{
  const X509_NAME *subject = X509_REQ_get_subject_name(req);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0)
    return 0;
  const ASN1_STRING *cn =
      X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
  unsigned char *utf8 = NULL;
  int len = ASN1_STRING_to_UTF8(&utf8, cn);
  int same = len >= 0 && (size_t)len == strlen(want) &&
             memcmp(utf8, want, (size_t)len) == 0;
  OPENSSL_free(utf8);
  return same;
}

int csr_check(const char *b64, const char *registration_id,
              enum csr_key_rule rule, X509_REQ **out_take,
              struct provd_err *err)
{
  *out_take = NULL;
  X509_REQ *req = b64 ? decode(b64) : NULL;
  if (!req)
    return refuse(err, "CSR_MALFORMED",
                  "csr must be base64 of one DER PKCS#10 request of at most "
                  "4096 bytes.");
  EVP_PKEY *key = X509_REQ_get0_pubkey(req);
  int rc = PROVD_OK;
  if (!key || X509_REQ_verify(req, key) != 1)
    rc = refuse(err, "CSR_BAD_SIGNATURE",
                "The CSR's signature does not verify with its public key.");
  else if (!key_allowed(key, rule))
    rc = refuse(err, "CSR_KEY_UNSUPPORTED",
                rule == CSR_KEY_P384
                    ? "The CSR's key must be ECDSA P-384."
                    : "The CSR's key must be ECDSA P-256/P-384/P-521 or "
                      "RSA of at least 2048 bits.");
  else if (!cn_is(req, registration_id))
    rc = refuse(err, "CSR_CN_MISMATCH",
                "The CSR's subject must have one common name, equal to the "
                "registration id.");
  if (rc != PROVD_OK) {
    X509_REQ_free(req);
    return rc;
  }
  *out_take = req;
  return PROVD_OK;
}

int csr_key_rule_parse(const char *text, enum csr_key_rule *out)
{
  if (strcmp(text, "p384") == 0)
    *out = CSR_KEY_P384;
  else if (strcmp(text, "any") == 0)
    *out = CSR_KEY_EC_OR_RSA;
  else
    return -1;
  return 0;
}
