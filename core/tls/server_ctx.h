/* The server TLS context of the device, service and MQTT listeners, and
 * one copy of it per event-loop thread on that thread's own OpenSSL
 * library context. */
#ifndef CORE_TLS_SERVER_CTX_H
#define CORE_TLS_SERVER_CTX_H

#include <openssl/ssl.h>

#include "util/err.h"

/* OpenSSL library contexts, one per event-loop thread.  Why: OpenSSL 3
 * looks up every algorithm a handshake uses in its library context's
 * method stores under read locks; threads sharing one context bounce
 * those locks' cache lines between cores, which doubles the cost of
 * decoding a client certificate (bench/, docs/benchmark.md).  Each
 * context reads the same OpenSSL configuration file as the process's
 * default one, so providers configured there (FIPS) apply here too;
 * when it configures none, a context runs on provd-lean, the default
 * provider's algorithms with fewer certificate decoders.
 * Owned by the caller; free it only after every SSL_CTX built on it and
 * every object those made (connections, client certificates).  At most
 * 64 are made; threads beyond share them. */
struct tls_libs;

struct tls_libs *tls_libs_new(int n, struct provd_err *err);
/* How many of them run on provd-lean (lean_provider.h); the others, when
 * the configuration file loads providers itself, on those. */
int tls_libs_lean(const struct tls_libs *libs);
/* Context i (borrowed), or NULL past the last. */
OSSL_LIB_CTX *tls_libs_get(const struct tls_libs *libs, int i);
void tls_libs_free(struct tls_libs *take);

/* TLS 1.2+ server context; requests but does not require a client
 * certificate (any certificate is accepted at the TLS layer).  With libs
 * (may be NULL) it also carries one copy per library context, which
 * tls_ctx_for_worker hands out and which SSL_CTX_free frees with it. */
SSL_CTX *tls_server_ctx_new(const char *cert, const char *key,
                            const struct tls_libs *libs_borrow,
                            struct provd_err *err);

/* The context event-loop thread `worker` makes its connections from:
 * ctx's copy on that thread's library context (worker modulo their
 * number), or ctx itself when it has no copies.  Borrowed from ctx. */
SSL_CTX *tls_ctx_for_worker(SSL_CTX *ctx, int worker);

#endif
