/* Private parts of the core store shared by store.c (threads, queues) and
 * store_ops.c (typed helpers). */
#ifndef CORE_STORE_STORE_INT_H
#define CORE_STORE_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "store/store.h"

/* Table numbers (enum provd_table) stay below this. */
#define STORE_TABLES 8

struct store_session {
  struct store *st;
  void *ps;          /* the plugin's session, owned */
  int depth;         /* transaction levels opened through this wrapper */
  char *buf;         /* JSON serialization scratch, reused, owned */
  size_t buf_cap;
  /* The journal's head as this session last wrote it, so the next event
   * links without reading it back; forgotten on every rollback. */
  int chain_known;
  uint64_t chain_seq;
  char chain_hash[65];
  /* Event ids: a random prefix per session and a counter. */
  int id_ready;
  unsigned char id_prefix[8];
  uint64_t id_counter;
  /* Tables this session changed in its open transaction (bit = table):
   * it must not read them through a cache other sessions share. */
  unsigned dirty_tables;
};

/* A bounded FIFO of fixed-size jobs. */
struct jobq {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned char *slots; /* cap * elem bytes */
  size_t elem, cap, head, n;
  int closing;          /* no new jobs; consumers drain and exit */
  int idle;             /* consumers blocked waiting for a job */
};

struct read_job {
  store_read_fn fn;
  void *ud;
};

/* A write, or (read_fn set) a read the writer runs because it was idle:
 * see store_submit_read_for_write. */
struct write_job {
  store_write_fn fn;
  store_done_fn done;
  store_read_fn read_fn;
  void *ud;
  /* A read that ends in a write (a registration): worth the commit
   * window's wait for company.  Other writes (the service API's, bulk
   * imports) never wait: their clients wait for each answer, so a wait
   * would only slow them down. */
  bool joins_window;
};

struct store {
  struct plugin_instance *inst;          /* borrowed */
  const struct provd_storage_ops *ops;   /* borrowed from the descriptor */
  struct store_opts opts;

  struct jobq reads, writes;
  pthread_t *reader_threads;
  struct store_session *reader_sessions; /* one per reader thread */
  int n_readers;                         /* threads running */

  pthread_t writer_thread;
  int writer_running;
  struct store_session writer_session;
  /* Per-batch scratch of batch_max entries, writer thread only. */
  struct write_job *batch;
  struct write_job *popped; /* jobs as taken from the queue */
  int *batch_status;
  struct provd_err *batch_err;
  size_t last_batch_writes; /* writes the previous commit held */
  /* The database answered STORE_UNREACHABLE last time (store_reachable). */
  atomic_int unreachable;
  atomic_int probing;       /* a reachability probe is queued */
  /* The last write the database finished failed with an I/O-class
   * error (disk full, read-only file, corruption): store_writable. */
  atomic_int write_failing;
  atomic_int write_probing; /* a write probe is queued */
  pthread_mutex_t write_error_mu;
  char write_error[256];    /* the failure's message, under the mutex */
  /* Per table: bumped by every put and delete and again when the
   * transaction holding them ends (store_generation). */
  _Atomic uint64_t generation[STORE_TABLES];
};

/* Remembers whether the last store call reached the database. */
void store_note_status(struct store *st, int rc, const struct provd_err *err);

/* Fills an embedded session (store_ops.c); PROVD_OK or an error. */
int store_session_init(struct store *st, struct store_session *s,
                       struct provd_err *err);
void store_session_fini(struct store_session *s);

#endif
