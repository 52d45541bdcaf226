/* Device identities for mutual-TLS registrations (BENCH_KIND=x509): one
 * ECDSA P-256 key and certificate per device, CN = its registration id,
 * signed by the group's CA.  Made before the measured run: a real device
 * brings its certificate, the server's machine never makes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "loadgen.h"
#include "util/x509ext.h"

static X509 *read_cert(const char *path)
{
  FILE *f = fopen(path, "r");
  X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  return x;
}

static EVP_PKEY *read_key(const char *path)
{
  FILE *f = fopen(path, "r");
  EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
  if (f)
    fclose(f);
  return k;
}

/* A device certificate for cn, valid for a day, signed by the CA. */
static int make_identity(struct lg_identity *id, const char *cn, long serial,
                         X509 *ca, EVP_PKEY *ca_key)
{
  id->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  id->cert = X509_new();
  if (!id->key || !id->cert)
    return -1;
  X509 *x = id->cert;
  X509_NAME *name = X509_get_subject_name(x);
  int ok = X509_set_version(x, 2) &&
           ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
           X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                      (const unsigned char *)cn, -1, -1, 0) &&
           X509_set_issuer_name(x, X509_get_subject_name(ca)) &&
           X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
           X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
           X509_set_pubkey(x, id->key) &&
           x509_ext_add(x, ca, NID_basic_constraints, "critical,CA:FALSE") ==
               0 &&
           x509_ext_add(x, ca, NID_ext_key_usage, "clientAuth") == 0 &&
           X509_sign(x, ca_key, EVP_sha256()) > 0;
  return ok ? 0 : -1;
}

struct lg_identity *lg_identities_new(const char *ca_file,
                                      const char *ca_key_file,
                                      const char *prefix, long n, char *err,
                                      size_t err_len)
{
  X509 *ca = read_cert(ca_file);
  EVP_PKEY *ca_key = read_key(ca_key_file);
  struct lg_identity *ids = calloc((size_t)n, sizeof *ids);
  long i = 0;
  if (!ca || !ca_key) {
    snprintf(err, err_len, "cannot read the client CA %s / key %s", ca_file,
             ca_key_file);
  } else if (!ids) {
    snprintf(err, err_len, "out of memory");
  } else {
    for (; i < n; i++) {
      char cn[LG_MAX_ID];
      snprintf(cn, sizeof cn, "%s%ld", prefix, i);
      if (make_identity(&ids[i], cn, i + 1, ca, ca_key) != 0) {
        snprintf(err, err_len, "cannot make the certificate of %s", cn);
        break;
      }
    }
  }
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  if (ids && i == n)
    return ids;
  lg_identities_free(ids, ids ? i + 1 : 0);
  return NULL;
}

void lg_identities_free(struct lg_identity *ids, long n)
{
  for (long i = 0; ids && i < n; i++) {
    X509_free(ids[i].cert);
    EVP_PKEY_free(ids[i].key);
  }
  free(ids);
}
