/* The event dispatcher (core/notify/dispatch.c) over a real SQLite store,
 * with an in-test notifier whose answer depends on the event's subject:
 *   ok-*     delivered
 *   flaky-*  temporary failure on the first attempt, then delivered
 *   bad-*    permanent failure (dead letter at once)
 *   down-*   temporary failure forever (dead letter after max_age)
 *   pause-*  first attempt asks for a 300 ms pause (Retry-After) */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "notify/cursors.h"
#include "notify/dispatch.h"
#include "store/journal.h"
#include "plugin/loader.h"
#include "provd/notifier.h"
#include "store/store.h"
#include "util/err.h"
#include "util/timefmt.h"

#define MAX_CALLS 512

struct call_log {
  pthread_mutex_t mu;
  int n;
  uint64_t seq[MAX_CALLS];
  char subject[MAX_CALLS][32];
  char type[MAX_CALLS][32];
  int ok[MAX_CALLS];
  int64_t at_ms[MAX_CALLS];
};

static struct call_log calls;

static int attempts_of(uint64_t seq)
{
  int n = 0;
  for (int i = 0; i < calls.n; i++)
    n += calls.seq[i] == seq;
  return n;
}

static int fake_deliver(void *state, struct provd_call *call,
                        const struct provd_event *ev, struct provd_err *err)
{
  (void)state;
  const char *s = ev->registration_id ? ev->registration_id : "";
  pthread_mutex_lock(&calls.mu);
  int earlier = attempts_of(ev->id);
  int rc = PROVD_OK;
  if (strncmp(s, "bad-", 4) == 0)
    rc = PROVD_E_INVAL;
  else if (strncmp(s, "down-", 5) == 0)
    rc = PROVD_E_UNAVAILABLE;
  else if (strncmp(s, "flaky-", 6) == 0 && earlier == 0)
    rc = PROVD_E_UNAVAILABLE;
  else if (strncmp(s, "pause-", 6) == 0 && earlier == 0) {
    host_api()->call_set_retry_after(call, 300);
    rc = PROVD_E_UNAVAILABLE;
  }
  if (calls.n < MAX_CALLS) {
    int i = calls.n++;
    calls.seq[i] = ev->id;
    snprintf(calls.subject[i], sizeof(calls.subject[i]), "%s", s);
    snprintf(calls.type[i], sizeof(calls.type[i]), "%s", ev->type);
    calls.ok[i] = rc == PROVD_OK;
    calls.at_ms[i] = time_now_ms();
  }
  pthread_mutex_unlock(&calls.mu);
  if (rc != PROVD_OK)
    perr_set(err, rc == PROVD_E_INVAL ? "FAKE_REJECTED" : "FAKE_DOWN",
             "fake answer for %s", s);
  return rc;
}

static const struct provd_notifier_ops fake_ops = {
    .struct_size = sizeof(struct provd_notifier_ops),
    .deliver = fake_deliver,
};
static const struct provd_plugin fake_desc = {
    PROVD_PLUGIN_HEADER,
    .kind = PROVD_KIND_NOTIFIER,
    .flags = PROVD_PLUGIN_THREADSAFE,
    .name = "fake",
    .ops = &fake_ops,
};

/* ---- the rig: config with the sqlite store, a store, one fake ---- */

static struct {
  char dir[64];
  struct provd_config cfg;
  struct plugin_set plugins;
  struct store *store;
  struct plugin_instance fake;
  struct plugin_instance *fake_items[1];
  struct plugin_set notifiers;
  struct cfg_events ev;
} rig;

static void rig_up(void)
{
  memset(&rig, 0, sizeof(rig));
  memset(&calls, 0, sizeof(calls));
  pthread_mutex_init(&calls.mu, NULL);
  snprintf(rig.dir, sizeof(rig.dir), "/tmp/provd-test-dispatch-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(rig.dir));
  char path[128];
  snprintf(path, sizeof(path), "%s/provd.yaml", rig.dir);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "data_dir: %s\nplugin_path: [ '%s' ]\n", rig.dir,
          getenv("PROVD_PLUGIN_DIR"));
  ck_assert_int_eq(fclose(f), 0);
  struct diag d = {0};
  int rc = config_load(path, &rig.cfg, &d);
  if (rc == 0)
    rc = plugins_load(&rig.cfg, &rig.plugins, &d);
  ck_assert_msg(rc == 0, "%s", d.n ? d.lines[0] : "config");
  diag_free(&d);
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(plugins_start(&rig.plugins, &err), PROVD_OK);
  struct store_opts so = {.readers = 1};
  ck_assert_int_eq(store_open(plugins_nth(&rig.plugins, PROVD_KIND_STORAGE,
                                          0),
                              &so, &rig.store, &err),
                   PROVD_OK);
  rig.fake.desc = &fake_desc;
  rig.fake.kind = PROVD_KIND_NOTIFIER;
  rig.fake.name = (char *)"fake";
  rig.fake.id = (char *)"fake";
  pthread_mutex_init(&rig.fake.op_lock, NULL);
  rig.fake_items[0] = &rig.fake;
  rig.notifiers.items = rig.fake_items;
  rig.notifiers.n = 1;
  rig.ev = rig.cfg.events;
  rig.ev.retry_initial_ms = 20;
  rig.ev.retry_max_ms = 50;
  rig.ev.poll_ms = 10;
}

static void rig_down(void)
{
  store_close(rig.store);
  plugins_stop(&rig.plugins);
  plugins_free(&rig.plugins);
  config_free(&rig.cfg);
  pthread_mutex_destroy(&rig.fake.op_lock);
  pthread_mutex_destroy(&calls.mu);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rig.dir);
  ck_assert_int_eq(system(cmd), 0);
}

static struct dispatcher *start(void)
{
  struct dispatcher *d = NULL;
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(dispatcher_start(&rig.ev, rig.store, &rig.notifiers, &d,
                                    &err),
                   PROVD_OK);
  return d;
}

/* Appends events for subject (one transaction); returns the last seq. */
static uint64_t emit(const char *type, const char *subject, int n)
{
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  ck_assert_ptr_nonnull(s);
  uint64_t seq = 0;
  ck_assert_int_eq(store_tx_begin(s, &err), PROVD_OK);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(store_event(s, type, subject, NULL, &seq, &err),
                     PROVD_OK);
  ck_assert_int_eq(store_tx_commit(s, &err), PROVD_OK);
  store_session_close(s);
  return seq;
}

static int count_calls(const char *prefix, int ok_only)
{
  pthread_mutex_lock(&calls.mu);
  int n = 0;
  for (int i = 0; i < calls.n; i++)
    n += strncmp(calls.subject[i], prefix, strlen(prefix)) == 0 &&
         (!ok_only || calls.ok[i]);
  pthread_mutex_unlock(&calls.mu);
  return n;
}

static int wait_calls(const char *prefix, int want, int ok_only)
{
  for (int i = 0; i < 500; i++) {
    if (count_calls(prefix, ok_only) >= want)
      return 1;
    usleep(10000);
  }
  return 0;
}

/* The stored record's JSON field, or -1 / "" when absent. */
static json_int_t stored_int(enum provd_table t, const char *id,
                             const char *field)
{
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  struct store_rec rec;
  json_int_t v = -1;
  if (store_get(s, t, id, &rec, &err) == PROVD_OK) {
    v = json_integer_value(json_object_get(rec.body, field));
    store_rec_clear(&rec);
  }
  store_session_close(s);
  return v;
}

static int dead_letter_state(uint64_t seq, char *state, size_t cap)
{
  char id[DEAD_LETTER_ID_MAX];
  dead_letter_id("fake", seq, id);
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  struct store_rec rec;
  int rc = store_get(s, PROVD_TABLE_DEAD_LETTERS, id, &rec, &err);
  if (rc == PROVD_OK) {
    snprintf(state, cap, "%s:%s",
             json_string_value(json_object_get(rec.body, "state")),
             json_string_value(json_object_get(rec.body, "reason")));
    store_rec_clear(&rec);
  }
  store_session_close(s);
  return rc == PROVD_OK;
}

static int wait_dead(uint64_t seq, const char *want)
{
  char state[128] = "";
  for (int i = 0; i < 500; i++) {
    if (dead_letter_state(seq, state, sizeof(state)) &&
        strcmp(state, want) == 0)
      return 1;
    usleep(10000);
  }
  return 0;
}

/* ---- tests ---- */

START_TEST(test_order_once_and_durable_cursor)
{
  rig_up();
  rig.ev.concurrency = 4;
  rig.ev.queue = 8; /* fewer than the events: the window refills */
  const char *subjects[] = {"ok-a", "ok-b", "ok-c"};
  uint64_t last = 0;
  for (int round = 0; round < 10; round++)
    for (int i = 0; i < 3; i++)
      last = emit("device.assigned", subjects[i], 2);
  struct dispatcher *d = start();
  ck_assert(wait_calls("ok-", 60, 1));
  usleep(100000);
  dispatcher_stop(d);
  ck_assert_int_eq(calls.n, 60);
  for (int i = 0; i < calls.n; i++)
    for (int j = i + 1; j < calls.n; j++) {
      ck_assert_uint_ne(calls.seq[i], calls.seq[j]); /* once each */
      if (strcmp(calls.subject[i], calls.subject[j]) == 0)
        ck_assert_uint_lt(calls.seq[i], calls.seq[j]); /* in order */
    }
  ck_assert_int_eq(stored_int(PROVD_TABLE_NOTIFIER_CURSORS, "fake",
                              "cursor"),
                   (json_int_t)last);

  /* A new start delivers only what came after the saved cursor. */
  uint64_t later = emit("device.assigned", "ok-d", 1);
  d = start();
  ck_assert(wait_calls("ok-d", 1, 1));
  usleep(100000);
  dispatcher_stop(d);
  ck_assert_int_eq(calls.n, 61);
  ck_assert_uint_eq(calls.seq[60], later);
  rig_down();
}
END_TEST

START_TEST(test_retry_dead_letters_and_filter)
{
  rig_up();
  rig.ev.max_age_ms = 400;
  char *filter[] = {(char *)"device.assigned"};
  rig.fake.events = filter;
  rig.fake.n_events = 1;
  uint64_t skipped = emit("enrollment.created", "ok-x", 1);
  uint64_t flaky = emit("device.assigned", "flaky-1", 1);
  uint64_t bad = emit("device.assigned", "bad-1", 1);
  uint64_t down = emit("device.assigned", "down-1", 1);
  uint64_t after = emit("device.assigned", "ok-after", 1);
  struct dispatcher *d = start();
  ck_assert(wait_calls("flaky-1", 1, 1));
  ck_assert(wait_calls("ok-after", 1, 1));
  ck_assert(wait_dead(bad, "dead:FAKE_REJECTED"));
  ck_assert(wait_dead(down, "dead:FAKE_DOWN"));
  ck_assert_int_eq(count_calls("ok-x", 0), 0); /* filtered out */
  ck_assert_int_eq(count_calls("flaky-1", 0), 2);
  ck_assert_int_eq(count_calls("bad-1", 0), 1); /* never retried */
  ck_assert_int_gt(count_calls("down-1", 0), 2);
  (void)skipped;
  (void)flaky;

  /* An operator's retry: the event is tried again, and is dead again. */
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  char id[DEAD_LETTER_ID_MAX];
  dead_letter_id("fake", bad, id);
  struct store_rec rec;
  ck_assert_int_eq(store_get(s, PROVD_TABLE_DEAD_LETTERS, id, &rec, &err),
                   PROVD_OK);
  json_object_set_new(rec.body, "state", json_string("retry"));
  ck_assert_int_eq(store_put(s, PROVD_TABLE_DEAD_LETTERS, &rec, NULL, 0,
                             &err),
                   PROVD_OK);
  store_rec_clear(&rec);
  store_session_close(s);
  ck_assert(wait_calls("bad-1", 2, 0));
  ck_assert(wait_dead(bad, "dead:FAKE_REJECTED"));
  usleep(400000); /* the cursor is written every 250 ms */
  dispatcher_stop(d);
  ck_assert_int_eq(stored_int(PROVD_TABLE_NOTIFIER_CURSORS, "fake",
                              "cursor"),
                   (json_int_t)after);
  rig_down();
}
END_TEST

START_TEST(test_retry_after_is_honoured)
{
  rig_up();
  uint64_t seq = emit("device.assigned", "pause-1", 1);
  struct dispatcher *d = start();
  ck_assert(wait_calls("pause-1", 1, 1));
  dispatcher_stop(d);
  ck_assert_int_eq(calls.n, 2);
  ck_assert_uint_eq(calls.seq[1], seq);
  ck_assert_int_ge(calls.at_ms[1] - calls.at_ms[0], 295);
  rig_down();
}
END_TEST

/* Stopping abandons a delivery in backoff; it is not lost. */
START_TEST(test_stop_in_backoff_keeps_the_event)
{
  rig_up();
  rig.ev.retry_initial_ms = 60000;
  rig.ev.retry_max_ms = 60000;
  uint64_t seq = emit("device.assigned", "flaky-2", 1);
  struct dispatcher *d = start();
  ck_assert(wait_calls("flaky-2", 1, 0));
  dispatcher_stop(d); /* returns at once, not after a minute */
  ck_assert_int_eq(stored_int(PROVD_TABLE_NOTIFIER_CURSORS, "fake",
                              "cursor") < (json_int_t)seq, 1);
  rig.ev.retry_initial_ms = 20;
  d = start();
  ck_assert(wait_calls("flaky-2", 1, 1));
  dispatcher_stop(d);
  rig_down();
}
END_TEST

/* Retention cuts by count, but never past what the notifier finished;
 * the chain stays verifiable from the anchor. */
START_TEST(test_retention_stops_at_the_cursor)
{
  rig_up();
  uint64_t last = emit("device.assigned", "down-r", 10);
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  struct cursor_write cw = {.id = "fake", .cursor = last - 7}; /* 3 */
  ck_assert_int_eq(notify_cursor_put(s, &cw, &err), PROVD_OK);
  rig.ev.retain_count = 2;
  rig.ev.max_age_ms = 3600000; /* down-r stays undelivered meanwhile */
  struct dispatcher *d = start();
  struct journal_report r = {0};
  for (int i = 0; i < 300; i++) {
    ck_assert_int_eq(journal_verify(s, &r, &err), PROVD_OK);
    if (r.first_seq == last - 6)
      break;
    usleep(10000);
  }
  dispatcher_stop(d);
  ck_assert_uint_eq(r.first_seq, last - 6); /* kept: 4..10, not only 9..10 */
  ck_assert_uint_eq(r.broken_seq, 0);
  ck_assert_uint_eq(r.events, 7);
  store_session_close(s);
  rig_down();
}
END_TEST

int main(void)
{
  Suite *s = suite_create("dispatch");
  TCase *tc = tcase_create("dispatch");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_order_once_and_durable_cursor);
  tcase_add_test(tc, test_retry_dead_letters_and_filter);
  tcase_add_test(tc, test_retry_after_is_honoured);
  tcase_add_test(tc, test_stop_in_backoff_keeps_the_event);
  tcase_add_test(tc, test_retention_stops_at_the_cursor);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
