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

/* Sets err with `what` plus OpenSSL's most recent reason, and clears
 * OpenSSL's error queue. */
void certgen_crypto_err(struct provd_err *err, const char *code,
                        const char *what);

#endif
