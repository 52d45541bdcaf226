/* Connections, the bounded pool, statement execution and transaction
 * nesting (BEGIN, then SAVEPOINT sN).
 *
 * A session holds a pooled connection only while an op or a transaction
 * runs, so idle sessions (a notifier lane between deliveries) cost no
 * server process.  A lost connection is replaced on the next use, no
 * sooner than the backoff allows; until then ops answer
 * PROVD_E_UNAVAILABLE with reason STORE_UNREACHABLE, which the core turns
 * into 503 + Retry-After. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define BACKOFF_FIRST_MS 100

void pg_param_text(struct pg_params *p, const char *v)
{
  p->v[p->n] = v;
  p->len[p->n] = 0;
  p->fmt[p->n] = 0;
  p->n++;
}

void pg_param_int(struct pg_params *p, int64_t v)
{
  snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
  pg_param_text(p, p->num[p->n]);
}

void pg_param_bin(struct pg_params *p, const void *v, size_t len)
{
  p->v[p->n] = v;
  p->len[p->n] = (int)len;
  p->fmt[p->n] = 1;
  p->n++;
}

int pg_text_ok(const char *v, size_t max, int required)
{
  if (!v)
    return !required;
  size_t n = strnlen(v, max + 1);
  return n <= max && (n > 0 || !required);
}

int pg_invalid(struct pg_session *s, struct provd_err *err, const char *what)
{
  s->st->host->err_set(err, "STORE_INVALID", "postgres: %s", what);
  return PROVD_E_INVAL;
}

int64_t pg_int(const PGresult *r, int row, int col)
{
  return PQgetisnull(r, row, col) ? 0
                                  : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

const char *pg_str(const PGresult *r, int row, int col)
{
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t now_ms(const struct pg_state *st)
{
  return (int64_t)(st->host->mono_ns() / 1000000u);
}

/* ---- connecting ---- */

PGconn *pg_connect(struct pg_state *st, struct provd_err *err)
{
  /* The defaults come first so that the conninfo (expanded from dbname)
   * overrides them. */
  const char *keys[] = { "connect_timeout", "application_name", "dbname",
                         NULL };
  const char *vals[] = { "5", "provd", st->conninfo, NULL };
  PGconn *db = PQconnectdbParams(keys, vals, 1);
  if (!db || PQstatus(db) != CONNECTION_OK) {
    const char *why = db ? PQerrorMessage(db) : "out of memory";
    st->host->err_set(err, "STORE_UNREACHABLE",
                      "postgres: cannot connect: %s", why);
    st->host->log(st->inst, NULL, PROVD_LOG_WARN,
                  "postgres: cannot connect (reason=STORE_UNREACHABLE): %s",
                  why);
    PQfinish(db);
    return NULL;
  }
  /* Durations and text compare the same way on every server. */
  PGresult *r = PQexec(db, "SET TIME ZONE 'UTC'; "
                           "SET default_transaction_isolation = "
                           "'read committed'");
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    st->host->err_set(err, "STORE_IO", "postgres: session setup failed: %s",
                      PQerrorMessage(db));
    PQfinish(db);
    return NULL;
  }
  return db;
}

/* Connects c when it is not, unless the backoff says not yet.  Called with
 * c held by the caller (not the pool mutex). */
static int ensure_connected(struct pg_session *s, struct provd_err *err)
{
  struct pg_state *st = s->st;
  struct pg_conn *c = s->c;
  if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
    return PROVD_OK;
  PQfinish(c->pg);
  c->pg = NULL;
  pthread_mutex_lock(&st->mu);
  int64_t wait = st->retry_at_ms - now_ms(st);
  pthread_mutex_unlock(&st->mu);
  if (wait > 0) {
    st->host->err_set(err, "STORE_UNREACHABLE",
                      "postgres: the database is unreachable; next attempt "
                      "in %lld ms", (long long)wait);
    return PROVD_E_UNAVAILABLE;
  }
  c->pg = pg_connect(st, err);
  pthread_mutex_lock(&st->mu);
  if (!c->pg) {
    /* One backoff for the whole pool: a dead server is not hammered by
     * every connection in turn. */
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (c->backoff_ms > st->reconnect_max_ms)
      c->backoff_ms = st->reconnect_max_ms;
    st->retry_at_ms = now_ms(st) + c->backoff_ms;
  } else {
    c->backoff_ms = 0;
    st->retry_at_ms = 0;
    memset(c->prepared, 0, sizeof(c->prepared));
  }
  pthread_mutex_unlock(&st->mu);
  return c->pg ? PROVD_OK : PROVD_E_UNAVAILABLE;
}

/* ---- the pool ---- */

static struct timespec deadline_in(int64_t ms)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

/* A free connection, preferring one that is connected. */
static struct pg_conn *pool_take_locked(struct pg_state *st)
{
  struct pg_conn *spare = NULL;
  for (int64_t i = 0; i < st->pool_size; i++) {
    struct pg_conn *c = &st->conns[i];
    if (c->in_use)
      continue;
    if (c->pg)
      return c;
    if (!spare)
      spare = c;
  }
  return spare;
}

int pg_enter(struct pg_session *s, struct provd_err *err)
{
  struct pg_state *st = s->st;
  if (s->c && s->lost) {
    st->host->err_set(err, "STORE_UNREACHABLE",
                      "postgres: the connection was lost inside this "
                      "transaction");
    return PROVD_E_UNAVAILABLE;
  }
  if (s->c)
    return PROVD_OK;
  struct timespec until = deadline_in(st->pool_wait_ms);
  int timed_out = 0;
  pthread_mutex_lock(&st->mu);
  struct pg_conn *c;
  while (!(c = pool_take_locked(st)) && !timed_out)
    timed_out = pthread_cond_timedwait(&st->cv, &st->mu, &until) ==
                ETIMEDOUT;
  if (c)
    c->in_use = 1;
  pthread_mutex_unlock(&st->mu);
  if (!c) {
    st->host->err_set(err, "STORE_BUSY",
                      "postgres: all %lld pooled connections stayed busy "
                      "for %lld ms (pool_size)",
                      (long long)st->pool_size, (long long)st->pool_wait_ms);
    return PROVD_E_UNAVAILABLE;
  }
  s->c = c;
  int rc = ensure_connected(s, err);
  if (rc != PROVD_OK)
    pg_leave(s);
  return rc;
}

void pg_leave(struct pg_session *s)
{
  if (!s->c || s->depth > 0)
    return;
  struct pg_state *st = s->st;
  pthread_mutex_lock(&st->mu);
  s->c->in_use = 0;
  pthread_mutex_unlock(&st->mu);
  pthread_cond_signal(&st->cv);
  s->c = NULL;
  s->lost = 0;
}

/* ---- statements ---- */

static int map_sqlstate(const char *state, const char **reason)
{
  if (!state) {
    *reason = "STORE_UNREACHABLE";
    return PROVD_E_UNAVAILABLE;
  }
  if (strcmp(state, "23505") == 0) {
    *reason = "STORE_EXISTS";
    return PROVD_EXISTS;
  }
  if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
    *reason = "STORE_UNREACHABLE";
    return PROVD_E_UNAVAILABLE;
  }
  if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
      strcmp(state, "55P03") == 0 || strcmp(state, "53300") == 0) {
    *reason = "STORE_BUSY";
    return PROVD_E_UNAVAILABLE;
  }
  if (strncmp(state, "22", 2) == 0) {
    *reason = "STORE_INVALID";
    return PROVD_E_INVAL;
  }
  if (strncmp(state, "53", 2) == 0 || strncmp(state, "58", 2) == 0) {
    *reason = "STORE_IO";
    return PROVD_E_IO;
  }
  *reason = "STORE_INTERNAL";
  return PROVD_E_INTERNAL;
}

/* Maps a failed result (or none) to a status; a dead connection is
 * closed so the next use reconnects. */
static int fail(struct pg_session *s, PGresult *r, const char *what,
                struct provd_err *err)
{
  const char *reason;
  PGconn *db = s->c ? s->c->pg : NULL;
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  int status = map_sqlstate(state, &reason);
  s->st->host->err_set(err, reason, "postgres: %s: %s", what,
                       r ? PQresultErrorMessage(r) : PQerrorMessage(db));
  PQclear(r);
  if (PQstatus(db) != CONNECTION_OK) { /* PQstatus(NULL) is BAD too */
    status = PROVD_E_UNAVAILABLE;
    s->st->host->err_set(err, "STORE_UNREACHABLE",
                         "postgres: %s: the connection was lost", what);
    PQfinish(db);
    if (s->c)
      s->c->pg = NULL;
    if (s->depth > 0)
      s->lost = 1;
  }
  return status;
}

static int is_prepared(const struct pg_conn *c, int id)
{
  return (c->prepared[id / 64] >> (id % 64)) & 1u;
}

int pg_exec(struct pg_session *s, int id, const char *sql,
            const struct pg_params *p, PGresult **res, struct provd_err *err)
{
  static const struct pg_params none = { 0 };
  char name[16];
  *res = NULL;
  if (!p)
    p = &none;
  if (id < 0 || id >= PG_STMT_MAX)
    return pg_invalid(s, err, "statement number out of range");
  if (!s->c || !s->c->pg)
    return fail(s, NULL, "running a statement without a connection", err);
  snprintf(name, sizeof(name), "p%d", id);
  if (!is_prepared(s->c, id)) {
    PGresult *r = PQprepare(s->c->pg, name, sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      return fail(s, r, "preparing a statement", err);
    PQclear(r);
    s->c->prepared[id / 64] |= (uint64_t)1 << (id % 64);
  }
  PGresult *r = PQexecPrepared(s->c->pg, name, p->n, p->v, p->len, p->fmt,
                               0);
  ExecStatusType es = PQresultStatus(r);
  if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK)
    return fail(s, r, sql, err);
  *res = r;
  return PROVD_OK;
}

/* Runs a statement without parameters whose result is not needed. */
static int exec_plain(struct pg_session *s, const char *sql,
                      struct provd_err *err)
{
  if (!s->c || !s->c->pg)
    return fail(s, NULL, sql, err);
  PGresult *r = PQexec(s->c->pg, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    return fail(s, r, sql, err);
  PQclear(r);
  return PROVD_OK;
}

/* ---- sessions ---- */

int pg_session_open(void *state, void **session, struct provd_err *err)
{
  struct pg_state *st = state;
  if (!st->started) {
    st->host->err_set(err, "STORE_UNAVAILABLE",
                      "postgres: session_open before start");
    return PROVD_E_UNAVAILABLE;
  }
  struct pg_session *s = calloc(1, sizeof(*s));
  if (!s) {
    st->host->err_set(err, "STORE_NOMEM",
                      "postgres: no memory for a session");
    return PROVD_E_NOMEM;
  }
  /* No connection yet: the session takes one from the pool on use, and a
   * database that is down now does not fail the caller's setup. */
  s->st = st;
  *session = s;
  return PROVD_OK;
}

void pg_session_close(void *session)
{
  struct pg_session *s = session;
  if (!s)
    return;
  if (s->c && s->depth > 0 && s->c->pg) {
    exec_plain(s, "ROLLBACK", NULL); /* an abandoned transaction */
  }
  s->depth = 0;
  pg_leave(s);
  free(s);
}

static int savepoint(struct pg_session *s, const char *fmt, int level,
                     struct provd_err *err)
{
  char sql[48];
  snprintf(sql, sizeof(sql), fmt, level);
  return exec_plain(s, sql, err);
}

int pg_tx_begin(void *session, struct provd_err *err)
{
  struct pg_session *s = session;
  if (s->depth >= PG_MAX_DEPTH)
    return pg_invalid(s, err, "transactions nest too deep");
  int rc = pg_enter(s, err);
  if (rc != PROVD_OK)
    return rc;
  rc = s->depth == 0 ? exec_plain(s, "BEGIN", err)
                     : savepoint(s, "SAVEPOINT s%d", s->depth, err);
  if (rc == PROVD_OK)
    s->depth++;
  else
    pg_leave(s);
  return rc;
}

static int no_transaction(struct pg_session *s, struct provd_err *err)
{
  return pg_invalid(s, err, "commit or rollback without a transaction");
}

/* Leaves level depth; the write lock goes with the level that took it
 * (a lock taken inside a rolled-back savepoint may be released). */
static void leave_level(struct pg_session *s, int rolled_back)
{
  if (s->lock_depth >= s->depth)
    s->lock_depth = rolled_back ? 0 : s->depth - 1;
  if (--s->depth == 0) {
    s->lock_depth = 0;
    pg_leave(s);
  }
}

int pg_tx_commit(void *session, struct provd_err *err)
{
  struct pg_session *s = session;
  if (s->depth == 0)
    return no_transaction(s, err);
  if (s->lost) {
    s->st->host->err_set(err, "STORE_UNREACHABLE",
                         "postgres: the connection was lost before commit");
    leave_level(s, 1);
    return PROVD_E_UNAVAILABLE;
  }
  int rc = s->depth > 1 ? savepoint(s, "RELEASE s%d", s->depth - 1, err)
                        : exec_plain(s, "COMMIT", err);
  /* A failed COMMIT ends the transaction too (PostgreSQL rolls it back);
   * a failed RELEASE leaves the level for the caller's rollback. */
  if (rc == PROVD_OK || s->depth == 1 || s->lost)
    leave_level(s, rc != PROVD_OK);
  return rc;
}

int pg_tx_rollback(void *session, struct provd_err *err)
{
  struct pg_session *s = session;
  if (s->depth == 0)
    return no_transaction(s, err);
  if (s->lost) { /* the server dropped it all with the connection */
    leave_level(s, 1);
    return PROVD_OK;
  }
  int rc;
  if (s->depth > 1) {
    rc = savepoint(s, "ROLLBACK TO s%d", s->depth - 1, err);
    if (rc == PROVD_OK)
      rc = savepoint(s, "RELEASE s%d", s->depth - 1, err);
  } else {
    rc = exec_plain(s, "ROLLBACK", err);
  }
  if (rc == PROVD_OK || s->lost)
    leave_level(s, 1);
  return s->lost ? PROVD_OK : rc;
}

int pg_write_begin(struct pg_session *s, int *opened, struct provd_err *err)
{
  *opened = 0;
  int rc = PROVD_OK;
  if (s->depth == 0) {
    rc = pg_tx_begin(s, err);
    *opened = rc == PROVD_OK;
  }
  if (rc != PROVD_OK || s->lock_depth > 0)
    return rc;
  struct pg_params p = { 0 };
  PGresult *r;
  pg_param_int(&p, PG_WRITE_LOCK_KEY);
  rc = pg_exec(s, PG_STMT_MAX - 1, "SELECT pg_advisory_xact_lock($1)", &p,
               &r, err);
  PQclear(r);
  if (rc == PROVD_OK)
    s->lock_depth = s->depth;
  else if (*opened)
    rc = pg_write_end(s, 1, rc, err);
  return rc;
}

int pg_write_end(struct pg_session *s, int opened, int status,
                 struct provd_err *err)
{
  if (!opened)
    return status;
  if (status == PROVD_OK) {
    status = pg_tx_commit(s, err);
  } else {
    pg_tx_rollback(s, NULL); /* err keeps the op's reason */
  }
  if (s->depth > 0) { /* commit or rollback failed: give the connection up */
    PQfinish(s->c->pg);
    s->c->pg = NULL;
    s->depth = 0;
    s->lock_depth = 0;
    pg_leave(s);
  }
  return status;
}

int pg_locked(struct pg_session *s, pg_locked_fn fn, void *ud,
              struct provd_err *err)
{
  int opened;
  int rc = pg_write_begin(s, &opened, err);
  if (rc != PROVD_OK)
    return rc;
  rc = fn(s, ud, err);
  rc = pg_write_end(s, opened, rc, err);
  pg_leave(s);
  return rc;
}
