/* provd-lean: the default provider's algorithms with fewer decoders and
 * key managers (lean_provider.h says why). */
#include "tls/lean_provider.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/err.h>

#define MAX_DISPATCH 32
#define MAX_DECODERS 64
#define MAX_KEYMGMTS 32

/* Every default provider instance shares OpenSSL's static tables, so
 * the wrapped dispatch and the kept decoders are built once, from the
 * first instance, and serve them all. */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static bool tables_ok;
static OSSL_FUNC_provider_query_operation_fn *inner_query;
static OSSL_DISPATCH lean_dispatch[MAX_DISPATCH];
static OSSL_ALGORITHM lean_decoders[MAX_DECODERS];
static OSSL_ALGORITHM lean_keymgmts[MAX_KEYMGMTS];

/* lean_init runs inside OSSL_PROVIDER_load and cannot be handed
 * arguments in OpenSSL 3.0: the instance it wraps waits here, under
 * load_lock, for the length of that call. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_PROVIDER *loading_inner;

/* Is the algorithm's first name one of `types`? */
static bool named_one_of(const OSSL_ALGORITHM *a, const char *const types[],
                         size_t n_types)
{
  const char *names = a->algorithm_names;
  size_t first = strcspn(names, ":");
  for (size_t i = 0; i < n_types; i++)
    if (strlen(types[i]) == first && strncmp(names, types[i], first) == 0)
      return true;
  return false;
}

/* The key types whose certificates a TLS peer can sign with. */
static bool decoder_kept(const OSSL_ALGORITHM *a)
{
  static const char *const types[] = {"EC", "RSA", "RSA-PSS", "ED25519",
                                      "ED448"};
  return a->property_definition &&
         strstr(a->property_definition, "input=der") &&
         named_one_of(a, types, sizeof types / sizeof types[0]);
}

/* The key types a TLS server handles: certificate keys (as above), key
 * exchange groups (EC, X25519, X448, DH for ffdhe) and HMAC (TLS 1.2's
 * CBC suites key their MAC as an EVP_PKEY).  Every public key decode
 * walks all key managers, constructing each (OpenSSL 3.0 keeps no
 * cache); DSA's fifteen names alone cost a few microseconds a walk.
 * libssl 3.0 derives its secrets through EVP_KDF, not the TLS1-PRF and
 * HKDF key managers, which are dropped with DSA, DHX, SM2, SCRYPT,
 * SIPHASH, POLY1305 and CMAC. */
static bool keymgmt_kept(const OSSL_ALGORITHM *a)
{
  static const char *const types[] = {"EC",      "RSA",   "RSA-PSS",
                                      "ED25519", "ED448", "X25519",
                                      "X448",    "DH",    "HMAC"};
  return named_one_of(a, types, sizeof types / sizeof types[0]);
}

static const OSSL_ALGORITHM *lean_query(void *provctx, int operation,
                                        int *no_cache)
{
  if (operation == OSSL_OP_DECODER) {
    *no_cache = 0;
    return lean_decoders;
  }
  if (operation == OSSL_OP_KEYMGMT) {
    *no_cache = 0;
    return lean_keymgmts;
  }
  return inner_query(provctx, operation, no_cache);
}

/* Copies the inner provider's algorithms of `operation` that `kept`
 * accepts into out (room for cap, the last left as the terminator);
 * returns how many. */
static int keep_algorithms(void *provctx, int operation,
                           bool (*kept)(const OSSL_ALGORITHM *),
                           OSSL_ALGORITHM out[], int cap)
{
  int no_cache = 0, n = 0;
  const OSSL_ALGORITHM *a = inner_query(provctx, operation, &no_cache);
  for (; a && a->algorithm_names && n < cap - 1; a++)
    if (kept(a))
      out[n++] = *a;
  return n;
}

static void build_tables(void)
{
  const OSSL_DISPATCH *in = OSSL_PROVIDER_get0_dispatch(loading_inner);
  int n = 0;
  for (; in && in->function_id != 0 && n < MAX_DISPATCH - 1; in++) {
    if (in->function_id == OSSL_FUNC_PROVIDER_TEARDOWN)
      continue; /* the inner library context tears its instance down */
    lean_dispatch[n] = *in;
    if (in->function_id == OSSL_FUNC_PROVIDER_QUERY_OPERATION) {
      inner_query = OSSL_FUNC_provider_query_operation(in);
      lean_dispatch[n].function = (void (*)(void))lean_query;
    }
    n++;
  }
  if (!inner_query)
    return;
  void *provctx = OSSL_PROVIDER_get0_provider_ctx(loading_inner);
  int kept_decoders = keep_algorithms(provctx, OSSL_OP_DECODER, decoder_kept,
                                      lean_decoders, MAX_DECODERS);
  int kept_keymgmts = keep_algorithms(provctx, OSSL_OP_KEYMGMT, keymgmt_kept,
                                      lean_keymgmts, MAX_KEYMGMTS);
  tables_ok = kept_decoders > 0 && kept_keymgmts > 0;
}

static int lean_init(const OSSL_CORE_HANDLE *handle,
                     const OSSL_DISPATCH *core, const OSSL_DISPATCH **out,
                     void **provctx)
{
  (void)handle, (void)core;
  if (!loading_inner)
    return 0; /* loaded by name from a configuration file: refuse */
  pthread_once(&tables_once, build_tables);
  if (!tables_ok)
    return 0;
  /* The algorithms are the inner instance's and expect its context. */
  *provctx = OSSL_PROVIDER_get0_provider_ctx(loading_inner);
  *out = lean_dispatch;
  return 1;
}

OSSL_PROVIDER *lean_provider_load(OSSL_LIB_CTX *lib,
                                  OSSL_PROVIDER *inner_borrow)
{
  if (!inner_borrow ||
      !OSSL_PROVIDER_add_builtin(lib, LEAN_PROVIDER_NAME, lean_init))
    return NULL;
  pthread_mutex_lock(&load_lock);
  loading_inner = inner_borrow;
  OSSL_PROVIDER *lean = OSSL_PROVIDER_load(lib, LEAN_PROVIDER_NAME);
  loading_inner = NULL;
  pthread_mutex_unlock(&load_lock);
  return lean;
}
