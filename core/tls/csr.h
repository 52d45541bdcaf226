/* Certificate signing requests sent by devices (the DPS register body's
 * `csr`: base64 DER PKCS#10, no PEM armour).  Pure checks, no I/O: the
 * issuer (issuer.h) signs only what passed them. */
#ifndef CORE_TLS_CSR_H
#define CORE_TLS_CSR_H

#include <openssl/x509.h>

#include "util/err.h"

/* DER bytes accepted: a P-384 request is about 400 bytes, an RSA-4096
 * one about 1.2 KiB; anything larger is not a CSR a device needs. */
#define CSR_MAX_DER 4096

enum csr_key_rule {
  CSR_KEY_P384 = 1,   /* ECDSA P-384 only, as DPS issuance requires */
  CSR_KEY_EC_OR_RSA = 2 /* also P-256, P-521 and RSA of 2048+ bits */
};

/* Decodes `b64` and checks, in this order: one well-formed PKCS#10
 * request and nothing after it (else CSR_MALFORMED, also when larger
 * than CSR_MAX_DER); its self-signature (CSR_BAD_SIGNATURE); the key
 * (CSR_KEY_UNSUPPORTED); exactly one subject CN, equal to
 * registration_id byte for byte (CSR_CN_MISMATCH).  On success *out_take
 * is the request (caller frees with X509_REQ_free) and PROVD_OK is
 * returned; otherwise PROVD_E_INVAL with err->code the reason above and a
 * message fit for the device and the log. */
int csr_check(const char *b64, const char *registration_id,
              enum csr_key_rule rule, X509_REQ **out_take,
              struct provd_err *err);

/* "p384" or "any" to a rule; -1 for other text. */
int csr_key_rule_parse(const char *text, enum csr_key_rule *out);

#endif
