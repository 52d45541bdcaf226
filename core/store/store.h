/* The core's store: typed helpers over the storage plugin, and the
 * threads that run store work off the network event loops.
 *
 * Reads run on a pool of reader threads, each with its own session.
 * Writes run on one writer thread that batches queued jobs into a single
 * transaction (group commit): each job runs inside its own savepoint, so a
 * failing job leaves the others alone, and its done() callback fires only
 * after the batch is durably committed.  Queues are bounded; a full queue
 * answers PROVD_E_UNAVAILABLE at once. */
#ifndef CORE_STORE_STORE_H
#define CORE_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "plugin/loader.h"
#include "provd/storage.h"
#include "util/err.h"

struct store;
struct store_session;

/* An owned copy of a record. */
struct store_rec {
  char *id;
  char *etag;
  json_t *body;       /* owned reference */
  int64_t created_ms;
  int64_t updated_ms;
  char *group_id;
  char *hub;
  char *kind;
};
void store_rec_clear(struct store_rec *r);
/* An owned copy of in (the body shared by reference; bodies are not
 * changed once read).  PROVD_OK or PROVD_E_NOMEM. */
int store_rec_dup(const struct store_rec *in, struct store_rec *out);

struct store_opts {
  int readers;        /* reader threads, default 2 */
  size_t queue_max;   /* per queue, default 4096 */
  size_t batch_max;   /* jobs per write transaction, default 256 */
  long commit_window_us; /* 0: commit as soon as the queue is empty */
};

/* `storage` is a started storage plugin instance. */
int store_open(struct plugin_instance *storage, const struct store_opts *o,
               struct store **out, struct provd_err *err);
/* Runs every queued job, then stops the threads. */
void store_close(struct store *st);
/* Non-zero when other provd instances may write the same store at the
 * same time (PROVD_STORAGE_SHARED): nothing read in an earlier
 * transaction may be assumed current. */
int store_shared(const struct store *st);
/* A number that changes whenever table t may have changed: every put and
 * delete, and the end of the transaction holding them.  A copy of the
 * table read after taking the number is current while the number stays
 * the same.  0 when that cannot be known: another process may write the
 * store (store_shared), or this session changed t in its open
 * transaction (what it reads is not yet everyone's). */
uint64_t store_generation(const struct store_session *s, enum provd_table t);
/* Whether the database answered the last call, or this probe's earlier
 * one: non-blocking, it queues a cheap read that updates the answer for
 * the next caller (/healthz). */
int store_reachable(struct store *st);
/* Whether the last write the database finished succeeded.  When it
 * failed with an I/O-class error (disk full, read-only file, corrupt
 * database) this returns 0, copies the error's message into why
 * (at most why_len bytes, NUL-terminated) and queues a write probe, so
 * that the answer clears once writes work again even if nothing else
 * writes meanwhile.  Non-blocking (/healthz). */
int store_writable(struct store *st, char *why, size_t why_len);

/* ---- synchronous use, on the calling thread ---- */
struct store_session *store_session_open(struct store *st,
                                         struct provd_err *err);
void store_session_close(struct store_session *s);

int store_tx_begin(struct store_session *s, struct provd_err *err);
int store_tx_commit(struct store_session *s, struct provd_err *err);
int store_tx_rollback(struct store_session *s, struct provd_err *err);

/* PROVD_OK or PROVD_NOT_FOUND; out is filled on OK. */
int store_get(struct store_session *s, enum provd_table t, const char *id,
              struct store_rec *out, struct provd_err *err);
int store_put(struct store_session *s, enum provd_table t,
              const struct store_rec *rec, const char *if_match,
              int must_create, struct provd_err *err);
int store_del(struct store_session *s, enum provd_table t, const char *id,
              const char *if_match, struct provd_err *err);
/* *out is a new array of *n records; free with store_recs_free. */
int store_list(struct store_session *s, enum provd_table t,
               const struct provd_query *q, struct store_rec **out,
               size_t *n, struct provd_err *err);
void store_recs_free(struct store_rec *recs, size_t n);
int store_count(struct store_session *s, enum provd_table t,
                const struct provd_query *q, uint64_t *out,
                struct provd_err *err);
/* Appends an event to the outbox (inside the caller's transaction). */
int store_event(struct store_session *s, const char *type,
                const char *subject, const json_t *body, uint64_t *seq_out,
                struct provd_err *err);

/* Outbox events with seq > after_seq, ascending, at most limit; fn gets
 * borrowed pointers (see provd_event_fn in provd/storage.h). */
int store_events(struct store_session *s, uint64_t after_seq, size_t limit,
                 provd_event_fn fn, void *ud, struct provd_err *err);

/* ---- challenge rounds (provd/storage.h challenge_*) ---- */
/* An owned copy of a stored challenge. */
struct store_challenge {
  unsigned char *session; /* owned; may hold secrets: cleared on free */
  size_t session_len;
  int64_t expires_ms;
  int64_t answered_ms;    /* 0: not answered yet */
};
void store_challenge_clear(struct store_challenge *c);
/* PROVD_E_UNSUPPORTED when the storage plugin predates challenges. */
int store_challenge_put(struct store_session *s, const char *registration_id,
                        const unsigned char *session, size_t session_len,
                        int64_t now_ms, int64_t expires_ms,
                        uint64_t max_open, struct provd_err *err);
/* PROVD_OK (out filled) or PROVD_NOT_FOUND (none, or expired). */
int store_challenge_get(struct store_session *s, const char *registration_id,
                        int64_t now_ms, struct store_challenge *out,
                        struct provd_err *err);
/* PROVD_OK, PROVD_EXISTS (answered before) or PROVD_NOT_FOUND. */
int store_challenge_answer(struct store_session *s,
                           const char *registration_id, int64_t now_ms,
                           struct provd_err *err);

/* ---- online backup ---- */
/* A consistent copy of the whole store in the new file dest_path, while
 * other threads go on (provd/storage.h backup).  Blocks on disk: call it
 * from a store thread, never an event loop.  PROVD_E_UNSUPPORTED
 * (STORE_BACKUP_UNSUPPORTED) when the plugin has none (postgres). */
int store_backup(struct store_session *s, const char *dest_path,
                 struct provd_err *err);

/* ---- asynchronous jobs ---- */
/* Runs on a reader thread. */
typedef void (*store_read_fn)(struct store_session *s, void *ud);
int store_submit_read(struct store *st, store_read_fn fn, void *ud);
/* A read whose job goes on to submit a write (a registration: read the
 * enrollment and the previous state, then write the new one).  It runs
 * on the writer thread when the writer is idle, on a reader thread
 * otherwise: either way it wakes at most one sleeping store thread, where
 * a reader that hands to an idle writer wakes two.  Its write, submitted
 * from fn, joins the batch the writer commits next. */
int store_submit_read_for_write(struct store *st, store_read_fn fn, void *ud);
/* The same read, always on the writer, queued behind its batch: no
 * reader wakes, and the writer's page cache (the only one no other
 * connection's commit invalidates) serves it.  Only for reads whose fn
 * returns in microseconds: the writer commits nothing meanwhile. */
int store_submit_read_on_writer(struct store *st, store_read_fn fn, void *ud);

/* Runs on the writer thread inside a savepoint; a non-OK return rolls
 * back the job's changes. */
typedef int (*store_write_fn)(struct store_session *s, void *ud,
                              struct provd_err *err);
/* Called on the writer thread after the commit (or the failure) with the
 * job's status: the write_fn's, or the commit's error. */
typedef void (*store_done_fn)(void *ud, int status,
                              const struct provd_err *err);
int store_submit_write(struct store *st, store_write_fn fn,
                       store_done_fn done, void *ud);

#endif
