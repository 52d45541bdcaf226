/* The postgres storage plugin's private declarations, shared by its
 * files.  Nothing here is part of the plugin ABI. */
#ifndef STORAGE_POSTGRES_INTERNAL_H
#define STORAGE_POSTGRES_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "provd/host.h"
#include "provd/plugin.h"
#include "provd/storage.h"

/* Input limits, the same as the sqlite plugin's. */
#define PG_MAX_ID 1024
#define PG_MAX_BODY (4u * 1024u * 1024u)
#define PG_MAX_TEXT 1024
#define PG_MAX_SESSION (64 * 1024)
#define PG_MAX_DEPTH 32
#define PG_N_TABLES 7

/* Prepared statements are named by number; the catalogue (records.c,
 * challenges.c) says what each number is.  Per connection a bitmap says
 * which are prepared. */
#define PG_STMT_MAX 512
/* Every write transaction of every instance takes this transaction-level
 * advisory lock before its first write ("provdwri"): writes are ordered
 * like SQLite's single writer, seq numbers commit in order, and no two
 * transactions wait for each other's row locks. */
#define PG_WRITE_LOCK_KEY 0x70726f7664777269LL
/* Held while migrating ("provdmig"). */
#define PG_MIGRATE_LOCK_KEY 0x70726f76646d6967LL

/* One pooled connection. */
struct pg_conn {
  PGconn *pg;                              /* NULL: not connected */
  uint64_t prepared[PG_STMT_MAX / 64];
  int in_use;
  int64_t backoff_ms;                      /* next wait after a failure */
};

/* Instance state.  Configuration is read-only once start() returned; the
 * pool is guarded by mu. */
struct pg_state {
  const struct provd_host_api *host;
  struct provd_instance *inst;
  char *conninfo;          /* owned; may hold a password: never logged */
  int64_t pool_size;
  int64_t pool_wait_ms;
  int64_t reconnect_max_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct pg_conn *conns;   /* pool_size entries from start() */
  int64_t retry_at_ms;     /* no connect attempt before (backoff) */
  int started;
};

struct pg_session {
  struct pg_state *st;     /* borrowed */
  struct pg_conn *c;       /* held from the first op of a transaction
                              (or of an autocommit op) to its end */
  int depth;               /* 0: autocommit; 1: BEGIN; >1: savepoints */
  int lock_depth;          /* level that took the write lock; 0: none */
  int lost;                /* the connection died inside the transaction */
  uint64_t last_seq;       /* seq of this session's last outbox_append */
};

/* A query's parameters, all sent as text except binary ones. */
struct pg_params {
  int n;
  const char *v[10];
  int len[10];
  int fmt[10];
  char num[10][24];        /* storage for integers as text */
};
void pg_param_text(struct pg_params *p, const char *v);
void pg_param_int(struct pg_params *p, int64_t v);
void pg_param_bin(struct pg_params *p, const void *v, size_t len);

/* ---- conn.c ---- */
int pg_session_open(void *state, void **session, struct provd_err *err);
void pg_session_close(void *session);
int pg_tx_begin(void *session, struct provd_err *err);
int pg_tx_commit(void *session, struct provd_err *err);
int pg_tx_rollback(void *session, struct provd_err *err);
/* Takes a pooled connection for the op (or the transaction). */
int pg_enter(struct pg_session *s, struct provd_err *err);
/* Gives it back unless a transaction is open. */
void pg_leave(struct pg_session *s);
/* Runs prepared statement `id` (preparing `sql` first on this
 * connection).  *res is the result on PROVD_OK (caller PQclear()s).
 * Errors are mapped to provd statuses; a unique violation is
 * PROVD_EXISTS. */
int pg_exec(struct pg_session *s, int id, const char *sql,
            const struct pg_params *p, PGresult **res, struct provd_err *err);
/* Opens an implicit transaction at depth 0 and takes the write lock
 * (once per transaction); *opened tells pg_write_end what to do. */
int pg_write_begin(struct pg_session *s, int *opened, struct provd_err *err);
int pg_write_end(struct pg_session *s, int opened, int status,
                 struct provd_err *err);
/* Runs fn under the write lock, in the caller's transaction or an
 * implicit one, and gives the connection back after an implicit one. */
typedef int (*pg_locked_fn)(struct pg_session *s, void *ud,
                            struct provd_err *err);
int pg_locked(struct pg_session *s, pg_locked_fn fn, void *ud,
              struct provd_err *err);
int pg_invalid(struct pg_session *s, struct provd_err *err, const char *what);
int pg_text_ok(const char *v, size_t max, int required);
int64_t pg_int(const PGresult *r, int row, int col);
const char *pg_str(const PGresult *r, int row, int col); /* NULL for NULL */
/* A connection for start() (migrations), not pooled. */
PGconn *pg_connect(struct pg_state *st, struct provd_err *err);

/* ---- records.c ---- */
int pg_get(void *session, enum provd_table t, const char *id,
           provd_record_fn fn, void *ud, struct provd_err *err);
int pg_put(void *session, enum provd_table t, const struct provd_record *rec,
           const char *if_match, int must_create, struct provd_err *err);
int pg_del(void *session, enum provd_table t, const char *id,
           const char *if_match, struct provd_err *err);
int pg_list(void *session, enum provd_table t, const struct provd_query *q,
            provd_record_fn fn, void *ud, struct provd_err *err);
int pg_count(void *session, enum provd_table t, const struct provd_query *q,
             uint64_t *out, struct provd_err *err);
int pg_outbox_append(void *session, const struct provd_outbox_event *ev,
                     uint64_t *seq_out, struct provd_err *err);
int pg_outbox_list(void *session, uint64_t after_seq, size_t limit,
                   provd_event_fn fn, void *ud, struct provd_err *err);
int pg_outbox_last(void *session, provd_event_fn fn, void *ud,
                   struct provd_err *err);
int pg_outbox_head(void *session, provd_event_fn fn, void *ud,
                   struct provd_err *err);
int pg_outbox_trim(void *session, uint64_t before_seq,
                   struct provd_err *err);
/* Statement numbers below this belong to records.c. */
#define PG_STMT_CHALLENGES 480

/* ---- challenges.c ---- */
int pg_challenge_put(void *session, const struct provd_challenge *c,
                     uint64_t max_open, struct provd_err *err);
int pg_challenge_get(void *session, const char *registration_id,
                     int64_t now_ms, provd_challenge_fn fn, void *ud,
                     struct provd_err *err);
int pg_challenge_answer(void *session, const char *registration_id,
                        int64_t answered_ms, struct provd_err *err);

/* ---- schema.c ---- */
int pg_migrate(struct pg_state *st, PGconn *db, struct provd_err *err);
const char *pg_table_name(enum provd_table t);
#define PROVD_POSTGRES_SCHEMA_VERSION 1

#endif
