/* The server TLS context (settings shared by every listener) and its
 * copies on per-thread OpenSSL library contexts (server_ctx.h says why). */
#include "tls/server_ctx.h"

#include <pthread.h>
#include <stdlib.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "tls/certgen.h"
#include "tls/lean_provider.h"

/* TLS 1.2 suites: forward secrecy and AEAD first; CBC kept for small
 * device stacks.  TLS 1.3 suites stay OpenSSL's defaults. */
#define TLS12_CIPHERS                                                       \
  "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES"
#define MAX_LIBS 64

/* One library context and what it holds: its provd-lean, serving the
 * default provider of a context of its own (all NULL when lib runs on
 * what the configuration file loads).  OpenSSL frees a library context's
 * providers only once what OSSL_PROVIDER_load returned is unloaded. */
struct lib_slot {
  OSSL_LIB_CTX *lib;
  OSSL_PROVIDER *lean;
  OSSL_LIB_CTX *inner;
  OSSL_PROVIDER *inner_default;
};

struct tls_libs {
  int n;
  struct lib_slot slot[MAX_LIBS];
};

/* The context's copies, kept in its ex_data so that every holder of the
 * SSL_CTX pointer (listeners, SIGHUP's reload) finds them. */
struct worker_copies {
  int n;
  SSL_CTX *ctx[MAX_LIBS];
};

static int copies_index = -1;
static pthread_once_t copies_once = PTHREAD_ONCE_INIT;

static void free_copies(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
                        int idx, long argl, void *argp)
{
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  struct worker_copies *copies = ptr;
  if (!copies)
    return;
  for (int i = 0; i < copies->n; i++)
    SSL_CTX_free(copies->ctx[i]); /* connections still open keep theirs */
  free(copies);
}

static void register_copies_index(void)
{
  copies_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_copies);
}

static int count_provider(OSSL_PROVIDER *prov, void *count)
{
  (void)prov;
  ++*(int *)count;
  return 1;
}

/* The inner context and its default provider, once nothing uses them. */
static void release_inner(struct lib_slot *slot)
{
  if (slot->inner_default)
    OSSL_PROVIDER_unload(slot->inner_default);
  OSSL_LIB_CTX_free(slot->inner);
  slot->inner_default = NULL;
  slot->inner = NULL;
}

/* Gives up provd-lean: lib runs on what else it loaded. */
static void drop_lean(struct lib_slot *slot)
{
  if (slot->lean)
    OSSL_PROVIDER_unload(slot->lean);
  slot->lean = NULL;
  release_inner(slot);
}

static void slot_clear(struct lib_slot *slot)
{
  if (slot->lean)
    OSSL_PROVIDER_unload(slot->lean);
  slot->lean = NULL;
  OSSL_LIB_CTX_free(slot->lib);
  slot->lib = NULL;
  release_inner(slot); /* after the lib it served */
}

/* slot->lib gets provd-lean on a default provider of an inner context,
 * unless that fails (OpenSSL then falls back to its default provider) or
 * the configuration file loads providers itself (FIPS, say): those are
 * then lib's only ones, as they are the default context's. */
static void load_providers(struct lib_slot *slot)
{
  slot->inner = OSSL_LIB_CTX_new();
  slot->inner_default =
      slot->inner ? OSSL_PROVIDER_load(slot->inner, "default") : NULL;
  slot->lean = slot->inner_default
                   ? lean_provider_load(slot->lib, slot->inner_default)
                   : NULL;
  const char *conf = getenv("OPENSSL_CONF");
  char *default_conf = conf ? NULL : CONF_get1_default_config_file();
  /* As for the default context, a missing file is no error. */
  if (!OSSL_LIB_CTX_load_config(slot->lib, conf ? conf : default_conf))
    ERR_clear_error();
  OPENSSL_free(default_conf);
  int loaded = 0;
  OSSL_PROVIDER_do_all(slot->lib, count_provider, &loaded);
  if (!slot->lean || loaded > 1)
    drop_lean(slot);
  ERR_clear_error(); /* a failed lean load leaves its reason queued */
}

/* A new library context configured like the default one (the same
 * configuration file), then a fetch to prove a provider answers. */
static int slot_open(struct lib_slot *slot, struct provd_err *err)
{
  slot->lib = OSSL_LIB_CTX_new();
  if (!slot->lib) {
    certgen_crypto_err(err, "TLS_CONFIG", "OSSL_LIB_CTX_new");
    return -1;
  }
  load_providers(slot);
  EVP_MD *probe = EVP_MD_fetch(slot->lib, "SHA256", NULL);
  if (!probe) {
    certgen_crypto_err(err, "TLS_CONFIG",
                       "no provider answers in a new library context");
    slot_clear(slot);
    return -1;
  }
  EVP_MD_free(probe);
  return 0;
}

struct tls_libs *tls_libs_new(int n, struct provd_err *err)
{
  if (n < 1) {
    perr_set(err, "TLS_CONFIG", "library contexts must be 1 or more, got %d",
             n);
    return NULL;
  }
  if (n > MAX_LIBS)
    n = MAX_LIBS; /* threads beyond share them (tls_ctx_for_worker) */
  struct tls_libs *libs = calloc(1, sizeof *libs);
  if (!libs) {
    perr_set(err, "TLS_CONFIG", "out of memory");
    return NULL;
  }
  for (; libs->n < n; libs->n++) {
    if (slot_open(&libs->slot[libs->n], err) != 0) {
      tls_libs_free(libs);
      return NULL;
    }
  }
  return libs;
}

int tls_libs_lean(const struct tls_libs *libs)
{
  int lean = 0;
  for (int i = 0; libs && i < libs->n; i++)
    lean += libs->slot[i].lean != NULL;
  return lean;
}

OSSL_LIB_CTX *tls_libs_get(const struct tls_libs *libs, int i)
{
  return libs && i >= 0 && i < libs->n ? libs->slot[i].lib : NULL;
}

void tls_libs_free(struct tls_libs *take)
{
  if (!take)
    return;
  for (int i = 0; i < take->n; i++)
    slot_clear(&take->slot[i]);
  free(take);
}

/* Replaces OpenSSL's chain verification in the handshake: the x509
 * attestation plugin verifies the chain against the enrollment's CAs
 * (which TLS does not know), so building and checking it here too would
 * cost every mutual-TLS registration a second round of signature checks
 * for an answer nobody reads.  The client still proves it holds the
 * leaf's key: CertificateVerify is checked by the handshake itself. */
static int skip_chain_verification(X509_STORE_CTX *ctx, void *arg)
{
  (void)ctx;
  (void)arg;
  return 1;
}

/* One context with provd's settings on library context lib (NULL: the
 * default one). */
static SSL_CTX *ctx_new_on(OSSL_LIB_CTX *lib, const char *cert,
                           const char *key, struct provd_err *err)
{
  static const unsigned char sid_ctx[] = "provd";
  SSL_CTX *ctx = SSL_CTX_new_ex(lib, NULL, TLS_server_method());
  if (!ctx) {
    certgen_crypto_err(err, "TLS_CONFIG", "SSL_CTX_new");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  const char *step = NULL;
  if (!SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS))
    step = "cipher list";
  else if (!SSL_CTX_use_certificate_chain_file(ctx, cert))
    step = cert;
  else if (!SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM))
    step = key;
  else if (!SSL_CTX_check_private_key(ctx))
    step = "private key does not match the certificate";
  if (step) {
    certgen_crypto_err(err, "TLS_CONFIG", step);
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_cert_verify_callback(ctx, skip_chain_verification, NULL);
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  /* No resumption: a booting device registers over one connection and
   * never comes back with a session, while issuing TLS 1.3 tickets and
   * caching sessions costs 10-15% of the server CPU of every full
   * handshake (measured with bench/). */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  return ctx;
}

static int attach_copies(SSL_CTX *ctx, const struct tls_libs *libs,
                         const char *cert, const char *key,
                         struct provd_err *err)
{
  pthread_once(&copies_once, register_copies_index);
  struct worker_copies *copies = calloc(1, sizeof *copies);
  if (copies_index < 0 || !copies ||
      !SSL_CTX_set_ex_data(ctx, copies_index, copies)) {
    free(copies);
    perr_set(err, "TLS_CONFIG", "cannot attach per-thread TLS contexts");
    return -1;
  }
  for (; copies->n < libs->n; copies->n++) {
    copies->ctx[copies->n] =
        ctx_new_on(libs->slot[copies->n].lib, cert, key, err);
    if (!copies->ctx[copies->n])
      return -1; /* the caller's SSL_CTX_free frees those made */
  }
  return 0;
}

SSL_CTX *tls_server_ctx_new(const char *cert, const char *key,
                            const struct tls_libs *libs_borrow,
                            struct provd_err *err)
{
  SSL_CTX *ctx = ctx_new_on(NULL, cert, key, err);
  if (ctx && libs_borrow &&
      attach_copies(ctx, libs_borrow, cert, key, err) != 0) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

SSL_CTX *tls_ctx_for_worker(SSL_CTX *ctx, int worker)
{
  struct worker_copies *copies =
      ctx && copies_index >= 0 ? SSL_CTX_get_ex_data(ctx, copies_index)
                               : NULL;
  if (!copies || copies->n == 0 || worker < 0)
    return ctx;
  return copies->ctx[worker % copies->n];
}
