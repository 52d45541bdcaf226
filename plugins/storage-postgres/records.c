/* Record and outbox operations.  Reads run as single statements (READ
 * COMMITTED: each sees every transaction committed before it began).
 * Writes first take the store-wide write lock (pg_write_begin), so a
 * check-then-write (etag) is atomic and the journal's seq numbers commit
 * in order.
 *
 * Callbacks get pointers into the result, valid until it is cleared;
 * they must not call back into the same session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define REC_COLS "id, etag, body, created_ms, updated_ms, group_id, hub, kind"
#define EVENT_COLS \
  "seq, type, time_ms, subject, body, event_id, prev_hash, hash"

enum rec_stmt {
  R_GET,
  R_INSERT,
  R_UPSERT,
  R_UPDATE,
  R_UPDATE_ETAG,
  R_ETAG,
  R_DELETE,
  R_DELETE_ETAG,
  R_N
};

/* Statement numbers: record statements, then list/count per filter mask,
 * then the outbox. */
#define N_MASKS 16
#define STMT_REC(t, k) (((int)(t) - 1) * R_N + (int)(k))
#define STMT_FILTER(t, mask, counting) \
  (PG_N_TABLES * R_N + (((int)(t) - 1) * N_MASKS + (mask)) * 2 + (counting))
#define STMT_OUTBOX (PG_N_TABLES * R_N + PG_N_TABLES * N_MASKS * 2)
enum { O_APPEND = STMT_OUTBOX, O_LIST, O_LAST, O_TRIM };
_Static_assert(O_TRIM < PG_STMT_CHALLENGES, "statement numbers overlap");

/* $1..$8 are the record's columns in REC_COLS order. */
#define REC_VALUES "lower($1), $1, $2, $3, $4, $5, $6, $7, $8"
#define REC_SET                                                           \
  "id = $1, etag = $2, body = $3, created_ms = $4, updated_ms = $5, "     \
  "group_id = $6, hub = $7, kind = $8"

static const char *const rec_sql[R_N] = {
  [R_GET] = "SELECT " REC_COLS " FROM %s WHERE id_fold = lower($1)",
  [R_INSERT] = "INSERT INTO %s (id_fold, " REC_COLS ") VALUES (" REC_VALUES
               ") ON CONFLICT (id_fold) DO NOTHING",
  [R_UPSERT] = "INSERT INTO %s (id_fold, " REC_COLS ") VALUES (" REC_VALUES
               ") ON CONFLICT (id_fold) DO UPDATE SET " REC_SET,
  [R_UPDATE] = "UPDATE %s SET " REC_SET " WHERE id_fold = lower($1)",
  [R_UPDATE_ETAG] = "UPDATE %s SET " REC_SET
                    " WHERE id_fold = lower($1) AND etag = $9",
  [R_ETAG] = "SELECT etag FROM %s WHERE id_fold = lower($1)",
  [R_DELETE] = "DELETE FROM %s WHERE id_fold = lower($1)",
  [R_DELETE_ETAG] = "DELETE FROM %s WHERE id_fold = lower($1) AND etag = $2",
};

static int rec_exec(struct pg_session *s, enum provd_table t,
                    enum rec_stmt k, const struct pg_params *p,
                    PGresult **r, struct provd_err *err)
{
  char sql[1024];
  snprintf(sql, sizeof(sql), rec_sql[k], pg_table_name(t));
  return pg_exec(s, STMT_REC(t, k), sql, p, r, err);
}

static void row_to_record(const PGresult *r, int row, struct provd_record *rec)
{
  memset(rec, 0, sizeof(*rec));
  rec->struct_size = sizeof(*rec);
  rec->id = pg_str(r, row, 0);
  rec->etag = pg_str(r, row, 1);
  rec->body_json = pg_str(r, row, 2);
  rec->created_ms = pg_int(r, row, 3);
  rec->updated_ms = pg_int(r, row, 4);
  rec->group_id = pg_str(r, row, 5);
  rec->hub = pg_str(r, row, 6);
  rec->kind = pg_str(r, row, 7);
}

static int callback_status(struct pg_session *s, int rc, struct provd_err *err)
{
  if (rc >= 0)
    return PROVD_OK;
  s->st->host->err_set(err, "STORE_CALLBACK",
                       "postgres: record callback failed: %s",
                       s->st->host->strstatus(rc));
  return rc;
}

static int check_table_id(struct pg_session *s, enum provd_table t,
                          const char *id, struct provd_err *err)
{
  if (!pg_table_name(t))
    return pg_invalid(s, err, "unknown table");
  if (!pg_text_ok(id, PG_MAX_ID, 1))
    return pg_invalid(s, err, "record id missing or too long");
  return PROVD_OK;
}

static void id_param(struct pg_params *p, const char *id)
{
  memset(p, 0, sizeof(*p));
  pg_param_text(p, id);
}

int pg_get(void *session, enum provd_table t, const char *id,
           provd_record_fn fn, void *ud, struct provd_err *err)
{
  struct pg_session *s = session;
  int rc = check_table_id(s, t, id, err);
  if (rc != PROVD_OK || (rc = pg_enter(s, err)) != PROVD_OK)
    return rc;
  struct pg_params p;
  PGresult *r;
  id_param(&p, id);
  rc = rec_exec(s, t, R_GET, &p, &r, err);
  if (rc == PROVD_OK && PQntuples(r) == 0) {
    rc = PROVD_NOT_FOUND;
  } else if (rc == PROVD_OK) {
    struct provd_record rec;
    row_to_record(r, 0, &rec);
    rc = callback_status(s, fn(ud, &rec), err);
  }
  PQclear(r);
  pg_leave(s);
  return rc;
}

static int check_record(struct pg_session *s, enum provd_table t,
                        const struct provd_record *rec, struct provd_err *err)
{
  if (!rec || !PROVD_HAS(rec, struct provd_record, updated_ms))
    return pg_invalid(s, err, "record missing or from an unknown ABI");
  int rc = check_table_id(s, t, rec->id, err);
  if (rc != PROVD_OK)
    return rc;
  if (!pg_text_ok(rec->body_json, PG_MAX_BODY, 1))
    return pg_invalid(s, err, "record body missing or larger than 4 MiB");
  if (!pg_text_ok(rec->etag, PG_MAX_TEXT, 0))
    return pg_invalid(s, err, "record etag too long");
  if (PROVD_HAS(rec, struct provd_record, kind) &&
      (!pg_text_ok(rec->group_id, PG_MAX_TEXT, 0) ||
       !pg_text_ok(rec->hub, PG_MAX_TEXT, 0) ||
       !pg_text_ok(rec->kind, PG_MAX_TEXT, 0)))
    return pg_invalid(s, err, "record group_id, hub or kind too long");
  return PROVD_OK;
}

static void record_params(struct pg_params *p, const struct provd_record *rec)
{
  int cols = PROVD_HAS(rec, struct provd_record, kind);
  memset(p, 0, sizeof(*p));
  pg_param_text(p, rec->id);
  pg_param_text(p, rec->etag);
  pg_param_text(p, rec->body_json);
  pg_param_int(p, rec->created_ms);
  pg_param_int(p, rec->updated_ms);
  pg_param_text(p, cols ? rec->group_id : NULL);
  pg_param_text(p, cols ? rec->hub : NULL);
  pg_param_text(p, cols ? rec->kind : NULL);
}

/* One write statement; *changed = rows affected. */
static int write_row(struct pg_session *s, enum provd_table t,
                     enum rec_stmt k, const struct pg_params *p,
                     int *changed, struct provd_err *err)
{
  PGresult *r;
  int rc = rec_exec(s, t, k, p, &r, err);
  *changed = rc == PROVD_OK ? atoi(PQcmdTuples(r)) : 0;
  PQclear(r);
  return rc;
}

/* *exists and, when it does, whether its etag equals if_match. */
static int probe(struct pg_session *s, enum provd_table t, const char *id,
                 const char *if_match, int *exists, int *equal,
                 struct provd_err *err)
{
  struct pg_params p;
  PGresult *r;
  id_param(&p, id);
  int rc = rec_exec(s, t, R_ETAG, &p, &r, err);
  *exists = rc == PROVD_OK && PQntuples(r) > 0;
  if (*exists) {
    const char *etag = pg_str(r, 0, 0);
    *equal = etag && if_match && strcmp(etag, if_match) == 0;
  }
  PQclear(r);
  return rc;
}

struct put_args {
  enum provd_table t;
  const struct provd_record *rec;
  const char *if_match;
  int must_create;
};

/* Under the write lock: the decision and the write see the same row. */
static int put_locked(struct pg_session *s, void *ud, struct provd_err *err)
{
  const struct put_args *a = ud;
  struct pg_params p;
  int changed = 0, exists = 0, equal = 0, rc;
  record_params(&p, a->rec);
  if (!a->if_match) {
    rc = write_row(s, a->t, a->must_create ? R_INSERT : R_UPSERT, &p,
                   &changed, err);
    return rc == PROVD_OK && changed == 0 ? PROVD_EXISTS : rc;
  }
  rc = probe(s, a->t, a->rec->id, a->if_match, &exists, &equal, err);
  if (rc != PROVD_OK)
    return rc;
  if (a->must_create && exists)
    return PROVD_EXISTS;
  if (!exists)
    return PROVD_NOT_FOUND;
  if (strcmp(a->if_match, "*") != 0 && !equal)
    return PROVD_PRECONDITION_FAILED;
  return write_row(s, a->t, R_UPDATE, &p, &changed, err);
}

int pg_put(void *session, enum provd_table t, const struct provd_record *rec,
           const char *if_match, int must_create, struct provd_err *err)
{
  struct pg_session *s = session;
  int rc = check_record(s, t, rec, err);
  if (rc != PROVD_OK)
    return rc;
  if (if_match && !pg_text_ok(if_match, PG_MAX_TEXT, 1))
    return pg_invalid(s, err, "if_match empty or too long");
  struct put_args a = { t, rec, if_match, must_create };
  return pg_locked(s, put_locked, &a, err);
}

struct del_args {
  enum provd_table t;
  const char *id;
  const char *if_match;
};

static int del_locked(struct pg_session *s, void *ud, struct provd_err *err)
{
  const struct del_args *a = ud;
  struct pg_params p;
  int changed = 0, exists = 0, equal = 0;
  int with_etag = a->if_match && strcmp(a->if_match, "*") != 0;
  id_param(&p, a->id);
  if (with_etag)
    pg_param_text(&p, a->if_match);
  int rc = write_row(s, a->t, with_etag ? R_DELETE_ETAG : R_DELETE, &p,
                     &changed, err);
  if (rc != PROVD_OK || changed > 0)
    return rc;
  if (!with_etag)
    return PROVD_NOT_FOUND;
  rc = probe(s, a->t, a->id, a->if_match, &exists, &equal, err);
  if (rc != PROVD_OK)
    return rc;
  return exists ? PROVD_PRECONDITION_FAILED : PROVD_NOT_FOUND;
}

int pg_del(void *session, enum provd_table t, const char *id,
           const char *if_match, struct provd_err *err)
{
  struct pg_session *s = session;
  int rc = check_table_id(s, t, id, err);
  if (rc != PROVD_OK)
    return rc;
  if (if_match && !pg_text_ok(if_match, PG_MAX_TEXT, 1))
    return pg_invalid(s, err, "if_match empty or too long");
  struct del_args a = { t, id, if_match };
  return pg_locked(s, del_locked, &a, err);
}

/* ---- list and count ---- */

enum { F_AFTER = 1, F_GROUP = 2, F_HUB = 4, F_KIND = 8 };

/* Builds the statement for q's filters and binds them. */
static int filter_exec(struct pg_session *s, enum provd_table t,
                       const struct provd_query *q, int counting,
                       PGresult **r, struct provd_err *err)
{
  static const char *const col[4] = { "id_fold", "lower(group_id)",
                                      "lower(hub)", "lower(kind)" };
  struct pg_params p;
  memset(&p, 0, sizeof(p));
  if (!pg_table_name(t))
    return pg_invalid(s, err, "unknown table");
  if (q && !PROVD_HAS(q, struct provd_query, kind))
    return pg_invalid(s, err, "query from an unknown ABI");
  const char *val[4] = { q ? q->after_id : NULL, q ? q->group_id : NULL,
                         q ? q->hub : NULL, q ? q->kind : NULL };
  if (!pg_text_ok(val[0], PG_MAX_ID, 0) || !pg_text_ok(val[1], PG_MAX_TEXT, 0) ||
      !pg_text_ok(val[2], PG_MAX_TEXT, 0) || !pg_text_ok(val[3], PG_MAX_TEXT, 0))
    return pg_invalid(s, err, "query value too long");
  char sql[768];
  int mask = 0;
  size_t n = (size_t)snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE true",
                              counting ? "count(*)" : REC_COLS,
                              pg_table_name(t));
  for (int i = 0; i < 4; i++) {
    if (!val[i])
      continue;
    mask |= 1 << i;
    pg_param_text(&p, val[i]);
    n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND %s %s lower($%d)",
                          col[i], i == 0 ? ">" : "=", p.n);
  }
  if (!counting) {
    if (q && q->limit > 0 && q->limit <= (size_t)INT64_MAX)
      pg_param_int(&p, (int64_t)q->limit);
    else
      pg_param_text(&p, NULL); /* LIMIT NULL: all */
    snprintf(sql + n, sizeof(sql) - n, " ORDER BY id_fold LIMIT $%d::bigint",
             p.n);
  }
  return pg_exec(s, STMT_FILTER(t, mask, counting), sql, &p, r, err);
}

int pg_list(void *session, enum provd_table t, const struct provd_query *q,
            provd_record_fn fn, void *ud, struct provd_err *err)
{
  struct pg_session *s = session;
  PGresult *r;
  int rc = pg_enter(s, err);
  if (rc != PROVD_OK)
    return rc;
  rc = filter_exec(s, t, q, 0, &r, err);
  for (int i = 0; rc == PROVD_OK && i < PQntuples(r); i++) {
    struct provd_record rec;
    row_to_record(r, i, &rec);
    int cb = fn(ud, &rec);
    if (cb != PROVD_OK) {
      rc = callback_status(s, cb, err);
      break;
    }
  }
  PQclear(r);
  pg_leave(s);
  return rc;
}

int pg_count(void *session, enum provd_table t, const struct provd_query *q,
             uint64_t *out, struct provd_err *err)
{
  struct pg_session *s = session;
  PGresult *r;
  int rc = pg_enter(s, err);
  if (rc != PROVD_OK)
    return rc;
  rc = filter_exec(s, t, q, 1, &r, err);
  if (rc == PROVD_OK)
    *out = (uint64_t)pg_int(r, 0, 0);
  PQclear(r);
  pg_leave(s);
  return rc;
}

/* ---- outbox ---- */

static const char *journal_field(const struct provd_outbox_event *ev,
                                 int which)
{
  if (!PROVD_HAS(ev, struct provd_outbox_event, hash))
    return NULL;
  return which == 0 ? ev->event_id : which == 1 ? ev->prev_hash : ev->hash;
}

/* The counter row is transactional: a rolled-back append leaves no gap
 * and a trimmed journal never reuses a number. */
static int append_locked(struct pg_session *s, void *ud,
                         struct provd_err *err)
{
  const struct provd_outbox_event *ev = ud;
  struct pg_params p;
  memset(&p, 0, sizeof(p));
  pg_param_text(&p, ev->type);
  pg_param_int(&p, ev->time_ms);
  pg_param_text(&p, ev->subject);
  pg_param_text(&p, ev->body_json);
  for (int i = 0; i < 3; i++)
    pg_param_text(&p, journal_field(ev, i));
  PGresult *r;
  int rc = pg_exec(s, O_APPEND,
                   "WITH n AS (UPDATE journal_seq SET seq = seq + 1 "
                   "RETURNING seq) INSERT INTO outbox (seq, type, time_ms, "
                   "subject, body, event_id, prev_hash, hash) SELECT n.seq, "
                   "$1::text, $2::bigint, $3::text, $4::text, $5::text, "
                   "$6::text, $7::text FROM n RETURNING seq",
                   &p, &r, err);
  if (rc == PROVD_OK)
    s->last_seq = (uint64_t)pg_int(r, 0, 0);
  PQclear(r);
  return rc;
}

int pg_outbox_append(void *session, const struct provd_outbox_event *ev,
                     uint64_t *seq_out, struct provd_err *err)
{
  struct pg_session *s = session;
  if (!ev || !PROVD_HAS(ev, struct provd_outbox_event, body_json))
    return pg_invalid(s, err, "event missing or from an unknown ABI");
  if (!pg_text_ok(ev->type, PG_MAX_TEXT, 1) ||
      !pg_text_ok(ev->subject, PG_MAX_ID, 0) ||
      !pg_text_ok(ev->body_json, PG_MAX_BODY, 1) ||
      !pg_text_ok(journal_field(ev, 0), PG_MAX_TEXT, 0) ||
      !pg_text_ok(journal_field(ev, 1), PG_MAX_TEXT, 0) ||
      !pg_text_ok(journal_field(ev, 2), PG_MAX_TEXT, 0))
    return pg_invalid(s, err, "event type, subject, body or journal fields "
                              "missing or too long");
  int rc = pg_locked(s, append_locked, (void *)ev, err);
  if (rc == PROVD_OK && seq_out)
    *seq_out = s->last_seq;
  return rc;
}

static int each_event(struct pg_session *s, PGresult *r, provd_event_fn fn,
                      void *ud, struct provd_err *err)
{
  for (int i = 0; i < PQntuples(r); i++) {
    struct provd_outbox_event ev = {
      .struct_size = sizeof(ev),
      .seq = (uint64_t)pg_int(r, i, 0),
      .type = pg_str(r, i, 1),
      .time_ms = pg_int(r, i, 2),
      .subject = pg_str(r, i, 3),
      .body_json = pg_str(r, i, 4),
      .event_id = pg_str(r, i, 5),
      .prev_hash = pg_str(r, i, 6),
      .hash = pg_str(r, i, 7),
    };
    int cb = fn(ud, &ev);
    if (cb != PROVD_OK)
      return callback_status(s, cb, err);
  }
  return PROVD_OK;
}

int pg_outbox_list(void *session, uint64_t after_seq, size_t limit,
                   provd_event_fn fn, void *ud, struct provd_err *err)
{
  struct pg_session *s = session;
  if (after_seq > (uint64_t)INT64_MAX)
    return PROVD_OK;
  int rc = pg_enter(s, err);
  if (rc != PROVD_OK)
    return rc;
  struct pg_params p;
  memset(&p, 0, sizeof(p));
  pg_param_int(&p, (int64_t)after_seq);
  if (limit > 0 && limit <= (size_t)INT64_MAX)
    pg_param_int(&p, (int64_t)limit);
  else
    pg_param_text(&p, NULL);
  PGresult *r;
  rc = pg_exec(s, O_LIST,
               "SELECT " EVENT_COLS " FROM outbox WHERE seq > $1 "
               "ORDER BY seq LIMIT $2::bigint",
               &p, &r, err);
  if (rc == PROVD_OK)
    rc = each_event(s, r, fn, ud, err);
  PQclear(r);
  pg_leave(s);
  return rc;
}

static int last_event(struct pg_session *s, provd_event_fn fn, void *ud,
                      struct provd_err *err)
{
  PGresult *r;
  int rc = pg_exec(s, O_LAST,
                   "SELECT " EVENT_COLS " FROM outbox ORDER BY seq DESC "
                   "LIMIT 1",
                   NULL, &r, err);
  if (rc == PROVD_OK)
    rc = PQntuples(r) == 0 ? PROVD_NOT_FOUND : each_event(s, r, fn, ud, err);
  PQclear(r);
  return rc;
}

int pg_outbox_last(void *session, provd_event_fn fn, void *ud,
                   struct provd_err *err)
{
  struct pg_session *s = session;
  int rc = pg_enter(s, err);
  if (rc != PROVD_OK)
    return rc;
  rc = last_event(s, fn, ud, err);
  pg_leave(s);
  return rc;
}

int pg_outbox_head(void *session, provd_event_fn fn, void *ud,
                   struct provd_err *err)
{
  struct pg_session *s = session;
  if (s->depth == 0)
    return pg_invalid(s, err, "outbox_head outside a transaction");
  int opened;
  int rc = pg_write_begin(s, &opened, err);
  if (rc == PROVD_OK)
    rc = last_event(s, fn, ud, err);
  return rc;
}

static int trim_locked(struct pg_session *s, void *ud,
                       struct provd_err *err)
{
  struct pg_params p;
  memset(&p, 0, sizeof(p));
  pg_param_int(&p, (int64_t)*(const uint64_t *)ud);
  PGresult *r;
  int rc = pg_exec(s, O_TRIM, "DELETE FROM outbox WHERE seq < $1", &p, &r,
                   err);
  PQclear(r);
  return rc;
}

int pg_outbox_trim(void *session, uint64_t before_seq, struct provd_err *err)
{
  struct pg_session *s = session;
  if (before_seq > (uint64_t)INT64_MAX)
    return pg_invalid(s, err, "trim point out of range");
  return pg_locked(s, trim_locked, &before_seq, err);
}
