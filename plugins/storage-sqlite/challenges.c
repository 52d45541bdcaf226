/* Challenge rounds of attestation plugins (storage.h, ABI minor 2). */
#include <string.h>

#include "internal.h"

static const char *const chal_sql[SQ_N_CHAL_STMTS] = {
  [SQ_CHAL_EXPIRE] = "DELETE FROM challenges WHERE expires_ms <= ?1",
  [SQ_CHAL_COUNT_OTHERS] =
    "SELECT count(*) FROM challenges WHERE registration_id <> ?1",
  [SQ_CHAL_UPSERT] =
    "INSERT INTO challenges (registration_id, session, issued_ms,"
    " expires_ms, answered_ms) VALUES (?1, ?2, ?3, ?4, 0)"
    " ON CONFLICT (registration_id) DO UPDATE SET"
    " session = excluded.session, issued_ms = excluded.issued_ms,"
    " expires_ms = excluded.expires_ms, answered_ms = 0",
  [SQ_CHAL_GET] =
    "SELECT registration_id, session, issued_ms, expires_ms, answered_ms"
    " FROM challenges WHERE registration_id = ?1 AND expires_ms > ?2",
  [SQ_CHAL_ANSWER] =
    "UPDATE challenges SET answered_ms = ?2"
    " WHERE registration_id = ?1 AND answered_ms = 0",
  [SQ_CHAL_EXISTS] = "SELECT 1 FROM challenges WHERE registration_id = ?1",
};

static sqlite3_stmt *chal_stmt(struct sq_session *s, enum sq_chal_stmt which,
                               const char *id, struct provd_err *err)
{
  sqlite3_stmt *stmt = sq_stmt(s, &s->chal[which], chal_sql[which], err);
  if (stmt && id)
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
  return stmt;
}

static void chal_done(sqlite3_stmt *stmt)
{
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
}

static int id_ok(const char *id)
{
  return id && id[0] && strnlen(id, SQ_MAX_ID + 1) <= SQ_MAX_ID;
}

static int bad_input(struct sq_session *s, struct provd_err *err,
                     const char *what)
{
  s->st->host->err_set(err, "STORE_INVALID", "challenge: %s", what);
  return PROVD_E_INVAL;
}

/* Runs a statement without rows: SQLITE_DONE becomes PROVD_OK. */
static int step_done(struct sq_session *s, sqlite3_stmt *stmt,
                     const char *what, struct provd_err *err)
{
  int rc = sqlite3_step(stmt);
  chal_done(stmt);
  return rc == SQLITE_DONE ? PROVD_OK : sq_fail(s, rc, what, err);
}

static int count_others(struct sq_session *s, const char *id, uint64_t *n,
                        struct provd_err *err)
{
  sqlite3_stmt *stmt = chal_stmt(s, SQ_CHAL_COUNT_OTHERS, id, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW)
    *n = (uint64_t)sqlite3_column_int64(stmt, 0);
  chal_done(stmt);
  return rc == SQLITE_ROW ? PROVD_OK
                          : sq_fail(s, rc, "counting challenges", err);
}

static int put_in_tx(struct sq_session *s, const struct provd_challenge *c,
                     uint64_t max_open, struct provd_err *err)
{
  sqlite3_stmt *stmt = chal_stmt(s, SQ_CHAL_EXPIRE, NULL, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  sqlite3_bind_int64(stmt, 1, c->issued_ms);
  int rc = step_done(s, stmt, "expiring challenges", err);
  uint64_t others = 0;
  if (rc == PROVD_OK)
    rc = count_others(s, c->registration_id, &others, err);
  if (rc == PROVD_OK && others >= max_open) {
    s->st->host->err_set(err, "THROTTLED",
                         "%llu challenges are open (max_open %llu)",
                         (unsigned long long)others,
                         (unsigned long long)max_open);
    return PROVD_E_UNAVAILABLE;
  }
  if (rc != PROVD_OK || !(stmt = chal_stmt(s, SQ_CHAL_UPSERT,
                                           c->registration_id, err)))
    return rc != PROVD_OK ? rc : PROVD_E_INTERNAL;
  sqlite3_bind_blob(stmt, 2, c->session, (int)c->session_len,
                    SQLITE_STATIC);
  sqlite3_bind_int64(stmt, 3, c->issued_ms);
  sqlite3_bind_int64(stmt, 4, c->expires_ms);
  return step_done(s, stmt, "storing a challenge", err);
}

int sq_challenge_put(void *session, const struct provd_challenge *c,
                     uint64_t max_open, struct provd_err *err)
{
  struct sq_session *s = session;
  if (!c || !PROVD_HAS(c, struct provd_challenge, answered_ms) ||
      !id_ok(c->registration_id) || !c->session || !c->session_len ||
      c->session_len > SQ_MAX_SESSION)
    return bad_input(s, err, "registration id or session missing or too "
                             "long");
  int opened = 0;
  int rc = sq_implicit_begin(s, &opened, err);
  if (rc != PROVD_OK)
    return rc;
  rc = put_in_tx(s, c, max_open, err);
  return sq_implicit_end(s, opened, rc, err);
}

int sq_challenge_get(void *session, const char *registration_id,
                     int64_t now_ms, provd_challenge_fn fn, void *ud,
                     struct provd_err *err)
{
  struct sq_session *s = session;
  if (!id_ok(registration_id) || !fn)
    return bad_input(s, err, "registration id missing or too long");
  sqlite3_stmt *stmt = chal_stmt(s, SQ_CHAL_GET, registration_id, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  sqlite3_bind_int64(stmt, 2, now_ms);
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) {
    chal_done(stmt);
    return rc == SQLITE_DONE ? PROVD_NOT_FOUND
                             : sq_fail(s, rc, "reading a challenge", err);
  }
  struct provd_challenge c = {
    .struct_size = sizeof(c),
    .registration_id = (const char *)sqlite3_column_text(stmt, 0),
    .session = sqlite3_column_blob(stmt, 1),
    .session_len = (size_t)sqlite3_column_bytes(stmt, 1),
    .issued_ms = sqlite3_column_int64(stmt, 2),
    .expires_ms = sqlite3_column_int64(stmt, 3),
    .answered_ms = sqlite3_column_int64(stmt, 4),
  };
  rc = fn(ud, &c);
  chal_done(stmt);
  return rc;
}

int sq_challenge_answer(void *session, const char *registration_id,
                        int64_t answered_ms, struct provd_err *err)
{
  struct sq_session *s = session;
  if (!id_ok(registration_id) || answered_ms <= 0)
    return bad_input(s, err, "registration id or answer time invalid");
  sqlite3_stmt *stmt = chal_stmt(s, SQ_CHAL_ANSWER, registration_id, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  sqlite3_bind_int64(stmt, 2, answered_ms);
  int rc = step_done(s, stmt, "answering a challenge", err);
  if (rc != PROVD_OK || sqlite3_changes(s->db) == 1)
    return rc;
  if (!(stmt = chal_stmt(s, SQ_CHAL_EXISTS, registration_id, err)))
    return PROVD_E_INTERNAL;
  rc = sqlite3_step(stmt);
  chal_done(stmt);
  if (rc == SQLITE_ROW)
    return PROVD_EXISTS;
  return rc == SQLITE_DONE ? PROVD_NOT_FOUND
                           : sq_fail(s, rc, "answering a challenge", err);
}
