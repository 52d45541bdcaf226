/* The daemon's YAML configuration (configs/provd.yaml), loaded with
 * libyaml into a tree that remembers FILE:LINE:COL of every node, checked
 * against the core schema, and turned into `struct provd_config`.
 * Plugin options stay as subtrees until the loader checks them against the
 * plugin's own schema with config_check_options(). */
#ifndef CORE_CONFIG_CONFIG_H
#define CORE_CONFIG_CONFIG_H

#include <stddef.h>
#include <jansson.h>

#include "provd/plugin.h"

/* Where a node came from.  file points into the config (not owned). */
struct cfg_pos {
  const char *file;
  int line; /* 1-based */
  int col;  /* 1-based */
};

/* Collected diagnostics, each "FILE:LINE:COL: message". */
struct diag {
  char **lines;
  size_t n;
};
void diag_add(struct diag *d, const struct cfg_pos *pos, const char *fmt,
              ...) __attribute__((format(printf, 3, 4)));
void diag_print(const struct diag *d); /* to stderr, one per line */
void diag_free(struct diag *d);

struct cfg_node; /* opaque YAML node */
const struct cfg_pos *cfg_node_pos(const struct cfg_node *n);

struct cfg_listen {
  char host[256]; /* "127.0.0.1", "::1", "localhost", "0.0.0.0" */
  int port;       /* 0..65535; 0 = any free port */
};

struct cfg_hub {
  char *name;     /* unique */
  char *hostname; /* what devices get as assignedHub */
  int weight;     /* 0..1000, default 1; 0: drained */
  int apply_allocation_policy; /* 0: never receives new devices */
  struct cfg_pos pos;
};

/* A `plugins:` item, or `storage:` (kind PROVD_KIND_STORAGE). */
struct cfg_plugin_decl {
  enum provd_kind kind;
  char *name;     /* plugin name, e.g. "symmetric-key" */
  char *id;       /* instance id; defaults to name */
  char *path;     /* explicit .so path, or NULL */
  char **events;  /* notifier event filter */
  size_t n_events;
  const struct cfg_node *options; /* `options:` subtree, or NULL */
  struct cfg_pos pos;             /* of the item */
};

/* `events:`: how the dispatcher delivers to notifiers and how long the
 * journal keeps events.  Durations in ms; 0 = off where noted. */
struct cfg_events {
  long long retry_initial_ms; /* first backoff, default 1 s */
  long long retry_max_ms;     /* backoff ceiling, default 5 min */
  long long max_age_ms;       /* undelivered this long: dead letter, 24 h */
  int concurrency;            /* deliveries in flight per instance, 4 */
  int queue;                  /* events held in memory per instance, 1024 */
  long long poll_ms;          /* journal poll when idle, default 100 ms */
  long long retain_age_ms;    /* journal retention by age; 0 = forever */
  long long retain_count;     /* keep at most this many; 0 = no limit */
};

/* A service API access policy (DPS "shared access policy"). */
struct cfg_policy {
  char *name;
  char *key;            /* base64 */
  unsigned permissions; /* enum service_permission bits (never 0) */
  struct cfg_pos pos;
};

/* A `certificate_issuers:` item: a CA that signs device CSRs (DPS
 * certificate issuance); enrollments name it in credentialPolicyName. */
struct cfg_issuer {
  char *name;
  char *cert;         /* PEM: the issuing CA first, then up to the root */
  char *key_file;     /* the issuing CA's private key (PEM, not encrypted) */
  int validity_days;  /* of issued certificates: 1..3650, default 30 */
  int csr_key_rule;   /* enum csr_key_rule (tls/csr.h); default P-384 */
  struct cfg_pos pos;
};

/* The service token lifetime bound: default one hour, as the Azure service
 * SDKs sign; at most a year. */
#define SERVICE_TOKEN_LIFETIME_DEFAULT_S 3600
#define SERVICE_TOKEN_LIFETIME_MAX_S (366LL * 24 * 3600)

struct provd_config {
  char *file;
  char *id_scope;
  struct cfg_listen https;
  struct cfg_listen mqtt;
  int has_mqtt;
  struct cfg_listen console; /* a listener for the console and the
                                service API only (docs/console.md) */
  int has_console;
  char *data_dir;           /* relative paths are relative to the cwd */
  char *tls_cert, *tls_key; /* NULL: generated in data_dir/tls */
  struct cfg_plugin_decl storage; /* default: { plugin: sqlite } */
  /* `storage.commit_window`: how long the store writer waits, under
   * concurrent registrations, before it opens a transaction, so that more
   * of them share its commit; 0: commit as soon as its queue is empty. */
  int commit_window_ms;
  char **plugin_path;
  size_t n_plugin_path;
  struct cfg_hub *hubs;
  size_t n_hubs;
  struct cfg_plugin_decl *plugins;
  size_t n_plugins;
  struct cfg_policy *policies; /* `service_policies:` */
  size_t n_policies;
  struct cfg_issuer *issuers;  /* `certificate_issuers:` */
  size_t n_issuers;
  int workers;              /* 0: number of cores */
  int log_level;            /* LOG_* */
  size_t max_body_bytes;    /* `limits.max_body`, default 96 KiB */
  /* `limits.*` per listener, split over the workers: open connections
   * and TLS connections without a finished handshake (0: the listener's
   * defaults, net/http.h and net/mqtt.h), and how long a handshake may
   * take (default 5 s). */
  int max_connections, max_handshakes, handshake_timeout_s;
  int max_connections_per_source; /* all workers; 0: no limit */
  int retry_after_max_s;          /* 429/503 Retry-After 1..this, default 5 */
  /* `limits.max_service_token_lifetime`: a service API token whose expiry
   * is further ahead than this (plus the clock skew) is refused. */
  long long max_service_token_lifetime_s;
  /* Register calls per minute per registration id / source address;
   * 0: no limit. */
  int register_rate_per_device, register_rate_per_source;
  /* `limits.first_boot_max_wait`: a register call from a device with no
   * registration yet that waited longer than this for the store is
   * deferred (429), so known devices keep the store; 0: never. */
  int first_boot_max_wait_ms;
  int retry_after_s;        /* `registration.retry_after`, default 1 */
  /* `registration.allocation_policy`: for enrollments without one; NULL:
   * the first allocation plugin declared. */
  char *allocation_policy;
  struct cfg_events events; /* `events:` delivery and retention */
  struct cfg_node *root;    /* owned */
};

/* A notifier's `events:` filter: 1 when it takes events of `type` (an
 * empty filter takes all). */
int config_event_wanted(char *const *events, size_t n_events,
                        const char *type);

/* Loads and checks `path`.  On failure returns -1 with every problem in d
 * (as many as can be found in one pass). */
int config_load(const char *path, struct provd_config *cfg, struct diag *d);
/* The default plugin_path for a provd whose executable is exe_path: the
 * plugins/ folder beside it when there is one (a build tree: build/provd
 * and build/plugins/), else the installed folder relative to it
 * (PREFIX/bin/provd and PREFIX/lib/provd/plugins/), so an installed provd
 * finds its own plugins under any prefix and never searches the working
 * directory.  0, or -1 when out is too small. */
int config_default_plugin_dir(const char *exe_path, char *out,
                              size_t out_len);
/* Defaults only, as if the file were empty (used when no file exists). */
void config_defaults(struct provd_config *cfg);
void config_free(struct provd_config *cfg);

/* The top-level sections (`listen`, `plugins`, ...) that differ between
 * two loaded configs, except those named in skip (NULL-ended), as
 * "listen, plugins" in out; returns how many. */
/* 1 when the top-level section key differs between two loaded configs. */
int config_section_changed(const struct provd_config *running,
                           const struct provd_config *fresh, const char *key);
size_t config_changed_sections(const struct provd_config *running,
                               const struct provd_config *fresh,
                               const char *const *skip, char *out,
                               size_t len);

/* Parses "HOST:PORT", "[::1]:PORT" into out; -1 with a message if bad. */
int config_parse_listen(const char *text, struct cfg_listen *out,
                        char *msg, size_t msg_len);

/* Checks a plugin's `options:` subtree (may be NULL) against its schema:
 * unknown keys (with a "did you mean" hint), wrong types, missing
 * required options, enum values; applies defaults; resolves NAME_file
 * for sensitive options; expands ${ENV}.  `where` positions errors when
 * options is NULL.  On success *out is a new JSON object with typed values
 * (durations in ms, sizes in bytes).  plugin_label names the plugin in
 * messages. */
int config_check_options(const struct provd_option *schema,
                         const struct cfg_node *options,
                         const struct cfg_pos *where,
                         const char *plugin_label, json_t **out,
                         struct diag *d);

/* Writes a redacted (sensitive values shown as "***") JSON rendering of
 * checked options, for logs.  Caller frees. */
char *config_redact_options(const struct provd_option *schema,
                            const json_t *opts);

#endif
