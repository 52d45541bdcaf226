/* Sessions: one SQLite connection per thread, its cached statements and
 * its transaction nesting (BEGIN IMMEDIATE, then SAVEPOINT sN). */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static int map_status(int rc, const char **reason)
{
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    *reason = "STORE_BUSY";
    return PROVD_E_UNAVAILABLE;
  case SQLITE_NOMEM:
    *reason = "STORE_NOMEM";
    return PROVD_E_NOMEM;
  case SQLITE_TOOBIG:
  case SQLITE_RANGE:
  case SQLITE_MISMATCH:
    *reason = "STORE_INVALID";
    return PROVD_E_INVAL;
  case SQLITE_ERROR:
  case SQLITE_MISUSE:
  case SQLITE_CONSTRAINT:
    *reason = "STORE_INTERNAL";
    return PROVD_E_INTERNAL;
  default: /* IOERR, FULL, CORRUPT, CANTOPEN, READONLY, NOTADB, ... */
    *reason = "STORE_IO";
    return PROVD_E_IO;
  }
}

int sq_db_fail(const struct sq_state *st, sqlite3 *db, int rc,
               const char *what, struct provd_err *err)
{
  const char *reason;
  int status = map_status(rc, &reason);
  st->host->err_set(err, reason, "sqlite: %s: %s (%d)", what,
                    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
  return status;
}

int sq_fail(struct sq_session *s, int rc, const char *what,
            struct provd_err *err)
{
  /* IOERR, FULL, NOMEM and BUSY may make SQLite roll back the whole
   * transaction; later commit/rollback calls must know. */
  if (s->depth > 0 && sqlite3_get_autocommit(s->db))
    s->aborted = 1;
  return sq_db_fail(s->st, s->db, rc, what, err);
}

sqlite3_stmt *sq_stmt(struct sq_session *s, sqlite3_stmt **slot,
                      const char *sql, struct provd_err *err)
{
  if (!*slot) {
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                slot, NULL);
    if (rc != SQLITE_OK) {
      sq_fail(s, rc, "preparing a statement", err);
      *slot = NULL;
      return NULL;
    }
  }
  return *slot;
}

static int exec_once(sqlite3 *db, const char *sql)
{
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int configure_connection(struct sq_state *st, sqlite3 *db,
                                struct provd_err *err)
{
  char sql[256];
  int rc;
  sqlite3_extended_result_codes(db, 1);
  rc = sqlite3_busy_timeout(db, (int)st->busy_timeout_ms);
  if (rc != SQLITE_OK)
    return sq_db_fail(st, db, rc, "setting busy_timeout", err);
  /* Negative cache_size is in KiB.  journal_size_limit truncates the WAL
   * after a checkpoint so that one burst does not keep a huge file. */
  snprintf(sql, sizeof(sql),
           "PRAGMA synchronous = %s; PRAGMA cache_size = -%lld; "
           "PRAGMA journal_size_limit = %d; PRAGMA mmap_size = %lld;",
           st->sync_full ? "FULL" : "NORMAL",
           (long long)(st->cache_size_bytes / 1024), SQ_WAL_SIZE_LIMIT,
           (long long)st->mmap_size_bytes);
  rc = exec_once(db, sql);
  if (rc != SQLITE_OK)
    return sq_db_fail(st, db, rc, "setting session pragmas", err);
  return PROVD_OK;
}

int sq_session_open(void *state, void **session, struct provd_err *err)
{
  struct sq_state *st = state;
  if (!st->control) {
    st->host->err_set(err, "STORE_UNAVAILABLE",
                      "sqlite: session_open before start");
    return PROVD_E_UNAVAILABLE;
  }
  struct sq_session *s = calloc(1, sizeof(*s));
  int rc;
  if (!s) {
    st->host->err_set(err, "STORE_NOMEM", "sqlite: no memory for a session");
    return PROVD_E_NOMEM;
  }
  s->st = st;
  /* One thread per session: no SQLite mutex needed.  start() created
   * and migrated the file, so no CREATE here. */
  rc = sqlite3_open_v2(st->path, &s->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int status = sq_db_fail(st, s->db, rc, "opening a session", err);
    sqlite3_close(s->db);
    free(s);
    return status;
  }
  rc = configure_connection(st, s->db, err);
  if (rc != PROVD_OK) {
    sqlite3_close(s->db);
    free(s);
    return rc;
  }
  *session = s;
  return PROVD_OK;
}

static void finalize_all(sqlite3_stmt **stmts, size_t n)
{
  for (size_t i = 0; i < n; i++)
    sqlite3_finalize(stmts[i]); /* NULL is a no-op */
}

void sq_session_close(void *session)
{
  struct sq_session *s = session;
  if (!s)
    return;
  if (s->depth > 0 && !sqlite3_get_autocommit(s->db))
    exec_once(s->db, "ROLLBACK"); /* an abandoned transaction is undone */
  sqlite3_finalize(s->begin);
  sqlite3_finalize(s->commit);
  sqlite3_finalize(s->rollback);
  sqlite3_finalize(s->outbox_append);
  sqlite3_finalize(s->outbox_list);
  sqlite3_finalize(s->outbox_last);
  sqlite3_finalize(s->outbox_trim);
  finalize_all(s->chal, SQ_N_CHAL_STMTS);
  finalize_all(&s->sp[0][0], sizeof(s->sp) / sizeof(s->sp[0][0]));
  finalize_all(&s->rec[0][0], sizeof(s->rec) / sizeof(s->rec[0][0]));
  finalize_all(&s->list[0][0], sizeof(s->list) / sizeof(s->list[0][0]));
  finalize_all(&s->count[0][0], sizeof(s->count) / sizeof(s->count[0][0]));
  sqlite3_close(s->db);
  free(s);
}

/* Runs a cached statement that returns no rows. */
static int run(struct sq_session *s, sqlite3_stmt **slot, const char *sql,
               const char *what, struct provd_err *err)
{
  sqlite3_stmt *stmt = sq_stmt(s, slot, sql, err);
  int rc;
  if (!stmt)
    return PROVD_E_INTERNAL;
  rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE)
    return sq_fail(s, rc, what, err);
  return PROVD_OK;
}

/* The statement of savepoint level `level` (1-based nesting below BEGIN). */
static int run_savepoint(struct sq_session *s, int level, enum sq_sp_stmt k,
                         struct provd_err *err)
{
  static const char *const fmt[SQ_N_SP] = {
    "SAVEPOINT s%d", "RELEASE s%d", "ROLLBACK TO s%d"
  };
  static const char *const what[SQ_N_SP] = {
    "opening a savepoint", "releasing a savepoint",
    "rolling back a savepoint"
  };
  if (level < 1 || level >= SQ_MAX_DEPTH) { /* callers keep it in range */
    s->st->host->err_set(err, "STORE_INTERNAL",
                         "sqlite: savepoint level %d out of range", level);
    return PROVD_E_INTERNAL;
  }
  char sql[32];
  snprintf(sql, sizeof(sql), fmt[k], level);
  return run(s, &s->sp[level][k], sql, what[k], err);
}

/* The transaction died underneath us; report it once per level. */
static int aborted_error(struct sq_session *s, struct provd_err *err)
{
  s->st->host->err_set(err, "STORE_IO",
                       "sqlite: the transaction was rolled back after an "
                       "earlier error");
  return PROVD_E_IO;
}

static void leave_level(struct sq_session *s)
{
  if (--s->depth == 0)
    s->aborted = 0;
}

int sq_tx_begin(void *session, struct provd_err *err)
{
  struct sq_session *s = session;
  int rc;
  if (s->aborted)
    return aborted_error(s, err);
  if (s->depth >= SQ_MAX_DEPTH) {
    s->st->host->err_set(err, "STORE_INVALID",
                         "sqlite: transactions nest deeper than %d",
                         SQ_MAX_DEPTH);
    return PROVD_E_INVAL;
  }
  /* IMMEDIATE takes the write lock now, so a later write cannot fail
   * with SQLITE_BUSY halfway through. */
  if (s->depth == 0)
    rc = run(s, &s->begin, "BEGIN IMMEDIATE", "beginning a transaction",
             err);
  else
    rc = run_savepoint(s, s->depth, SQ_SP_BEGIN, err);
  if (rc == PROVD_OK)
    s->depth++;
  return rc;
}

static int no_transaction(struct sq_session *s, struct provd_err *err)
{
  s->st->host->err_set(err, "STORE_INVALID",
                       "sqlite: commit or rollback without a transaction");
  return PROVD_E_INVAL;
}

int sq_tx_commit(void *session, struct provd_err *err)
{
  struct sq_session *s = session;
  int rc;
  if (s->depth == 0)
    return no_transaction(s, err);
  if (s->aborted) {
    leave_level(s);
    return aborted_error(s, err);
  }
  if (s->depth > 1) {
    rc = run_savepoint(s, s->depth - 1, SQ_SP_RELEASE, err);
    if (rc == PROVD_OK || s->aborted)
      leave_level(s);
    return rc;
  }
  rc = run(s, &s->commit, "COMMIT", "committing", err);
  /* A failed COMMIT either left the transaction open (BUSY: the caller
   * may retry or roll back) or SQLite already rolled it back. */
  if (rc == PROVD_OK || sqlite3_get_autocommit(s->db)) {
    s->depth = 0;
    s->aborted = 0;
  }
  return rc;
}

int sq_tx_rollback(void *session, struct provd_err *err)
{
  struct sq_session *s = session;
  int rc;
  if (s->depth == 0)
    return no_transaction(s, err);
  if (s->aborted || sqlite3_get_autocommit(s->db)) {
    leave_level(s); /* nothing left to undo */
    return PROVD_OK;
  }
  if (s->depth > 1) {
    rc = run_savepoint(s, s->depth - 1, SQ_SP_ROLLBACK, err);
    if (rc == PROVD_OK)
      rc = run_savepoint(s, s->depth - 1, SQ_SP_RELEASE, err);
    if (rc == PROVD_OK || s->aborted)
      leave_level(s);
    return rc;
  }
  rc = run(s, &s->rollback, "ROLLBACK", "rolling back", err);
  if (rc == PROVD_OK || sqlite3_get_autocommit(s->db)) {
    s->depth = 0;
    s->aborted = 0;
  }
  return rc;
}

int sq_implicit_begin(struct sq_session *s, int *opened,
                      struct provd_err *err)
{
  *opened = 0;
  if (s->depth > 0)
    return PROVD_OK;
  int rc = sq_tx_begin(s, err);
  if (rc == PROVD_OK)
    *opened = 1;
  return rc;
}

int sq_implicit_end(struct sq_session *s, int opened, int status,
                    struct provd_err *err)
{
  if (!opened)
    return status;
  if (status == PROVD_OK)
    status = sq_tx_commit(s, err);
  else
    sq_tx_rollback(s, err); /* err keeps the op's reason unless this fails */
  if (s->depth > 0) {       /* commit or rollback failed: drop the lock */
    exec_once(s->db, "ROLLBACK");
    s->depth = 0;
    s->aborted = 0;
  }
  return status;
}
