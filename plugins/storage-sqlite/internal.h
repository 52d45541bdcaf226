/* The sqlite storage plugin's private declarations, shared by its files.
 * Nothing here is part of the plugin ABI. */
#ifndef STORAGE_SQLITE_INTERNAL_H
#define STORAGE_SQLITE_INTERNAL_H

#include <stdint.h>
#include <sqlite3.h>

#include "provd/host.h"
#include "provd/plugin.h"
#include "provd/storage.h"
#include "schema.h"

/* Input limits: the core validates earlier; these keep a bad caller from
 * filling the disk with one record. */
#define SQ_MAX_ID 1024
#define SQ_MAX_BODY (4u * 1024u * 1024u)
#define SQ_MAX_TEXT 1024 /* etag, group_id, hub, kind, event type */
/* Deepest transaction nesting a session accepts (BEGIN + savepoints). */
#define SQ_MAX_DEPTH 32

#define SQ_N_TABLES 7
/* Bytes the WAL is truncated to after a checkpoint. */
#define SQ_WAL_SIZE_LIMIT (64 * 1024 * 1024)

/* Instance state; read-only once start() returned, so sessions on many
 * threads read it without locks. */
struct sq_state {
  const struct provd_host_api *host;
  struct provd_instance *inst;
  char *path;                /* owned */
  int sync_full;             /* 1: synchronous=FULL, 0: NORMAL */
  int64_t busy_timeout_ms;
  int64_t cache_size_bytes;
  int64_t mmap_size_bytes; /* PRAGMA mmap_size; 0 = read() every page */
  sqlite3 *control;          /* from start() to stop(): keeps the WAL open */
};

/* Cached statements of one record table. */
enum sq_rec_stmt {
  SQ_GET,
  SQ_INSERT,
  SQ_UPSERT,
  SQ_UPDATE,
  SQ_UPDATE_ETAG,
  SQ_ETAG,
  SQ_DELETE,
  SQ_DELETE_ETAG,
  SQ_N_REC_STMTS
};

/* Bits of a list/count filter; each mask gets its own statement so that
 * SQLite can use the matching index. */
enum {
  SQ_F_AFTER = 1 << 0,
  SQ_F_GROUP = 1 << 1,
  SQ_F_HUB = 1 << 2,
  SQ_F_KIND = 1 << 3,
  SQ_N_FILTERS = 1 << 4
};

/* Cached statements of the challenges table (challenges.c). */
enum sq_chal_stmt {
  SQ_CHAL_EXPIRE,
  SQ_CHAL_COUNT_OTHERS,
  SQ_CHAL_UPSERT,
  SQ_CHAL_GET,
  SQ_CHAL_ANSWER,
  SQ_CHAL_EXISTS,
  SQ_N_CHAL_STMTS
};
/* Longest session a challenge may carry (the host's own bound). */
#define SQ_MAX_SESSION (64 * 1024)

enum sq_sp_stmt { SQ_SP_BEGIN, SQ_SP_RELEASE, SQ_SP_ROLLBACK, SQ_N_SP };

struct sq_session {
  struct sq_state *st;       /* borrowed */
  sqlite3 *db;               /* owned */
  int depth;                 /* 0: autocommit; 1: BEGIN; >1: savepoints */
  int aborted;               /* SQLite rolled the transaction back itself */
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *sp[SQ_MAX_DEPTH][SQ_N_SP];
  sqlite3_stmt *rec[SQ_N_TABLES][SQ_N_REC_STMTS];
  sqlite3_stmt *list[SQ_N_TABLES][SQ_N_FILTERS];
  sqlite3_stmt *count[SQ_N_TABLES][SQ_N_FILTERS];
  sqlite3_stmt *outbox_append, *outbox_list, *outbox_last, *outbox_trim;
  sqlite3_stmt *chal[SQ_N_CHAL_STMTS];
};

/* ---- session.c ---- */
int sq_session_open(void *state, void **session, struct provd_err *err);
void sq_session_close(void *session);
int sq_tx_begin(void *session, struct provd_err *err);
int sq_tx_commit(void *session, struct provd_err *err);
int sq_tx_rollback(void *session, struct provd_err *err);

/* Returns the cached statement in *slot, preparing `sql` on first use;
 * reset and unbound, ready to bind.  NULL with err set on failure. */
sqlite3_stmt *sq_stmt(struct sq_session *s, sqlite3_stmt **slot,
                      const char *sql, struct provd_err *err);
/* Maps a SQLite result code to a provd status, fills err with what was
 * being done, and notices when SQLite dropped the open transaction. */
int sq_fail(struct sq_session *s, int rc, const char *what,
            struct provd_err *err);
/* Same for a connection without a session (start()). */
int sq_db_fail(const struct sq_state *st, sqlite3 *db, int rc,
               const char *what, struct provd_err *err);
/* Opens an implicit transaction around a multi-statement op when the
 * caller has none; *opened tells sq_implicit_end what to do. */
int sq_implicit_begin(struct sq_session *s, int *opened,
                      struct provd_err *err);
/* Commits the implicit transaction on PROVD_OK outcomes that wrote, else
 * rolls it back; returns status (or the commit's error). */
int sq_implicit_end(struct sq_session *s, int opened, int status,
                    struct provd_err *err);

/* ---- records.c ---- */
int sq_get(void *session, enum provd_table t, const char *id,
           provd_record_fn fn, void *ud, struct provd_err *err);
int sq_put(void *session, enum provd_table t, const struct provd_record *rec,
           const char *if_match, int must_create, struct provd_err *err);
int sq_del(void *session, enum provd_table t, const char *id,
           const char *if_match, struct provd_err *err);
int sq_list(void *session, enum provd_table t, const struct provd_query *q,
            provd_record_fn fn, void *ud, struct provd_err *err);
int sq_count(void *session, enum provd_table t, const struct provd_query *q,
             uint64_t *out, struct provd_err *err);
int sq_outbox_append(void *session, const struct provd_outbox_event *ev,
                     uint64_t *seq_out, struct provd_err *err);
int sq_outbox_list(void *session, uint64_t after_seq, size_t limit,
                   provd_event_fn fn, void *ud, struct provd_err *err);

int sq_outbox_last(void *session, provd_event_fn fn, void *ud,
                   struct provd_err *err);
int sq_outbox_trim(void *session, uint64_t before_seq,
                   struct provd_err *err);

/* ---- challenges.c ---- */
int sq_challenge_put(void *session, const struct provd_challenge *c,
                     uint64_t max_open, struct provd_err *err);
int sq_challenge_get(void *session, const char *registration_id,
                     int64_t now_ms, provd_challenge_fn fn, void *ud,
                     struct provd_err *err);
int sq_challenge_answer(void *session, const char *registration_id,
                        int64_t answered_ms, struct provd_err *err);

/* ---- backup.c ---- */
int sq_backup(void *session, const char *dest_path, struct provd_err *err);

/* ---- schema.c ---- */
/* Brings the database to PROVD_SQLITE_SCHEMA_VERSION, one migration per
 * transaction; refuses a newer or foreign database. */
int sq_migrate(struct sq_state *st, sqlite3 *db, struct provd_err *err);
/* SQL table name of a table id, or NULL when out of range. */
const char *sq_table_name(enum provd_table t);

#endif
