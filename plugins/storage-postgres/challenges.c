/* Challenge rounds of attestation plugins (storage.h, ABI minor 4): one
 * row per registration, shared by every instance, so a device may answer
 * its TPM challenge on another instance than the one that issued it. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
  C_EXPIRE = PG_STMT_CHALLENGES,
  C_COUNT_OTHERS,
  C_UPSERT,
  C_GET,
  C_ANSWER,
  C_EXISTS
};

static int id_ok(const char *id)
{
  return id && id[0] && strnlen(id, PG_MAX_ID + 1) <= PG_MAX_ID;
}

static int run(struct pg_session *s, int id, const char *sql,
               const struct pg_params *p, int64_t *rows_or_value,
               struct provd_err *err)
{
  PGresult *r;
  int rc = pg_exec(s, id, sql, p, &r, err);
  if (rc == PROVD_OK && rows_or_value)
    *rows_or_value = PQresultStatus(r) == PGRES_TUPLES_OK
                         ? (PQntuples(r) > 0 ? pg_int(r, 0, 0) : -1)
                         : atoll(PQcmdTuples(r));
  PQclear(r);
  return rc;
}

struct put_args {
  const struct provd_challenge *c;
  uint64_t max_open;
};

static int put_locked(struct pg_session *s, void *ud, struct provd_err *err)
{
  const struct provd_challenge *c = ((const struct put_args *)ud)->c;
  uint64_t max_open = ((const struct put_args *)ud)->max_open;
  struct pg_params p;
  memset(&p, 0, sizeof(p));
  pg_param_int(&p, c->issued_ms);
  int rc = run(s, C_EXPIRE, "DELETE FROM challenges WHERE expires_ms <= $1",
               &p, NULL, err);
  int64_t others = 0;
  memset(&p, 0, sizeof(p));
  pg_param_text(&p, c->registration_id);
  if (rc == PROVD_OK)
    rc = run(s, C_COUNT_OTHERS,
             "SELECT count(*) FROM challenges WHERE reg_fold <> lower($1)",
             &p, &others, err);
  if (rc != PROVD_OK)
    return rc;
  if ((uint64_t)others >= max_open) {
    s->st->host->err_set(err, "THROTTLED",
                         "%lld challenges are open (max_open %llu)",
                         (long long)others, (unsigned long long)max_open);
    return PROVD_E_UNAVAILABLE;
  }
  pg_param_bin(&p, c->session, c->session_len);
  pg_param_int(&p, c->issued_ms);
  pg_param_int(&p, c->expires_ms);
  return run(s, C_UPSERT,
             "INSERT INTO challenges (reg_fold, registration_id, session, "
             "issued_ms, expires_ms, answered_ms) VALUES (lower($1), $1, "
             "$2::bytea, $3::bigint, $4::bigint, 0) ON CONFLICT (reg_fold) "
             "DO UPDATE SET registration_id = excluded.registration_id, "
             "session = excluded.session, issued_ms = excluded.issued_ms, "
             "expires_ms = excluded.expires_ms, answered_ms = 0",
             &p, NULL, err);
}

int pg_challenge_put(void *session, const struct provd_challenge *c,
                     uint64_t max_open, struct provd_err *err)
{
  struct pg_session *s = session;
  if (!c || !PROVD_HAS(c, struct provd_challenge, answered_ms) ||
      !id_ok(c->registration_id) || !c->session || !c->session_len ||
      c->session_len > PG_MAX_SESSION)
    return pg_invalid(s, err, "challenge: registration id or session "
                              "missing or too long");
  struct put_args a = { c, max_open };
  return pg_locked(s, put_locked, &a, err);
}

int pg_challenge_get(void *session, const char *registration_id,
                     int64_t now_ms, provd_challenge_fn fn, void *ud,
                     struct provd_err *err)
{
  struct pg_session *s = session;
  if (!id_ok(registration_id) || !fn)
    return pg_invalid(s, err, "challenge: registration id missing or too "
                              "long");
  int rc = pg_enter(s, err);
  if (rc != PROVD_OK)
    return rc;
  struct pg_params p;
  memset(&p, 0, sizeof(p));
  pg_param_text(&p, registration_id);
  pg_param_int(&p, now_ms);
  PGresult *r;
  rc = pg_exec(s, C_GET,
               "SELECT registration_id, session, issued_ms, expires_ms, "
               "answered_ms FROM challenges WHERE reg_fold = lower($1) AND "
               "expires_ms > $2",
               &p, &r, err);
  if (rc == PROVD_OK && PQntuples(r) == 0)
    rc = PROVD_NOT_FOUND;
  if (rc == PROVD_OK) {
    size_t len = 0;
    unsigned char *bytes =
        PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
    struct provd_challenge c = {
      .struct_size = sizeof(c),
      .registration_id = pg_str(r, 0, 0),
      .session = bytes,
      .session_len = len,
      .issued_ms = pg_int(r, 0, 2),
      .expires_ms = pg_int(r, 0, 3),
      .answered_ms = pg_int(r, 0, 4),
    };
    rc = bytes ? fn(ud, &c) : PROVD_E_NOMEM;
    if (bytes) {
      memset(bytes, 0, len); /* session bytes may hold secrets */
      PQfreemem(bytes);
    }
  }
  PQclear(r);
  pg_leave(s);
  return rc;
}

struct answer_args {
  const char *registration_id;
  int64_t answered_ms;
};

static int answer_locked(struct pg_session *s, void *ud,
                         struct provd_err *err)
{
  const struct answer_args *a = ud;
  const char *registration_id = a->registration_id;
  int64_t answered_ms = a->answered_ms;
  struct pg_params p;
  memset(&p, 0, sizeof(p));
  pg_param_text(&p, registration_id);
  pg_param_int(&p, answered_ms);
  int64_t changed = 0, exists = -1;
  int rc = run(s, C_ANSWER,
               "UPDATE challenges SET answered_ms = $2 WHERE reg_fold = "
               "lower($1) AND answered_ms = 0",
               &p, &changed, err);
  if (rc != PROVD_OK || changed == 1)
    return rc;
  p.n = 1;
  rc = run(s, C_EXISTS, "SELECT 1 FROM challenges WHERE reg_fold = lower($1)",
           &p, &exists, err);
  if (rc != PROVD_OK)
    return rc;
  return exists == 1 ? PROVD_EXISTS : PROVD_NOT_FOUND;
}

int pg_challenge_answer(void *session, const char *registration_id,
                        int64_t answered_ms, struct provd_err *err)
{
  struct pg_session *s = session;
  if (!id_ok(registration_id) || answered_ms <= 0)
    return pg_invalid(s, err, "challenge: registration id or answer time "
                              "invalid");
  struct answer_args a = { registration_id, answered_ms };
  return pg_locked(s, answer_locked, &a, err);
}
