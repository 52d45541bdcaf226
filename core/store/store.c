/* The store's threads: a pool of readers and one writer doing group
 * commit.  See docs/internals/store.md. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_int.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timefmt.h"
#include "util/wake_batch.h"

#define DEFAULT_READERS 2
#define DEFAULT_QUEUE_MAX 4096
#define DEFAULT_BATCH_MAX 256
#define MAX_READERS 64
#define MAX_QUEUE (1u << 20)
#define MAX_BATCH 4096
#define MAX_WINDOW_US 100000

/* ---- bounded job queues ---- */

static int jobq_init(struct jobq *q, size_t elem, size_t cap)
{
  memset(q, 0, sizeof(*q));
  q->slots = calloc(cap, elem);
  if (!q->slots)
    return -1;
  q->elem = elem;
  q->cap = cap;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  return 0;
}

static void jobq_fini(struct jobq *q)
{
  if (!q->slots)
    return;
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q->slots);
  q->slots = NULL;
}

/* Queues the job (only while a consumer is blocked waiting, if
 * only_if_idle): PROVD_OK, or PROVD_E_UNAVAILABLE when full, closing or
 * not idle, and callers answer "retry later" instead of queueing without
 * bound.  The consumer is woken after the mutex is released: woken
 * inside it, it would block again at once on the mutex we hold (profiles
 * showed those futex round trips on every job).  Signalling after the
 * unlock is safe because every thread that pushes is stopped or joined
 * before jobq_fini. */
static int jobq_push_when(struct jobq *q, const void *job, bool only_if_idle)
{
  int rc = PROVD_E_UNAVAILABLE;
  bool wake = false;
  pthread_mutex_lock(&q->mu);
  if (!q->closing && q->n < q->cap && (!only_if_idle || q->idle > 0)) {
    memcpy(q->slots + ((q->head + q->n) % q->cap) * q->elem, job, q->elem);
    q->n++;
    rc = PROVD_OK;
    wake = q->idle > 0;
  }
  pthread_mutex_unlock(&q->mu);
  if (wake)
    pthread_cond_signal(&q->cv);
  return rc;
}

static int jobq_push(struct jobq *q, const void *job)
{
  return jobq_push_when(q, job, false);
}

/* Moves up to max jobs to out.  With wait, first waits for one (0 then
 * means the queue is closing and drained); without, 0 means empty. */
static size_t jobq_take(struct jobq *q, void *out, size_t max, bool wait)
{
  size_t taken = 0;
  pthread_mutex_lock(&q->mu);
  while (wait && q->n == 0 && !q->closing) {
    q->idle++;
    pthread_cond_wait(&q->cv, &q->mu);
    q->idle--;
  }
  while (taken < max && q->n > 0) {
    memcpy((unsigned char *)out + taken * q->elem,
           q->slots + q->head * q->elem, q->elem);
    q->head = (q->head + 1) % q->cap;
    q->n--;
    taken++;
  }
  pthread_mutex_unlock(&q->mu);
  return taken;
}

static size_t jobq_pop(struct jobq *q, void *out, size_t max)
{
  return jobq_take(q, out, max, true);
}

static void jobq_close(struct jobq *q)
{
  if (!q->slots)
    return; /* never initialized */
  pthread_mutex_lock(&q->mu);
  q->closing = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

/* ---- session recovery ---- */

/* Rolls back every level the session has open.  A rollback that fails
 * leaves the connection in an unknown state, so it gets replaced. */
static void session_unwind(struct store_session *s)
{
  struct provd_err err = { { 0 }, { 0 } };
  int failed = 0;
  /* depth only goes down here, so the loop is bounded by it. */
  while (s->depth > 0)
    failed |= store_tx_rollback(s, &err) != PROVD_OK;
  if (!failed)
    return;
  log_warn("store", "rollback failed (%s: %s); reopening the session",
           err.code, err.msg);
  struct store *st = s->st;
  store_session_fini(s);
  if (store_session_init(st, s, &err) != PROVD_OK) {
    log_error("store", "cannot reopen a session: %s", err.msg);
    s->ps = NULL;
  }
}

/* A session lost to a failed reopen is retried before each use. */
static int session_ready(struct store_session *s, struct provd_err *err)
{
  if (s->ps)
    return PROVD_OK;
  struct store *st = s->st;
  store_session_fini(s); /* a dropped session still owns its buffer */
  int rc = store_session_init(st, s, err);
  if (rc != PROVD_OK)
    s->ps = NULL;
  return rc;
}

/* ---- readers ---- */

/* Runs one read job on s; the job must leave the nesting as it found it
 * (none on a reader, the writer's batch transaction on the writer).
 * Returns false when it did not. */
static bool run_read(struct store_session *s, store_read_fn fn, void *ud)
{
  struct provd_err err = { { 0 }, { 0 } };
  if (s->depth == 0 && session_ready(s, &err) != PROVD_OK)
    log_error("store", "read job runs without a session: %s", err.msg);
  int base = s->depth;
  fn(s, ud);
  if (s->depth == base)
    return true;
  log_warn("store", "read job left the transaction nesting unbalanced");
  if (base == 0)
    session_unwind(s);
  return false;
}

static void *reader_main(void *arg)
{
  struct store_session *s = arg;
  struct read_job job;
  pthread_setname_np(pthread_self(), "provd-reader");
  while (jobq_pop(&s->st->reads, &job, 1) == 1)
    run_read(s, job.fn, job.ud);
  return NULL;
}

/* ---- the writer ---- */

/* Runs one job inside its own transaction level (a savepoint inside the
 * batch, or the whole transaction when alone).  Returns the job's status;
 * *broken is set when the transaction itself can no longer be trusted. */
static int run_job(struct store_session *s, const struct write_job *job,
                   struct provd_err *err, int *broken)
{
  int base = s->depth;
  int rc = store_tx_begin(s, err);
  if (rc != PROVD_OK) {
    *broken = 1;
    return rc;
  }
  int status = job->fn(s, job->ud, err);
  if (s->depth != base + 1) {
    /* The job left levels open or closed ours: its work is suspect. */
    perr_set(err, "STORE_INTERNAL",
             "write job left the transaction nesting unbalanced");
    *broken = 1;
    return PROVD_E_INTERNAL;
  }
  if (status != PROVD_OK) {
    struct provd_err rb = { { 0 }, { 0 } };
    if (store_tx_rollback(s, &rb) != PROVD_OK)
      *broken = 1;
    return status;
  }
  rc = store_tx_commit(s, err);
  if (rc != PROVD_OK)
    *broken = 1;
  return rc;
}

/* Errors that say the database cannot take writes at all, as opposed to
 * a job's own refusal (not found, precondition) or a busy queue. */
static bool is_write_failure(int status, const struct provd_err *err)
{
  static const char *const codes[] = { "STORE_IO", "STORE_NOMEM",
                                       "STORE_CORRUPT", "STORE_UNREACHABLE" };
  if (status == PROVD_OK || !err)
    return false;
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
    if (strcmp(err->code, codes[i]) == 0)
      return true;
  return false;
}

/* Writer thread: every finished write job's outcome passes here. */
static void note_write_outcome(struct store *st, int status,
                               const struct provd_err *err)
{
  if (status == PROVD_OK) {
    if (atomic_exchange(&st->write_failing, 0))
      log_info("store", "writes succeed again");
    return;
  }
  if (!is_write_failure(status, err))
    return;
  pthread_mutex_lock(&st->write_error_mu);
  snprintf(st->write_error, sizeof(st->write_error), "%s", err->msg);
  pthread_mutex_unlock(&st->write_error_mu);
  if (!atomic_exchange(&st->write_failing, 1))
    log_error("store", "writes fail reason=%s: %s", err->code, err->msg);
}

static void notify(struct store *st, const struct write_job *job, int status,
                   const struct provd_err *err)
{
  note_write_outcome(st, status, err);
  if (job->done)
    job->done(job->ud, status, err);
}

/* Each job in its own transaction, so one bad job cannot fail the rest. */
static void run_each_alone(struct store *st, size_t n)
{
  struct store_session *s = &st->writer_session;
  for (size_t i = 0; i < n; i++) {
    struct provd_err err = { { 0 }, { 0 } };
    int broken = 0, status = session_ready(s, &err);
    if (status == PROVD_OK)
      status = run_job(s, &st->batch[i], &err, &broken);
    if (broken)
      session_unwind(s);
    notify(st, &st->batch[i], status, &err);
  }
}

static void fail_all(struct store *st, size_t n, int status,
                     const struct provd_err *err)
{
  for (size_t i = 0; i < n; i++)
    notify(st, &st->batch[i], status, err);
}

/* The writer's current batch: writes run so far (st->batch[0..n)) and
 * whether the transaction holding them is still good. */
struct batch {
  size_t n;
  size_t reads;
  bool in_tx;   /* a transaction is open and every job so far ran in it */
  bool retry;   /* it broke: the writes run again, each alone */
};

/* Ends the transaction after a failure; the writes so far run again,
 * each alone, once the batch is collected. */
static void batch_break(struct store *st, struct batch *b, const char *why)
{
  log_warn("store", "batch of %zu writes failed (%s); retrying one by one",
           b->n, why);
  session_unwind(&st->writer_session);
  b->in_tx = false;
  b->retry = true;
}

static void batch_add_write(struct store *st, struct batch *b,
                            const struct write_job *job)
{
  size_t i = b->n++;
  st->batch[i] = *job;
  perr_clear(&st->batch_err[i]);
  st->batch_status[i] = PROVD_OK;
  if (!b->in_tx)
    return; /* run alone (retry) or failed (no transaction) later */
  int broken = 0;
  st->batch_status[i] =
      run_job(&st->writer_session, job, &st->batch_err[i], &broken);
  if (broken)
    batch_break(st, b, "a job broke the transaction");
}

/* Reads run inside the batch's transaction: no lock round trips of
 * their own, and they see the writes before them in the batch. */
static void batch_add_read(struct store *st, struct batch *b,
                           const struct write_job *job)
{
  b->reads++;
  if (!run_read(&st->writer_session, job->read_fn, job->ud) && b->in_tx)
    batch_break(st, b, "a read job broke the transaction");
}

/* Runs the n popped jobs, then the writes their reads submitted (and
 * whatever else is queued), up to batch_max writes. */
static void batch_collect(struct store *st, struct batch *b, size_t n)
{
  size_t max = st->opts.batch_max;
  for (;;) {
    size_t reads_before = b->reads;
    for (size_t i = 0; i < n; i++) {
      const struct write_job *job = &st->popped[i];
      if (job->read_fn)
        batch_add_read(st, b, job);
      else
        batch_add_write(st, b, job);
    }
    /* The reads' own writes are queued by now; no new reads arrive
     * meanwhile (the writer is not idle), so this ends. */
    if (b->reads == reads_before || b->n >= max ||
        (n = jobq_take(&st->writes, st->popped, max - b->n, false)) == 0)
      return;
  }
}

/* Whether one of the n popped jobs is a read that ends in a write. */
static bool any_joins_window(const struct store *st, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (st->popped[i].joins_window)
      return true;
  return false;
}

/* The commit window (store_opts.commit_window_us): under concurrent
 * registrations the writer waits a little before it opens a transaction,
 * so that the registrations arriving meanwhile share its one durable
 * commit.  A commit costs a WAL write and an fsync whatever it holds, so
 * it is the per-registration cost that falls; no one is answered before
 * the commit either way.  It waits before the transaction, so no lock
 * (SQLite's write lock, PostgreSQL's advisory lock other instances queue
 * on) is held while it sleeps; it sleeps instead of waking for each job
 * (it is not idle, so producers do not signal it).  It waits only for a
 * registration (write_job.joins_window) and only when the previous commit
 * held several writes: a lone registration on a quiet server is committed
 * at once.  Returns the number of jobs now in st->popped. */
static size_t batch_linger(struct store *st, size_t n)
{
  size_t max = st->opts.batch_max;
  if (st->opts.commit_window_us <= 0 || st->last_batch_writes <= 1 ||
      n >= max || !any_joins_window(st, n))
    return n;
  struct timespec deadline =
      time_after_us(CLOCK_MONOTONIC, st->opts.commit_window_us);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) ==
         EINTR)
    ;
  return n + jobq_take(&st->writes, st->popped + n, max - n, false);
}

/* Group commit: one transaction for the reads and writes of a batch,
 * one savepoint per write, one durable commit, then every done(). */
static void run_batch(struct store *st, size_t n)
{
  struct store_session *s = &st->writer_session;
  struct provd_err err = { { 0 }, { 0 } };
  struct batch b = { 0 };
  n = batch_linger(st, n);
  int rc = session_ready(s, &err);
  if (rc == PROVD_OK)
    rc = store_tx_begin(s, &err);
  b.in_tx = rc == PROVD_OK;
  batch_collect(st, &b, n);
  st->last_batch_writes = b.n;
  if (b.reads)
    metrics_add("provd_store_reads_on_writer_total",
                "Read jobs the store writer ran itself", NULL,
                (double)b.reads);
  if (b.n == 0 && b.in_tx) {
    store_tx_commit(s, &err); /* reads only: nothing to make durable */
    return;
  }
  if (b.n == 0)
    return;
  metrics_add("provd_store_write_jobs_total",
              "Write jobs run by the store writer", NULL, (double)b.n);
  if (b.in_tx && store_tx_commit(s, &err) != PROVD_OK)
    batch_break(st, &b, err.msg);
  if (b.retry) {
    run_each_alone(st, b.n);
    return;
  }
  if (!b.in_tx) { /* nothing ran: every job gets the reason */
    fail_all(st, b.n, rc, &err);
    return;
  }
  metrics_add("provd_store_write_batches_total",
              "Write transactions committed by the store writer", NULL, 1);
  /* The answers go out together: each event loop is woken once, and
   * their log lines leave in one write. */
  wake_batch_begin();
  log_batch_begin();
  for (size_t i = 0; i < b.n; i++)
    notify(st, &st->batch[i], st->batch_status[i], &st->batch_err[i]);
  log_batch_end();
  wake_batch_end();
}

static void *writer_main(void *arg)
{
  struct store *st = arg;
  size_t n;
  pthread_setname_np(pthread_self(), "provd-writer");
  while ((n = jobq_pop(&st->writes, st->popped, st->opts.batch_max)) > 0)
    run_batch(st, n);
  return NULL;
}

/* ---- open / close ---- */

static int check_instance(struct plugin_instance *inst, struct provd_err *err)
{
  if (!inst || !inst->desc || inst->desc->kind != PROVD_KIND_STORAGE ||
      !inst->desc->ops) {
    perr_set(err, "STORE_CONFIG", "store_open needs a storage plugin");
    return PROVD_E_INVAL;
  }
  const struct provd_storage_ops *ops = inst->desc->ops;
  if (!PROVD_HAS(ops, struct provd_storage_ops, outbox_list)) {
    perr_set(err, "STORE_CONFIG", "storage plugin %s: ops table too old",
             inst->desc->name);
    return PROVD_E_UNSUPPORTED;
  }
  return PROVD_OK;
}

static int read_opts(const struct store_opts *o, struct store_opts *out,
                     struct provd_err *err)
{
  out->readers = o && o->readers ? o->readers : DEFAULT_READERS;
  out->queue_max = o && o->queue_max ? o->queue_max : DEFAULT_QUEUE_MAX;
  out->batch_max = o && o->batch_max ? o->batch_max : DEFAULT_BATCH_MAX;
  out->commit_window_us = o ? o->commit_window_us : 0;
  if (out->readers < 1 || out->readers > MAX_READERS ||
      out->queue_max > MAX_QUEUE || out->batch_max > MAX_BATCH ||
      out->commit_window_us < 0 || out->commit_window_us > MAX_WINDOW_US) {
    perr_set(err, "STORE_CONFIG",
             "store: readers 1..%d, queue_max up to %u, batch_max up to %d, "
             "commit window up to %d us",
             MAX_READERS, MAX_QUEUE, MAX_BATCH, MAX_WINDOW_US);
    return PROVD_E_INVAL;
  }
  return PROVD_OK;
}

/* Stops the threads that run (after draining), then frees everything. */
static void store_free(struct store *st)
{
  jobq_close(&st->reads);
  jobq_close(&st->writes);
  for (int i = 0; i < st->n_readers; i++)
    pthread_join(st->reader_threads[i], NULL);
  if (st->writer_running)
    pthread_join(st->writer_thread, NULL);
  for (int i = 0; st->reader_sessions && i < st->opts.readers; i++)
    store_session_fini(&st->reader_sessions[i]);
  store_session_fini(&st->writer_session);
  jobq_fini(&st->reads);
  jobq_fini(&st->writes);
  free(st->reader_threads);
  free(st->reader_sessions);
  free(st->batch);
  free(st->popped);
  free(st->batch_status);
  free(st->batch_err);
  pthread_mutex_destroy(&st->write_error_mu);
  free(st);
}

static int alloc_parts(struct store *st, struct provd_err *err)
{
  size_t r = (size_t)st->opts.readers, b = st->opts.batch_max;
  st->reader_threads = calloc(r, sizeof(*st->reader_threads));
  st->reader_sessions = calloc(r, sizeof(*st->reader_sessions));
  st->batch = calloc(b, sizeof(*st->batch));
  st->popped = calloc(b, sizeof(*st->popped));
  st->batch_status = calloc(b, sizeof(*st->batch_status));
  st->batch_err = calloc(b, sizeof(*st->batch_err));
  if (!st->reader_threads || !st->reader_sessions || !st->batch ||
      !st->popped ||
      !st->batch_status || !st->batch_err ||
      jobq_init(&st->reads, sizeof(struct read_job), st->opts.queue_max) ||
      jobq_init(&st->writes, sizeof(struct write_job), st->opts.queue_max)) {
    perr_set(err, "STORE_NOMEM", "no memory for the store");
    return PROVD_E_NOMEM;
  }
  return PROVD_OK;
}

/* Sessions open here, on the caller's thread, so that a bad database is
 * an error of store_open() rather than a log line from a thread. */
static int open_sessions(struct store *st, struct provd_err *err)
{
  int rc = store_session_init(st, &st->writer_session, err);
  for (int i = 0; rc == PROVD_OK && i < st->opts.readers; i++)
    rc = store_session_init(st, &st->reader_sessions[i], err);
  return rc;
}

static int start_threads(struct store *st, struct provd_err *err)
{
  if (pthread_create(&st->writer_thread, NULL, writer_main, st) != 0) {
    perr_set(err, "STORE_THREAD", "cannot start the store writer thread");
    return PROVD_E_INTERNAL;
  }
  st->writer_running = 1;
  for (int i = 0; i < st->opts.readers; i++) {
    if (pthread_create(&st->reader_threads[i], NULL, reader_main,
                       &st->reader_sessions[i]) != 0) {
      perr_set(err, "STORE_THREAD", "cannot start store reader thread %d",
               i);
      return PROVD_E_INTERNAL;
    }
    st->n_readers++;
  }
  return PROVD_OK;
}

int store_open(struct plugin_instance *storage, const struct store_opts *o,
               struct store **out, struct provd_err *err)
{
  *out = NULL;
  int rc = check_instance(storage, err);
  struct store_opts opts;
  if (rc == PROVD_OK)
    rc = read_opts(o, &opts, err);
  if (rc != PROVD_OK)
    return rc;
  struct store *st = calloc(1, sizeof(*st));
  if (!st) {
    perr_set(err, "STORE_NOMEM", "no memory for the store");
    return PROVD_E_NOMEM;
  }
  st->inst = storage;
  st->ops = storage->desc->ops;
  st->opts = opts;
  pthread_mutex_init(&st->write_error_mu, NULL);
  rc = alloc_parts(st, err);
  if (rc == PROVD_OK)
    rc = open_sessions(st, err);
  if (rc == PROVD_OK)
    rc = start_threads(st, err);
  if (rc != PROVD_OK) {
    store_free(st);
    return rc;
  }
  *out = st;
  return PROVD_OK;
}

void store_close(struct store *st)
{
  if (st)
    store_free(st);
}

static void probe_read(struct store_session *s, void *ud)
{
  struct store *st = ud;
  struct provd_err err = { { 0 }, { 0 } };
  struct store_rec rec;
  /* No hub has this name ('$' is not allowed): NOT_FOUND means reached. */
  int rc = store_get(s, PROVD_TABLE_HUBS, "$reachability-probe", &rec, &err);
  if (rc == PROVD_OK)
    store_rec_clear(&rec);
  store_note_status(st, rc, &err);
  atomic_store(&st->probing, 0);
}

int store_reachable(struct store *st)
{
  if (!atomic_exchange(&st->probing, 1) &&
      store_submit_read(st, probe_read, st) != PROVD_OK)
    atomic_store(&st->probing, 0);
  return !atomic_load(&st->unreachable);
}

/* A write that changes nothing in the end but must reach the disk: a
 * row put and deleted again inside one transaction. */
static int probe_write(struct store_session *s, void *ud,
                       struct provd_err *err)
{
  (void)ud;
  static const char id[] = "$write-probe"; /* '$' is no hub's name */
  json_t *body = json_object();
  struct store_rec rec = { .id = (char *)id, .body = body };
  int rc = body ? store_put(s, PROVD_TABLE_HUBS, &rec, NULL, 0, err)
                : PROVD_E_NOMEM;
  json_decref(body);
  if (rc == PROVD_OK)
    rc = store_del(s, PROVD_TABLE_HUBS, id, NULL, err);
  return rc;
}

static void probe_write_done(void *ud, int status, const struct provd_err *err)
{
  (void)status;
  (void)err;
  struct store *st = ud;
  atomic_store(&st->write_probing, 0);
}

int store_writable(struct store *st, char *why, size_t why_len)
{
  if (!atomic_load(&st->write_failing))
    return 1;
  if (!atomic_exchange(&st->write_probing, 1) &&
      store_submit_write(st, probe_write, probe_write_done, st) != PROVD_OK)
    atomic_store(&st->write_probing, 0);
  pthread_mutex_lock(&st->write_error_mu);
  snprintf(why, why_len, "%s", st->write_error);
  pthread_mutex_unlock(&st->write_error_mu);
  return 0;
}

int store_submit_read(struct store *st, store_read_fn fn, void *ud)
{
  if (!st || !fn)
    return PROVD_E_INVAL;
  struct read_job job = { .fn = fn, .ud = ud };
  return jobq_push(&st->reads, &job);
}

int store_submit_read_for_write(struct store *st, store_read_fn fn, void *ud)
{
  if (!st || !fn)
    return PROVD_E_INVAL;
  struct write_job job = { .read_fn = fn, .ud = ud, .joins_window = true };
  if (jobq_push_when(&st->writes, &job, true) == PROVD_OK)
    return PROVD_OK;
  return store_submit_read(st, fn, ud);
}

int store_submit_read_on_writer(struct store *st, store_read_fn fn, void *ud)
{
  if (!st || !fn)
    return PROVD_E_INVAL;
  struct write_job job = { .read_fn = fn, .ud = ud, .joins_window = true };
  return jobq_push(&st->writes, &job);
}

int store_submit_write(struct store *st, store_write_fn fn,
                       store_done_fn done, void *ud)
{
  if (!st || !fn)
    return PROVD_E_INVAL;
  struct write_job job = { .fn = fn, .done = done, .ud = ud };
  int rc = jobq_push(&st->writes, &job);
  if (rc != PROVD_OK)
    metrics_add("provd_store_write_rejected_total",
                "Write jobs refused because the queue was full or closing",
                NULL, 1);
  return rc;
}
