/* Data-dir initialisation: local CA, server certificate, service
 * connection string.  The TLS context built on them: tls/server_ctx.h. */
#ifndef CORE_TLS_PKI_H
#define CORE_TLS_PKI_H

#include <limits.h>

#include "util/connstr.h"
#include "util/err.h"

struct pki_paths {
  char ca[PATH_MAX];          /* DIR/tls/ca.pem; "" when cert/key are the
                                 operator's and no local CA exists */
  char cert[PATH_MAX];        /* server certificate (chain) in use */
  char key[PATH_MAX];         /* its private key */
  char conn_string[PATH_MAX]; /* DIR/service-connection-string */
};

/* Creates data_dir (0700) if missing; on first start generates
 * tls/ca.pem + ca.key, tls/server.pem + server.key (ECDSA P-256, SAN
 * DNS:localhost, IP:127.0.0.1, signed by the CA) unless cert/key are
 * given, and service-connection-string (0600).  Later starts reuse them. */
int pki_init_data_dir(const char *data_dir, const char *cert,
                      const char *key, struct pki_paths *out,
                      struct provd_err *err);

/* Reads the one-line connection string file (util/connstr.h rules);
 * errors are CONN_STRING and name the file.  out holds the key: wipe it. */
int pki_read_connection_string(const char *path, struct connstr *out,
                               struct provd_err *err);

#endif
