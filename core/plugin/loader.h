/* Plugin loader and instance registry.  Plugins are dlopen()ed with
 * RTLD_NOW | RTLD_LOCAL and never unloaded. */
#ifndef CORE_PLUGIN_LOADER_H
#define CORE_PLUGIN_LOADER_H

#include <pthread.h>
#include <stddef.h>
#include <jansson.h>

#include "config/config.h"
#include "provd/host.h"
#include "provd/plugin.h"
#include "util/err.h"

struct plugin_instance {
  const struct provd_plugin *desc;
  enum provd_kind kind;
  char *name;          /* descriptor name */
  char *id;            /* instance id (unique per kind) */
  char *path;          /* file it came from */
  json_t *options;     /* checked options, typed */
  char **events;       /* notifier filter */
  size_t n_events;
  struct cfg_pos pos;
  void *state;         /* plugin state from create() */
  int started;
  pthread_mutex_t op_lock; /* serializes ops unless THREADSAFE */
};

struct plugin_set {
  struct plugin_instance **items;
  size_t n;
};

/* Opens one .so and validates its descriptor (magic, ABI major, struct
 * size, kind, name, lifecycle, ops, schema).  Error messages name the
 * file.  Never dlclose()s. */
int plugin_open(const char *path, const struct provd_plugin **out,
                struct provd_err *err);

/* Resolves a declaration to a file: `path:` if given, else NAME.so then
 * KIND-NAME.so in each plugin_path directory. */
int plugin_resolve(const struct provd_config *cfg,
                   const struct cfg_plugin_decl *decl, char *out,
                   size_t out_len, struct provd_err *err);

/* Loads, checks and creates + configures every declared plugin (storage
 * included).  Problems go to d as FILE:LINE:COL lines; returns -1 if any.
 * Nothing is started. */
int plugins_load(const struct provd_config *cfg, struct plugin_set *set,
                 struct diag *d);
int plugins_start(struct plugin_set *set, struct provd_err *err);
void plugins_stop(struct plugin_set *set);   /* reverse order */
void plugins_free(struct plugin_set *set);   /* destroy() each */

struct plugin_instance *plugins_find(const struct plugin_set *set,
                                     enum provd_kind kind,
                                     const char *name);
/* The n-th instance of a kind, or NULL. */
struct plugin_instance *plugins_nth(const struct plugin_set *set,
                                    enum provd_kind kind, size_t n);

/* Locks around one op call unless the plugin is THREADSAFE. */
void plugin_op_enter(struct plugin_instance *inst);
void plugin_op_leave(struct plugin_instance *inst);

/* "attestation" <-> PROVD_KIND_ATTESTATION; 0 / NULL when unknown. */
enum provd_kind plugin_kind_parse(const char *name);
const char *plugin_kind_name(enum provd_kind kind);

/* ---- host side of the ABI (host_api.c) ---- */
const struct provd_host_api *host_api(void);

/* provd_cfg is a read-only JSON node on the host side. */
static inline const struct provd_cfg *cfg_from_json(const json_t *j)
{
  return (const struct provd_cfg *)j;
}

struct provd_call {
  char trace_id[64];
  unsigned long long deadline_ns; /* CLOCK_MONOTONIC */
  long long retry_after_ms;       /* call_set_retry_after; 0: not set */
};

struct provd_attest_result {
  char *device_id;      /* owned; NULL = registration id */
  json_t *claims;       /* object, owned */
  char *challenge_json; /* owned */
  unsigned char *session;
  size_t session_len;
  int64_t reuse_until_s; /* attest_set_reuse_until; 0: not set */
  char *state_key;       /* attest_set_state: "x509", "tpm", ...; owned */
  json_t *state;         /* its object, owned */
  uint32_t match_depth;  /* attest_set_match_depth; 0: not set */
  char *hub_key_b64;     /* attest_set_hub_key, base64; owned, a secret */
};
void attest_result_clear(struct provd_attest_result *r);

/* DPS links at most 50 hubs to one instance. */
#define ALLOC_MAX_HUBS 64

struct provd_alloc_result {
  char hub[128];
  char reason[256];
  /* alloc_delegate: policy "" = none; hubs empty = every candidate */
  char delegate[64];
  char delegate_hubs[ALLOC_MAX_HUBS][128];
  size_t n_delegate_hubs;
  char why[256];
  /* alloc_set_data; owned */
  json_t *initial_twin;
  json_t *payload;
};
void alloc_result_clear(struct provd_alloc_result *r);

#endif
