/* Storage plugins: enrollments, enrollment groups, registrations, hubs and
 * the event outbox, all transactional.
 *
 * Records are JSON documents (the DPS wire shapes) plus a few indexed
 * columns the core queries by.  The core owns threading: it opens one
 * session per thread that touches the store and never uses a session from
 * two threads at once.  Sessions of one instance may run concurrently.
 *
 * Transactions nest: tx_begin inside an open transaction starts a
 * savepoint; tx_rollback undoes only the innermost level.  An op that
 * fails (any non-OK status) leaves the data unchanged.
 */
#ifndef PROVD_STORAGE_H
#define PROVD_STORAGE_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

enum provd_table {
  PROVD_TABLE_ENROLLMENTS = 1,       /* id = registrationId */
  PROVD_TABLE_ENROLLMENT_GROUPS = 2, /* id = enrollmentGroupId */
  PROVD_TABLE_REGISTRATIONS = 3,     /* id = registrationId */
  PROVD_TABLE_HUBS = 4,              /* id = hub name */
  /* ABI minor 2: X.509 CA certificates registered with provd (DPS
   * "verified certificates"), id = CA name. */
  PROVD_TABLE_CERTIFICATES = 5,
  /* ABI minor 3: the event dispatcher's durable state. */
  PROVD_TABLE_NOTIFIER_CURSORS = 6,  /* id = notifier instance id */
  PROVD_TABLE_DEAD_LETTERS = 7       /* id = "INSTANCE/SEQ" (seq 20 digits) */
};

/* One stored record.  In callbacks every pointer is borrowed for the
 * duration of the callback. */
struct provd_record {
  uint32_t struct_size;
  const char *id;          /* primary key; compared case-insensitively */
  const char *etag;        /* opaque, set by the core */
  const char *body_json;   /* the whole document */
  int64_t created_ms;
  int64_t updated_ms;
  /* Indexed columns (NULL when not applicable). */
  const char *group_id;    /* registrations: enrollment group used */
  const char *hub;         /* registrations: assigned hub name */
  const char *kind;        /* enrollments/groups: attestation type */
};

/* Receives records; return PROVD_OK to continue, anything else stops. */
typedef int (*provd_record_fn)(void *ud, const struct provd_record *rec);

/* List filter.  Rows come in ascending id order (case-folded). */
struct provd_query {
  uint32_t struct_size;
  const char *after_id;    /* continuation: ids strictly after this */
  size_t limit;            /* 0: no limit */
  const char *group_id;    /* registrations only: filter, or NULL */
  const char *hub;         /* registrations only: filter, or NULL */
  const char *kind;        /* enrollments/groups: filter, or NULL */
};

struct provd_outbox_event {
  uint32_t struct_size;
  uint64_t seq;            /* assigned by the store, increasing */
  const char *type;
  int64_t time_ms;
  const char *subject;     /* registration or group id */
  const char *body_json;
  /* ABI minor 3: the tamper-evident journal.  The core computes them;
   * the store keeps them verbatim (NULL in events of older stores). */
  const char *event_id;    /* unique id (uuid), the receivers' dedup key */
  const char *prev_hash;   /* hex SHA-256 of the previous event */
  const char *hash;        /* hex SHA-256 over this event's canonical bytes */
};

typedef int (*provd_event_fn)(void *ud, const struct provd_outbox_event *ev);

/* ABI minor 4: the open challenge round of one registration (an
 * attestation plugin answered PROVD_CHALLENGE, e.g. the TPM flow).  In
 * callbacks every pointer is borrowed for the duration of the callback. */
struct provd_challenge {
  uint32_t struct_size;
  const char *registration_id; /* key; compared case-insensitively */
  const uint8_t *session;      /* the plugin's bytes; may hold secrets */
  size_t session_len;
  int64_t issued_ms;
  int64_t expires_ms;          /* forgotten from then on */
  int64_t answered_ms;         /* 0: no register call answered it yet */
};

typedef int (*provd_challenge_fn)(void *ud, const struct provd_challenge *c);

struct provd_storage_ops {
  uint32_t struct_size;
  /* One session per thread.  Migrations run in start(), not here. */
  int (*session_open)(void *state, void **session, struct provd_err *err);
  void (*session_close)(void *session);

  int (*tx_begin)(void *session, struct provd_err *err);
  int (*tx_commit)(void *session, struct provd_err *err);
  int (*tx_rollback)(void *session, struct provd_err *err);

  /* PROVD_OK (fn called once) or PROVD_NOT_FOUND. */
  int (*get)(void *session, enum provd_table t, const char *id,
             provd_record_fn fn, void *ud, struct provd_err *err);
  /* Insert or replace.  if_match: NULL = unconditional, "*" = must
   * exist, else must equal the stored etag (PROVD_PRECONDITION_FAILED;
   * PROVD_NOT_FOUND when it does not exist).  must_create: fail with
   * PROVD_EXISTS when the id exists. */
  int (*put)(void *session, enum provd_table t,
             const struct provd_record *rec, const char *if_match,
             int must_create, struct provd_err *err);
  /* PROVD_OK, PROVD_NOT_FOUND or PROVD_PRECONDITION_FAILED. */
  int (*del)(void *session, enum provd_table t, const char *id,
             const char *if_match, struct provd_err *err);
  int (*list)(void *session, enum provd_table t, const struct provd_query *q,
              provd_record_fn fn, void *ud, struct provd_err *err);
  int (*count)(void *session, enum provd_table t, const struct provd_query *q,
               uint64_t *out, struct provd_err *err);

  /* Event outbox.  append sets *seq_out. */
  int (*outbox_append)(void *session, const struct provd_outbox_event *ev,
                       uint64_t *seq_out, struct provd_err *err);
  /* Events with seq > after_seq, ascending, at most limit. */
  int (*outbox_list)(void *session, uint64_t after_seq, size_t limit,
                     provd_event_fn fn, void *ud, struct provd_err *err);

  /* ---- ABI minor 3 (optional: test with PROVD_HAS) ---- */
  /* The event with the highest seq: fn called once, or PROVD_NOT_FOUND
   * when the outbox is empty. */
  int (*outbox_last)(void *session, provd_event_fn fn, void *ud,
                     struct provd_err *err);
  /* Deletes the events with seq < before_seq (journal retention). */
  int (*outbox_trim)(void *session, uint64_t before_seq,
                     struct provd_err *err);

  /* ---- ABI minor 4: challenge rounds (test with PROVD_HAS) ----
   * At most one challenge per registration id; nothing else reads the
   * session bytes, and they never appear in lists or events. */
  /* Stores c (answered_ms stored as 0), replacing the registration's
   * previous challenge.  First deletes every challenge expired at
   * c->issued_ms; then, when max_open challenges of other registrations
   * remain, stores nothing and answers PROVD_E_UNAVAILABLE. */
  int (*challenge_put)(void *session, const struct provd_challenge *c,
                       uint64_t max_open, struct provd_err *err);
  /* The registration's challenge unless expired at now_ms: PROVD_OK (fn
   * called once) or PROVD_NOT_FOUND. */
  int (*challenge_get)(void *session, const char *registration_id,
                       int64_t now_ms, provd_challenge_fn fn, void *ud,
                       struct provd_err *err);
  /* Records the first answer: PROVD_OK, PROVD_EXISTS when it was answered
   * before (a replay that raced this one), PROVD_NOT_FOUND when there is
   * no challenge. */
  int (*challenge_answer)(void *session, const char *registration_id,
                          int64_t answered_ms, struct provd_err *err);

  /* ---- ABI minor 6: several provd processes on one store (test with
   * PROVD_HAS) ---- */
  /* PROVD_STORAGE_SHARED: other provd processes may write the same store
   * at the same time, so nothing read in an earlier transaction (the
   * journal's head, a notifier's cursor) may be assumed current. */
  uint32_t flags;
  /* Inside a transaction: takes the lock that orders every write of the
   * store (the one outbox_append and the other writes take; held until
   * the transaction ends), then reports the event the next append links
   * to as outbox_last does: fn called once, or PROVD_NOT_FOUND. */
  int (*outbox_head)(void *session, provd_event_fn fn, void *ud,
                     struct provd_err *err);

  /* ---- ABI minor 8: online backup (optional: test with PROVD_HAS) ---- */
  /* Outside any transaction of this session: writes a copy of the whole
   * store as it was at one moment (every committed transaction or none of
   * it) to the new file dest_path, created with mode 0600, while other
   * sessions go on reading and writing.  The copy is a store this plugin
   * opens as its `path`.  PROVD_EXISTS when dest_path exists;
   * PROVD_E_UNSUPPORTED (or a NULL op) when the store is saved by its
   * own tools instead (pg_dump for postgres). */
  int (*backup)(void *session, const char *dest_path, struct provd_err *err);
};

/* provd_storage_ops.flags */
#define PROVD_STORAGE_SHARED (1u << 0)

#ifdef __cplusplus
}
#endif
#endif /* PROVD_STORAGE_H */
