/* Building blocks for the certificates provd signs: the data-dir PKI
 * (pki.c) and device certificates issued from a CSR (issuer.c). */
#ifndef CORE_TLS_CERTGEN_H
#define CORE_TLS_CERTGEN_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util/err.h"

/* A fresh certificate shell: version 3, a random positive 128-bit serial,
 * valid from an hour ago (devices whose clock lags a little) for `days`,
 * subject CN=cn, public key of key.  NULL on failure; caller frees. */
X509 *certgen_new(EVP_PKEY *key, const char *cn, long days);

/* Adds one extension in openssl.cnf syntax ("critical,CA:FALSE"); the
 * issuer is consulted for authorityKeyIdentifier.  0 or -1. */
int certgen_add_ext(X509 *cert, X509 *issuer, int nid, const char *value);

/* One extension of a profile; a profile ends with {0, NULL}. */
struct certgen_ext {
  int nid;
  const char *value;
};

/* What a certificate is signed with and under. */
struct certgen_signer {
  X509 *cert;              /* NULL: the new certificate signs itself */
  EVP_PKEY *key;
  const EVP_MD *md;
};

/* certgen_new(key, cn, days), its notAfter capped at the signer's own,
 * the profile's extensions, subject and authority key identifiers, and
 * the signature.  NULL on failure (OpenSSL's queue says why); caller
 * frees. */
X509 *certgen_sign(EVP_PKEY *key, const char *cn, long days,
                   const struct certgen_ext *profile,
                   const struct certgen_signer *signer);

/* Sets err with `what` plus OpenSSL's most recent reason, and clears
 * OpenSSL's error queue. */
void certgen_crypto_err(struct provd_err *err, const char *code,
                        const char *what);

#endif
