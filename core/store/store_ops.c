/* Typed helpers over the storage plugin: owned record copies in, JSON
 * bodies parsed with jansson out.  Storage plugins are THREADSAFE per
 * session, so ops are called directly, without plugin_op_enter(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>

#include <openssl/crypto.h>

#include "store/journal.h"
#include "store/store_int.h"
#include "util/ids.h"
#include "util/json_text.h"
#include "util/timefmt.h"

/* Bodies above this are refused before serialization finishes. */
#define STORE_MAX_BODY (4u * 1024u * 1024u)
#define STORE_BUF_INITIAL 4096

/* ---- sessions ---- */

int store_session_init(struct store *st, struct store_session *s,
                       struct provd_err *err)
{
  memset(s, 0, sizeof(*s));
  s->st = st;
  return st->ops->session_open(st->inst->state, &s->ps, err);
}

void store_session_fini(struct store_session *s)
{
  if (s->ps)
    s->st->ops->session_close(s->ps);
  free(s->buf);
  memset(s, 0, sizeof(*s));
}

struct store_session *store_session_open(struct store *st,
                                         struct provd_err *err)
{
  struct store_session *s = malloc(sizeof(*s));
  if (!s) {
    perr_set(err, "STORE_NOMEM", "no memory for a store session");
    return NULL;
  }
  if (store_session_init(st, s, err) != PROVD_OK) {
    free(s);
    return NULL;
  }
  return s;
}

void store_session_close(struct store_session *s)
{
  if (!s)
    return;
  store_session_fini(s);
  free(s);
}

/* A session whose connection was lost and not yet reopened. */
static int no_session(const struct store_session *s, struct provd_err *err)
{
  if (s->ps)
    return PROVD_OK;
  perr_set(err, "STORE_UNAVAILABLE", "the store session is not connected");
  return PROVD_E_UNAVAILABLE;
}

#define NEED_SESSION(s, err)                                             \
  do {                                                                   \
    int need_rc_ = no_session(s, err);                                   \
    if (need_rc_ != PROVD_OK)                                            \
      return need_rc_;                                                   \
  } while (0)

/* ---- transactions: the wrapper counts levels so the writer can check
 * that a job left the nesting as it found it ---- */

int store_shared(const struct store *st)
{
  return PROVD_HAS(st->ops, struct provd_storage_ops, flags) &&
         (st->ops->flags & PROVD_STORAGE_SHARED);
}

void store_note_status(struct store *st, int rc, const struct provd_err *err)
{
  if (rc == PROVD_E_UNAVAILABLE && err &&
      strcmp(err->code, "STORE_UNREACHABLE") == 0)
    atomic_store(&st->unreachable, 1);
  else if (rc >= 0)
    atomic_store(&st->unreachable, 0);
}

uint64_t store_generation(const struct store_session *s, enum provd_table t)
{
  if (!s || (unsigned)t >= STORE_TABLES || store_shared(s->st) ||
      (s->dirty_tables & (1u << t)))
    return 0;
  /* Starts at 1: 0 means "unknown". */
  return atomic_load(&s->st->generation[t]) + 1;
}

static void note_change(struct store_session *s, enum provd_table t)
{
  if ((unsigned)t >= STORE_TABLES)
    return;
  s->dirty_tables |= 1u << t;
  atomic_fetch_add(&s->st->generation[t], 1);
}

/* After a commit or rollback: what the session changed is now either
 * everyone's or gone, and a copy read meanwhile may hold either. */
static void note_tx_end(struct store_session *s)
{
  for (unsigned t = 0; t < STORE_TABLES; t++)
    if (s->dirty_tables & (1u << t))
      atomic_fetch_add(&s->st->generation[t], 1);
  if (s->depth == 0)
    s->dirty_tables = 0;
}

int store_tx_begin(struct store_session *s, struct provd_err *err)
{
  NEED_SESSION(s, err);
  /* Another instance may have appended since this session's last
   * transaction: the journal head it remembers is only good within one. */
  if (s->depth == 0 && store_shared(s->st))
    s->chain_known = 0;
  int rc = s->st->ops->tx_begin(s->ps, err);
  store_note_status(s->st, rc, err);
  if (rc == PROVD_OK)
    s->depth++;
  return rc;
}

int store_tx_commit(struct store_session *s, struct provd_err *err)
{
  NEED_SESSION(s, err);
  int rc = s->st->ops->tx_commit(s->ps, err);
  /* A failed commit leaves the level open for a rollback. */
  if (rc == PROVD_OK && s->depth > 0)
    s->depth--;
  if (rc == PROVD_OK)
    note_tx_end(s);
  return rc;
}

/* After a failed rollback the plugin's nesting is unknown: counting on
 * would let a later "commit" merely release a savepoint of a transaction
 * that never commits.  Closing the plugin session undoes everything it
 * had open; until its owner reopens it, every call answers
 * STORE_UNAVAILABLE (no silent autocommit writes in between). */
static void session_drop(struct store_session *s)
{
  s->st->ops->session_close(s->ps);
  s->ps = NULL;
  s->depth = 0;
  s->chain_known = 0;
}

int store_tx_rollback(struct store_session *s, struct provd_err *err)
{
  /* The level is gone either way (session_unwind's loop relies on the
   * decrement). */
  if (s->depth > 0)
    s->depth--;
  s->chain_known = 0; /* the event it remembers may be gone */
  NEED_SESSION(s, err);
  int rc = s->st->ops->tx_rollback(s->ps, err);
  if (rc != PROVD_OK)
    session_drop(s);
  note_tx_end(s);
  return rc;
}

/* ---- records ---- */

void store_rec_clear(struct store_rec *r)
{
  if (!r)
    return;
  free(r->id);
  free(r->etag);
  json_decref(r->body);
  free(r->group_id);
  free(r->hub);
  free(r->kind);
  memset(r, 0, sizeof(*r));
}

static int dup_opt(const char *src, char **dst)
{
  *dst = NULL;
  if (!src)
    return 0;
  *dst = strdup(src);
  return *dst ? 0 : -1;
}

/* out gets copies of the strings; its body is left NULL. */
static int dup_fields(const char *id, const char *etag, const char *group_id,
                      const char *hub, const char *kind, struct store_rec *out)
{
  memset(out, 0, sizeof(*out));
  if (dup_opt(id, &out->id) || dup_opt(etag, &out->etag) ||
      dup_opt(group_id, &out->group_id) || dup_opt(hub, &out->hub) ||
      dup_opt(kind, &out->kind)) {
    store_rec_clear(out);
    return PROVD_E_NOMEM;
  }
  return PROVD_OK;
}

int store_rec_dup(const struct store_rec *in, struct store_rec *out)
{
  if (dup_fields(in->id, in->etag, in->group_id, in->hub, in->kind, out))
    return PROVD_E_NOMEM;
  out->created_ms = in->created_ms;
  out->updated_ms = in->updated_ms;
  out->body = json_incref(in->body);
  return PROVD_OK;
}

/* Copies a borrowed plugin record into an owned one. */
static int rec_copy(const struct provd_record *in, struct store_rec *out)
{
  if (dup_fields(in->id, in->etag, in->group_id, in->hub, in->kind, out))
    return PROVD_E_NOMEM;
  out->created_ms = in->created_ms;
  out->updated_ms = in->updated_ms;
  out->body = in->body_json
                  ? json_text_parse(in->body_json, strlen(in->body_json), 0)
                  : NULL;
  if (!out->body) {
    store_rec_clear(out);
    return PROVD_E_INTERNAL;
  }
  return PROVD_OK;
}

/* Remembers a copy failure so the plugin's generic callback error can be
 * replaced by the real reason. */
struct copy_ctx {
  struct store_rec *out;
  int failed; /* status of the failed copy, or 0 */
  char id[128];
};

static void copy_note_failure(struct copy_ctx *c, int rc,
                              const struct provd_record *rec)
{
  c->failed = rc;
  snprintf(c->id, sizeof(c->id), "%s", rec->id ? rec->id : "?");
}

static void copy_report(const struct copy_ctx *c, struct provd_err *err)
{
  if (c->failed == PROVD_E_NOMEM)
    perr_set(err, "STORE_NOMEM", "no memory to copy record %s", c->id);
  else if (c->failed)
    perr_set(err, "STORE_CORRUPT", "record %s has a body that is not JSON",
             c->id);
}

static int copy_one(void *ud, const struct provd_record *rec)
{
  struct copy_ctx *c = ud;
  int rc = rec_copy(rec, c->out);
  if (rc != PROVD_OK)
    copy_note_failure(c, rc, rec);
  return rc;
}

int store_get(struct store_session *s, enum provd_table t, const char *id,
              struct store_rec *out, struct provd_err *err)
{
  struct copy_ctx c = { .out = out };
  memset(out, 0, sizeof(*out));
  NEED_SESSION(s, err);
  int rc = s->st->ops->get(s->ps, t, id, copy_one, &c, err);
  store_note_status(s->st, rc, err);
  if (c.failed)
    copy_report(&c, err);
  return rc;
}

/* Serializes body into the session's scratch buffer, NUL-terminated;
 * *out stays valid until the next serialize() on this session. */
static int serialize(struct store_session *s, const json_t *body,
                     const char **out, struct provd_err *err)
{
  /* One pass into the reused buffer in the common case; a second one
   * only after the buffer had to grow. */
  size_t need = json_is_object(body) || json_is_array(body)
                    ? json_text_into(body, 0, s->buf,
                                     s->buf_cap ? s->buf_cap - 1 : 0)
                    : 0;
  if (need == 0 || need >= STORE_MAX_BODY) {
    perr_set(err, "STORE_INVALID",
             need ? "record body larger than 4 MiB"
                  : "record body is not a JSON object or array");
    return PROVD_E_INVAL;
  }
  if (need + 1 > s->buf_cap) {
    size_t cap = s->buf_cap ? s->buf_cap : STORE_BUF_INITIAL;
    while (cap < need + 1)
      cap *= 2;
    char *nb = realloc(s->buf, cap);
    if (!nb) {
      perr_set(err, "STORE_NOMEM", "no memory to serialize a record");
      return PROVD_E_NOMEM;
    }
    s->buf = nb;
    s->buf_cap = cap;
    json_text_into(body, 0, s->buf, need);
  }
  s->buf[need] = '\0';
  *out = s->buf;
  return PROVD_OK;
}

int store_put(struct store_session *s, enum provd_table t,
              const struct store_rec *rec, const char *if_match,
              int must_create, struct provd_err *err)
{
  NEED_SESSION(s, err);
  if (!rec || !rec->id || !rec->body) {
    perr_set(err, "STORE_INVALID", "record without id or body");
    return PROVD_E_INVAL;
  }
  const char *body = NULL;
  int rc = serialize(s, rec->body, &body, err);
  if (rc != PROVD_OK)
    return rc;
  struct provd_record r = {
    .struct_size = sizeof(r),
    .id = rec->id,
    .etag = rec->etag,
    .body_json = body,
    .created_ms = rec->created_ms,
    .updated_ms = rec->updated_ms,
    .group_id = rec->group_id,
    .hub = rec->hub,
    .kind = rec->kind,
  };
  note_change(s, t);
  rc = s->st->ops->put(s->ps, t, &r, if_match, must_create, err);
  if (s->depth == 0)
    note_tx_end(s); /* committed on its own */
  return rc;
}

int store_del(struct store_session *s, enum provd_table t, const char *id,
              const char *if_match, struct provd_err *err)
{
  NEED_SESSION(s, err);
  note_change(s, t);
  int rc = s->st->ops->del(s->ps, t, id, if_match, err);
  if (s->depth == 0)
    note_tx_end(s); /* committed on its own */
  return rc;
}

struct rec_vec {
  struct store_rec *items;
  size_t n, cap;
  struct copy_ctx copy;
};

static int append_one(void *ud, const struct provd_record *rec)
{
  struct rec_vec *v = ud;
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 16;
    struct store_rec *ni = cap <= SIZE_MAX / sizeof(*ni)
                               ? realloc(v->items, cap * sizeof(*ni))
                               : NULL;
    if (!ni) {
      copy_note_failure(&v->copy, PROVD_E_NOMEM, rec);
      return PROVD_E_NOMEM;
    }
    v->items = ni;
    v->cap = cap;
  }
  int rc = rec_copy(rec, &v->items[v->n]);
  if (rc != PROVD_OK)
    copy_note_failure(&v->copy, rc, rec);
  else
    v->n++;
  return rc;
}

void store_recs_free(struct store_rec *recs, size_t n)
{
  for (size_t i = 0; recs && i < n; i++)
    store_rec_clear(&recs[i]);
  free(recs);
}

int store_list(struct store_session *s, enum provd_table t,
               const struct provd_query *q, struct store_rec **out,
               size_t *n, struct provd_err *err)
{
  struct rec_vec v = { 0 };
  *out = NULL;
  *n = 0;
  NEED_SESSION(s, err);
  int rc = s->st->ops->list(s->ps, t, q, append_one, &v, err);
  if (rc != PROVD_OK) {
    copy_report(&v.copy, err);
    store_recs_free(v.items, v.n);
    return rc;
  }
  *out = v.items;
  *n = v.n;
  return PROVD_OK;
}

int store_count(struct store_session *s, enum provd_table t,
                const struct provd_query *q, uint64_t *out,
                struct provd_err *err)
{
  NEED_SESSION(s, err);
  return s->st->ops->count(s->ps, t, q, out, err);
}

static void next_event_id(struct store_session *s, char out[37])
{
  if (!s->id_ready) {
    if (RAND_bytes(s->id_prefix, sizeof(s->id_prefix)) != 1) {
      ids_uuid(out); /* no RNG now: try again next time */
      return;
    }
    s->id_ready = 1;
  }
  ids_uuid_counted(s->id_prefix, s->id_counter++, out);
}

/* The hash the new event links to: remembered from this session's last
 * append, else read from the store. */
static int chain_head(struct store_session *s, char out[JOURNAL_HASH_HEX],
                      struct provd_err *err)
{
  if (s->chain_known) {
    memcpy(out, s->chain_hash, JOURNAL_HASH_HEX);
    return PROVD_OK;
  }
  return journal_prev_hash(s, out, err);
}

int store_event(struct store_session *s, const char *type,
                const char *subject, const json_t *body, uint64_t *seq_out,
                struct provd_err *err)
{
  NEED_SESSION(s, err);
  const char *text = "{}"; /* an event without details */
  if (body) {
    int rc = serialize(s, body, &text, err);
    if (rc != PROVD_OK)
      return rc;
  }
  char event_id[37], prev[JOURNAL_HASH_HEX], hash[JOURNAL_HASH_HEX];
  int rc = chain_head(s, prev, err);
  if (rc != PROVD_OK)
    return rc;
  next_event_id(s, event_id);
  struct provd_outbox_event ev = {
    .struct_size = sizeof(ev),
    .type = type,
    .time_ms = time_now_ms(),
    .subject = subject,
    .body_json = text,
    .event_id = event_id,
    .prev_hash = prev,
  };
  journal_hash(&ev, hash);
  ev.hash = hash;
  uint64_t seq = 0;
  rc = s->st->ops->outbox_append(s->ps, &ev, &seq, err);
  if (rc != PROVD_OK) {
    s->chain_known = 0;
    return rc;
  }
  if (s->chain_known && seq != s->chain_seq + 1) {
    /* Another writer appended since this session's last event: the link
     * just written is wrong, so this change must not commit. */
    s->chain_known = 0;
    perr_set(err, "STORE_CONFLICT", "the journal was appended to by "
             "another writer; try again");
    return PROVD_E_UNAVAILABLE;
  }
  s->chain_known = 1;
  s->chain_seq = seq;
  memcpy(s->chain_hash, hash, JOURNAL_HASH_HEX);
  if (seq_out)
    *seq_out = seq;
  return PROVD_OK;
}

int store_events(struct store_session *s, uint64_t after_seq, size_t limit,
                 provd_event_fn fn, void *ud, struct provd_err *err)
{
  NEED_SESSION(s, err);
  return s->st->ops->outbox_list(s->ps, after_seq, limit, fn, ud, err);
}

/* ---- challenge rounds ---- */

static int challenges_supported(const struct store_session *s,
                                struct provd_err *err)
{
  const struct provd_storage_ops *ops = s->st->ops;
  if (PROVD_HAS(ops, struct provd_storage_ops, challenge_answer) &&
      ops->challenge_put && ops->challenge_get && ops->challenge_answer)
    return PROVD_OK;
  perr_set(err, "STORE_UNSUPPORTED",
           "the storage plugin keeps no challenge rounds (ABI < 1.4)");
  return PROVD_E_UNSUPPORTED;
}

void store_challenge_clear(struct store_challenge *c)
{
  if (!c)
    return;
  if (c->session)
    OPENSSL_cleanse(c->session, c->session_len);
  free(c->session);
  memset(c, 0, sizeof(*c));
}

int store_challenge_put(struct store_session *s, const char *registration_id,
                        const unsigned char *session, size_t session_len,
                        int64_t now_ms, int64_t expires_ms,
                        uint64_t max_open, struct provd_err *err)
{
  NEED_SESSION(s, err);
  int rc = challenges_supported(s, err);
  if (rc != PROVD_OK)
    return rc;
  const struct provd_challenge c = {
      .struct_size = sizeof(c),
      .registration_id = registration_id,
      .session = session,
      .session_len = session_len,
      .issued_ms = now_ms,
      .expires_ms = expires_ms,
  };
  return s->st->ops->challenge_put(s->ps, &c, max_open, err);
}

static int copy_challenge(void *ud, const struct provd_challenge *c)
{
  struct store_challenge *out = ud;
  out->session = malloc(c->session_len ? c->session_len : 1);
  if (!out->session)
    return PROVD_E_NOMEM;
  memcpy(out->session, c->session, c->session_len);
  out->session_len = c->session_len;
  out->expires_ms = c->expires_ms;
  out->answered_ms = c->answered_ms;
  return PROVD_OK;
}

int store_challenge_get(struct store_session *s, const char *registration_id,
                        int64_t now_ms, struct store_challenge *out,
                        struct provd_err *err)
{
  NEED_SESSION(s, err);
  memset(out, 0, sizeof(*out));
  int rc = challenges_supported(s, err);
  if (rc == PROVD_OK)
    rc = s->st->ops->challenge_get(s->ps, registration_id, now_ms,
                                   copy_challenge, out, err);
  if (rc != PROVD_OK)
    store_challenge_clear(out);
  return rc;
}

int store_challenge_answer(struct store_session *s,
                           const char *registration_id, int64_t now_ms,
                           struct provd_err *err)
{
  NEED_SESSION(s, err);
  int rc = challenges_supported(s, err);
  return rc == PROVD_OK ? s->st->ops->challenge_answer(s->ps, registration_id,
                                                       now_ms, err)
                        : rc;
}

/* ---- online backup (provd/storage.h backup) ---- */

int store_backup(struct store_session *s, const char *dest_path,
                 struct provd_err *err)
{
  NEED_SESSION(s, err);
  const struct provd_storage_ops *ops = s->st->ops;
  if (!PROVD_HAS(ops, struct provd_storage_ops, backup) || !ops->backup) {
    perr_set(err, "STORE_BACKUP_UNSUPPORTED",
             "the storage plugin has no online backup (ABI < 1.8, or a "
             "store saved by its own tools such as pg_dump)");
    return PROVD_E_UNSUPPORTED;
  }
  return ops->backup(s->ps, dest_path, err);
}
