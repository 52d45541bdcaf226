/* The storage conformance suite: the same tests against every storage
 * plugin, through the plugin ABI (provd/storage.h) and the core store on
 * top of it.  `test_storage_conformance` runs them on sqlite (label
 * unit); `test_storage_conformance postgres` on a PostgreSQL cluster that
 * the CTest fixture started with scripts/pg-test-cluster.sh (label
 * postgres), PROVD_TEST_PG_DIR naming its directory.
 *
 * Two plugin instances on one database stand for two provd processes:
 * concurrent If-Match writes (exactly one wins) and, on a store that is
 * PROVD_STORAGE_SHARED, one journal chain written by two core stores at
 * once. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/loader.h"
#include "provd/storage.h"
#include "store/journal.h"
#include "store/store.h"
#include "util/err.h"

static const char *plugin_name = "sqlite";
static const struct provd_plugin *desc;
static char tmp[256];
static char conninfo[512];

static const struct provd_storage_ops *ops(void) { return desc->ops; }
static int is_postgres(void) { return strcmp(plugin_name, "postgres") == 0; }

static void read_conninfo(void)
{
  const char *dir = getenv("PROVD_TEST_PG_DIR");
  char path[512];
  ck_assert_msg(dir && dir[0], "PROVD_TEST_PG_DIR is not set");
  snprintf(path, sizeof(path), "%s/conninfo", dir);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "no %s: did the cluster fixture start?", path);
  ck_assert_ptr_nonnull(fgets(conninfo, sizeof(conninfo), f));
  fclose(f);
  conninfo[strcspn(conninfo, "\n")] = '\0';
}

/* Every test starts from an empty database. */
static void setup(void)
{
  char so[1024], cmd[1024];
  struct provd_err err = { { 0 }, { 0 } };
  const char *dir = getenv("PROVD_PLUGIN_DIR");
  ck_assert_msg(dir && dir[0], "PROVD_PLUGIN_DIR is not set");
  snprintf(so, sizeof(so), "%s/%s.so", dir, plugin_name);
  ck_assert_msg(plugin_open(so, &desc, &err) == 0, "%s", err.msg);
  snprintf(tmp, sizeof(tmp), "/tmp/provd-test-conformance-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
  if (!is_postgres())
    return;
  read_conninfo();
  snprintf(cmd, sizeof(cmd),
           "psql '%s' -qX -c 'DROP SCHEMA public CASCADE' "
           "-c 'CREATE SCHEMA public' >/dev/null 2>&1", conninfo);
  ck_assert_int_eq(system(cmd), 0);
}

static void teardown(void)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
  ck_assert_int_eq(system(cmd), 0);
}

static json_t *options(void)
{
  char path[512];
  snprintf(path, sizeof(path), "%s/provd.db", tmp);
  return is_postgres() ? json_pack("{s:s, s:I}", "conninfo", conninfo,
                                   "pool_size", (json_int_t)4)
                       : json_pack("{s:s}", "path", path);
}

static void inst_up(struct plugin_instance *inst)
{
  struct provd_err err = { { 0 }, { 0 } };
  const struct provd_lifecycle *lc = desc->lifecycle;
  memset(inst, 0, sizeof(*inst));
  inst->desc = desc;
  inst->kind = PROVD_KIND_STORAGE;
  inst->name = inst->id = (char *)plugin_name;
  inst->options = options();
  pthread_mutex_init(&inst->op_lock, NULL);
  ck_assert_int_eq(lc->create(host_api(), (struct provd_instance *)inst,
                              &inst->state, &err), PROVD_OK);
  int rc = lc->configure(inst->state, cfg_from_json(inst->options), &err);
  if (rc == PROVD_OK)
    rc = lc->start(inst->state, &err);
  ck_assert_msg(rc == PROVD_OK, "start: %s %s", err.code, err.msg);
  inst->started = 1;
}

static void inst_down(struct plugin_instance *inst)
{
  desc->lifecycle->stop(inst->state);
  desc->lifecycle->destroy(inst->state);
  json_decref(inst->options);
  pthread_mutex_destroy(&inst->op_lock);
}

static void *sess_open(struct plugin_instance *inst)
{
  struct provd_err err = { { 0 }, { 0 } };
  void *s = NULL;
  ck_assert_msg(ops()->session_open(inst->state, &s, &err) == PROVD_OK,
                "%s", err.msg);
  return s;
}

/* ---- record helpers ---- */

struct got {
  int calls;
  char id[128], etag[64], body[256], group[64], hub[64];
  int64_t created, updated;
};

static void copy_str(char *dst, size_t n, const char *src)
{
  snprintf(dst, n, "%s", src ? src : "(null)");
}

static int got_one(void *ud, const struct provd_record *r)
{
  struct got *g = ud;
  g->calls++;
  copy_str(g->id, sizeof(g->id), r->id);
  copy_str(g->etag, sizeof(g->etag), r->etag);
  copy_str(g->body, sizeof(g->body), r->body_json);
  copy_str(g->group, sizeof(g->group), r->group_id);
  copy_str(g->hub, sizeof(g->hub), r->hub);
  g->created = r->created_ms;
  g->updated = r->updated_ms;
  return PROVD_OK;
}

static int put_full(void *s, enum provd_table t, const char *id,
                    const char *etag, const char *group, const char *hub,
                    const char *if_match, int must_create)
{
  struct provd_err err = { { 0 }, { 0 } };
  struct provd_record r = { .struct_size = sizeof(r), .id = id,
                            .etag = etag, .body_json = "{\"v\":1}",
                            .created_ms = 1000, .updated_ms = 2000,
                            .group_id = group, .hub = hub };
  return ops()->put(s, t, &r, if_match, must_create, &err);
}

static int put(void *s, enum provd_table t, const char *id, const char *etag,
               const char *if_match, int must_create)
{
  return put_full(s, t, id, etag, NULL, NULL, if_match, must_create);
}

static int get(void *s, enum provd_table t, const char *id, struct got *g)
{
  struct provd_err err = { { 0 }, { 0 } };
  memset(g, 0, sizeof(*g));
  return ops()->get(s, t, id, got_one, g, &err);
}

static int del(void *s, enum provd_table t, const char *id,
               const char *if_match)
{
  struct provd_err err = { { 0 }, { 0 } };
  return ops()->del(s, t, id, if_match, &err);
}

static int tx(void *s, int (*op)(void *, struct provd_err *))
{
  struct provd_err err = { { 0 }, { 0 } };
  return op(s, &err);
}

/* ---- records ---- */

START_TEST(test_crud_each_table)
{
  struct plugin_instance inst;
  inst_up(&inst);
  void *s = sess_open(&inst);
  struct got g;
  for (int t = PROVD_TABLE_ENROLLMENTS; t <= PROVD_TABLE_DEAD_LETTERS; t++) {
    ck_assert_int_eq(get(s, t, "Rec-1", &g), PROVD_NOT_FOUND);
    ck_assert_int_eq(put(s, t, "Rec-1", "\"e1\"", NULL, 1), PROVD_OK);
    /* ids compare case-insensitively and keep their spelling */
    ck_assert_int_eq(get(s, t, "rec-1", &g), PROVD_OK);
    ck_assert_int_eq(g.calls, 1);
    ck_assert_str_eq(g.id, "Rec-1");
    ck_assert_str_eq(g.etag, "\"e1\"");
    ck_assert_str_eq(g.body, "{\"v\":1}");
    ck_assert_int_eq(g.created, 1000);
    ck_assert_int_eq(g.updated, 2000);
    ck_assert_int_eq(put(s, t, "REC-1", "\"e2\"", NULL, 0), PROVD_OK);
    ck_assert_int_eq(get(s, t, "rec-1", &g), PROVD_OK);
    ck_assert_str_eq(g.etag, "\"e2\"");
    uint64_t n = 0;
    struct provd_err err = { { 0 }, { 0 } };
    ck_assert_int_eq(ops()->count(s, t, NULL, &n, &err), PROVD_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(del(s, t, "rEc-1", NULL), PROVD_OK);
    ck_assert_int_eq(del(s, t, "rec-1", NULL), PROVD_NOT_FOUND);
    ck_assert_int_eq(get(s, t, "Rec-1", &g), PROVD_NOT_FOUND);
  }
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

START_TEST(test_if_match_and_must_create)
{
  struct plugin_instance inst;
  inst_up(&inst);
  void *s = sess_open(&inst);
  enum provd_table t = PROVD_TABLE_ENROLLMENTS;
  struct got g;
  ck_assert_int_eq(put(s, t, "dev", "\"a\"", "*", 0), PROVD_NOT_FOUND);
  ck_assert_int_eq(put(s, t, "dev", "\"a\"", "\"a\"", 0), PROVD_NOT_FOUND);
  ck_assert_int_eq(put(s, t, "dev", "\"a\"", NULL, 1), PROVD_OK);
  ck_assert_int_eq(put(s, t, "DEV", "\"b\"", NULL, 1), PROVD_EXISTS);
  ck_assert_int_eq(put(s, t, "dev", "\"b\"", "\"zzz\"", 0),
                   PROVD_PRECONDITION_FAILED);
  ck_assert_int_eq(put(s, t, "dev", "\"b\"", "\"a\"", 0), PROVD_OK);
  ck_assert_int_eq(put(s, t, "dev", "\"c\"", "*", 0), PROVD_OK);
  ck_assert_int_eq(get(s, t, "dev", &g), PROVD_OK);
  ck_assert_str_eq(g.etag, "\"c\"");
  ck_assert_int_eq(del(s, t, "dev", "\"b\""), PROVD_PRECONDITION_FAILED);
  ck_assert_int_eq(del(s, t, "dev", "\"c\""), PROVD_OK);
  ck_assert_int_eq(del(s, t, "dev", "\"c\""), PROVD_NOT_FOUND);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

struct ids {
  int n;
  char id[16][32];
};

static int collect_id(void *ud, const struct provd_record *r)
{
  struct ids *x = ud;
  if (x->n < 16)
    snprintf(x->id[x->n++], sizeof(x->id[0]), "%s", r->id);
  return PROVD_OK;
}

START_TEST(test_list_filters_order_and_count)
{
  struct plugin_instance inst;
  inst_up(&inst);
  void *s = sess_open(&inst);
  enum provd_table t = PROVD_TABLE_REGISTRATIONS;
  ck_assert_int_eq(put_full(s, t, "b", "e", "G1", "hub-1", NULL, 0), PROVD_OK);
  ck_assert_int_eq(put_full(s, t, "A", "e", "g1", "hub-2", NULL, 0), PROVD_OK);
  ck_assert_int_eq(put_full(s, t, "c", "e", "g2", "hub-1", NULL, 0), PROVD_OK);
  ck_assert_int_eq(put_full(s, t, "D", "e", NULL, NULL, NULL, 0), PROVD_OK);
  struct provd_err err = { { 0 }, { 0 } };
  struct ids x = { 0 };
  ck_assert_int_eq(ops()->list(s, t, NULL, collect_id, &x, &err), PROVD_OK);
  ck_assert_int_eq(x.n, 4); /* case-folded id order */
  ck_assert_str_eq(x.id[0], "A");
  ck_assert_str_eq(x.id[1], "b");
  ck_assert_str_eq(x.id[3], "D");
  struct provd_query q = { .struct_size = sizeof(q), .group_id = "G1" };
  memset(&x, 0, sizeof(x));
  ck_assert_int_eq(ops()->list(s, t, &q, collect_id, &x, &err), PROVD_OK);
  ck_assert_int_eq(x.n, 2);
  ck_assert_str_eq(x.id[0], "A");
  uint64_t n = 0;
  struct provd_query qh = { .struct_size = sizeof(qh), .hub = "HUB-1" };
  ck_assert_int_eq(ops()->count(s, t, &qh, &n, &err), PROVD_OK);
  ck_assert_uint_eq(n, 2);
  struct provd_query page = { .struct_size = sizeof(page), .after_id = "a",
                              .limit = 2 };
  memset(&x, 0, sizeof(x));
  ck_assert_int_eq(ops()->list(s, t, &page, collect_id, &x, &err), PROVD_OK);
  ck_assert_int_eq(x.n, 2);
  ck_assert_str_eq(x.id[0], "b");
  ck_assert_str_eq(x.id[1], "c");
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

START_TEST(test_transactions_nest)
{
  struct plugin_instance inst;
  inst_up(&inst);
  void *s = sess_open(&inst);
  enum provd_table t = PROVD_TABLE_HUBS;
  struct got g;
  ck_assert_int_eq(tx(s, ops()->tx_begin), PROVD_OK);
  ck_assert_int_eq(put(s, t, "kept", "e", NULL, 0), PROVD_OK);
  ck_assert_int_eq(tx(s, ops()->tx_begin), PROVD_OK);
  ck_assert_int_eq(put(s, t, "undone", "e", NULL, 0), PROVD_OK);
  /* a failing op inside a savepoint leaves the transaction usable */
  ck_assert_int_eq(put(s, t, "kept", "e", NULL, 1), PROVD_EXISTS);
  ck_assert_int_eq(tx(s, ops()->tx_rollback), PROVD_OK);
  ck_assert_int_eq(get(s, t, "undone", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(tx(s, ops()->tx_begin), PROVD_OK);
  ck_assert_int_eq(put(s, t, "inner", "e", NULL, 0), PROVD_OK);
  ck_assert_int_eq(tx(s, ops()->tx_commit), PROVD_OK);
  ck_assert_int_eq(tx(s, ops()->tx_commit), PROVD_OK);
  ck_assert_int_eq(get(s, t, "kept", &g), PROVD_OK);
  ck_assert_int_eq(get(s, t, "inner", &g), PROVD_OK);
  ck_assert_int_eq(get(s, t, "undone", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(tx(s, ops()->tx_begin), PROVD_OK);
  ck_assert_int_eq(put(s, t, "gone", "e", NULL, 0), PROVD_OK);
  ck_assert_int_eq(tx(s, ops()->tx_rollback), PROVD_OK);
  ck_assert_int_eq(get(s, t, "gone", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(tx(s, ops()->tx_commit), PROVD_E_INVAL);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

/* ---- outbox ---- */

static int append(void *s, const char *type, uint64_t *seq)
{
  struct provd_err err = { { 0 }, { 0 } };
  struct provd_outbox_event ev = { .struct_size = sizeof(ev), .type = type,
                                   .time_ms = 5, .subject = "dev",
                                   .body_json = "{}", .event_id = "id",
                                   .prev_hash = "p", .hash = "h" };
  return ops()->outbox_append(s, &ev, seq, &err);
}

static int last_seq(void *ud, const struct provd_outbox_event *ev)
{
  *(uint64_t *)ud = ev->seq;
  return PROVD_OK;
}

static int count_event(void *ud, const struct provd_outbox_event *ev)
{
  (void)ev;
  ++*(int *)ud;
  return PROVD_OK;
}

START_TEST(test_outbox_sequence)
{
  struct plugin_instance inst;
  inst_up(&inst);
  void *s = sess_open(&inst);
  struct provd_err err = { { 0 }, { 0 } };
  uint64_t a = 0, b = 0, c = 0, last = 0;
  ck_assert_int_eq(ops()->outbox_last(s, last_seq, &last, &err),
                   PROVD_NOT_FOUND);
  ck_assert_int_eq(append(s, "one", &a), PROVD_OK);
  /* a rolled-back append leaves no gap */
  ck_assert_int_eq(tx(s, ops()->tx_begin), PROVD_OK);
  ck_assert_int_eq(append(s, "lost", &b), PROVD_OK);
  ck_assert_int_eq(tx(s, ops()->tx_rollback), PROVD_OK);
  ck_assert_int_eq(tx(s, ops()->tx_begin), PROVD_OK);
  ck_assert_int_eq(append(s, "two", &b), PROVD_OK);
  ck_assert_uint_eq(b, a + 1);
  /* ABI 1.6: the head the next append links to, under the write lock */
  ck_assert(PROVD_HAS(ops(), struct provd_storage_ops, outbox_head));
  ck_assert_int_eq(ops()->outbox_head(s, last_seq, &last, &err), PROVD_OK);
  ck_assert_uint_eq(last, b);
  ck_assert_int_eq(tx(s, ops()->tx_commit), PROVD_OK);
  int n = 0;
  ck_assert_int_eq(ops()->outbox_list(s, a, 10, count_event, &n, &err),
                   PROVD_OK);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(ops()->outbox_trim(s, b + 1, &err), PROVD_OK);
  ck_assert_int_eq(ops()->outbox_last(s, last_seq, &last, &err),
                   PROVD_NOT_FOUND);
  /* a trimmed journal never reuses a number */
  ck_assert_int_eq(append(s, "three", &c), PROVD_OK);
  ck_assert_uint_eq(c, b + 1);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

/* ---- challenges ---- */

static int chal_answered(void *ud, const struct provd_challenge *c)
{
  ck_assert_uint_eq(c->session_len, 4);
  ck_assert(memcmp(c->session, "\0abc", 4) == 0);
  *(int64_t *)ud = c->answered_ms;
  return PROVD_OK;
}

START_TEST(test_challenges)
{
  struct plugin_instance inst;
  inst_up(&inst);
  void *s = sess_open(&inst);
  struct provd_err err = { { 0 }, { 0 } };
  struct provd_challenge c = { .struct_size = sizeof(c),
                               .registration_id = "Dev-1",
                               .session = (const uint8_t *)"\0abc",
                               .session_len = 4, .issued_ms = 100,
                               .expires_ms = 1000 };
  ck_assert_int_eq(ops()->challenge_put(s, &c, 1, &err), PROVD_OK);
  int64_t answered = -1;
  ck_assert_int_eq(ops()->challenge_get(s, "dev-1", 500, chal_answered,
                                        &answered, &err), PROVD_OK);
  ck_assert_int_eq(answered, 0);
  ck_assert_int_eq(ops()->challenge_get(s, "dev-1", 1000, chal_answered,
                                        &answered, &err), PROVD_NOT_FOUND);
  struct provd_challenge other = c;
  other.registration_id = "dev-2";
  ck_assert_int_eq(ops()->challenge_put(s, &other, 1, &err),
                   PROVD_E_UNAVAILABLE);
  ck_assert_int_eq(ops()->challenge_answer(s, "DEV-1", 600, &err), PROVD_OK);
  ck_assert_int_eq(ops()->challenge_answer(s, "dev-1", 700, &err),
                   PROVD_EXISTS);
  ck_assert_int_eq(ops()->challenge_answer(s, "dev-9", 700, &err),
                   PROVD_NOT_FOUND);
  ck_assert_int_eq(ops()->challenge_get(s, "dev-1", 650, chal_answered,
                                        &answered, &err), PROVD_OK);
  ck_assert_int_eq(answered, 600);
  /* dev-1's challenge expired by then: dev-2 fits under max_open 1 */
  other.issued_ms = 2000;
  other.expires_ms = 3000;
  ck_assert_int_eq(ops()->challenge_put(s, &other, 1, &err), PROVD_OK);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

/* ---- two instances (two provd processes) on one database ---- */

#define RACERS 2
#define ROUNDS 20

struct racer {
  struct plugin_instance *inst;
  pthread_barrier_t *bar;
  int round_rc[ROUNDS];
  char etag[ROUNDS][32];
  int id;
};

static int copy_etag(void *ud, const struct provd_record *r)
{
  snprintf(ud, 32, "%s", r->etag);
  return PROVD_OK;
}

/* Both racers read the same etag, then both write with If-Match. */
static void *race(void *arg)
{
  struct racer *r = arg;
  void *s = sess_open(r->inst);
  for (int i = 0; i < ROUNDS; i++) {
    struct provd_err err = { { 0 }, { 0 } };
    char cur[32] = "";
    pthread_barrier_wait(r->bar);
    ops()->get(s, PROVD_TABLE_ENROLLMENTS, "shared", copy_etag, cur, &err);
    pthread_barrier_wait(r->bar);
    snprintf(r->etag[i], sizeof(r->etag[i]), "\"r%d-%d\"", r->id, i);
    r->round_rc[i] = put(s, PROVD_TABLE_ENROLLMENTS, "shared", r->etag[i],
                         cur, 0);
    pthread_barrier_wait(r->bar);
  }
  ops()->session_close(s);
  return NULL;
}

START_TEST(test_two_instances_if_match_one_wins)
{
  struct plugin_instance inst[RACERS];
  for (int i = 0; i < RACERS; i++)
    inst_up(&inst[i]);
  void *s = sess_open(&inst[0]);
  ck_assert_int_eq(put(s, PROVD_TABLE_ENROLLMENTS, "shared", "\"start\"",
                       NULL, 1), PROVD_OK);
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, RACERS);
  struct racer r[RACERS];
  pthread_t th[RACERS];
  for (int i = 0; i < RACERS; i++) {
    memset(&r[i], 0, sizeof(r[i]));
    r[i].inst = &inst[i];
    r[i].bar = &bar;
    r[i].id = i;
    pthread_create(&th[i], NULL, race, &r[i]);
  }
  for (int i = 0; i < RACERS; i++)
    pthread_join(th[i], NULL);
  for (int k = 0; k < ROUNDS; k++) {
    int ok = 0, refused = 0;
    for (int i = 0; i < RACERS; i++) {
      ok += r[i].round_rc[k] == PROVD_OK;
      refused += r[i].round_rc[k] == PROVD_PRECONDITION_FAILED;
    }
    ck_assert_msg(ok == 1 && refused == RACERS - 1,
                  "round %d: %d won, %d refused", k, ok, refused);
  }
  pthread_barrier_destroy(&bar);
  ops()->session_close(s);
  for (int i = 0; i < RACERS; i++)
    inst_down(&inst[i]);
}
END_TEST

#define WRITERS_EVENTS 200

struct event_writer {
  struct store *st;
  int done;
  int failed;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static int write_event(struct store_session *s, void *ud,
                       struct provd_err *err)
{
  (void)ud;
  return store_event(s, "test.event", "dev", NULL, NULL, err);
}

static void event_done(void *ud, int status, const struct provd_err *err)
{
  (void)err;
  struct event_writer *w = ud;
  pthread_mutex_lock(&w->mu);
  w->done++;
  w->failed += status != PROVD_OK;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Two core stores (two instances) append events at once: on a shared
 * store they form one sequence and one hash chain. */
START_TEST(test_two_instances_one_journal)
{
  struct plugin_instance inst[2];
  for (int i = 0; i < 2; i++)
    inst_up(&inst[i]);
  if (!(ops()->flags & PROVD_STORAGE_SHARED)) {
    /* one process per store (sqlite): nothing to share */
    for (int i = 0; i < 2; i++)
      inst_down(&inst[i]);
    return;
  }
  struct provd_err err = { { 0 }, { 0 } };
  struct store_opts o = { .readers = 1, .batch_max = 16 };
  struct event_writer w[2];
  for (int i = 0; i < 2; i++) {
    memset(&w[i], 0, sizeof(w[i]));
    pthread_mutex_init(&w[i].mu, NULL);
    pthread_cond_init(&w[i].cv, NULL);
    ck_assert_int_eq(store_open(&inst[i], &o, &w[i].st, &err), PROVD_OK);
  }
  for (int k = 0; k < WRITERS_EVENTS; k++)
    for (int i = 0; i < 2; i++)
      while (store_submit_write(w[i].st, write_event, event_done, &w[i]) !=
             PROVD_OK)
        usleep(1000);
  for (int i = 0; i < 2; i++) {
    pthread_mutex_lock(&w[i].mu);
    while (w[i].done < WRITERS_EVENTS)
      pthread_cond_wait(&w[i].cv, &w[i].mu);
    pthread_mutex_unlock(&w[i].mu);
    ck_assert_int_eq(w[i].failed, 0);
  }
  struct store_session *s = store_session_open(w[0].st, &err);
  ck_assert_ptr_nonnull(s);
  struct journal_report rep;
  ck_assert_int_eq(journal_verify(s, &rep, &err), PROVD_OK);
  ck_assert_msg(rep.broken_seq == 0, "broken at %llu: %s",
                (unsigned long long)rep.broken_seq, rep.problem);
  ck_assert_uint_eq(rep.events, 2 * WRITERS_EVENTS);
  ck_assert_uint_eq(rep.last_seq - rep.first_seq + 1, 2 * WRITERS_EVENTS);
  store_session_close(s);
  for (int i = 0; i < 2; i++) {
    store_close(w[i].st);
    inst_down(&inst[i]);
  }
}
END_TEST

int main(int argc, char **argv)
{
  if (argc > 1)
    plugin_name = argv[1];
  Suite *s = suite_create("storage_conformance");
  TCase *tc = tcase_create(plugin_name);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_crud_each_table);
  tcase_add_test(tc, test_if_match_and_must_create);
  tcase_add_test(tc, test_list_filters_order_and_count);
  tcase_add_test(tc, test_transactions_nest);
  tcase_add_test(tc, test_outbox_sequence);
  tcase_add_test(tc, test_challenges);
  tcase_add_test(tc, test_two_instances_if_match_one_wins);
  tcase_add_test(tc, test_two_instances_one_journal);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
