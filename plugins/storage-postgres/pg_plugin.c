/* The `postgres` storage plugin: several provd instances on one
 * PostgreSQL database.  Same semantics as the sqlite plugin; see
 * docs/plugins/postgres.md and docs/scale-out.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_POOL_SIZE 8
#define MAX_POOL_SIZE 256
#define DEFAULT_POOL_WAIT_MS 5000
#define DEFAULT_RECONNECT_MAX_MS 5000
#define MAX_WAIT_MS (10 * 60 * 1000)
#define MAX_CONNINFO 8192

/* Keep docs/plugins/postgres.md in sync. */
static const struct provd_option postgres_options[] = {
  { .name = "conninfo", .type = PROVD_OPT_STRING,
    .flags = PROVD_OPT_SENSITIVE,
    .description = "libpq connection string or URI (host=... dbname=... "
                   "sslmode=verify-full ...); one of conninfo and "
                   "conninfo_file is required." },
  { .name = "conninfo_file", .type = PROVD_OPT_PATH,
    .description = "File holding the connection string, so that a "
                   "password stays out of the configuration." },
  { .name = "pool_size", .type = PROVD_OPT_INT, .default_value = "8",
    .description = "Most connections this instance opens; a session "
                   "holds one only while an operation or transaction "
                   "runs." },
  { .name = "pool_wait", .type = PROVD_OPT_DURATION, .default_value = "5s",
    .description = "How long an operation waits for a free pooled "
                   "connection before answering busy." },
  { .name = "reconnect_max", .type = PROVD_OPT_DURATION,
    .default_value = "5s",
    .description = "Longest wait between attempts to reach a database "
                   "that went away (the wait doubles from 100ms)." },
  { .name = NULL }
};

static int pgp_create(const struct provd_host_api *host,
                      struct provd_instance *inst, void **state,
                      struct provd_err *err)
{
  struct pg_state *st = calloc(1, sizeof(*st));
  if (!st) {
    host->err_set(err, "STORE_NOMEM", "postgres: no memory for the state");
    return PROVD_E_NOMEM;
  }
  st->host = host;
  st->inst = inst;
  st->pool_size = DEFAULT_POOL_SIZE;
  st->pool_wait_ms = DEFAULT_POOL_WAIT_MS;
  st->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  *state = st;
  return PROVD_OK;
}

static int config_error(struct pg_state *st, struct provd_err *err,
                        const char *msg)
{
  st->host->err_set(err, "STORE_CONFIG", "postgres: %s", msg);
  return PROVD_E_CONFIG;
}

static int read_int(struct pg_state *st, const struct provd_cfg *o,
                    const char *key, int64_t min, int64_t max, int64_t *out,
                    struct provd_err *err)
{
  int64_t v;
  int rc = st->host->cfg_int(o, key, &v);
  if (rc == PROVD_NOT_FOUND)
    return PROVD_OK;
  if (rc != PROVD_OK || v < min || v > max) {
    st->host->err_set(err, "STORE_CONFIG",
                      "postgres: option %s must be between %lld and %lld",
                      key, (long long)min, (long long)max);
    return PROVD_E_CONFIG;
  }
  *out = v;
  return PROVD_OK;
}

/* The file's contents without the trailing newline; caller frees. */
static char *read_conninfo_file(struct pg_state *st, const char *path,
                                struct provd_err *err)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    st->host->err_set(err, "STORE_CONFIG",
                      "postgres: cannot read conninfo_file %s: %s", path,
                      strerror(errno));
    return NULL;
  }
  char *buf = calloc(1, MAX_CONNINFO + 1);
  size_t n = buf ? fread(buf, 1, MAX_CONNINFO + 1, f) : 0;
  fclose(f);
  if (!buf || n > MAX_CONNINFO) {
    free(buf);
    config_error(st, err, "conninfo_file is larger than 8 KiB");
    return NULL;
  }
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  return buf;
}

static int read_conninfo(struct pg_state *st, const struct provd_cfg *o,
                         char **out, struct provd_err *err)
{
  const char *text = NULL, *path = NULL;
  int has_text = st->host->cfg_str(o, "conninfo", &text) == PROVD_OK && text;
  int has_path =
      st->host->cfg_str(o, "conninfo_file", &path) == PROVD_OK && path;
  if (has_text == has_path)
    return config_error(st, err, "set exactly one of conninfo and "
                                 "conninfo_file");
  if (has_text && strnlen(text, MAX_CONNINFO + 1) > MAX_CONNINFO)
    return config_error(st, err, "conninfo is longer than 8 KiB");
  *out = has_text ? strdup(text) : read_conninfo_file(st, path, err);
  if (!*out && has_text)
    st->host->err_set(err, "STORE_NOMEM", "postgres: no memory");
  return *out ? PROVD_OK : (has_text ? PROVD_E_NOMEM : PROVD_E_CONFIG);
}

static int pgp_configure(void *state, const struct provd_cfg *options,
                         struct provd_err *err)
{
  struct pg_state *st = state;
  int64_t pool = DEFAULT_POOL_SIZE, wait = DEFAULT_POOL_WAIT_MS,
          reconnect = DEFAULT_RECONNECT_MAX_MS;
  char *conninfo = NULL;
  int rc;
  if ((rc = read_int(st, options, "pool_size", 1, MAX_POOL_SIZE, &pool,
                     err)) != PROVD_OK ||
      (rc = read_int(st, options, "pool_wait", 0, MAX_WAIT_MS, &wait,
                     err)) != PROVD_OK ||
      (rc = read_int(st, options, "reconnect_max", 100, MAX_WAIT_MS,
                     &reconnect, err)) != PROVD_OK ||
      (rc = read_conninfo(st, options, &conninfo, err)) != PROVD_OK)
    return rc;
  free(st->conninfo);
  st->conninfo = conninfo;
  st->pool_size = pool;
  st->pool_wait_ms = wait;
  st->reconnect_max_ms = reconnect;
  return PROVD_OK;
}

static int pgp_start(void *state, struct provd_err *err)
{
  struct pg_state *st = state;
  if (!st->conninfo)
    return config_error(st, err, "start before configure");
  PGconn *db = pg_connect(st, err);
  if (!db)
    return PROVD_E_UNAVAILABLE;
  int rc = pg_migrate(st, db, err);
  PQfinish(db);
  if (rc != PROVD_OK)
    return rc;
  st->conns = calloc((size_t)st->pool_size, sizeof(*st->conns));
  if (!st->conns) {
    st->host->err_set(err, "STORE_NOMEM", "postgres: no memory for the pool");
    return PROVD_E_NOMEM;
  }
  st->started = 1;
  return PROVD_OK;
}

/* Sessions are closed by now (the core's contract). */
static void pgp_stop(void *state)
{
  struct pg_state *st = state;
  if (!st->started)
    return;
  for (int64_t i = 0; i < st->pool_size; i++)
    PQfinish(st->conns[i].pg);
  free(st->conns);
  st->conns = NULL;
  st->started = 0;
}

static void pgp_destroy(void *state)
{
  struct pg_state *st = state;
  if (!st)
    return;
  pgp_stop(st);
  if (st->conninfo) {
    memset(st->conninfo, 0, strlen(st->conninfo));
    free(st->conninfo);
  }
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  free(st);
}

static const struct provd_lifecycle postgres_lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = pgp_create,
  .configure = pgp_configure,
  .start = pgp_start,
  .stop = pgp_stop,
  .destroy = pgp_destroy,
};

static const struct provd_storage_ops postgres_ops = {
  .struct_size = sizeof(struct provd_storage_ops),
  .session_open = pg_session_open,
  .session_close = pg_session_close,
  .tx_begin = pg_tx_begin,
  .tx_commit = pg_tx_commit,
  .tx_rollback = pg_tx_rollback,
  .get = pg_get,
  .put = pg_put,
  .del = pg_del,
  .list = pg_list,
  .count = pg_count,
  .outbox_append = pg_outbox_append,
  .outbox_list = pg_outbox_list,
  .outbox_last = pg_outbox_last,
  .outbox_trim = pg_outbox_trim,
  .challenge_put = pg_challenge_put,
  .challenge_get = pg_challenge_get,
  .challenge_answer = pg_challenge_answer,
  .flags = PROVD_STORAGE_SHARED,
  .outbox_head = pg_outbox_head,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_STORAGE,
  .flags = PROVD_PLUGIN_THREADSAFE,
  .min_host_minor = 0,
  .name = "postgres",
  .version = "1.0.0",
  .description = "PostgreSQL store shared by several provd instances "
                 "(libpq, pooled connections)",
  .vendor = "provd",
  .options = postgres_options,
  .lifecycle = &postgres_lifecycle,
  .ops = &postgres_ops,
};
