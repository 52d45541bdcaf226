/* The event dispatcher (dispatch.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "notify/cursors.h"
#include "notify/dispatch.h"
#include "notify/hub_sync.h"
#include "notify/retention.h"
#include "provd/notifier.h"
#include "store/journal.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timefmt.h"

#define COMP "notify"
/* Journal rows read per pump round at most. */
#define FETCH_MAX 256
/* How often the pump writes an advanced cursor, and looks for dead
 * letters an operator asked to retry. */
#define CURSOR_WRITE_MS 250
#define RETRY_SCAN_MS 1000
#define RETRY_SCAN_MAX 64
/* One delivery attempt may take this long before the plugin's own
 * timeout should have fired. */
#define DELIVER_DEADLINE_MS 60000
/* Several instances on one store: a notifier's lease lasts this long
 * unless renewed, and is renewed (or sought) this often. */
#define LEASE_MS 5000
#define LEASE_RENEW_MS 1000

struct pending {
  uint64_t seq;
  int64_t time_ms;  /* when the event happened */
  int64_t since_ms; /* max_age counts from here (a retry restarts it) */
  char *type, *subject, *body, *event_id;
  int wanted;       /* 0: filtered out, finished at once */
  int done;
  int from_dead_letter; /* an operator's retry: not in the window */
  struct pending *next; /* lane queue link */
};

struct notif;

struct lane {
  struct notif *n;
  struct store_session *session; /* records for WANTS_RECORD; lazy */
  pthread_t th;
  int running;
  pthread_cond_t cv;
  struct pending *head, *tail;
};

struct notif {
  struct dispatcher *d;
  struct plugin_instance *inst;
  /* A notifier's own ops, or a hub connector's journal adapter
   * (hub_sync.h); ops_state is what deliver() gets. */
  const struct provd_notifier_ops *ops;
  void *ops_state;
  struct hub_link *hub;   /* hub connectors only; owned */
  char id[80];            /* cursor and dead-letter key */
  char labels[160];  /* instance="id" for /metrics */
  pthread_mutex_t mu;
  pthread_cond_t pump_cv;
  /* Events fetched and not yet behind the cursor, in journal order. */
  struct pending **win;
  size_t win_head, win_len, win_cap;
  uint64_t fetched;   /* highest seq read from the journal */
  uint64_t cursor;    /* every event <= cursor is finished */
  uint64_t persisted; /* cursor as last written to the store */
  int64_t persisted_at_ms;
  int64_t retry_scan_at_ms;
  struct lane *lanes;
  int n_lanes;
  pthread_t pump;
  int pump_running;
  int leased;         /* shared store: this process delivers */
  int64_t lease_at_ms; /* last lease write (or attempt) */
};

struct dispatcher {
  struct cfg_events cfg;
  struct store *st;
  struct notif *items;
  size_t n;
  atomic_int stopping;
  struct retention *retention;
  int shared;         /* store_shared(): deliveries need a lease */
  char owner[64];     /* this process in lease records */
};

/* ---- small helpers ---- */

void dead_letter_id(const char *instance, uint64_t seq,
                    char out[DEAD_LETTER_ID_MAX])
{
  snprintf(out, DEAD_LETTER_ID_MAX, "%s/%020" PRIu64, instance, seq);
}

static int stopping(const struct dispatcher *d)
{
  return atomic_load(&d->stopping);
}

static void pending_free(struct pending *p)
{
  if (!p)
    return;
  free(p->type);
  free(p->subject);
  free(p->body);
  free(p->event_id);
  free(p);
}

static char *dup_or_null(const char *s)
{
  return s ? strdup(s) : NULL;
}

static struct pending *pending_from(const struct provd_outbox_event *ev)
{
  struct pending *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  p->seq = ev->seq;
  p->time_ms = ev->time_ms;
  p->since_ms = ev->time_ms;
  p->type = dup_or_null(ev->type);
  p->subject = dup_or_null(ev->subject);
  p->body = dup_or_null(ev->body_json ? ev->body_json : "{}");
  p->event_id = dup_or_null(
      PROVD_HAS(ev, struct provd_outbox_event, event_id) ? ev->event_id
                                                          : NULL);
  if (!p->type || !p->body || (ev->subject && !p->subject)) {
    pending_free(p);
    return NULL;
  }
  return p;
}

/* FNV-1a: a subject always lands in the same lane. */
static int lane_of(const struct notif *n, const char *subject)
{
  uint32_t h = 2166136261u;
  for (const char *c = subject ? subject : ""; *c; c++)
    h = (h ^ (uint8_t)*c) * 16777619u;
  return (int)(h % (uint32_t)n->n_lanes);
}

/* ---- synchronous writes through the store's writer ---- */

struct sync_write {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int finished;
  int status;
  struct provd_err err;
  store_write_fn fn;
  void *ud;
};

static int sync_write_run(struct store_session *s, void *ud,
                          struct provd_err *err)
{
  struct sync_write *w = ud;
  return w->fn(s, w->ud, err);
}

static void sync_write_done(void *ud, int status, const struct provd_err *err)
{
  struct sync_write *w = ud;
  pthread_mutex_lock(&w->mu);
  w->status = status;
  if (err)
    w->err = *err;
  w->finished = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Runs fn in the writer's next batch and waits for its commit.  A full
 * queue is retried until the dispatcher stops. */
static int write_and_wait(struct dispatcher *d, store_write_fn fn, void *ud,
                          struct provd_err *err)
{
  struct sync_write w = {.fn = fn, .ud = ud};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  int rc;
  while ((rc = store_submit_write(d->st, sync_write_run, sync_write_done,
                                  &w)) == PROVD_E_UNAVAILABLE &&
         !stopping(d)) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (rc == PROVD_OK) {
    pthread_mutex_lock(&w.mu);
    while (!w.finished)
      pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    rc = w.status;
    if (rc != PROVD_OK && err)
      *err = w.err;
  } else if (err) {
    perr_set(err, "STORE_UNAVAILABLE", "the store's write queue is full");
  }
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  return rc;
}

/* ---- durable state: cursor and dead letters ---- */

/* Shared store: writes the cursor under the lease (renewing it, or
 * giving it up with lease_ms 0).  Losing it stops fetching: what is in
 * flight finishes, the new holder goes on from the stored cursor. */
static int persist_leased(struct notif *n, uint64_t cursor, int64_t lease_ms,
                          struct provd_err *err)
{
  struct cursor_lease l = {.id = n->id, .owner = n->d->owner,
                           .lease_ms = lease_ms, .advance = 1,
                           .cursor = cursor};
  int rc = write_and_wait(n->d, notify_cursor_lease, &l, err);
  n->lease_at_ms = time_now_ms();
  if (rc == PROVD_OK && !l.held && lease_ms > 0) {
    log_warn(COMP, "notifier %s: lease lost to another instance; it goes on "
                   "from cursor %" PRIu64, n->id, l.stored);
    n->leased = 0;
    perr_set(err, "LEASE_LOST", "another instance holds the lease");
    return PROVD_E_UNAVAILABLE;
  }
  return rc;
}

/* Shared store, not holding the lease: takes it when free or expired
 * and nothing of an earlier lease is still in flight. */
static void seek_lease(struct notif *n)
{
  pthread_mutex_lock(&n->mu);
  int idle = n->win_len == 0;
  pthread_mutex_unlock(&n->mu);
  if (!idle || time_now_ms() - n->lease_at_ms < LEASE_RENEW_MS)
    return;
  struct cursor_lease l = {.id = n->id, .owner = n->d->owner,
                           .lease_ms = LEASE_MS};
  struct provd_err err;
  perr_clear(&err);
  int rc = write_and_wait(n->d, notify_cursor_lease, &l, &err);
  n->lease_at_ms = time_now_ms();
  if (rc != PROVD_OK || !l.held)
    return;
  pthread_mutex_lock(&n->mu);
  n->cursor = n->fetched = n->persisted = l.stored;
  pthread_mutex_unlock(&n->mu);
  n->persisted_at_ms = n->lease_at_ms;
  n->leased = 1;
  log_info(COMP, "notifier %s: this instance (%s) holds the lease; "
                 "delivering events after %" PRIu64,
           n->id, n->d->owner, l.stored);
}

static void persist_cursor(struct notif *n, uint64_t cursor)
{
  struct cursor_write c = {.id = n->id, .cursor = cursor};
  struct provd_err err;
  perr_clear(&err);
  int rc = n->d->shared
               ? persist_leased(n, cursor, LEASE_MS, &err)
               : write_and_wait(n->d, notify_cursor_put, &c, &err);
  if (rc != PROVD_OK) {
    log_warn(COMP, "notifier %s: cursor %" PRIu64 " not saved (%s: %s); "
                   "events after the saved one will come again",
             n->id, cursor, err.code, err.msg);
    return;
  }
  n->persisted = cursor;
  n->persisted_at_ms = time_now_ms();
}

struct dead_rec {
  const struct notif *n;
  const struct pending *p;
  const char *state;        /* "dead", "queued" */
  const char *reason, *message;
  int attempts;
  int remove;               /* delivered after a retry: delete it */
};

static int put_dead_letter(struct store_session *s, void *ud,
                           struct provd_err *err)
{
  const struct dead_rec *r = ud;
  char id[DEAD_LETTER_ID_MAX], when[32];
  dead_letter_id(r->n->id, r->p->seq, id);
  if (r->remove) {
    int rc = store_del(s, PROVD_TABLE_DEAD_LETTERS, id, NULL, err);
    return rc == PROVD_NOT_FOUND ? PROVD_OK : rc;
  }
  int64_t now = time_now_ms();
  time_iso8601(now, when);
  struct store_rec rec = {
      .id = id,
      .body = json_pack(
          "{s:s, s:I, s:s?, s:s, s:s?, s:s, s:s, s:s, s:i, s:s}", "instance",
          r->n->id, "seq", (json_int_t)r->p->seq, "eventId",
          r->p->event_id, "type", r->p->type, "subject", r->p->subject,
          "state", r->state, "reason", r->reason ? r->reason : "",
          "message", r->message ? r->message : "", "attempts", r->attempts,
          "deadAt", when),
      .created_ms = now,
      .updated_ms = now,
  };
  if (!rec.body) {
    perr_set(err, "NOMEM", "no memory for a dead letter");
    return PROVD_E_NOMEM;
  }
  int rc = store_put(s, PROVD_TABLE_DEAD_LETTERS, &rec, NULL, 0, err);
  json_decref(rec.body);
  return rc;
}

/* Waits until the record is committed: the cursor must never pass an
 * event whose dead letter is not stored.  0 when stopped first. */
static int record_dead_letter(struct notif *n, const struct dead_rec *r)
{
  while (!stopping(n->d)) {
    struct provd_err err;
    perr_clear(&err);
    if (write_and_wait(n->d, put_dead_letter, (void *)r, &err) == PROVD_OK)
      return 1;
    log_warn(COMP, "notifier %s: dead letter of event %" PRIu64
                   " not saved (%s: %s); trying again",
             n->id, r->p->seq, err.code, err.msg);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return 0;
}

/* ---- delivery (lane threads) ---- */

static int permanent_failure(int rc)
{
  return rc == PROVD_E_INVAL || rc == PROVD_DENIED || rc == PROVD_E_CONFIG ||
         rc == PROVD_E_UNSUPPORTED || rc == PROVD_DECLINED;
}

/* Exponential backoff with ±50 % jitter, capped at retry_max. */
static int64_t backoff_ms(const struct cfg_events *c, int attempt)
{
  int64_t base = c->retry_initial_ms;
  for (int i = 0; i < attempt && base < c->retry_max_ms; i++)
    base *= 2;
  if (base > c->retry_max_ms)
    base = c->retry_max_ms;
  uint32_t r = 0;
  if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
    r = 0x80000000u;
  double factor = 0.5 + (double)r / 4294967296.0; /* 0.5 .. 1.5 */
  int64_t ms = (int64_t)((double)base * factor);
  return ms < 1 ? 1 : ms;
}

static void count(const struct notif *n, const char *what, const char *help)
{
  metrics_add(what, help, n->labels, 1);
}

static int wants_record(const struct notif *n)
{
  return PROVD_HAS(n->ops, struct provd_notifier_ops, flags) &&
         (n->ops->flags & PROVD_NOTIFIER_WANTS_RECORD);
}

/* The record the event is about, as JSON text (caller frees), for
 * plugins that asked for it; NULL when there is none. */
static char *record_of(struct lane *l, const struct pending *p)
{
  struct provd_err err;
  perr_clear(&err);
  if (!p->subject || !wants_record(l->n))
    return NULL;
  if (!l->session && !(l->session = store_session_open(l->n->d->st, &err)))
    return NULL;
  enum provd_table t = strncmp(p->type, "group.", 6) == 0
                           ? PROVD_TABLE_ENROLLMENT_GROUPS
                           : PROVD_TABLE_ENROLLMENTS;
  struct store_rec rec;
  if (store_get(l->session, t, p->subject, &rec, &err) != PROVD_OK)
    return NULL;
  char *text = json_dumps(rec.body, JSON_COMPACT);
  store_rec_clear(&rec);
  return text;
}

static int try_deliver(struct lane *l, const struct pending *p,
                       struct provd_call *call, struct provd_err *err)
{
  struct notif *n = l->n;
  char *record = record_of(l, p);
  struct provd_event ev = {
      .struct_size = sizeof(ev),
      .id = p->seq,
      .type = p->type,
      .time_ms = p->time_ms,
      .registration_id = p->subject,
      .body_json = p->body,
      .event_id = p->event_id,
      .record_json = record,
  };
  memset(call, 0, sizeof(*call));
  snprintf(call->trace_id, sizeof(call->trace_id), "%s",
           p->event_id ? p->event_id : "");
  call->deadline_ns = time_mono_ns() + DELIVER_DEADLINE_MS * 1000000ULL;
  perr_clear(err);
  plugin_op_enter(n->inst);
  int rc = n->ops->deliver(n->ops_state, call, &ev, err);
  plugin_op_leave(n->inst);
  free(record);
  return rc;
}

/* Sleeps ms on the lane, waking early when the dispatcher stops. */
static void lane_sleep(struct lane *l, int64_t ms)
{
  struct notif *n = l->n;
  struct timespec until = time_after_us(CLOCK_REALTIME, ms * 1000);
  pthread_mutex_lock(&n->mu);
  while (!stopping(n->d) &&
         pthread_cond_timedwait(&l->cv, &n->mu, &until) != ETIMEDOUT)
    ;
  pthread_mutex_unlock(&n->mu);
}

static void give_up(struct notif *n, const struct pending *p, int attempts,
                    const struct provd_err *err, const char *why)
{
  struct dead_rec r = {.n = n, .p = p, .state = "dead",
                       .reason = err->code[0] ? err->code : why,
                       .message = err->msg, .attempts = attempts};
  log_warn(COMP, "notifier %s: event %" PRIu64 " %s subject=%s is a dead "
                 "letter after %d attempt(s): %s (%s)",
           n->id, p->seq, p->type, p->subject ? p->subject : "-",
           attempts, r.reason, err->msg);
  if (record_dead_letter(n, &r))
    count(n, "provd_notifier_dead_total",
          "Events a notifier instance gave up on (dead letters).");
}

/* Delivers until done, dead, or the dispatcher stops.  1 when the event
 * is finished (delivered or dead-lettered). */
static int deliver_until_done(struct lane *l, struct pending *p)
{
  struct notif *n = l->n;
  const struct cfg_events *c = &n->d->cfg;
  for (int attempt = 0; !stopping(n->d); attempt++) {
    struct provd_call call;
    struct provd_err err;
    int rc = try_deliver(l, p, &call, &err);
    if (rc == PROVD_OK) {
      if (p->from_dead_letter) {
        struct dead_rec r = {.n = n, .p = p, .remove = 1};
        if (!record_dead_letter(n, &r))
          return 0;
      }
      count(n, "provd_notifier_delivered_total",
            "Events a notifier instance delivered.");
      return 1;
    }
    if (permanent_failure(rc)) {
      give_up(n, p, attempt + 1, &err, "REJECTED");
      return 1;
    }
    int64_t wait = backoff_ms(c, attempt);
    if (call.retry_after_ms > wait)
      wait = call.retry_after_ms;
    if (time_now_ms() + wait - p->since_ms > c->max_age_ms) {
      give_up(n, p, attempt + 1, &err, "MAX_AGE");
      return 1;
    }
    count(n, "provd_notifier_retried_total",
          "Delivery attempts a notifier instance will make again.");
    log_info(COMP, "notifier %s: event %" PRIu64 " %s subject=%s not "
                   "delivered (%s: %s); retry %d in %" PRId64 " ms",
             n->id, p->seq, p->type, p->subject ? p->subject : "-",
             err.code[0] ? err.code : perr_status_name(rc), err.msg,
             attempt + 1, wait);
    lane_sleep(l, wait);
  }
  return 0;
}

static struct pending *lane_pop(struct lane *l)
{
  struct notif *n = l->n;
  pthread_mutex_lock(&n->mu);
  while (!l->head && !stopping(n->d))
    pthread_cond_wait(&l->cv, &n->mu);
  struct pending *p = l->head;
  if (p) {
    l->head = p->next;
    if (!l->head)
      l->tail = NULL;
    p->next = NULL;
  }
  pthread_mutex_unlock(&n->mu);
  return p;
}

static void lane_push_locked(struct lane *l, struct pending *p)
{
  p->next = NULL;
  if (l->tail)
    l->tail->next = p;
  else
    l->head = p;
  l->tail = p;
  pthread_cond_signal(&l->cv);
}

static void *lane_main(void *arg)
{
  struct lane *l = arg;
  struct notif *n = l->n;
  struct pending *p;
  while (!stopping(n->d) && (p = lane_pop(l)) != NULL) {
    int finished = deliver_until_done(l, p);
    pthread_mutex_lock(&n->mu);
    if (p->from_dead_letter) {
      pthread_mutex_unlock(&n->mu);
      pending_free(p);
      continue;
    }
    p->done = finished;
    pthread_cond_signal(&n->pump_cv);
    pthread_mutex_unlock(&n->mu);
    if (!finished)
      break;
  }
  store_session_close(l->session);
  l->session = NULL;
  return NULL;
}

/* ---- the pump ---- */

/* Moves the cursor over finished events at the head of the window. */
static void advance_cursor_locked(struct notif *n)
{
  while (n->win_len > 0) {
    struct pending *p = n->win[n->win_head];
    if (!p->done)
      break;
    n->cursor = p->seq;
    pending_free(p);
    n->win_head = (n->win_head + 1) % n->win_cap;
    n->win_len--;
  }
}

static int take_event(void *ud, const struct provd_outbox_event *ev)
{
  struct notif *n = ud;
  struct pending *p = pending_from(ev);
  if (!p)
    return PROVD_E_NOMEM;
  p->wanted = n->hub ? hub_sync_wants(p->type)
                    : config_event_wanted(n->inst->events, n->inst->n_events,
                                          p->type);
  p->done = !p->wanted;
  pthread_mutex_lock(&n->mu);
  n->win[(n->win_head + n->win_len) % n->win_cap] = p;
  n->win_len++;
  n->fetched = p->seq;
  if (p->wanted)
    lane_push_locked(&n->lanes[lane_of(n, p->subject)], p);
  pthread_mutex_unlock(&n->mu);
  return PROVD_OK;
}

/* Reads as many new events as the window has room for; the number read,
 * or -1 when the store failed. */
static long fetch(struct notif *n, struct store_session *s)
{
  pthread_mutex_lock(&n->mu);
  advance_cursor_locked(n);
  size_t room = n->win_cap - n->win_len;
  uint64_t after = n->fetched;
  pthread_mutex_unlock(&n->mu);
  if (room == 0)
    return 0;
  if (room > FETCH_MAX)
    room = FETCH_MAX;
  struct provd_err err;
  perr_clear(&err);
  uint64_t before = after;
  if (store_events(s, after, room, take_event, n, &err) != PROVD_OK) {
    log_warn(COMP, "notifier %s: reading the journal failed (%s: %s)",
             n->id, err.code, err.msg);
    return -1;
  }
  pthread_mutex_lock(&n->mu);
  long got = (long)(n->fetched - before);
  pthread_mutex_unlock(&n->mu);
  return got;
}

static void publish_gauges(struct notif *n)
{
  size_t queued = 0;
  int64_t oldest = 0;
  pthread_mutex_lock(&n->mu);
  for (size_t i = 0; i < n->win_len; i++) {
    const struct pending *p = n->win[(n->win_head + i) % n->win_cap];
    if (p->done)
      continue;
    queued++;
    if (!oldest || p->time_ms < oldest)
      oldest = p->time_ms;
  }
  pthread_mutex_unlock(&n->mu);
  double age = oldest ? (double)(time_now_ms() - oldest) / 1000.0 : 0.0;
  metrics_set("provd_notifier_queued",
              "Events a notifier instance holds and has not delivered yet.",
              n->labels, (double)queued);
  metrics_set("provd_notifier_oldest_undelivered_age_seconds",
              "Age of the oldest event a notifier instance has not "
              "delivered yet.",
              n->labels, age < 0 ? 0 : age);
}

static int take_one(void *ud, const struct provd_outbox_event *ev)
{
  struct pending **out = ud;
  *out = pending_from(ev);
  return *out ? PROVD_OK : PROVD_E_NOMEM;
}

/* A dead letter's event when the journal no longer has it: enough to
 * rewrite the record. */
static struct pending *pending_of_record(const json_t *body, uint64_t seq)
{
  struct pending *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  p->seq = seq;
  p->type = strdup(json_string_value(json_object_get(body, "type"))
                       ? json_string_value(json_object_get(body, "type"))
                       : "?");
  p->subject = dup_or_null(json_string_value(json_object_get(body,
                                                             "subject")));
  p->event_id = dup_or_null(json_string_value(json_object_get(body,
                                                              "eventId")));
  return p;
}

/* Hands a dead letter back to its lane, marked "queued" first so a
 * restart finds it again. */
static void requeue_dead_letter(struct notif *n, struct store_session *s,
                                const json_t *body, uint64_t seq)
{
  struct pending *p = NULL;
  struct provd_err err;
  perr_clear(&err);
  int rc = seq > 0 ? store_events(s, seq - 1, 1, take_one, &p, &err)
                   : PROVD_E_INVAL;
  if (rc != PROVD_OK || !p || p->seq != seq) {
    pending_free(p);
    p = pending_of_record(body, seq);
    if (!p)
      return;
    struct dead_rec r = {.n = n, .p = p, .state = "dead",
                         .reason = "EVENT_TRIMMED",
                         .message = "the event is no longer in the journal"};
    log_warn(COMP, "notifier %s: dead letter %" PRIu64 " cannot be retried: "
                   "the journal no longer has the event",
             n->id, seq);
    record_dead_letter(n, &r);
    pending_free(p);
    return;
  }
  p->wanted = 1;
  p->from_dead_letter = 1;
  p->since_ms = time_now_ms();
  struct dead_rec r = {.n = n, .p = p, .state = "queued",
                       .reason = "RETRY", .message = "retry requested"};
  if (!record_dead_letter(n, &r)) {
    pending_free(p);
    return;
  }
  log_info(COMP, "notifier %s: retrying dead letter %" PRIu64 " %s",
           n->id, seq, p->type);
  pthread_mutex_lock(&n->mu);
  lane_push_locked(&n->lanes[lane_of(n, p->subject)], p);
  pthread_mutex_unlock(&n->mu);
}

/* Dead letters of this instance an operator asked to retry ("retry"),
 * and on the first scan those a stop interrupted ("queued"). */
static void scan_retries(struct notif *n, struct store_session *s,
                         int first)
{
  char prefix[DEAD_LETTER_ID_MAX];
  snprintf(prefix, sizeof(prefix), "%s/", n->id);
  struct provd_query q = {.struct_size = sizeof(q), .after_id = prefix,
                          .limit = RETRY_SCAN_MAX};
  struct store_rec *recs = NULL;
  size_t nrecs = 0;
  struct provd_err err;
  perr_clear(&err);
  if (store_list(s, PROVD_TABLE_DEAD_LETTERS, &q, &recs, &nrecs, &err) !=
      PROVD_OK)
    return;
  size_t plen = strlen(prefix);
  for (size_t i = 0; i < nrecs && !stopping(n->d); i++) {
    if (strncasecmp(recs[i].id, prefix, plen) != 0)
      break;
    const char *state = json_string_value(json_object_get(recs[i].body,
                                                          "state"));
    if (!state || !(strcmp(state, "retry") == 0 ||
                    (first && strcmp(state, "queued") == 0)))
      continue;
    uint64_t seq =
        (uint64_t)json_integer_value(json_object_get(recs[i].body, "seq"));
    requeue_dead_letter(n, s, recs[i].body, seq);
  }
  store_recs_free(recs, nrecs);
}

static void pump_wait(struct notif *n, int64_t ms)
{
  struct timespec until = time_after_us(CLOCK_REALTIME, ms * 1000);
  pthread_mutex_lock(&n->mu);
  if (!stopping(n->d))
    pthread_cond_timedwait(&n->pump_cv, &n->mu, &until);
  pthread_mutex_unlock(&n->mu);
}

static void pump_round(struct notif *n, struct store_session *s,
                       long *got, int *first)
{
  if (n->d->shared && !n->leased)
    seek_lease(n);
  int delivering = !n->d->shared || n->leased;
  *got = delivering ? fetch(n, s) : 0;
  int64_t now = time_now_ms();
  if (delivering && now - n->retry_scan_at_ms >= RETRY_SCAN_MS) {
    scan_retries(n, s, *first);
    *first = 0;
    n->retry_scan_at_ms = now;
  }
  pthread_mutex_lock(&n->mu);
  advance_cursor_locked(n);
  uint64_t cursor = n->cursor;
  pthread_mutex_unlock(&n->mu);
  if ((cursor != n->persisted && now - n->persisted_at_ms >= CURSOR_WRITE_MS) ||
      (n->leased && now - n->persisted_at_ms >= LEASE_RENEW_MS))
    persist_cursor(n, cursor);
  publish_gauges(n);
}

static void *pump_main(void *arg)
{
  struct notif *n = arg;
  struct provd_err err;
  perr_clear(&err);
  struct store_session *s = store_session_open(n->d->st, &err);
  if (!s) {
    log_error(COMP, "notifier %s: no store session (%s: %s); nothing will "
                    "be delivered", n->id, err.code, err.msg);
    return NULL;
  }
  if (!n->d->shared) {
    uint64_t cursor = notify_cursor_load(s, n->id);
    pthread_mutex_lock(&n->mu);
    n->cursor = n->fetched = n->persisted = cursor;
    pthread_mutex_unlock(&n->mu);
    log_info(COMP, "notifier %s: delivering events after %" PRIu64,
             n->id, cursor);
  }
  int first = 1;
  while (!stopping(n->d)) {
    long got = 0;
    pump_round(n, s, &got, &first);
    if (got < FETCH_MAX)
      pump_wait(n, got < 0 ? 1000 : n->d->cfg.poll_ms);
  }
  store_session_close(s);
  return NULL;
}

/* ---- start and stop ---- */

/* What notifiers and hub connectors share: window, lanes, metrics. */
static int notif_setup(struct dispatcher *d, struct notif *n,
                       struct provd_err *err)
{
  snprintf(n->labels, sizeof(n->labels), "instance=\"%s\"", n->id);
  pthread_mutex_init(&n->mu, NULL);
  pthread_cond_init(&n->pump_cv, NULL);
  n->win_cap = (size_t)d->cfg.queue;
  n->win = calloc(n->win_cap, sizeof(*n->win));
  n->n_lanes = d->cfg.concurrency;
  n->lanes = calloc((size_t)n->n_lanes, sizeof(*n->lanes));
  if (!n->win || !n->lanes) {
    perr_set(err, "NOMEM", "no memory for notifier %s", n->id);
    return PROVD_E_NOMEM;
  }
  for (int i = 0; i < n->n_lanes; i++) {
    n->lanes[i].n = n;
    pthread_cond_init(&n->lanes[i].cv, NULL);
  }
  /* Every series exists from the start, at zero. */
  metrics_add("provd_notifier_delivered_total",
              "Events a notifier instance delivered.", n->labels, 0);
  metrics_add("provd_notifier_retried_total",
              "Delivery attempts a notifier instance will make again.",
              n->labels, 0);
  metrics_add("provd_notifier_dead_total",
              "Events a notifier instance gave up on (dead letters).",
              n->labels, 0);
  publish_gauges(n);
  return PROVD_OK;
}

static int notif_init(struct dispatcher *d, struct notif *n,
                      struct plugin_instance *inst, struct provd_err *err)
{
  n->d = d;
  n->inst = inst;
  n->ops = inst->desc->ops;
  n->ops_state = inst->state;
  snprintf(n->id, sizeof(n->id), "%s", inst->id);
  if (!n->ops || !PROVD_HAS(n->ops, struct provd_notifier_ops, deliver) ||
      !n->ops->deliver) {
    perr_set(err, "CONFIG", "notifier %s has no deliver op", inst->id);
    return PROVD_E_CONFIG;
  }
  return notif_setup(d, n, err);
}

/* A hub connector follows the journal like a notifier (hub_sync.h), under
 * the cursor "hub/<instance id>", which no notifier id can take. */
static int hub_init(struct dispatcher *d, struct notif *n,
                    struct plugin_instance *inst, struct provd_err *err)
{
  n->d = d;
  n->inst = inst;
  snprintf(n->id, sizeof(n->id), "hub/%s", inst->id);
  n->hub = hub_link_new(inst, d->st);
  if (!n->hub) {
    perr_set(err, "NOMEM", "no memory for hub connector %s", inst->id);
    return PROVD_E_NOMEM;
  }
  n->ops = hub_sync_ops();
  n->ops_state = n->hub;
  return notif_setup(d, n, err);
}

static int notif_start(struct notif *n, struct provd_err *err)
{
  for (int i = 0; i < n->n_lanes; i++) {
    if (pthread_create(&n->lanes[i].th, NULL, lane_main, &n->lanes[i]) != 0) {
      perr_set(err, "THREAD", "cannot start a delivery thread for %s",
               n->id);
      return PROVD_E_INTERNAL;
    }
    n->lanes[i].running = 1;
  }
  if (pthread_create(&n->pump, NULL, pump_main, n) != 0) {
    perr_set(err, "THREAD", "cannot start the dispatcher of %s", n->id);
    return PROVD_E_INTERNAL;
  }
  n->pump_running = 1;
  return PROVD_OK;
}

static void notif_wake_all(struct notif *n)
{
  pthread_mutex_lock(&n->mu);
  pthread_cond_broadcast(&n->pump_cv);
  for (int i = 0; i < n->n_lanes; i++)
    pthread_cond_broadcast(&n->lanes[i].cv);
  pthread_mutex_unlock(&n->mu);
}

static void notif_join(struct notif *n)
{
  if (n->pump_running)
    pthread_join(n->pump, NULL);
  for (int i = 0; n->lanes && i < n->n_lanes; i++)
    if (n->lanes[i].running)
      pthread_join(n->lanes[i].th, NULL);
}

/* After the threads are gone: the final cursor, then memory. */
static void notif_fini(struct notif *n)
{
  if (!n->inst)
    return;
  if (n->pump_running && n->d->shared && n->leased) {
    advance_cursor_locked(n);
    struct provd_err err;
    perr_clear(&err);
    persist_leased(n, n->cursor, 0, &err); /* the next holder need not wait */
  } else if (n->pump_running && !n->d->shared) {
    advance_cursor_locked(n);
    if (n->cursor != n->persisted)
      persist_cursor(n, n->cursor);
  }
  for (int i = 0; n->lanes && i < n->n_lanes; i++) {
    for (struct pending *p = n->lanes[i].head, *next; p; p = next) {
      next = p->next;
      if (p->from_dead_letter)
        pending_free(p);
    }
    pthread_cond_destroy(&n->lanes[i].cv);
  }
  for (size_t i = 0; n->win && i < n->win_len; i++)
    pending_free(n->win[(n->win_head + i) % n->win_cap]);
  free(n->win);
  free(n->lanes);
  hub_link_free(n->hub);
  pthread_cond_destroy(&n->pump_cv);
  pthread_mutex_destroy(&n->mu);
}

/* Retention must not cut events the instances have not finished: it
 * reads their stored cursors. */
static int start_retention(struct dispatcher *d, struct provd_err *err)
{
  char **ids = d->n ? calloc(d->n, sizeof(*ids)) : NULL;
  if (d->n && !ids) {
    perr_set(err, "NOMEM", "no memory for journal retention");
    return PROVD_E_NOMEM;
  }
  for (size_t i = 0; i < d->n; i++)
    ids[i] = d->items[i].id;
  int rc = retention_start(&d->cfg, d->st, ids, d->n, &d->retention, err);
  free(ids);
  return rc;
}

int dispatcher_start(const struct cfg_events *cfg, struct store *st,
                     const struct plugin_set *plugins,
                     struct dispatcher **out, struct provd_err *err)
{
  *out = NULL;
  struct dispatcher *d = calloc(1, sizeof(*d));
  size_t notifiers = 0, hubs = 0;
  while (plugins_nth(plugins, PROVD_KIND_NOTIFIER, notifiers))
    notifiers++;
  while (plugins_nth(plugins, PROVD_KIND_HUB, hubs))
    hubs++;
  size_t count = notifiers + hubs;
  if (!d || (count && !(d->items = calloc(count, sizeof(*d->items))))) {
    free(d);
    perr_set(err, "NOMEM", "no memory for the dispatcher");
    return PROVD_E_NOMEM;
  }
  d->cfg = *cfg;
  d->st = st;
  d->shared = store_shared(st);
  unsigned char rnd[6] = {0};
  RAND_bytes(rnd, sizeof(rnd));
  snprintf(d->owner, sizeof(d->owner), "pid%ld-%02x%02x%02x%02x%02x%02x",
           (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
  int rc = PROVD_OK;
  for (size_t i = 0; i < count && rc == PROVD_OK; i++) {
    if (i < notifiers)
      rc = notif_init(d, &d->items[i],
                      plugins_nth(plugins, PROVD_KIND_NOTIFIER, i), err);
    else
      rc = hub_init(d, &d->items[i],
                    plugins_nth(plugins, PROVD_KIND_HUB, i - notifiers), err);
    d->n = i + 1;
  }
  for (size_t i = 0; i < d->n && rc == PROVD_OK; i++)
    rc = notif_start(&d->items[i], err);
  if (rc == PROVD_OK)
    rc = start_retention(d, err);
  if (rc != PROVD_OK) {
    dispatcher_stop(d);
    return rc;
  }
  *out = d;
  return PROVD_OK;
}

void dispatcher_stop(struct dispatcher *d)
{
  if (!d)
    return;
  atomic_store(&d->stopping, 1);
  retention_stop(d->retention);
  for (size_t i = 0; i < d->n; i++)
    notif_wake_all(&d->items[i]);
  for (size_t i = 0; i < d->n; i++)
    notif_join(&d->items[i]);
  for (size_t i = 0; i < d->n; i++)
    notif_fini(&d->items[i]);
  free(d->items);
  free(d);
}
