/* One helper for code that makes certificates (bench load generator,
 * tests; core/tls/pki.c has its own copy from before this file). */
#ifndef CORE_UTIL_X509EXT_H
#define CORE_UTIL_X509EXT_H

#include <openssl/x509.h>

/* Adds the v3 extension nid = value ("critical,CA:FALSE", "clientAuth",
 * ...), issued by issuer (cert itself when self-signed).  0 or -1. */
int x509_ext_add(X509 *cert, X509 *issuer, int nid, const char *value);

#endif
