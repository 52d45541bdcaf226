/* libFuzzer target over the certificate signing requests devices send in
 * the register body's `csr` (core/tls/csr.c: csr_check).
 * Input: one mode byte || payload.  Mode bit 0 picks the key rule (p384 /
 * any); bit 1 says whether the payload is DER (encoded to base64 here, so
 * the fuzzer mutates the ASN.1) or the `csr` text as sent.  The
 * registration id is fixed; seeds are real requests for it.
 * Besides "no crash, no leak" it checks the contract: a refusal has one of
 * the four reason codes, a message and no request; an accepted request
 * verifies with its own key, its key obeys the rule, its subject has one
 * CN, and it can be encoded again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "provd/plugin.h"
#include "tls/csr.h"
#include "util/b64.h"
#include "util/err.h"

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char REG_ID[] = "fuzz-device-01";

static int is_reason(const char *code)
{
  static const char *const codes[] = {"CSR_MALFORMED", "CSR_BAD_SIGNATURE",
                                      "CSR_KEY_UNSUPPORTED",
                                      "CSR_CN_MISMATCH", NULL};
  for (size_t i = 0; codes[i]; i++)
    if (strcmp(code, codes[i]) == 0)
      return 1;
  return 0;
}

static void check_accepted(X509_REQ *req, const char *b64,
                           enum csr_key_rule rule)
{
  EVP_PKEY *key = X509_REQ_get0_pubkey(req);
  require(key && X509_REQ_verify(req, key) == 1);
  if (rule == CSR_KEY_P384)
    require(EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
            EVP_PKEY_get_bits(key) == 384);
  else
    require(EVP_PKEY_get_base_id(key) == EVP_PKEY_EC ||
            EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA);
  X509_NAME *subject = X509_REQ_get_subject_name(req);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  require(at >= 0 &&
          X509_NAME_get_index_by_NID(subject, NID_commonName, at) < 0);
  /* Whatever was accepted can be written out again (the issuer does). */
  unsigned char *der = NULL;
  require(strlen(b64) <= b64_encoded_len(CSR_MAX_DER));
  require(i2d_X509_REQ(req, &der) > 0);
  OPENSSL_free(der);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  enum csr_key_rule rule = data[0] & 1 ? CSR_KEY_EC_OR_RSA : CSR_KEY_P384;
  char *text;
  if (data[0] & 2) {
    text = b64_encode(data + 1, size - 1);
  } else {
    text = malloc(size);
    if (text) {
      memcpy(text, data + 1, size - 1);
      text[size - 1] = '\0';
    }
  }
  require(text != NULL);
  X509_REQ *req = (X509_REQ *)1;
  struct provd_err err;
  perr_clear(&err);
  if (csr_check(text, REG_ID, rule, &req, &err) == PROVD_OK) {
    require(req != NULL);
    check_accepted(req, text, rule);
    X509_REQ_free(req);
  } else {
    require(req == NULL && is_reason(err.code) && err.msg[0]);
  }
  free(text);
  return 0;
}
