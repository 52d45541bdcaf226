/* hashed allocation: weighted rendezvous (highest-random-weight) hashing of
 * the registration id over the candidate hubs.  A device keeps its hub as
 * long as that hub stays a candidate; adding or removing a hub moves only
 * the devices that hub wins or held.  See docs/plugins/hashed.md for the
 * exact, frozen hash function. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "provd/alloc.h"
#include "provd/host.h"
#include "provd/plugin.h"

#ifndef PROVD_VERSION
#define PROVD_VERSION "0.1.0"
#endif

#define HASHED_MAX_SEED 256
#define HASHED_MAX_ID 1024 /* registration ids are <= 128 chars */

struct hashed {
  const struct provd_host_api *host; /* borrowed until destroy */
  struct provd_instance *inst;
  char seed[HASHED_MAX_SEED + 1]; /* "" = none */
};

/* ---- lifecycle ---- */

static int hashed_create(const struct provd_host_api *host,
                         struct provd_instance *inst, void **state,
                         struct provd_err *err)
{
  struct hashed *hs = calloc(1, sizeof(*hs));
  if (!hs) {
    host->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  hs->host = host;
  hs->inst = inst;
  *state = hs;
  return PROVD_OK;
}

static int hashed_configure(void *state, const struct provd_cfg *opts,
                            struct provd_err *err)
{
  struct hashed *hs = state;
  const char *seed = "";
  int rc = opts ? hs->host->cfg_str(opts, "seed", &seed) : PROVD_NOT_FOUND;
  if (rc == PROVD_NOT_FOUND || !seed)
    seed = "";
  else if (rc != PROVD_OK) {
    hs->host->err_set(err, "BAD_OPTION", "seed: not a string");
    return PROVD_E_CONFIG;
  }
  size_t n = strlen(seed);
  if (n > HASHED_MAX_SEED) {
    hs->host->err_set(err, "BAD_OPTION", "seed: longer than %d bytes",
                      HASHED_MAX_SEED);
    return PROVD_E_CONFIG;
  }
  memcpy(hs->seed, seed, n + 1);
  return PROVD_OK;
}

static void hashed_destroy(void *state)
{
  free(state);
}

/* ---- the hash ---- */

/* First 8 bytes, big-endian, of SHA-256(lower(id) 0x00 hub [0x00 seed]).
 * Frozen: changing any byte here moves devices between hubs. */
static int hashed_key(EVP_MD_CTX *md, const char *lower_id, size_t id_len,
                      const char *hub, const char *seed, uint64_t *out)
{
  static const unsigned char zero = 0;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
      !EVP_DigestUpdate(md, lower_id, id_len) ||
      !EVP_DigestUpdate(md, &zero, 1) ||
      !EVP_DigestUpdate(md, hub, strlen(hub)) ||
      (*seed && (!EVP_DigestUpdate(md, &zero, 1) ||
                 !EVP_DigestUpdate(md, seed, strlen(seed)))) ||
      !EVP_DigestFinal_ex(md, digest, &dlen) || dlen < 8)
    return -1;
  uint64_t h = 0;
  for (int i = 0; i < 8; i++)
    h = h << 8 | digest[i];
  *out = h;
  return 0;
}

/* Rendezvous score: u = (top 53 bits + 0.5) / 2^53 lies strictly inside
 * (0, 1), so ln(u) < 0 and the score -w / ln(u) is positive and finite.
 * The winner among n hubs is then hub i with probability w_i / sum(w). */
static double hashed_score(uint64_t h, uint32_t weight)
{
  double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0; /* 2^53 */
  return -(double)weight / log(u);
}

/* ---- the op ---- */

static int hashed_allocate(void *state, struct provd_call *call,
                           const struct provd_alloc_request *req,
                           struct provd_alloc_result *res,
                           struct provd_err *err)
{
  (void)call;
  struct hashed *hs = state;
  const struct provd_host_api *h = hs->host;
  if (!req || !req->registration_id) {
    h->err_set(err, "INTERNAL", "allocate: request without registration id");
    return PROVD_E_INVAL;
  }
  size_t id_len = strlen(req->registration_id);
  if (id_len > HASHED_MAX_ID) {
    h->err_set(err, "BAD_REQUEST", "registration id longer than %d bytes",
               HASHED_MAX_ID);
    return PROVD_E_INVAL;
  }
  char lower[HASHED_MAX_ID + 1];
  for (size_t i = 0; i <= id_len; i++) {
    char c = req->registration_id[i];
    lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }

  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md) {
    h->err_set(err, "INTERNAL", "out of memory");
    return PROVD_E_NOMEM;
  }
  const struct provd_hub_info *best = NULL;
  double best_score = 0;
  int rc = PROVD_OK;
  for (size_t i = 0; req->hubs && i < req->n_hubs; i++) {
    const struct provd_hub_info *hub = req->hubs[i];
    uint64_t key;
    if (!hub || !hub->name || hub->weight == 0)
      continue; /* weight 0: never receives devices */
    if (hashed_key(md, lower, id_len, hub->name, hs->seed, &key) != 0) {
      h->err_set(err, "INTERNAL", "SHA-256 failed");
      rc = PROVD_E_INTERNAL;
      break;
    }
    double score = hashed_score(key, hub->weight);
    if (!best || score > best_score ||
        (score == best_score && strcmp(hub->name, best->name) < 0)) {
      best = hub;
      best_score = score;
    }
  }
  EVP_MD_CTX_free(md);
  if (rc != PROVD_OK)
    return rc;
  if (!best) {
    h->err_set(err, "NO_HUB_AVAILABLE",
               "registration %s: no candidate hub with a weight above 0",
               req->registration_id);
    return PROVD_DENIED;
  }
  return h->alloc_set_hub(res, best->name, "hashed");
}

/* ---- descriptor ---- */

/* Keep docs/plugins/hashed.md in sync (tests/unit/test_plugin_docs.c checks it). */
static const struct provd_option hashed_options[] = {
    {"seed", PROVD_OPT_STRING, "", 0,
     "Mixed into the hash; changing it reshuffles which hub every device "
     "gets.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct provd_lifecycle hashed_lifecycle = {
    .struct_size = sizeof(struct provd_lifecycle),
    .create = hashed_create,
    .configure = hashed_configure,
    .destroy = hashed_destroy,
};

static const struct provd_alloc_ops hashed_ops = {
    .struct_size = sizeof(struct provd_alloc_ops),
    .policy = "hashed",
    .allocate = hashed_allocate,
};

PROVD_PLUGIN_DEFINE = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_ALLOCATION,
    .flags = PROVD_PLUGIN_THREADSAFE | PROVD_PLUGIN_NONBLOCKING,
    .min_host_minor = 0,
    .name = "hashed",
    .version = PROVD_VERSION,
    .description = "Weighted rendezvous hashing of the registration id "
                   "(DPS allocationPolicy hashed)",
    .vendor = "provd",
    .options = hashed_options,
    .lifecycle = &hashed_lifecycle,
    .ops = &hashed_ops,
};
