/* The `sqlite` storage plugin: the embedded default store.  One database
 * file in WAL mode; every session is its own connection, so readers never
 * wait for the writer.  See docs/plugins/sqlite.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_SYNCHRONOUS "full"
#define DEFAULT_BUSY_TIMEOUT_MS 5000
#define DEFAULT_CACHE_SIZE (16 * 1024 * 1024)
/* Reading pages through the map costs a page fault the first time (and
 * the kernel maps the neighbours with it), a read() call per cache miss
 * otherwise: 45-110 us less CPU per MQTT registration on the bench. */
#define DEFAULT_MMAP_SIZE ((int64_t)1024 * 1024 * 1024)
#define DEFAULT_MMAP_TEXT "1GiB"
#define MAX_MMAP_SIZE ((int64_t)64 * 1024 * 1024 * 1024)
#define MAX_PATH_LEN 4096
#define MAX_BUSY_TIMEOUT_MS (10 * 60 * 1000)
#define MIN_CACHE_SIZE (64 * 1024)
#define MAX_CACHE_SIZE ((int64_t)64 * 1024 * 1024 * 1024)

static const char *const synchronous_values[] = { "normal", "full", NULL };

/* Keep docs/plugins/sqlite.md in sync. */
static const struct provd_option sqlite_options[] = {
  { .name = "path", .type = PROVD_OPT_PATH,
    .description = "Database file; the core sets DATA_DIR/provd.db when "
                   "it is omitted." },
  { .name = "synchronous", .type = PROVD_OPT_ENUM,
    .default_value = DEFAULT_SYNCHRONOUS,
    .description = "full survives power loss; normal survives process "
                   "crashes and commits faster.",
    .enum_values = synchronous_values },
  { .name = "busy_timeout", .type = PROVD_OPT_DURATION,
    .default_value = "5s",
    .description = "How long a session waits for a lock held by another "
                   "connection before answering busy." },
  { .name = "cache_size", .type = PROVD_OPT_SIZE,
    .default_value = "16MiB",
    .description = "Page cache per session (each reader thread and the "
                   "writer has one)." },
  { .name = "mmap_size", .type = PROVD_OPT_SIZE,
    .default_value = DEFAULT_MMAP_TEXT,
    .description = "How much of the database file each session reads "
                   "through a shared memory map instead of a read call "
                   "per page its cache misses; 0 turns the map off." },
  { .name = NULL }
};

static int sq_create(const struct provd_host_api *host,
                     struct provd_instance *inst, void **state,
                     struct provd_err *err)
{
  struct sq_state *st = calloc(1, sizeof(*st));
  if (!st) {
    host->err_set(err, "STORE_NOMEM", "sqlite: no memory for the state");
    return PROVD_E_NOMEM;
  }
  st->host = host;
  st->inst = inst;
  st->sync_full = 1;
  st->busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS;
  st->cache_size_bytes = DEFAULT_CACHE_SIZE;
  st->mmap_size_bytes = DEFAULT_MMAP_SIZE;
  *state = st;
  return PROVD_OK;
}

static int config_error(struct sq_state *st, struct provd_err *err,
                        const char *msg)
{
  st->host->err_set(err, "STORE_CONFIG", "sqlite: %s", msg);
  return PROVD_E_CONFIG;
}

/* An optional integer option: *out keeps its default when absent. */
static int read_int(struct sq_state *st, const struct provd_cfg *o,
                    const char *key, int64_t min, int64_t max, int64_t *out,
                    struct provd_err *err)
{
  int64_t v;
  int rc = st->host->cfg_int(o, key, &v);
  if (rc == PROVD_NOT_FOUND)
    return PROVD_OK;
  if (rc != PROVD_OK || v < min || v > max) {
    st->host->err_set(err, "STORE_CONFIG",
                      "sqlite: option %s must be between %lld and %lld",
                      key, (long long)min, (long long)max);
    return PROVD_E_CONFIG;
  }
  *out = v;
  return PROVD_OK;
}

static int read_synchronous(struct sq_state *st, const struct provd_cfg *o,
                            int *sync_full, struct provd_err *err)
{
  const char *v = DEFAULT_SYNCHRONOUS;
  int rc = st->host->cfg_str(o, "synchronous", &v);
  if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
    return config_error(st, err, "option synchronous must be a string");
  if (strcmp(v, "full") == 0)
    *sync_full = 1;
  else if (strcmp(v, "normal") == 0)
    *sync_full = 0;
  else
    return config_error(st, err, "option synchronous must be normal or "
                                 "full");
  return PROVD_OK;
}

static int sq_configure(void *state, const struct provd_cfg *options,
                        struct provd_err *err)
{
  struct sq_state *st = state;
  const char *path = NULL;
  int sync_full = 1;
  int64_t busy = DEFAULT_BUSY_TIMEOUT_MS, cache = DEFAULT_CACHE_SIZE,
          mmap = DEFAULT_MMAP_SIZE;
  int rc = st->host->cfg_str(options, "path", &path);
  if (rc == PROVD_NOT_FOUND)
    return config_error(st, err, "option path is missing (the core "
                                 "normally sets DATA_DIR/provd.db)");
  if (rc != PROVD_OK || !path || !path[0])
    return config_error(st, err, "option path must be a non-empty path");
  if (strnlen(path, MAX_PATH_LEN + 1) > MAX_PATH_LEN)
    return config_error(st, err, "option path is too long");
  if ((rc = read_synchronous(st, options, &sync_full, err)) != PROVD_OK ||
      (rc = read_int(st, options, "busy_timeout", 0, MAX_BUSY_TIMEOUT_MS,
                     &busy, err)) != PROVD_OK ||
      (rc = read_int(st, options, "cache_size", MIN_CACHE_SIZE,
                     MAX_CACHE_SIZE, &cache, err)) != PROVD_OK ||
      (rc = read_int(st, options, "mmap_size", 0, MAX_MMAP_SIZE, &mmap,
                     err)) != PROVD_OK)
    return rc;
  char *copy = strdup(path);
  if (!copy) {
    st->host->err_set(err, "STORE_NOMEM", "sqlite: no memory");
    return PROVD_E_NOMEM;
  }
  /* All checked: commit the new settings at once. */
  free(st->path);
  st->path = copy;
  st->sync_full = sync_full;
  st->busy_timeout_ms = busy;
  st->cache_size_bytes = cache;
  st->mmap_size_bytes = mmap;
  return PROVD_OK;
}

/* SQLite creates files with 0644 & ~umask; the store holds keys, so make
 * the file first with 0600.  The -wal and -shm files copy its mode. */
static int create_private(struct sq_state *st, struct provd_err *err)
{
  int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    st->host->err_set(err, "STORE_IO", "sqlite: cannot open %s: %s",
                      st->path, strerror(errno));
    return PROVD_E_IO;
  }
  close(fd);
  return PROVD_OK;
}

static int enable_wal(struct sq_state *st, sqlite3 *db,
                      struct provd_err *err)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &stmt,
                              NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) {
    sqlite3_finalize(stmt);
    return sq_db_fail(st, db, rc, "enabling WAL", err);
  }
  const char *mode = (const char *)sqlite3_column_text(stmt, 0);
  int is_wal = mode && strcmp(mode, "wal") == 0;
  sqlite3_finalize(stmt);
  if (!is_wal) {
    st->host->err_set(err, "STORE_IO",
                      "sqlite: %s cannot use WAL journaling (file system "
                      "without shared memory?)",
                      st->path);
    return PROVD_E_IO;
  }
  return PROVD_OK;
}

static int sq_start(void *state, struct provd_err *err)
{
  struct sq_state *st = state;
  sqlite3 *db = NULL;
  if (!st->path)
    return config_error(st, err, "start before configure");
  int rc = create_private(st, err);
  if (rc != PROVD_OK)
    return rc;
  int src = sqlite3_open_v2(st->path, &db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL);
  if (src != SQLITE_OK) {
    rc = sq_db_fail(st, db, src, "opening the database", err);
    sqlite3_close(db);
    return rc;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, (int)st->busy_timeout_ms);
  rc = enable_wal(st, db, err);
  if (rc == PROVD_OK)
    rc = sq_migrate(st, db, err);
  if (rc != PROVD_OK) {
    sqlite3_close(db);
    return rc;
  }
  st->control = db;
  return PROVD_OK;
}

static void sq_stop(void *state)
{
  struct sq_state *st = state;
  if (!st->control)
    return;
  /* The last connection to close checkpoints and removes the WAL. */
  sqlite3_close(st->control);
  st->control = NULL;
}

static void sq_destroy(void *state)
{
  struct sq_state *st = state;
  if (!st)
    return;
  sq_stop(st);
  free(st->path);
  free(st);
}

static const struct provd_lifecycle sqlite_lifecycle = {
  .struct_size = sizeof(struct provd_lifecycle),
  .create = sq_create,
  .configure = sq_configure,
  .start = sq_start,
  .stop = sq_stop,
  .destroy = sq_destroy,
};

static const struct provd_storage_ops sqlite_ops = {
  .struct_size = sizeof(struct provd_storage_ops),
  .session_open = sq_session_open,
  .session_close = sq_session_close,
  .tx_begin = sq_tx_begin,
  .tx_commit = sq_tx_commit,
  .tx_rollback = sq_tx_rollback,
  .get = sq_get,
  .put = sq_put,
  .del = sq_del,
  .list = sq_list,
  .count = sq_count,
  .outbox_append = sq_outbox_append,
  .outbox_list = sq_outbox_list,
  .outbox_last = sq_outbox_last,
  .outbox_trim = sq_outbox_trim,
  .challenge_put = sq_challenge_put,
  .challenge_get = sq_challenge_get,
  .challenge_answer = sq_challenge_answer,
  /* One process per database file: not PROVD_STORAGE_SHARED.  BEGIN
   * IMMEDIATE already holds the only write lock, so the head is the
   * last event. */
  .flags = 0,
  .outbox_head = sq_outbox_last,
  .backup = sq_backup,
};

PROVD_PLUGIN_DEFINE = {
  PROVD_PLUGIN_HEADER,
  .kind = PROVD_KIND_STORAGE,
  /* Sessions are independent connections, one thread each. */
  .flags = PROVD_PLUGIN_THREADSAFE,
  .min_host_minor = 0,
  .name = "sqlite",
  .version = "1.0.0",
  .description = "Embedded SQLite store (WAL, one connection per session)",
  .vendor = "provd",
  .options = sqlite_options,
  .lifecycle = &sqlite_lifecycle,
  .ops = &sqlite_ops,
};
