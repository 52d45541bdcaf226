/* Record and outbox operations.  Single-statement ops run in autocommit
 * mode (or inside the caller's transaction); ops that must read before
 * they decide (etag checks) open an implicit transaction when the caller
 * has none, so check and write are atomic either way.
 *
 * Callbacks get row pointers that live until the next step; they must
 * not call back into the same session. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define REC_COLS "id, etag, body, created_ms, updated_ms, group_id, hub, kind"

/* Parameter numbers shared by every record statement. */
enum { P_ID = 1, P_ETAG, P_BODY, P_CREATED, P_UPDATED, P_GROUP, P_HUB,
       P_KIND, P_IF_MATCH };
/* ... and by list/count statements. */
enum { Q_AFTER = 1, Q_GROUP, Q_HUB, Q_KIND, Q_LIMIT };

static int invalid(struct sq_session *s, struct provd_err *err,
                   const char *what)
{
  s->st->host->err_set(err, "STORE_INVALID", "sqlite: %s", what);
  return PROVD_E_INVAL;
}

/* NULL-tolerant bounded length check. */
static int text_ok(const char *v, size_t max, int required)
{
  if (!v)
    return !required;
  size_t n = strnlen(v, max + 1);
  return n <= max && (n > 0 || !required);
}

static void stmt_done(sqlite3_stmt *stmt)
{
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
}

static int bind_text(sqlite3_stmt *stmt, int i, const char *v)
{
  /* Caller strings outlive the step; SQLITE_STATIC avoids a copy. */
  return v ? sqlite3_bind_text(stmt, i, v, -1, SQLITE_STATIC)
           : sqlite3_bind_null(stmt, i);
}

static const char *const rec_sql[SQ_N_REC_STMTS] = {
  [SQ_GET] = "SELECT " REC_COLS " FROM %s WHERE id = ?1",
  [SQ_INSERT] = "INSERT INTO %s (" REC_COLS ") "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
  [SQ_UPSERT] = "INSERT INTO %s (" REC_COLS ") "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                "ON CONFLICT (id) DO UPDATE SET id = excluded.id, "
                "etag = excluded.etag, body = excluded.body, "
                "created_ms = excluded.created_ms, "
                "updated_ms = excluded.updated_ms, "
                "group_id = excluded.group_id, hub = excluded.hub, "
                "kind = excluded.kind",
  [SQ_UPDATE] = "UPDATE %s SET id = ?1, etag = ?2, body = ?3, "
                "created_ms = ?4, updated_ms = ?5, group_id = ?6, "
                "hub = ?7, kind = ?8 WHERE id = ?1",
  [SQ_UPDATE_ETAG] = "UPDATE %s SET id = ?1, etag = ?2, body = ?3, "
                     "created_ms = ?4, updated_ms = ?5, group_id = ?6, "
                     "hub = ?7, kind = ?8 WHERE id = ?1 AND etag = ?9",
  [SQ_ETAG] = "SELECT etag FROM %s WHERE id = ?1",
  [SQ_DELETE] = "DELETE FROM %s WHERE id = ?1",
  [SQ_DELETE_ETAG] = "DELETE FROM %s WHERE id = ?1 AND etag = ?9",
};

static sqlite3_stmt *rec_stmt(struct sq_session *s, enum provd_table t,
                              enum sq_rec_stmt k, struct provd_err *err)
{
  sqlite3_stmt **slot = &s->rec[t - 1][k];
  char sql[1024];
  if (*slot)
    return *slot;
  snprintf(sql, sizeof(sql), rec_sql[k], sq_table_name(t));
  return sq_stmt(s, slot, sql, err);
}

static void row_to_record(sqlite3_stmt *stmt, struct provd_record *r)
{
  memset(r, 0, sizeof(*r));
  r->struct_size = sizeof(*r);
  r->id = (const char *)sqlite3_column_text(stmt, 0);
  r->etag = (const char *)sqlite3_column_text(stmt, 1);
  r->body_json = (const char *)sqlite3_column_text(stmt, 2);
  r->created_ms = sqlite3_column_int64(stmt, 3);
  r->updated_ms = sqlite3_column_int64(stmt, 4);
  r->group_id = (const char *)sqlite3_column_text(stmt, 5);
  r->hub = (const char *)sqlite3_column_text(stmt, 6);
  r->kind = (const char *)sqlite3_column_text(stmt, 7);
}

/* A callback's answer: negative stops with that error, anything else
 * non-OK just stops. */
static int callback_status(struct sq_session *s, int rc,
                           struct provd_err *err)
{
  if (rc >= 0)
    return PROVD_OK;
  s->st->host->err_set(err, "STORE_CALLBACK",
                       "sqlite: record callback failed: %s",
                       s->st->host->strstatus(rc));
  return rc;
}

static int check_table_id(struct sq_session *s, enum provd_table t,
                          const char *id, struct provd_err *err)
{
  if (!sq_table_name(t))
    return invalid(s, err, "unknown table");
  if (!text_ok(id, SQ_MAX_ID, 1))
    return invalid(s, err, "record id missing or too long");
  return PROVD_OK;
}

int sq_get(void *session, enum provd_table t, const char *id,
           provd_record_fn fn, void *ud, struct provd_err *err)
{
  struct sq_session *s = session;
  int rc = check_table_id(s, t, id, err);
  if (rc != PROVD_OK)
    return rc;
  sqlite3_stmt *stmt = rec_stmt(s, t, SQ_GET, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  bind_text(stmt, P_ID, id);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    struct provd_record r;
    row_to_record(stmt, &r);
    rc = callback_status(s, fn(ud, &r), err);
  } else if (rc == SQLITE_DONE) {
    rc = PROVD_NOT_FOUND;
  } else {
    rc = sq_fail(s, rc, "reading a record", err);
  }
  stmt_done(stmt);
  return rc;
}

/* *exists and, when it does, the stored etag compared with if_match. */
static int probe(struct sq_session *s, enum provd_table t, const char *id,
                 const char *if_match, int *exists, int *etag_equal,
                 struct provd_err *err)
{
  sqlite3_stmt *stmt = rec_stmt(s, t, SQ_ETAG, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  bind_text(stmt, P_ID, id);
  int rc = sqlite3_step(stmt);
  *exists = rc == SQLITE_ROW;
  if (*exists) {
    const char *etag = (const char *)sqlite3_column_text(stmt, 0);
    *etag_equal = etag && if_match && strcmp(etag, if_match) == 0;
  }
  stmt_done(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return sq_fail(s, rc, "reading an etag", err);
  return PROVD_OK;
}

static int check_record(struct sq_session *s, enum provd_table t,
                        const struct provd_record *rec,
                        struct provd_err *err)
{
  if (!rec || !PROVD_HAS(rec, struct provd_record, updated_ms))
    return invalid(s, err, "record missing or from an unknown ABI");
  int rc = check_table_id(s, t, rec->id, err);
  if (rc != PROVD_OK)
    return rc;
  if (!text_ok(rec->body_json, SQ_MAX_BODY, 1))
    return invalid(s, err, "record body missing or larger than 4 MiB");
  if (!text_ok(rec->etag, SQ_MAX_TEXT, 0))
    return invalid(s, err, "record etag too long");
  if (PROVD_HAS(rec, struct provd_record, kind) &&
      (!text_ok(rec->group_id, SQ_MAX_TEXT, 0) ||
       !text_ok(rec->hub, SQ_MAX_TEXT, 0) ||
       !text_ok(rec->kind, SQ_MAX_TEXT, 0)))
    return invalid(s, err, "record group_id, hub or kind too long");
  return PROVD_OK;
}

static void bind_record(sqlite3_stmt *stmt, const struct provd_record *rec)
{
  int has_index_cols = PROVD_HAS(rec, struct provd_record, kind);
  bind_text(stmt, P_ID, rec->id);
  bind_text(stmt, P_ETAG, rec->etag);
  bind_text(stmt, P_BODY, rec->body_json);
  sqlite3_bind_int64(stmt, P_CREATED, rec->created_ms);
  sqlite3_bind_int64(stmt, P_UPDATED, rec->updated_ms);
  bind_text(stmt, P_GROUP, has_index_cols ? rec->group_id : NULL);
  bind_text(stmt, P_HUB, has_index_cols ? rec->hub : NULL);
  bind_text(stmt, P_KIND, has_index_cols ? rec->kind : NULL);
}

/* Runs one write statement of a record; *changed = rows affected.
 * A duplicate id answers PROVD_EXISTS. */
static int write_record(struct sq_session *s, enum provd_table t,
                        enum sq_rec_stmt k, const struct provd_record *rec,
                        const char *if_match, int *changed,
                        struct provd_err *err)
{
  sqlite3_stmt *stmt = rec_stmt(s, t, k, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  bind_record(stmt, rec);
  if (if_match)
    bind_text(stmt, P_IF_MATCH, if_match);
  int rc = sqlite3_step(stmt);
  stmt_done(stmt);
  *changed = sqlite3_changes(s->db);
  if (rc == SQLITE_DONE)
    return PROVD_OK;
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    return PROVD_EXISTS;
  return sq_fail(s, rc, "writing a record", err);
}

/* if_match is an etag (not "*"), or must_create meets if_match: read
 * first, then write, inside one transaction. */
static int put_checked(struct sq_session *s, enum provd_table t,
                       const struct provd_record *rec, const char *if_match,
                       int must_create, struct provd_err *err)
{
  int opened, exists = 0, equal = 0, changed = 0;
  int rc = sq_implicit_begin(s, &opened, err);
  if (rc != PROVD_OK)
    return rc;
  rc = probe(s, t, rec->id, if_match, &exists, &equal, err);
  if (rc == PROVD_OK) {
    if (must_create && exists)
      rc = PROVD_EXISTS;
    else if (!exists)
      rc = PROVD_NOT_FOUND;
    else if (strcmp(if_match, "*") != 0 && !equal)
      rc = PROVD_PRECONDITION_FAILED;
    else
      rc = write_record(s, t, SQ_UPDATE, rec, NULL, &changed, err);
  }
  return sq_implicit_end(s, opened, rc, err);
}

int sq_put(void *session, enum provd_table t, const struct provd_record *rec,
           const char *if_match, int must_create, struct provd_err *err)
{
  struct sq_session *s = session;
  int changed = 0, rc = check_record(s, t, rec, err);
  if (rc != PROVD_OK)
    return rc;
  if (if_match && !text_ok(if_match, SQ_MAX_TEXT, 1))
    return invalid(s, err, "if_match empty or too long");
  /* The common cases are one statement each, atomic on their own. */
  if (!if_match)
    return write_record(s, t, must_create ? SQ_INSERT : SQ_UPSERT, rec,
                        NULL, &changed, err);
  if (!must_create && strcmp(if_match, "*") == 0) {
    rc = write_record(s, t, SQ_UPDATE, rec, NULL, &changed, err);
    return rc == PROVD_OK && changed == 0 ? PROVD_NOT_FOUND : rc;
  }
  return put_checked(s, t, rec, if_match, must_create, err);
}

static int delete_row(struct sq_session *s, enum provd_table t,
                      const char *id, const char *etag, int *changed,
                      struct provd_err *err)
{
  sqlite3_stmt *stmt =
      rec_stmt(s, t, etag ? SQ_DELETE_ETAG : SQ_DELETE, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  bind_text(stmt, P_ID, id);
  if (etag)
    bind_text(stmt, P_IF_MATCH, etag);
  int rc = sqlite3_step(stmt);
  stmt_done(stmt);
  *changed = sqlite3_changes(s->db);
  return rc == SQLITE_DONE ? PROVD_OK
                           : sq_fail(s, rc, "deleting a record", err);
}

int sq_del(void *session, enum provd_table t, const char *id,
           const char *if_match, struct provd_err *err)
{
  struct sq_session *s = session;
  int opened, changed = 0, exists = 0, equal = 0;
  int rc = check_table_id(s, t, id, err);
  if (rc != PROVD_OK)
    return rc;
  if (if_match && !text_ok(if_match, SQ_MAX_TEXT, 1))
    return invalid(s, err, "if_match empty or too long");
  if (!if_match || strcmp(if_match, "*") == 0) {
    rc = delete_row(s, t, id, NULL, &changed, err);
    return rc == PROVD_OK && changed == 0 ? PROVD_NOT_FOUND : rc;
  }
  rc = sq_implicit_begin(s, &opened, err);
  if (rc != PROVD_OK)
    return rc;
  rc = delete_row(s, t, id, if_match, &changed, err);
  if (rc == PROVD_OK && changed == 0) {
    rc = probe(s, t, id, if_match, &exists, &equal, err);
    if (rc == PROVD_OK)
      rc = exists ? PROVD_PRECONDITION_FAILED : PROVD_NOT_FOUND;
  }
  return sq_implicit_end(s, opened, rc, err);
}

/* ---- list and count ---- */

struct filter {
  int mask;
  const char *after, *group, *hub, *kind;
  int64_t limit; /* -1: none */
};

static int read_query(struct sq_session *s, const struct provd_query *q,
                      struct filter *f, struct provd_err *err)
{
  memset(f, 0, sizeof(*f));
  f->limit = -1;
  if (!q)
    return PROVD_OK;
  if (!PROVD_HAS(q, struct provd_query, kind))
    return invalid(s, err, "query from an unknown ABI");
  if (!text_ok(q->after_id, SQ_MAX_ID, 0) ||
      !text_ok(q->group_id, SQ_MAX_TEXT, 0) ||
      !text_ok(q->hub, SQ_MAX_TEXT, 0) || !text_ok(q->kind, SQ_MAX_TEXT, 0))
    return invalid(s, err, "query value too long");
  f->after = q->after_id;
  f->group = q->group_id;
  f->hub = q->hub;
  f->kind = q->kind;
  f->mask = (f->after ? SQ_F_AFTER : 0) | (f->group ? SQ_F_GROUP : 0) |
            (f->hub ? SQ_F_HUB : 0) | (f->kind ? SQ_F_KIND : 0);
  if (q->limit > 0 && q->limit <= (size_t)INT64_MAX)
    f->limit = (int64_t)q->limit;
  return PROVD_OK;
}

static sqlite3_stmt *filter_stmt(struct sq_session *s, enum provd_table t,
                                 int mask, int counting,
                                 struct provd_err *err)
{
  sqlite3_stmt **slot =
      counting ? &s->count[t - 1][mask] : &s->list[t - 1][mask];
  char sql[512];
  if (*slot)
    return *slot;
  /* Numbered parameters keep binding independent of the mask. */
  snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE 1 = 1%s%s%s%s%s",
           counting ? "count(*)" : REC_COLS, sq_table_name(t),
           mask & SQ_F_AFTER ? " AND id > ?1" : "",
           mask & SQ_F_GROUP ? " AND group_id = ?2" : "",
           mask & SQ_F_HUB ? " AND hub = ?3" : "",
           mask & SQ_F_KIND ? " AND kind = ?4" : "",
           counting ? "" : " ORDER BY id LIMIT ?5");
  return sq_stmt(s, slot, sql, err);
}

static void bind_filter(sqlite3_stmt *stmt, const struct filter *f,
                        int counting)
{
  if (f->after)
    bind_text(stmt, Q_AFTER, f->after);
  if (f->group)
    bind_text(stmt, Q_GROUP, f->group);
  if (f->hub)
    bind_text(stmt, Q_HUB, f->hub);
  if (f->kind)
    bind_text(stmt, Q_KIND, f->kind);
  if (!counting)
    sqlite3_bind_int64(stmt, Q_LIMIT, f->limit);
}

/* The statement for a list (counting = 0) or count (1) with q's filters
 * bound; *stmt_out is NULL when the status is not OK. */
static int filtered_stmt(struct sq_session *s, enum provd_table t,
                         const struct provd_query *q, int counting,
                         sqlite3_stmt **stmt_out, struct provd_err *err)
{
  struct filter f;
  *stmt_out = NULL;
  if (!sq_table_name(t))
    return invalid(s, err, "unknown table");
  int rc = read_query(s, q, &f, err);
  if (rc != PROVD_OK)
    return rc;
  sqlite3_stmt *stmt = filter_stmt(s, t, f.mask, counting, err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  bind_filter(stmt, &f, counting);
  *stmt_out = stmt;
  return PROVD_OK;
}

int sq_list(void *session, enum provd_table t, const struct provd_query *q,
            provd_record_fn fn, void *ud, struct provd_err *err)
{
  struct sq_session *s = session;
  sqlite3_stmt *stmt;
  int rc = filtered_stmt(s, t, q, 0, &stmt, err);
  if (rc != PROVD_OK)
    return rc;
  /* LIMIT bounds the loop; without one the table size does. */
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    struct provd_record r;
    row_to_record(stmt, &r);
    int cb = fn(ud, &r);
    if (cb != PROVD_OK) {
      stmt_done(stmt);
      return callback_status(s, cb, err);
    }
  }
  stmt_done(stmt);
  return rc == SQLITE_DONE ? PROVD_OK
                           : sq_fail(s, rc, "listing records", err);
}

int sq_count(void *session, enum provd_table t, const struct provd_query *q,
             uint64_t *out, struct provd_err *err)
{
  struct sq_session *s = session;
  sqlite3_stmt *stmt;
  int rc = filtered_stmt(s, t, q, 1, &stmt, err);
  if (rc != PROVD_OK)
    return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW)
    *out = (uint64_t)sqlite3_column_int64(stmt, 0);
  stmt_done(stmt);
  return rc == SQLITE_ROW ? PROVD_OK
                          : sq_fail(s, rc, "counting records", err);
}

/* ---- outbox ---- */

/* Journal fields are optional: a caller built against ABI minor 1 has
 * none. */
static const char *journal_field(const struct provd_outbox_event *ev,
                                 int which)
{
  if (!PROVD_HAS(ev, struct provd_outbox_event, hash))
    return NULL;
  return which == 0 ? ev->event_id : which == 1 ? ev->prev_hash : ev->hash;
}

int sq_outbox_append(void *session, const struct provd_outbox_event *ev,
                     uint64_t *seq_out, struct provd_err *err)
{
  struct sq_session *s = session;
  if (!ev || !PROVD_HAS(ev, struct provd_outbox_event, body_json))
    return invalid(s, err, "event missing or from an unknown ABI");
  if (!text_ok(ev->type, SQ_MAX_TEXT, 1) ||
      !text_ok(ev->subject, SQ_MAX_ID, 0) ||
      !text_ok(ev->body_json, SQ_MAX_BODY, 1) ||
      !text_ok(journal_field(ev, 0), SQ_MAX_TEXT, 0) ||
      !text_ok(journal_field(ev, 1), SQ_MAX_TEXT, 0) ||
      !text_ok(journal_field(ev, 2), SQ_MAX_TEXT, 0))
    return invalid(s, err, "event type, subject, body or journal fields "
                           "missing or too long");
  sqlite3_stmt *stmt = sq_stmt(
      s, &s->outbox_append,
      "INSERT INTO outbox (type, time_ms, subject, body, event_id, "
      "prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  bind_text(stmt, 1, ev->type);
  sqlite3_bind_int64(stmt, 2, ev->time_ms);
  bind_text(stmt, 3, ev->subject);
  bind_text(stmt, 4, ev->body_json);
  for (int i = 0; i < 3; i++)
    bind_text(stmt, 5 + i, journal_field(ev, i));
  int rc = sqlite3_step(stmt);
  stmt_done(stmt);
  if (rc != SQLITE_DONE)
    return sq_fail(s, rc, "appending an event", err);
  if (seq_out)
    *seq_out = (uint64_t)sqlite3_last_insert_rowid(s->db);
  return PROVD_OK;
}

#define EVENT_COLS "seq, type, time_ms, subject, body, event_id, prev_hash, hash"

/* Steps stmt (selecting EVENT_COLS) and hands each row to fn.  *rows
 * counts them when not NULL. */
static int each_event(struct sq_session *s, sqlite3_stmt *stmt,
                      provd_event_fn fn, void *ud, size_t *rows,
                      struct provd_err *err)
{
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    struct provd_outbox_event ev = {
      .struct_size = sizeof(ev),
      .seq = (uint64_t)sqlite3_column_int64(stmt, 0),
      .type = (const char *)sqlite3_column_text(stmt, 1),
      .time_ms = sqlite3_column_int64(stmt, 2),
      .subject = (const char *)sqlite3_column_text(stmt, 3),
      .body_json = (const char *)sqlite3_column_text(stmt, 4),
      .event_id = (const char *)sqlite3_column_text(stmt, 5),
      .prev_hash = (const char *)sqlite3_column_text(stmt, 6),
      .hash = (const char *)sqlite3_column_text(stmt, 7),
    };
    if (rows)
      (*rows)++;
    int cb = fn(ud, &ev);
    if (cb != PROVD_OK) {
      stmt_done(stmt);
      return callback_status(s, cb, err);
    }
  }
  stmt_done(stmt);
  return rc == SQLITE_DONE ? PROVD_OK
                           : sq_fail(s, rc, "listing events", err);
}

int sq_outbox_list(void *session, uint64_t after_seq, size_t limit,
                   provd_event_fn fn, void *ud, struct provd_err *err)
{
  struct sq_session *s = session;
  if (after_seq > (uint64_t)INT64_MAX)
    return PROVD_OK; /* seq never gets there */
  sqlite3_stmt *stmt =
      sq_stmt(s, &s->outbox_list,
              "SELECT " EVENT_COLS " FROM outbox "
              "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
              err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  sqlite3_bind_int64(stmt, 1, (int64_t)after_seq);
  sqlite3_bind_int64(stmt, 2,
                     limit > 0 && limit <= (size_t)INT64_MAX ? (int64_t)limit
                                                             : -1);
  return each_event(s, stmt, fn, ud, NULL, err);
}

int sq_outbox_last(void *session, provd_event_fn fn, void *ud,
                   struct provd_err *err)
{
  struct sq_session *s = session;
  sqlite3_stmt *stmt =
      sq_stmt(s, &s->outbox_last,
              "SELECT " EVENT_COLS " FROM outbox ORDER BY seq DESC LIMIT 1",
              err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  size_t rows = 0;
  int rc = each_event(s, stmt, fn, ud, &rows, err);
  return rc == PROVD_OK && rows == 0 ? PROVD_NOT_FOUND : rc;
}

int sq_outbox_trim(void *session, uint64_t before_seq,
                   struct provd_err *err)
{
  struct sq_session *s = session;
  if (before_seq > (uint64_t)INT64_MAX)
    return invalid(s, err, "trim point out of range");
  sqlite3_stmt *stmt = sq_stmt(s, &s->outbox_trim,
                               "DELETE FROM outbox WHERE seq < ?1", err);
  if (!stmt)
    return PROVD_E_INTERNAL;
  sqlite3_bind_int64(stmt, 1, (int64_t)before_seq);
  int rc = sqlite3_step(stmt);
  stmt_done(stmt);
  return rc == SQLITE_DONE ? PROVD_OK
                           : sq_fail(s, rc, "trimming the journal", err);
}
