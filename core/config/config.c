/* The core schema: walks the node tree of configs/provd.yaml in document
 * order, reports every problem it can find in one pass, and fills
 * struct provd_config. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/deprecated.h"
#include "config/permissions.h"
#include "config/tree.h"
#include "tls/csr.h"
#include "util/log.h"

#define WHAT_LEN 96 /* "service_policies[123].key_file" */
/* storage.commit_window: 10 ms took provd's CPU per registration down by
 * about a tenth at 32 devices in flight (docs/benchmark.md); devices wait
 * seconds (Retry-After) before their first poll anyway. */
#define DEFAULT_COMMIT_WINDOW_MS 10

struct ck {
  struct diag *d;
  int errors;
};

static void ck_err(struct ck *c, const struct cfg_node *at, const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));
static void ck_err(struct ck *c, const struct cfg_node *at, const char *fmt,
                   ...)
{
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  diag_add(c->d, cfg_node_pos(at), "%s", msg);
  c->errors++;
}

/* ---- typed getters: 0 ok, -1 reported ---- */

static int want_type(struct ck *c, const struct cfg_node *n, enum cfg_type t,
                     const char *what)
{
  static const char *const names[] = {"a scalar", "a sequence", "a mapping"};
  if (n->type == t)
    return 0;
  ck_err(c, n, "%s: expected %s, got %s", what, names[t], cfg_type_desc(n));
  return -1;
}

static int want_text(struct ck *c, const struct cfg_node *n, const char *what,
                     const char *expected)
{
  if (n->type != CFG_SCALAR || n->is_null) {
    ck_err(c, n, "%s: expected %s, got %s", what, expected, cfg_type_desc(n));
    return -1;
  }
  return n->bad ? -1 : 0; /* bad: reported while parsing */
}

/* A non-empty string, copied into *out (previous value freed). */
static int get_str(struct ck *c, const struct cfg_node *n, const char *what,
                   char **out)
{
  if (want_text(c, n, what, "a string"))
    return -1;
  if (!n->text[0]) {
    ck_err(c, n, "%s: must not be empty", what);
    return -1;
  }
  char *s = strdup(n->text);
  if (!s) {
    ck_err(c, n, "out of memory");
    return -1;
  }
  free(*out);
  *out = s;
  return 0;
}

static int get_int(struct ck *c, const struct cfg_node *n, const char *what,
                   long long lo, long long hi, int *out)
{
  long long v;
  if (want_text(c, n, what, "an integer"))
    return -1;
  if (cfg_parse_int(n->text, &v)) {
    ck_err(c, n, "%s: expected an integer, got '%s'", what, n->text);
    return -1;
  }
  if (v < lo || v > hi) {
    ck_err(c, n, "%s: %lld is out of range %lld..%lld", what, v, lo, hi);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static int get_bool(struct ck *c, const struct cfg_node *n, const char *what,
                    int *out)
{
  if (want_text(c, n, what, "true or false"))
    return -1;
  if (n->quoted || cfg_parse_bool(n->text, out)) {
    ck_err(c, n, "%s: expected true or false, got '%s'", what, n->text);
    return -1;
  }
  return 0;
}

/* ---- mappings ---- */

struct key_rule {
  const char *name;
  int required;
};

static const struct cfg_node *key_node(const struct cfg_node *m,
                                       const char *key)
{
  for (size_t i = 0; m && m->type == CFG_MAP && i < m->n; i++)
    if (!strcmp(m->keys[i]->text, key))
      return m->keys[i];
  return NULL;
}

/* Unknown keys (with a hint) and missing required ones.  `what` is the
 * path of the mapping, or NULL at the top level. */
static void check_keys(struct ck *c, const struct cfg_node *m,
                       const struct key_rule *rules, const char *what)
{
  const char *names[32];
  size_t nr = 0;
  for (; rules[nr].name && nr < 31; nr++)
    names[nr] = rules[nr].name;
  names[nr] = NULL;
  for (size_t i = 0; i < m->n; i++) {
    const char *k = m->keys[i]->text;
    int known = 0;
    for (size_t r = 0; r < nr && !known; r++)
      known = !strcmp(k, names[r]);
    if (known)
      continue;
    char hint[128];
    cfg_hint_text(k, names, hint, sizeof(hint));
    if (what)
      ck_err(c, m->keys[i], "unknown key '%s' in %s%s", k, what, hint);
    else
      ck_err(c, m->keys[i], "unknown top-level key '%s'%s", k, hint);
  }
  for (size_t r = 0; r < nr; r++)
    if (rules[r].required && cfg_is_absent(cfg_map_get(m, names[r])))
      ck_err(c, m, "%s: missing required key '%s'", what ? what : "config",
             names[r]);
}

/* ---- simple top-level keys ---- */

static int is_alnum(char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9');
}

static void do_id_scope(struct ck *c, struct provd_config *cfg,
                        const struct cfg_node *v)
{
  char *s = NULL;
  if (get_str(c, v, "id_scope", &s))
    return;
  size_t len = strlen(s), i = 0;
  while (i < len && is_alnum(s[i]))
    i++;
  if (i != len || len > 32) {
    ck_err(c, v, "id_scope: '%s' is not a valid ID scope "
                 "(1 to 32 letters and digits)", s);
    free(s);
    return;
  }
  free(cfg->id_scope);
  cfg->id_scope = s;
}

static int get_listen(struct ck *c, const struct cfg_node *v, const char *what,
                      struct cfg_listen *out)
{
  char msg[128];
  if (want_text(c, v, what, "HOST:PORT"))
    return -1;
  if (config_parse_listen(v->text, out, msg, sizeof(msg))) {
    ck_err(c, v, "%s: bad address '%s': %s", what, v->text, msg);
    return -1;
  }
  return 0;
}

static void do_listen(struct ck *c, struct provd_config *cfg,
                      const struct cfg_node *v)
{
  static const struct key_rule rules[] = {
      {"https", 0}, {"mqtt", 0}, {"console", 0}, {0}};
  if (want_type(c, v, CFG_MAP, "listen"))
    return;
  check_keys(c, v, rules, "listen");
  const struct cfg_node *https = cfg_map_get(v, "https");
  const struct cfg_node *mqtt = cfg_map_get(v, "mqtt");
  if (!cfg_is_absent(https))
    get_listen(c, https, "listen.https", &cfg->https);
  if (!cfg_is_absent(mqtt) &&
      get_listen(c, mqtt, "listen.mqtt", &cfg->mqtt) == 0)
    cfg->has_mqtt = 1;
  const struct cfg_node *console = cfg_map_get(v, "console");
  if (!cfg_is_absent(console) &&
      get_listen(c, console, "listen.console", &cfg->console) == 0)
    cfg->has_console = 1;
}

static void do_data_dir(struct ck *c, struct provd_config *cfg,
                        const struct cfg_node *v)
{
  get_str(c, v, "data_dir", &cfg->data_dir);
}

static void check_readable(struct ck *c, const struct cfg_node *v,
                           const char *what, const char *path)
{
  if (access(path, R_OK) != 0)
    ck_err(c, v, "%s: cannot read '%s': %s", what, path, strerror(errno));
}

static void do_tls(struct ck *c, struct provd_config *cfg,
                   const struct cfg_node *v)
{
  static const struct key_rule rules[] = {{"cert", 0}, {"key", 0}, {0}};
  if (want_type(c, v, CFG_MAP, "tls"))
    return;
  check_keys(c, v, rules, "tls");
  const struct cfg_node *cert = cfg_map_get(v, "cert");
  const struct cfg_node *key = cfg_map_get(v, "key");
  if (!cfg_is_absent(cert) && get_str(c, cert, "tls.cert", &cfg->tls_cert) == 0)
    check_readable(c, cert, "tls.cert", cfg->tls_cert);
  if (!cfg_is_absent(key) && get_str(c, key, "tls.key", &cfg->tls_key) == 0)
    check_readable(c, key, "tls.key", cfg->tls_key);
  if (cfg_is_absent(cert) != cfg_is_absent(key))
    ck_err(c, v, "tls: give both 'cert' and 'key', or neither");
}

static void do_plugin_path(struct ck *c, struct provd_config *cfg,
                           const struct cfg_node *v)
{
  if (want_type(c, v, CFG_SEQ, "plugin_path"))
    return;
  char **dirs = calloc(v->n ? v->n : 1, sizeof(*dirs));
  size_t n = 0;
  if (!dirs) {
    ck_err(c, v, "out of memory");
    return;
  }
  for (size_t i = 0; i < v->n; i++) {
    char what[WHAT_LEN];
    snprintf(what, sizeof(what), "plugin_path[%zu]", i);
    if (get_str(c, v->items[i], what, &dirs[n]) == 0)
      n++;
  }
  for (size_t i = 0; i < cfg->n_plugin_path; i++)
    free(cfg->plugin_path[i]);
  free(cfg->plugin_path);
  cfg->plugin_path = dirs;
  cfg->n_plugin_path = n;
}

static void do_workers(struct ck *c, struct provd_config *cfg,
                       const struct cfg_node *v)
{
  get_int(c, v, "workers", 0, 1024, &cfg->workers);
}

static void do_log_level(struct ck *c, struct provd_config *cfg,
                         const struct cfg_node *v)
{
  if (want_text(c, v, "log_level", "a string"))
    return;
  int level = log_level_parse(v->text);
  if (level < 0) {
    static const char *const names[] = {"error", "warn", "info", "debug",
                                        NULL};
    const char *h = cfg_hint(v->text, names);
    if (h)
      ck_err(c, v, "log_level: unknown level '%s' (did you mean '%s'?)",
             v->text, h);
    else
      ck_err(c, v, "log_level: unknown level '%s' (expected error, warn, "
                   "info or debug)", v->text);
    return;
  }
  cfg->log_level = level;
}

/* A duration in lo..hi ms into *out. */
static void get_duration(struct ck *c, const struct cfg_node *v,
                         const char *what, long long lo, long long hi,
                         long long *out)
{
  long long ms;
  if (cfg_is_absent(v) || want_text(c, v, what, "a duration"))
    return;
  if (cfg_parse_duration_ms(v->text, &ms))
    ck_err(c, v, "%s: expected a duration like 250ms, 30s, 5m or 24h, got "
                 "'%s'", what, v->text);
  else if (ms < lo || ms > hi)
    ck_err(c, v, "%s: %lld ms is out of range %lld..%lld", what, ms, lo, hi);
  else
    *out = ms;
}

#define MAX_BODY_MIN 1024ULL
#define MAX_BODY_MAX (64ULL << 20)

static void do_limits(struct ck *c, struct provd_config *cfg,
                      const struct cfg_node *v)
{
  static const struct key_rule rules[] = {
      {"max_body", 0},       {"max_connections", 0},
      {"max_handshakes", 0}, {"handshake_timeout", 0},
      {"max_connections_per_source", 0}, {"retry_after_max", 0},
      {"register_rate_per_device", 0},   {"register_rate_per_source", 0},
      {"max_service_token_lifetime", 0}, {"first_boot_max_wait", 0},
      {0}};
  if (want_type(c, v, CFG_MAP, "limits"))
    return;
  check_keys(c, v, rules, "limits");
  static const struct {
    const char *key, *what;
    int lo, hi;
    size_t off;
  } ints[] = {
      {"max_connections", "limits.max_connections", 16, 1000000,
       offsetof(struct provd_config, max_connections)},
      {"max_handshakes", "limits.max_handshakes", 16, 1000000,
       offsetof(struct provd_config, max_handshakes)},
      {"max_connections_per_source", "limits.max_connections_per_source", 0,
       1000000, offsetof(struct provd_config, max_connections_per_source)},
      {"retry_after_max", "limits.retry_after_max", 1, 300,
       offsetof(struct provd_config, retry_after_max_s)},
      {"register_rate_per_device", "limits.register_rate_per_device", 0,
       1000000, offsetof(struct provd_config, register_rate_per_device)},
      {"register_rate_per_source", "limits.register_rate_per_source", 0,
       100000000, offsetof(struct provd_config, register_rate_per_source)},
  };
  for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
    const struct cfg_node *n = cfg_map_get(v, ints[i].key);
    if (!cfg_is_absent(n))
      get_int(c, n, ints[i].what, ints[i].lo, ints[i].hi,
              (int *)((char *)cfg + ints[i].off));
  }
  long long hs_ms = cfg->handshake_timeout_s * 1000LL;
  get_duration(c, cfg_map_get(v, "handshake_timeout"),
               "limits.handshake_timeout", 1000, 60000, &hs_ms);
  cfg->handshake_timeout_s = (int)(hs_ms / 1000);
  long long lifetime_ms = cfg->max_service_token_lifetime_s * 1000LL;
  get_duration(c, cfg_map_get(v, "max_service_token_lifetime"),
               "limits.max_service_token_lifetime", 60 * 1000LL,
               SERVICE_TOKEN_LIFETIME_MAX_S * 1000LL, &lifetime_ms);
  cfg->max_service_token_lifetime_s = lifetime_ms / 1000;
  long long fb_ms = cfg->first_boot_max_wait_ms;
  get_duration(c, cfg_map_get(v, "first_boot_max_wait"),
               "limits.first_boot_max_wait", 0, 60000, &fb_ms);
  cfg->first_boot_max_wait_ms = (int)fb_ms;
  const struct cfg_node *mb = cfg_map_get(v, "max_body");
  unsigned long long size;
  if (cfg_is_absent(mb) || want_text(c, mb, "limits.max_body", "a size"))
    return;
  if (cfg_parse_size(mb->text, &size)) {
    ck_err(c, mb, "limits.max_body: expected a size like 4096, 96KiB or "
                  "1MB, got '%s'", mb->text);
  } else if (size < MAX_BODY_MIN || size > MAX_BODY_MAX) {
    ck_err(c, mb, "limits.max_body: %llu bytes is out of range %llu..%llu",
           size, MAX_BODY_MIN, MAX_BODY_MAX);
  } else {
    cfg->max_body_bytes = (size_t)size;
  }
}

static void do_registration(struct ck *c, struct provd_config *cfg,
                            const struct cfg_node *v)
{
  static const struct key_rule rules[] = {
      {"retry_after", 0}, {"allocation_policy", 0}, {0}};
  if (want_type(c, v, CFG_MAP, "registration"))
    return;
  check_keys(c, v, rules, "registration");
  const struct cfg_node *ra = cfg_map_get(v, "retry_after");
  if (!cfg_is_absent(ra))
    get_int(c, ra, "registration.retry_after", 1, 300, &cfg->retry_after_s);
  const struct cfg_node *ap = cfg_map_get(v, "allocation_policy");
  /* DPS: custom cannot be an instance's default policy. */
  if (!cfg_is_absent(ap) &&
      get_str(c, ap, "registration.allocation_policy",
              &cfg->allocation_policy) == 0 &&
      strcmp(cfg->allocation_policy, "custom") == 0)
    ck_err(c, ap, "registration.allocation_policy: custom cannot be the "
                  "default policy (DPS); name it on the enrollment");
}

#define DAY_MS (24LL * 3600 * 1000)

static void do_events(struct ck *c, struct provd_config *cfg,
                      const struct cfg_node *v)
{
  static const struct key_rule rules[] = {
      {"retry_initial", 0}, {"retry_max", 0},  {"max_age", 0},
      {"concurrency", 0},   {"queue", 0},      {"poll", 0},
      {"retain_age", 0},    {"retain_count", 0}, {0}};
  if (want_type(c, v, CFG_MAP, "events"))
    return;
  check_keys(c, v, rules, "events");
  struct cfg_events *e = &cfg->events;
  get_duration(c, cfg_map_get(v, "retry_initial"), "events.retry_initial",
               10, DAY_MS, &e->retry_initial_ms);
  get_duration(c, cfg_map_get(v, "retry_max"), "events.retry_max", 10,
               DAY_MS, &e->retry_max_ms);
  get_duration(c, cfg_map_get(v, "max_age"), "events.max_age", 100,
               365 * DAY_MS, &e->max_age_ms);
  get_duration(c, cfg_map_get(v, "poll"), "events.poll", 10, 60000,
               &e->poll_ms);
  get_duration(c, cfg_map_get(v, "retain_age"), "events.retain_age", 0,
               3650 * DAY_MS, &e->retain_age_ms);
  const struct cfg_node *n = cfg_map_get(v, "concurrency");
  if (!cfg_is_absent(n))
    get_int(c, n, "events.concurrency", 1, 64, &e->concurrency);
  n = cfg_map_get(v, "queue");
  if (!cfg_is_absent(n))
    get_int(c, n, "events.queue", 1, 65536, &e->queue);
  n = cfg_map_get(v, "retain_count");
  int count = 0;
  if (!cfg_is_absent(n) &&
      get_int(c, n, "events.retain_count", 0, 1000000000, &count) == 0)
    e->retain_count = count;
}

/* ---- service_policies ---- */

/* A shorter access-policy key could be guessed; DPS keys are 32 bytes. */
#define POLICY_KEY_MIN_BYTES 16

/* 0 when the mapping item has exactly one of the keys `a` (named first
 * when both are missing) and `b`; else reports it and returns -1. */
static int one_of(struct ck *c, const struct cfg_node *item,
                  const char *what, const char *a, const char *b)
{
  int has_a = !cfg_is_absent(cfg_map_get(item, a));
  int has_b = !cfg_is_absent(cfg_map_get(item, b));
  if (has_a && has_b) {
    ck_err(c, key_node(item, b), "%s: give either '%s' or '%s', not both",
           what, a, b);
    return -1;
  }
  if (!has_a && !has_b) {
    ck_err(c, item, "%s: missing required key '%s' (or '%s')", what, a, b);
    return -1;
  }
  return 0;
}

static void policy_key(struct ck *c, const struct cfg_node *item,
                       const char *what, struct cfg_policy *p)
{
  char w[WHAT_LEN + 16], msg[256];
  const struct cfg_node *key = cfg_map_get(item, "key");
  const struct cfg_node *file = cfg_map_get(item, "key_file");
  if (one_of(c, item, what, "key", "key_file") != 0)
    return;
  if (!cfg_is_absent(key)) {
    snprintf(w, sizeof(w), "%s.key", what);
    if (get_str(c, key, w, &p->key) != 0)
      return;
    if (!cfg_base64_ok(p->key))
      ck_err(c, key, "%s: not a valid base64 key", w);
    else if (cfg_base64_len(p->key) < POLICY_KEY_MIN_BYTES)
      ck_err(c, key, "%s: the key must decode to at least %d bytes",
             w, POLICY_KEY_MIN_BYTES);
    return;
  }
  char *path = NULL;
  snprintf(w, sizeof(w), "%s.key_file", what);
  if (get_str(c, file, w, &path))
    return;
  char *text = cfg_read_small_file(path, CFG_MAX_SECRET_FILE, msg, sizeof(msg));
  if (!text)
    ck_err(c, file, "%s: cannot read '%s': %s", w, path, msg);
  else if (!cfg_base64_ok(text))
    ck_err(c, file, "%s: '%s' does not hold a valid base64 key", w, path);
  else if (cfg_base64_len(text) < POLICY_KEY_MIN_BYTES)
    ck_err(c, file, "%s: '%s': the key must decode to at least %d bytes", w,
           path, POLICY_KEY_MIN_BYTES);
  free(p->key);
  p->key = text;
  free(path);
}

static const struct cfg_node *earlier_with(const struct cfg_node *seq,
                                           size_t i, const char *key,
                                           const char *text)
{
  for (size_t j = 0; j < i; j++) {
    const struct cfg_node *v = cfg_map_get(seq->items[j], key);
    if (v && v->type == CFG_SCALAR && !v->is_null && !strcmp(v->text, text))
      return v;
  }
  return NULL;
}

/* One `permissions:` name into *mask. */
static void permission_word(struct ck *c, const struct cfg_node *at,
                            const char *what, const char *word,
                            unsigned *mask)
{
  unsigned bit = service_permission_by_name(word);
  if (bit) {
    *mask |= bit;
    return;
  }
  const char *names[8]; /* the five names, from config/permissions.c */
  size_t n = 0;
  for (unsigned b = 1; (b & PERM_ALL) && n + 1 < 8; b <<= 1)
    names[n++] = service_permission_name(b);
  names[n] = NULL;
  char hint[128], all[160];
  cfg_hint_text(word, names, hint, sizeof(hint));
  ck_err(c, at, "%s: unknown permission '%s'%s (DPS names: %s)", what, word,
         hint, service_permissions_format(PERM_ALL, all, sizeof(all)));
}

/* `permissions:` is a list of DPS permission names, or one string of them
 * separated by commas or spaces (as ARM templates write `rights`). */
static void policy_permissions(struct ck *c, const struct cfg_node *v,
                               const char *what, struct cfg_policy *p)
{
  char word[64];
  int errors_before = c->errors;
  if (v->type == CFG_SEQ) {
    for (size_t i = 0; i < v->n; i++) {
      if (want_text(c, v->items[i], what, "a permission name") == 0)
        permission_word(c, v->items[i], what, v->items[i]->text,
                        &p->permissions);
    }
  } else if (want_text(c, v, what, "a list of permission names") == 0) {
    for (const char *s = v->text; *s;) {
      size_t n = strcspn(s, ", \t");
      if (n > 0) {
        snprintf(word, sizeof(word), "%.*s", (int)n, s);
        permission_word(c, v, what, word, &p->permissions);
      }
      s += n;
      s += strspn(s, ", \t");
    }
  }
  if (!p->permissions && c->errors == errors_before)
    ck_err(c, v, "%s: names no permission", what);
}

static void policy_rights(struct ck *c, const struct cfg_node *item,
                          const char *what, struct cfg_policy *p)
{
  char w[WHAT_LEN + 16];
  const struct cfg_node *access = cfg_map_get(item, "access");
  const struct cfg_node *perms = cfg_map_get(item, "permissions");
  if (one_of(c, item, what, "permissions", "access") != 0)
    return;
  if (!cfg_is_absent(perms)) {
    snprintf(w, sizeof(w), "%s.permissions", what);
    policy_permissions(c, perms, w, p);
    return;
  }
  snprintf(w, sizeof(w), "%s.access", what);
  if (want_text(c, access, w, "a string") != 0)
    return;
  p->permissions = service_access_by_name(access->text);
  if (!p->permissions)
    ck_err(c, access, "%s: unknown access '%s' (expected read or "
                      "read-write, or give 'permissions')", w, access->text);
}

static void do_policy(struct ck *c, const struct cfg_node *seq, size_t i,
                      struct cfg_policy *p)
{
  static const struct key_rule rules[] = {
      {"name", 1}, {"key", 0}, {"key_file", 0}, {"access", 0},
      {"permissions", 0}, {0}};
  const struct cfg_node *item = seq->items[i];
  char what[WHAT_LEN], w[WHAT_LEN + 16];
  snprintf(what, sizeof(what), "service_policies[%zu]", i);
  p->pos = item->pos;
  if (want_type(c, item, CFG_MAP, what))
    return;
  check_keys(c, item, rules, what);
  const struct cfg_node *name = cfg_map_get(item, "name");
  snprintf(w, sizeof(w), "%s.name", what);
  if (!cfg_is_absent(name) && get_str(c, name, w, &p->name) == 0) {
    const struct cfg_node *first = earlier_with(seq, i, "name", p->name);
    if (first)
      ck_err(c, name, "%s: duplicate policy name '%s' (first at line %d, "
                      "column %d)", w, p->name, first->pos.line, first->pos.col);
  }
  policy_key(c, item, what, p);
  policy_rights(c, item, what, p);
}

static void do_policies(struct ck *c, struct provd_config *cfg,
                        const struct cfg_node *v)
{
  if (want_type(c, v, CFG_SEQ, "service_policies") || v->n == 0)
    return;
  cfg->policies = calloc(v->n, sizeof(*cfg->policies));
  if (!cfg->policies) {
    ck_err(c, v, "out of memory");
    return;
  }
  cfg->n_policies = v->n;
  for (size_t i = 0; i < v->n; i++)
    do_policy(c, v, i, &cfg->policies[i]);
}

/* ---- certificate_issuers ---- */

#define ISSUER_DAYS_DEFAULT 30
#define ISSUER_DAYS_MAX 3650

static void issuer_csr_key(struct ck *c, const struct cfg_node *v,
                           const char *w, struct cfg_issuer *is)
{
  enum csr_key_rule rule;
  if (want_text(c, v, w, "p384 or any"))
    return;
  if (csr_key_rule_parse(v->text, &rule) != 0)
    ck_err(c, v, "%s: unknown value '%s' (expected p384 or any)", w, v->text);
  else
    is->csr_key_rule = (int)rule;
}

static void issuer_file(struct ck *c, const struct cfg_node *item,
                        const char *what, const char *key, char **out)
{
  char w[WHAT_LEN + 16];
  const struct cfg_node *v = cfg_map_get(item, key);
  snprintf(w, sizeof(w), "%s.%s", what, key);
  if (!cfg_is_absent(v) && get_str(c, v, w, out) == 0)
    check_readable(c, v, w, *out);
}

static void do_issuer(struct ck *c, const struct cfg_node *seq, size_t i,
                      struct cfg_issuer *is)
{
  static const struct key_rule rules[] = {
      {"name", 1},          {"cert", 1},    {"key_file", 1},
      {"validity_days", 0}, {"csr_key", 0}, {0}};
  const struct cfg_node *item = seq->items[i];
  char what[WHAT_LEN], w[WHAT_LEN + 16];
  snprintf(what, sizeof(what), "certificate_issuers[%zu]", i);
  is->pos = item->pos;
  is->validity_days = ISSUER_DAYS_DEFAULT;
  is->csr_key_rule = CSR_KEY_P384;
  if (want_type(c, item, CFG_MAP, what))
    return;
  check_keys(c, item, rules, what);
  const struct cfg_node *name = cfg_map_get(item, "name");
  snprintf(w, sizeof(w), "%s.name", what);
  if (!cfg_is_absent(name) && get_str(c, name, w, &is->name) == 0) {
    const struct cfg_node *first = earlier_with(seq, i, "name", is->name);
    if (first)
      ck_err(c, name, "%s: duplicate issuer name '%s' (first at line %d, "
                      "column %d)", w, is->name, first->pos.line,
             first->pos.col);
  }
  issuer_file(c, item, what, "cert", &is->cert);
  issuer_file(c, item, what, "key_file", &is->key_file);
  const struct cfg_node *days = cfg_map_get(item, "validity_days");
  snprintf(w, sizeof(w), "%s.validity_days", what);
  if (!cfg_is_absent(days))
    get_int(c, days, w, 1, ISSUER_DAYS_MAX, &is->validity_days);
  const struct cfg_node *rule = cfg_map_get(item, "csr_key");
  snprintf(w, sizeof(w), "%s.csr_key", what);
  if (!cfg_is_absent(rule))
    issuer_csr_key(c, rule, w, is);
}

static void do_issuers(struct ck *c, struct provd_config *cfg,
                       const struct cfg_node *v)
{
  if (want_type(c, v, CFG_SEQ, "certificate_issuers") || v->n == 0)
    return;
  cfg->issuers = calloc(v->n, sizeof(*cfg->issuers));
  if (!cfg->issuers) {
    ck_err(c, v, "out of memory");
    return;
  }
  cfg->n_issuers = v->n;
  for (size_t i = 0; i < v->n; i++)
    do_issuer(c, v, i, &cfg->issuers[i]);
}

/* ---- hubs ---- */

static void do_hub(struct ck *c, const struct cfg_node *seq, size_t i,
                   struct cfg_hub *h)
{
  static const struct key_rule rules[] = {
      {"name", 1}, {"hostname", 1}, {"weight", 0},
      {"apply_allocation_policy", 0}, {0}};
  const struct cfg_node *item = seq->items[i];
  char what[WHAT_LEN], w[WHAT_LEN + 16];
  snprintf(what, sizeof(what), "hubs[%zu]", i);
  h->pos = item->pos;
  h->weight = 1;
  h->apply_allocation_policy = 1;
  if (want_type(c, item, CFG_MAP, what))
    return;
  check_keys(c, item, rules, what);
  const struct cfg_node *name = cfg_map_get(item, "name");
  const struct cfg_node *host = cfg_map_get(item, "hostname");
  const struct cfg_node *weight = cfg_map_get(item, "weight");
  const struct cfg_node *apply = cfg_map_get(item, "apply_allocation_policy");
  snprintf(w, sizeof(w), "%s.name", what);
  if (!cfg_is_absent(name) && get_str(c, name, w, &h->name) == 0) {
    const struct cfg_node *first = earlier_with(seq, i, "name", h->name);
    if (first)
      ck_err(c, name, "%s: duplicate hub name '%s' (first at line %d, "
                      "column %d)", w, h->name, first->pos.line, first->pos.col);
  }
  snprintf(w, sizeof(w), "%s.hostname", what);
  if (!cfg_is_absent(host) && get_str(c, host, w, &h->hostname) == 0 &&
      strcspn(h->hostname, " \t/") != strlen(h->hostname))
    ck_err(c, host, "%s: '%s' is not a host name", w, h->hostname);
  snprintf(w, sizeof(w), "%s.weight", what);
  if (!cfg_is_absent(weight)) /* 0: drained, keeps its devices */
    get_int(c, weight, w, 0, 1000, &h->weight);
  snprintf(w, sizeof(w), "%s.apply_allocation_policy", what);
  if (!cfg_is_absent(apply))
    get_bool(c, apply, w, &h->apply_allocation_policy);
}

static void do_hubs(struct ck *c, struct provd_config *cfg,
                    const struct cfg_node *v)
{
  if (want_type(c, v, CFG_SEQ, "hubs") || v->n == 0)
    return;
  cfg->hubs = calloc(v->n, sizeof(*cfg->hubs));
  if (!cfg->hubs) {
    ck_err(c, v, "out of memory");
    return;
  }
  cfg->n_hubs = v->n;
  for (size_t i = 0; i < v->n; i++)
    do_hub(c, v, i, &cfg->hubs[i]);
}

/* ---- plugins and storage ---- */

static const struct {
  const char *name;
  enum provd_kind kind;
} kinds[] = {
    {"attestation", PROVD_KIND_ATTESTATION}, {"allocation", PROVD_KIND_ALLOCATION},
    {"notifier", PROVD_KIND_NOTIFIER},       {"hub", PROVD_KIND_HUB},
    {"storage", PROVD_KIND_STORAGE},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static enum provd_kind kind_parse(const char *name)
{
  for (size_t i = 0; name && i < N_KINDS; i++)
    if (!strcmp(name, kinds[i].name))
      return kinds[i].kind;
  return (enum provd_kind)0;
}

static int name_ok(const char *s, size_t max, const char *extra)
{
  size_t len = strlen(s);
  if (len == 0 || len > max || !is_alnum(s[0]))
    return 0;
  for (size_t i = 0; i < len; i++)
    if (!is_alnum(s[i]) && !strchr(extra, s[i]))
      return 0;
  return 1;
}

static void get_events(struct ck *c, const struct cfg_node *v,
                       const char *what, struct cfg_plugin_decl *p)
{
  if (want_type(c, v, CFG_SEQ, what) || v->n == 0)
    return;
  p->events = calloc(v->n, sizeof(*p->events));
  if (!p->events) {
    ck_err(c, v, "out of memory");
    return;
  }
  for (size_t i = 0; i < v->n; i++) {
    char w[WHAT_LEN + 16];
    snprintf(w, sizeof(w), "%s[%zu]", what, i);
    if (get_str(c, v->items[i], w, &p->events[p->n_events]) == 0)
      p->n_events++;
  }
}

/* path: and options: are shared by `storage:` and `plugins:` items. */
static void decl_common(struct ck *c, const struct cfg_node *item,
                        const char *what, struct cfg_plugin_decl *p)
{
  char w[WHAT_LEN + 16];
  const struct cfg_node *path = cfg_map_get(item, "path");
  const struct cfg_node *opts = cfg_map_get(item, "options");
  snprintf(w, sizeof(w), "%s.path", what);
  if (!cfg_is_absent(path))
    get_str(c, path, w, &p->path);
  snprintf(w, sizeof(w), "%s.options", what);
  if (!cfg_is_absent(opts) && want_type(c, opts, CFG_MAP, w) == 0)
    p->options = opts;
}

static void do_storage(struct ck *c, struct provd_config *cfg,
                       const struct cfg_node *v)
{
  static const struct key_rule rules[] = {
      {"plugin", 1}, {"path", 0}, {"options", 0}, {"commit_window", 0}, {0}};
  struct cfg_plugin_decl *p = &cfg->storage;
  if (want_type(c, v, CFG_MAP, "storage"))
    return;
  p->pos = v->pos;
  check_keys(c, v, rules, "storage");
  const struct cfg_node *name = cfg_map_get(v, "plugin");
  if (!cfg_is_absent(name) && get_str(c, name, "storage.plugin", &p->name) == 0) {
    if (!name_ok(p->name, 32, "_-"))
      ck_err(c, name, "storage.plugin: '%s' is not a plugin name", p->name);
    free(p->id);
    p->id = cfg_strdup(p->name);
  }
  decl_common(c, v, "storage", p);
  long long window_ms = cfg->commit_window_ms;
  get_duration(c, cfg_map_get(v, "commit_window"), "storage.commit_window", 0,
               100, &window_ms);
  cfg->commit_window_ms = (int)window_ms;
}

static int effective_id(const struct cfg_node *item, const char **id,
                        const struct cfg_node **at)
{
  const struct cfg_node *n = cfg_map_get(item, "id");
  if (cfg_is_absent(n))
    n = cfg_map_get(item, "name");
  if (cfg_is_absent(n) || n->type != CFG_SCALAR)
    return -1;
  *id = n->text;
  *at = n;
  return 0;
}

static void check_unique_id(struct ck *c, const struct cfg_node *seq,
                            size_t i, const char *what,
                            const struct cfg_plugin_decl *p)
{
  const char *id, *other;
  const struct cfg_node *at, *oat;
  if (!p->kind || effective_id(seq->items[i], &id, &at))
    return;
  for (size_t j = 0; j < i; j++) {
    const struct cfg_node *k = cfg_map_get(seq->items[j], "kind");
    if (!k || k->type != CFG_SCALAR || kind_parse(k->text) != p->kind ||
        effective_id(seq->items[j], &other, &oat) || strcmp(id, other))
      continue;
    int defaulted = cfg_is_absent(cfg_map_get(seq->items[i], "id"));
    ck_err(c, at, "%s.%s: duplicate %s instance id '%s' (first at line %d, "
                  "column %d)%s", what, defaulted ? "name" : "id",
           kinds[p->kind - 1].name, id, oat->pos.line, oat->pos.col,
           defaulted ? "; set 'id' to run a plugin twice" : "");
    return;
  }
}

static void plugin_kind(struct ck *c, const struct cfg_node *k,
                        const char *what, struct cfg_plugin_decl *p)
{
  static const char *const names[] = {"attestation", "allocation", "notifier",
                                      "hub", NULL};
  char hint[128];
  if (want_text(c, k, what, "a plugin kind"))
    return;
  p->kind = kind_parse(k->text);
  if (p->kind == PROVD_KIND_STORAGE) {
    ck_err(c, k, "%s: storage is configured with the top-level 'storage:' "
                 "key", what);
    p->kind = (enum provd_kind)0;
  } else if (!p->kind && cfg_hint(k->text, names)) {
    ck_err(c, k, "%s: unknown kind '%s'%s", what, k->text,
           cfg_hint_text(k->text, names, hint, sizeof(hint)));
  } else if (!p->kind) {
    ck_err(c, k, "%s: unknown kind '%s' (expected attestation, allocation, "
                 "notifier or hub)", what, k->text);
  }
}

static void do_plugin(struct ck *c, const struct cfg_node *seq, size_t i,
                      struct cfg_plugin_decl *p)
{
  static const struct key_rule rules[] = {
      {"kind", 1}, {"name", 1},   {"id", 0},
      {"path", 0}, {"events", 0}, {"options", 0}, {0}};
  const struct cfg_node *item = seq->items[i];
  char what[WHAT_LEN], w[WHAT_LEN + 16];
  snprintf(what, sizeof(what), "plugins[%zu]", i);
  p->pos = item->pos;
  if (want_type(c, item, CFG_MAP, what))
    return;
  check_keys(c, item, rules, what);
  const struct cfg_node *kind = cfg_map_get(item, "kind");
  const struct cfg_node *name = cfg_map_get(item, "name");
  const struct cfg_node *id = cfg_map_get(item, "id");
  const struct cfg_node *events = cfg_map_get(item, "events");
  snprintf(w, sizeof(w), "%s.kind", what);
  if (!cfg_is_absent(kind))
    plugin_kind(c, kind, w, p);
  snprintf(w, sizeof(w), "%s.name", what);
  if (!cfg_is_absent(name) && get_str(c, name, w, &p->name) == 0 &&
      !name_ok(p->name, 32, "_-"))
    ck_err(c, name, "%s: '%s' is not a plugin name ([a-z0-9][a-z0-9_-]*, "
                    "at most 32)", w, p->name);
  snprintf(w, sizeof(w), "%s.id", what);
  if (!cfg_is_absent(id)) {
    if (get_str(c, id, w, &p->id) == 0 && !name_ok(p->id, 64, "_.-"))
      ck_err(c, id, "%s: '%s' is not an instance id (letters, digits, "
                    "'_', '.', '-', at most 64)", w, p->id);
  } else {
    p->id = cfg_strdup(p->name);
  }
  if (!cfg_is_absent(events)) {
    snprintf(w, sizeof(w), "%s.events", what);
    if (p->kind && p->kind != PROVD_KIND_NOTIFIER)
      ck_err(c, key_node(item, "events"), "%s: only notifier plugins take "
                                          "'events'", w);
    else
      get_events(c, events, w, p);
  }
  decl_common(c, item, what, p);
  check_unique_id(c, seq, i, what, p);
}

static void do_plugins(struct ck *c, struct provd_config *cfg,
                       const struct cfg_node *v)
{
  if (want_type(c, v, CFG_SEQ, "plugins") || v->n == 0)
    return;
  cfg->plugins = calloc(v->n, sizeof(*cfg->plugins));
  if (!cfg->plugins) {
    ck_err(c, v, "out of memory");
    return;
  }
  cfg->n_plugins = v->n;
  for (size_t i = 0; i < v->n; i++)
    do_plugin(c, v, i, &cfg->plugins[i]);
}

/* ---- top level ---- */

static const struct {
  const char *key;
  void (*check)(struct ck *c, struct provd_config *cfg,
                const struct cfg_node *v);
} top_keys[] = {
    {"id_scope", do_id_scope},
    {"listen", do_listen},
    {"data_dir", do_data_dir},
    {"tls", do_tls},
    {"storage", do_storage},
    {"plugin_path", do_plugin_path},
    {"workers", do_workers},
    {"log_level", do_log_level},
    {"limits", do_limits},
    {"registration", do_registration},
    {"events", do_events},
    {"service_policies", do_policies},
    {"certificate_issuers", do_issuers},
    {"hubs", do_hubs},
    {"plugins", do_plugins},
};
#define N_TOP (sizeof(top_keys) / sizeof(top_keys[0]))

static void check_root(struct ck *c, struct provd_config *cfg,
                       const struct cfg_node *root)
{
  const char *names[N_TOP + 1];
  for (size_t t = 0; t < N_TOP; t++)
    names[t] = top_keys[t].key;
  names[N_TOP] = NULL;
  if (want_type(c, root, CFG_MAP, "top level"))
    return;
  for (size_t i = 0; i < root->n; i++) {
    const char *k = root->keys[i]->text;
    const struct cfg_node *v = root->items[i];
    size_t t = 0;
    while (t < N_TOP && strcmp(k, top_keys[t].key))
      t++;
    if (t == N_TOP) {
      char hint[128];
      ck_err(c, root->keys[i], "unknown top-level key '%s'%s", k,
             cfg_hint_text(k, names, hint, sizeof(hint)));
    } else if (!cfg_is_absent(v)) {
      top_keys[t].check(c, cfg, v);
    }
  }
}

/* ---- reload ---- */

int config_section_changed(const struct provd_config *running,
                           const struct provd_config *fresh, const char *key)
{
  return !cfg_tree_equal(cfg_map_get(running->root, key),
                         cfg_map_get(fresh->root, key));
}

size_t config_changed_sections(const struct provd_config *running,
                               const struct provd_config *fresh,
                               const char *const *skip, char *out,
                               size_t len)
{
  size_t n = 0, used = 0;
  if (len)
    out[0] = '\0';
  for (size_t t = 0; t < N_TOP; t++) {
    const char *key = top_keys[t].key;
    int skipped = 0;
    for (size_t i = 0; skip && skip[i]; i++)
      skipped |= strcmp(skip[i], key) == 0;
    if (skipped || !config_section_changed(running, fresh, key))
      continue;
    int w = snprintf(out + used, len > used ? len - used : 0, "%s%s",
                     n ? ", " : "", key);
    if (w > 0)
      used += (size_t)w;
    n++;
  }
  return n;
}

/* ---- lifecycle ---- */

#ifndef PROVD_PLUGIN_DIR_FROM_BIN
#define PROVD_PLUGIN_DIR_FROM_BIN "../lib/provd/plugins"
#endif

static int is_directory(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int config_default_plugin_dir(const char *exe_path, char *out,
                              size_t out_len)
{
  const char *slash = strrchr(exe_path, '/');
  int dir_len = slash ? (int)(slash - exe_path) : 1;
  const char *dir = slash ? exe_path : ".";
  int n = snprintf(out, out_len, "%.*s/plugins", dir_len, dir);
  if (n < 0 || (size_t)n >= out_len)
    return -1;
  if (is_directory(out))
    return 0;
  char installed[PATH_MAX];
  n = snprintf(installed, sizeof(installed), "%.*s/%s", dir_len, dir,
               PROVD_PLUGIN_DIR_FROM_BIN);
  if (n < 0 || (size_t)n >= sizeof(installed))
    return -1;
  /* /usr/bin/../lib/provd/plugins reads better as /usr/lib/provd/plugins */
  char resolved[PATH_MAX];
  const char *shown = realpath(installed, resolved) ? resolved : installed;
  n = snprintf(out, out_len, "%s", shown);
  return n < 0 || (size_t)n >= out_len ? -1 : 0;
}

/* Without /proc the executable's place is unknown: the build tree's
 * relative default is the best guess left. */
static char *default_plugin_dir(void)
{
  char exe[PATH_MAX], dir[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0 || (size_t)n >= sizeof(exe) - 1)
    return strdup("build/plugins");
  exe[n] = '\0';
  if (config_default_plugin_dir(exe, dir, sizeof(dir)) != 0)
    return strdup("build/plugins");
  return strdup(dir);
}

static int set_defaults(struct provd_config *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  cfg->id_scope = strdup("0ne00000001");
  snprintf(cfg->https.host, sizeof(cfg->https.host), "127.0.0.1");
  cfg->https.port = 8443;
  cfg->data_dir = strdup("var");
  cfg->storage.kind = PROVD_KIND_STORAGE;
  cfg->storage.name = strdup("sqlite");
  cfg->storage.id = strdup("sqlite");
  cfg->commit_window_ms = DEFAULT_COMMIT_WINDOW_MS;
  cfg->plugin_path = calloc(1, sizeof(char *));
  if (cfg->plugin_path) {
    cfg->plugin_path[0] = default_plugin_dir();
    cfg->n_plugin_path = 1;
  }
  cfg->workers = 0;
  cfg->log_level = LOG_INFO;
  cfg->max_body_bytes = 96 * 1024;
  cfg->handshake_timeout_s = 5;
  cfg->retry_after_max_s = 5;
  cfg->max_service_token_lifetime_s = SERVICE_TOKEN_LIFETIME_DEFAULT_S;
  cfg->retry_after_s = 1;
  cfg->events = (struct cfg_events){
      .retry_initial_ms = 1000, .retry_max_ms = 300000,
      .max_age_ms = DAY_MS, .concurrency = 4, .queue = 1024,
      .poll_ms = 100, .retain_age_ms = 0, .retain_count = 0};
  if (!cfg->id_scope || !cfg->data_dir || !cfg->storage.name ||
      !cfg->storage.id || !cfg->plugin_path || !cfg->plugin_path[0])
    return -1;
  return 0;
}

int config_event_wanted(char *const *events, size_t n_events,
                        const char *type)
{
  if (n_events == 0)
    return 1;
  for (size_t i = 0; i < n_events; i++)
    if (type && strcmp(events[i], type) == 0)
      return 1;
  return 0;
}

void config_defaults(struct provd_config *cfg)
{
  if (set_defaults(cfg)) {
    /* Only out of memory gets here; fail loudly rather than half-set. */
    fprintf(stderr, "provd: out of memory\n");
    abort();
  }
}

static void decl_free(struct cfg_plugin_decl *p)
{
  free(p->name);
  free(p->id);
  free(p->path);
  for (size_t i = 0; i < p->n_events; i++)
    free(p->events[i]);
  free(p->events);
}

void config_free(struct provd_config *cfg)
{
  if (!cfg)
    return;
  free(cfg->id_scope);
  free(cfg->data_dir);
  free(cfg->allocation_policy);
  free(cfg->tls_cert);
  free(cfg->tls_key);
  decl_free(&cfg->storage);
  for (size_t i = 0; i < cfg->n_plugin_path; i++)
    free(cfg->plugin_path[i]);
  free(cfg->plugin_path);
  for (size_t i = 0; i < cfg->n_hubs; i++) {
    free(cfg->hubs[i].name);
    free(cfg->hubs[i].hostname);
  }
  free(cfg->hubs);
  for (size_t i = 0; i < cfg->n_plugins; i++)
    decl_free(&cfg->plugins[i]);
  free(cfg->plugins);
  for (size_t i = 0; i < cfg->n_policies; i++) {
    free(cfg->policies[i].name);
    free(cfg->policies[i].key);
  }
  free(cfg->policies);
  for (size_t i = 0; i < cfg->n_issuers; i++) {
    free(cfg->issuers[i].name);
    free(cfg->issuers[i].cert);
    free(cfg->issuers[i].key_file);
  }
  free(cfg->issuers);
  cfg_tree_free(cfg->root);
  free(cfg->file); /* last: positions point into it */
  memset(cfg, 0, sizeof(*cfg));
}

static char *read_config(const char *path, size_t *len, struct diag *d)
{
  struct cfg_pos where = {path, 0, 0};
  FILE *f = fopen(path, "rb");
  if (!f) {
    diag_add(d, &where, "cannot open: %s", strerror(errno));
    return NULL;
  }
  char *buf = malloc(CFG_MAX_FILE + 1);
  size_t n = buf ? fread(buf, 1, CFG_MAX_FILE + 1, f) : 0;
  int err = !buf ? ENOMEM : ferror(f) ? errno : 0;
  fclose(f);
  if (err || n > CFG_MAX_FILE) {
    if (err)
      diag_add(d, &where, "cannot read: %s", strerror(err));
    else
      diag_add(d, &where, "file is larger than %d bytes", CFG_MAX_FILE);
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

int config_load(const char *path, struct provd_config *cfg, struct diag *d)
{
  struct ck c = {.d = d};
  size_t len = 0;
  if (!path) {
    memset(cfg, 0, sizeof(*cfg));
    diag_add(d, NULL, "no configuration file given");
    return -1;
  }
  if (set_defaults(cfg) || !(cfg->file = strdup(path))) {
    diag_add(d, NULL, "%s: out of memory", path);
    config_free(cfg);
    return -1;
  }
  /* Storage errors of the loader name the file even when the file has
   * no `storage:` key. */
  cfg->storage.pos.file = cfg->file;
  char *text = read_config(cfg->file, &len, d);
  if (!text) {
    config_free(cfg);
    return -1;
  }
  int tree_errors = cfg_tree_parse(text, len, cfg->file, &cfg->root, d);
  free(text);
  if (tree_errors < 0) {
    config_free(cfg);
    return -1;
  }
  if (cfg->root) {
    c.errors += cfg_apply_renames(cfg->root, cfg_core_renames, d);
    check_root(&c, cfg, cfg->root);
  }
  if (tree_errors || c.errors) {
    config_free(cfg);
    return -1;
  }
  return 0;
}
