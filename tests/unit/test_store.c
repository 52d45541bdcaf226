/* The sqlite storage plugin (the real build/plugins/sqlite.so, loaded with
 * plugin_open and driven through host_api()) and the core store on top of
 * it: migrations, CRUD, etag rules, lists, transactions, group commit,
 * queues, the outbox and durability across a SIGKILL. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugin/loader.h"
#include "provd/storage.h"
#include "storage-sqlite/schema.h"
#include "store/journal.h"
#include "store/store.h"
#include "util/err.h"
#include "util/metrics.h"

static char tmp[256];
static char db_path[512];
static const struct provd_plugin *desc;

static void setup(void)
{
  const char *dir = getenv("PROVD_PLUGIN_DIR");
  char so[1024];
  struct provd_err err = { { 0 }, { 0 } };
  ck_assert_msg(dir && dir[0], "PROVD_PLUGIN_DIR is not set");
  snprintf(so, sizeof(so), "%s/sqlite.so", dir);
  ck_assert_msg(plugin_open(so, &desc, &err) == 0, "%s", err.msg);
  snprintf(tmp, sizeof(tmp), "/tmp/provd-test-store-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
  snprintf(db_path, sizeof(db_path), "%s/provd.db", tmp);
}

static void teardown(void)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
  ck_assert_int_eq(system(cmd), 0);
}

/* ---- plugin instance through its lifecycle ---- */

static const struct provd_storage_ops *ops(void)
{
  return desc->ops;
}

static json_t *options(const char *synchronous)
{
  /* Every test here reads through SQLite's memory map too. */
  json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I}", "path", db_path,
                        "synchronous", synchronous, "busy_timeout",
                        (json_int_t)5000, "cache_size",
                        (json_int_t)(4 * 1024 * 1024), "mmap_size",
                        (json_int_t)(64 * 1024 * 1024));
  ck_assert_ptr_nonnull(o);
  return o;
}

/* create + configure + start; returns the status of the first failing
 * step (the instance is torn down again then). */
static int inst_try_up(struct plugin_instance *inst, json_t *opts,
                       struct provd_err *err)
{
  const struct provd_lifecycle *lc = desc->lifecycle;
  memset(inst, 0, sizeof(*inst));
  inst->desc = desc;
  inst->kind = PROVD_KIND_STORAGE;
  inst->name = (char *)"sqlite";
  inst->id = (char *)"sqlite";
  inst->options = opts;
  pthread_mutex_init(&inst->op_lock, NULL);
  int rc = lc->create(host_api(), (struct provd_instance *)inst,
                      &inst->state, err);
  if (rc != PROVD_OK)
    return rc;
  rc = lc->configure(inst->state, cfg_from_json(opts), err);
  if (rc == PROVD_OK)
    rc = lc->start(inst->state, err);
  if (rc != PROVD_OK) {
    lc->destroy(inst->state);
    inst->state = NULL;
    return rc;
  }
  inst->started = 1;
  return PROVD_OK;
}

static void inst_up(struct plugin_instance *inst, const char *synchronous)
{
  struct provd_err err = { { 0 }, { 0 } };
  json_t *opts = options(synchronous);
  int rc = inst_try_up(inst, opts, &err);
  ck_assert_msg(rc == PROVD_OK, "start: %s %s", err.code, err.msg);
}

static void inst_down(struct plugin_instance *inst)
{
  if (inst->state) {
    desc->lifecycle->stop(inst->state);
    desc->lifecycle->destroy(inst->state);
  }
  json_decref(inst->options);
  pthread_mutex_destroy(&inst->op_lock);
  memset(inst, 0, sizeof(*inst));
}

static void *sess_open(struct plugin_instance *inst)
{
  struct provd_err err = { { 0 }, { 0 } };
  void *s = NULL;
  ck_assert_msg(ops()->session_open(inst->state, &s, &err) == PROVD_OK,
                "%s", err.msg);
  return s;
}

/* ---- raw plugin records ---- */

struct got {
  int calls;
  char id[128], etag[64], body[256], group[64], hub[64], kind[64];
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
  copy_str(g->kind, sizeof(g->kind), r->kind);
  g->created = r->created_ms;
  g->updated = r->updated_ms;
  return PROVD_OK;
}

static struct provd_record rec(const char *id, const char *etag,
                               const char *body)
{
  struct provd_record r = { .struct_size = sizeof(r), .id = id,
                            .etag = etag, .body_json = body,
                            .created_ms = 1000, .updated_ms = 2000 };
  return r;
}

static int put(void *s, enum provd_table t, const char *id,
               const char *etag, const char *if_match, int must_create)
{
  struct provd_err err = { { 0 }, { 0 } };
  struct provd_record r = rec(id, etag, "{\"v\":1}");
  return ops()->put(s, t, &r, if_match, must_create, &err);
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

static uint32_t header_u32(const char *path, off_t off)
{
  unsigned char b[4];
  int fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pread(fd, b, 4, off), 4);
  close(fd);
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

static void header_put_u32(const char *path, off_t off, uint32_t v)
{
  unsigned char b[4] = { v >> 24, v >> 16, v >> 8, v };
  int fd = open(path, O_WRONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pwrite(fd, b, 4, off), 4);
  close(fd);
}

/* SQLite header: user_version at byte 60, application_id at byte 68. */
#define HDR_USER_VERSION 60
#define HDR_APPLICATION_ID 68

START_TEST(test_migrations_fresh_and_reopen)
{
  struct plugin_instance inst;
  struct got g;
  inst_up(&inst, "full");
  struct stat sb;
  ck_assert_int_eq(stat(db_path, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0600);
  void *s = sess_open(&inst);
  for (int t = PROVD_TABLE_ENROLLMENTS; t <= PROVD_TABLE_CERTIFICATES; t++)
    ck_assert_int_eq(put(s, t, "rec-1", "e1", NULL, 1), PROVD_OK);
  ops()->session_close(s);
  inst_down(&inst);
  /* Closed cleanly: the WAL is checkpointed into the main file. */
  ck_assert_uint_eq(header_u32(db_path, HDR_USER_VERSION),
                    PROVD_SQLITE_SCHEMA_VERSION);
  ck_assert_uint_eq(header_u32(db_path, HDR_APPLICATION_ID),
                    PROVD_SQLITE_APPLICATION_ID);

  /* Migrations use plain CREATE TABLE: re-running one would fail. */
  inst_up(&inst, "normal");
  s = sess_open(&inst);
  for (int t = PROVD_TABLE_ENROLLMENTS; t <= PROVD_TABLE_CERTIFICATES; t++) {
    ck_assert_int_eq(get(s, t, "rec-1", &g), PROVD_OK);
    ck_assert_str_eq(g.etag, "e1");
  }
  ops()->session_close(s);
  inst_down(&inst);
  ck_assert_uint_eq(header_u32(db_path, HDR_USER_VERSION),
                    PROVD_SQLITE_SCHEMA_VERSION);
}
END_TEST

START_TEST(test_refuses_newer_and_foreign_db)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  inst_down(&inst);
  header_put_u32(db_path, HDR_USER_VERSION, PROVD_SQLITE_SCHEMA_VERSION + 1);
  json_t *o = options("full");
  ck_assert_int_eq(inst_try_up(&inst, o, &err), PROVD_E_UNSUPPORTED);
  ck_assert_str_eq(err.code, "STORE_SCHEMA");
  ck_assert_ptr_nonnull(strstr(err.msg, "newer"));
  json_decref(o);

  header_put_u32(db_path, HDR_USER_VERSION, PROVD_SQLITE_SCHEMA_VERSION);
  header_put_u32(db_path, HDR_APPLICATION_ID, 0x12345678);
  o = options("full");
  ck_assert_int_eq(inst_try_up(&inst, o, &err), PROVD_E_CONFIG);
  ck_assert_str_eq(err.code, "STORE_SCHEMA");
  ck_assert_ptr_nonnull(strstr(err.msg, "not a provd database"));
  json_decref(o);
}
END_TEST

START_TEST(test_configure_errors)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  json_t *o = json_object();
  ck_assert_int_eq(inst_try_up(&inst, o, &err), PROVD_E_CONFIG);
  ck_assert_ptr_nonnull(strstr(err.msg, "path"));
  json_decref(o);
  o = options("sometimes");
  ck_assert_int_eq(inst_try_up(&inst, o, &err), PROVD_E_CONFIG);
  ck_assert_ptr_nonnull(strstr(err.msg, "synchronous"));
  json_decref(o);
  o = options("full");
  json_object_set_new(o, "mmap_size", json_integer(-1));
  ck_assert_int_eq(inst_try_up(&inst, o, &err), PROVD_E_CONFIG);
  ck_assert_ptr_nonnull(strstr(err.msg, "mmap_size"));
  json_decref(o);
  o = options("full");
  json_object_set_new(o, "path", json_string("/nonexistent-dir/x/provd.db"));
  ck_assert_int_eq(inst_try_up(&inst, o, &err), PROVD_E_IO);
  ck_assert_str_eq(err.code, "STORE_IO");
  json_decref(o);
}
END_TEST

START_TEST(test_crud_each_table)
{
  struct plugin_instance inst;
  struct got g;
  inst_up(&inst, "full");
  void *s = sess_open(&inst);
  for (int t = PROVD_TABLE_ENROLLMENTS; t <= PROVD_TABLE_CERTIFICATES; t++) {
    struct provd_err err = { { 0 }, { 0 } };
    struct provd_record r = rec("Dev-1", "e1", "{\"a\":[1,2]}");
    r.group_id = "grp";
    r.hub = "hub-a";
    r.kind = "x509";
    ck_assert_int_eq(ops()->put(s, t, &r, NULL, 0, &err), PROVD_OK);
    ck_assert_int_eq(get(s, t, "dev-1", &g), PROVD_OK); /* any case */
    ck_assert_int_eq(g.calls, 1);
    ck_assert_str_eq(g.id, "Dev-1");
    ck_assert_str_eq(g.etag, "e1");
    ck_assert_str_eq(g.body, "{\"a\":[1,2]}");
    ck_assert_str_eq(g.group, "grp");
    ck_assert_str_eq(g.hub, "hub-a");
    ck_assert_str_eq(g.kind, "x509");
    ck_assert_int_eq(g.created, 1000);
    ck_assert_int_eq(g.updated, 2000);
    /* Unconditional put with another case replaces the same record. */
    ck_assert_int_eq(put(s, t, "DEV-1", "e2", NULL, 0), PROVD_OK);
    uint64_t n = 0;
    ck_assert_int_eq(ops()->count(s, t, NULL, &n, &err), PROVD_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(get(s, t, "dEv-1", &g), PROVD_OK);
    ck_assert_str_eq(g.etag, "e2");
    ck_assert_str_eq(g.group, "(null)");
    ck_assert_int_eq(del(s, t, "DEV-1", NULL), PROVD_OK);
    ck_assert_int_eq(get(s, t, "dev-1", &g), PROVD_NOT_FOUND);
    ck_assert_int_eq(g.calls, 0);
    ck_assert_int_eq(del(s, t, "dev-1", NULL), PROVD_NOT_FOUND);
  }
  /* Tables are separate. */
  ck_assert_int_eq(put(s, PROVD_TABLE_HUBS, "only-hub", "e", NULL, 1),
                   PROVD_OK);
  ck_assert_int_eq(get(s, PROVD_TABLE_REGISTRATIONS, "only-hub", &g),
                   PROVD_NOT_FOUND);
  struct provd_err err = { { 0 }, { 0 } };
  ck_assert_int_eq(ops()->get(s, 99, "x", got_one, &g, &err), PROVD_E_INVAL);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

/* Every if_match / must_create outcome, in autocommit mode and inside a
 * caller's transaction. */
static void check_conditions(void *s, enum provd_table t)
{
  struct got g;
  ck_assert_int_eq(put(s, t, "c-1", "e1", NULL, 1), PROVD_OK);
  ck_assert_int_eq(put(s, t, "C-1", "e9", NULL, 1), PROVD_EXISTS);
  ck_assert_int_eq(put(s, t, "c-2", "e1", "*", 0), PROVD_NOT_FOUND);
  ck_assert_int_eq(put(s, t, "c-2", "e1", "e1", 0), PROVD_NOT_FOUND);
  ck_assert_int_eq(put(s, t, "c-2", "e1", "*", 1), PROVD_NOT_FOUND);
  ck_assert_int_eq(put(s, t, "c-1", "e1", "*", 1), PROVD_EXISTS);
  ck_assert_int_eq(get(s, t, "c-2", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(put(s, t, "c-1", "e2", "*", 0), PROVD_OK);
  ck_assert_int_eq(put(s, t, "c-1", "e3", "e1", 0),
                   PROVD_PRECONDITION_FAILED);
  ck_assert_int_eq(get(s, t, "c-1", &g), PROVD_OK);
  ck_assert_str_eq(g.etag, "e2"); /* unchanged by the failed put */
  ck_assert_int_eq(put(s, t, "C-1", "e3", "e2", 0), PROVD_OK);
  ck_assert_int_eq(del(s, t, "c-1", "e2"), PROVD_PRECONDITION_FAILED);
  ck_assert_int_eq(get(s, t, "c-1", &g), PROVD_OK);
  ck_assert_int_eq(del(s, t, "c-9", "e2"), PROVD_NOT_FOUND);
  ck_assert_int_eq(del(s, t, "c-9", "*"), PROVD_NOT_FOUND);
  ck_assert_int_eq(del(s, t, "c-1", "e3"), PROVD_OK);
  ck_assert_int_eq(get(s, t, "c-1", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(put(s, t, "c-1", "e1", NULL, 1), PROVD_OK);
  ck_assert_int_eq(del(s, t, "c-1", "*"), PROVD_OK);
}

START_TEST(test_if_match_and_must_create)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  void *s = sess_open(&inst);
  check_conditions(s, PROVD_TABLE_ENROLLMENTS);
  ck_assert_int_eq(ops()->tx_begin(s, &err), PROVD_OK);
  check_conditions(s, PROVD_TABLE_REGISTRATIONS);
  ck_assert_int_eq(ops()->tx_commit(s, &err), PROVD_OK);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

struct ids {
  int n;
  char id[64][32];
};

static int collect_id(void *ud, const struct provd_record *r)
{
  struct ids *v = ud;
  ck_assert_int_lt(v->n, 64);
  snprintf(v->id[v->n++], sizeof(v->id[0]), "%s", r->id);
  return PROVD_OK;
}

static int stop_after_two(void *ud, const struct provd_record *r)
{
  struct ids *v = ud;
  collect_id(v, r);
  return v->n == 2 ? PROVD_DECLINED : PROVD_OK;
}

static struct ids list_ids(void *s, enum provd_table t,
                           const struct provd_query *q)
{
  struct ids v = { 0 };
  struct provd_err err = { { 0 }, { 0 } };
  ck_assert_int_eq(ops()->list(s, t, q, collect_id, &v, &err), PROVD_OK);
  return v;
}

static uint64_t count_of(void *s, enum provd_table t,
                         const struct provd_query *q)
{
  struct provd_err err = { { 0 }, { 0 } };
  uint64_t n = 0;
  ck_assert_int_eq(ops()->count(s, t, q, &n, &err), PROVD_OK);
  return n;
}

START_TEST(test_list_filters_and_count)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  void *s = sess_open(&inst);
  /* Mixed case, inserted out of order. */
  static const char *const ids[] = { "d07", "D03", "d10", "d01", "D05",
                                     "d02", "d09", "D04", "d08", "d06" };
  for (int i = 0; i < 10; i++) {
    struct provd_record r = rec(ids[i], "e", "{}");
    int num = (ids[i][1] - '0') * 10 + (ids[i][2] - '0');
    r.group_id = num % 2 ? "odd" : "even";
    r.hub = num <= 5 ? "hub-low" : "hub-high";
    ck_assert_int_eq(ops()->put(s, PROVD_TABLE_REGISTRATIONS, &r, NULL, 1,
                                &err),
                     PROVD_OK);
    r.kind = num <= 3 ? "tpm" : "x509";
    r.group_id = r.hub = NULL;
    ck_assert_int_eq(ops()->put(s, PROVD_TABLE_ENROLLMENTS, &r, NULL, 1,
                                &err),
                     PROVD_OK);
  }
  struct ids all = list_ids(s, PROVD_TABLE_REGISTRATIONS, NULL);
  ck_assert_int_eq(all.n, 10);
  for (int i = 0; i < 10; i++) {
    char want[8];
    snprintf(want, sizeof(want), "d%02d", i + 1);
    ck_assert_int_eq(strcasecmp(all.id[i], want), 0);
  }
  /* Paging with after_id + limit visits each row once, in order. */
  struct provd_query q = { .struct_size = sizeof(q), .limit = 3 };
  int seen = 0;
  for (int page = 0; page < 10; page++) {
    struct ids p = list_ids(s, PROVD_TABLE_REGISTRATIONS, &q);
    ck_assert_int_le(p.n, 3);
    for (int i = 0; i < p.n; i++)
      ck_assert_str_eq(p.id[i], all.id[seen++]);
    if (p.n < 3)
      break;
    static char after[32];
    snprintf(after, sizeof(after), "%s", p.id[p.n - 1]);
    q.after_id = after;
  }
  ck_assert_int_eq(seen, 10);
  /* after_id compares case-insensitively. */
  struct provd_query qa = { .struct_size = sizeof(qa), .after_id = "D08" };
  struct ids tail = list_ids(s, PROVD_TABLE_REGISTRATIONS, &qa);
  ck_assert_int_eq(tail.n, 2);
  ck_assert_str_eq(tail.id[0], "d09");
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_REGISTRATIONS, &qa), 2);

  struct provd_query qg = { .struct_size = sizeof(qg), .group_id = "odd" };
  struct ids odd = list_ids(s, PROVD_TABLE_REGISTRATIONS, &qg);
  ck_assert_int_eq(odd.n, 5);
  ck_assert_int_eq(strcasecmp(odd.id[0], "d01"), 0);
  ck_assert_int_eq(strcasecmp(odd.id[4], "d09"), 0);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_REGISTRATIONS, &qg), 5);

  struct provd_query qgh = { .struct_size = sizeof(qgh), .group_id = "even",
                             .hub = "hub-low" };
  struct ids low_even = list_ids(s, PROVD_TABLE_REGISTRATIONS, &qgh);
  ck_assert_int_eq(low_even.n, 2); /* d02, d04 */
  ck_assert_int_eq(strcasecmp(low_even.id[1], "d04"), 0);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_REGISTRATIONS, &qgh), 2);

  struct provd_query qh = { .struct_size = sizeof(qh), .hub = "hub-high",
                            .limit = 2 };
  ck_assert_int_eq(list_ids(s, PROVD_TABLE_REGISTRATIONS, &qh).n, 2);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_REGISTRATIONS, &qh), 5);

  struct provd_query qk = { .struct_size = sizeof(qk), .kind = "tpm" };
  struct ids tpm = list_ids(s, PROVD_TABLE_ENROLLMENTS, &qk);
  ck_assert_int_eq(tpm.n, 3);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_ENROLLMENTS, &qk), 3);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_ENROLLMENTS, NULL), 10);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_HUBS, NULL), 0);

  /* A callback can stop the listing early. */
  struct ids two = { 0 };
  ck_assert_int_eq(ops()->list(s, PROVD_TABLE_REGISTRATIONS, NULL,
                               stop_after_two, &two, &err),
                   PROVD_OK);
  ck_assert_int_eq(two.n, 2);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

/* ABI 1.8 backup: the copy holds what was committed when it began, not
 * another session's open transaction, and opens as a store of its own. */
START_TEST(test_backup_is_a_consistent_copy)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  struct got g;
  char copy[600];
  snprintf(copy, sizeof(copy), "%s/copy.db", tmp);
  inst_up(&inst, "full");
  void *writer = sess_open(&inst);
  void *other = sess_open(&inst);
  ck_assert_int_eq(put(writer, PROVD_TABLE_REGISTRATIONS, "committed", "e1",
                       NULL, 1), PROVD_OK);
  ck_assert_int_eq(ops()->tx_begin(writer, &err), PROVD_OK);
  ck_assert_int_eq(put(writer, PROVD_TABLE_REGISTRATIONS, "open-tx", "e1",
                       NULL, 1), PROVD_OK);
  ck_assert_int_eq(ops()->backup(writer, copy, &err), PROVD_E_INVAL);
  ck_assert_int_eq(ops()->backup(other, copy, &err), PROVD_OK);
  ck_assert_int_eq(ops()->backup(other, copy, &err), PROVD_EXISTS);
  ck_assert_int_eq(ops()->tx_commit(writer, &err), PROVD_OK);
  struct stat sb;
  ck_assert_int_eq(stat(copy, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0600);
  ops()->session_close(other);
  ops()->session_close(writer);
  inst_down(&inst);

  snprintf(db_path, sizeof(db_path), "%s", copy);
  inst_up(&inst, "full");
  void *s = sess_open(&inst);
  ck_assert_int_eq(get(s, PROVD_TABLE_REGISTRATIONS, "committed", &g),
                   PROVD_OK);
  ck_assert_int_eq(get(s, PROVD_TABLE_REGISTRATIONS, "open-tx", &g),
                   PROVD_NOT_FOUND);
  ops()->session_close(s);
  inst_down(&inst);
  ck_assert_uint_eq(header_u32(copy, HDR_USER_VERSION),
                    PROVD_SQLITE_SCHEMA_VERSION);
}
END_TEST

START_TEST(test_tx_rollback_and_savepoints)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  struct got g;
  enum provd_table t = PROVD_TABLE_REGISTRATIONS;
  inst_up(&inst, "full");
  void *s = sess_open(&inst);
  void *other = sess_open(&inst);

  ck_assert_int_eq(ops()->tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(put(s, t, "r-1", "e", NULL, 1), PROVD_OK);
  ck_assert_int_eq(put(s, t, "r-2", "e", NULL, 1), PROVD_OK);
  ck_assert_int_eq(get(other, t, "r-1", &g), PROVD_NOT_FOUND); /* isolated */
  ck_assert_int_eq(ops()->tx_rollback(s, &err), PROVD_OK);
  ck_assert_int_eq(get(s, t, "r-1", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(count_of(s, t, NULL), 0);

  /* Inner rollback keeps the outer work. */
  ck_assert_int_eq(ops()->tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(put(s, t, "a", "e", NULL, 1), PROVD_OK);
  ck_assert_int_eq(ops()->tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(put(s, t, "b", "e", NULL, 1), PROVD_OK);
  ck_assert_int_eq(ops()->tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(put(s, t, "b2", "e", NULL, 1), PROVD_OK);
  ck_assert_int_eq(ops()->tx_commit(s, &err), PROVD_OK); /* into b's level */
  ck_assert_int_eq(ops()->tx_rollback(s, &err), PROVD_OK);
  ck_assert_int_eq(put(s, t, "c", "e", NULL, 1), PROVD_OK);
  ck_assert_int_eq(ops()->tx_commit(s, &err), PROVD_OK);
  ck_assert_int_eq(get(other, t, "a", &g), PROVD_OK);
  ck_assert_int_eq(get(other, t, "b", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(get(other, t, "b2", &g), PROVD_NOT_FOUND);
  ck_assert_int_eq(get(other, t, "c", &g), PROVD_OK);

  /* A committed savepoint is still undone by the outer rollback. */
  ck_assert_int_eq(ops()->tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(ops()->tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(put(s, t, "d", "e", NULL, 1), PROVD_OK);
  ck_assert_int_eq(ops()->tx_commit(s, &err), PROVD_OK);
  ck_assert_int_eq(ops()->tx_rollback(s, &err), PROVD_OK);
  ck_assert_int_eq(get(s, t, "d", &g), PROVD_NOT_FOUND);

  /* Unbalanced calls are refused, not silently ignored. */
  ck_assert_int_eq(ops()->tx_commit(s, &err), PROVD_E_INVAL);
  ck_assert_int_eq(ops()->tx_rollback(s, &err), PROVD_E_INVAL);
  ops()->session_close(other);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

static int collect_event(void *ud, const struct provd_outbox_event *ev)
{
  struct ids *v = ud;
  ck_assert_int_lt(v->n, 64);
  snprintf(v->id[v->n++], sizeof(v->id[0]), "%llu:%s:%s",
           (unsigned long long)ev->seq, ev->type,
           ev->subject ? ev->subject : "-");
  return PROVD_OK;
}

/* ---- the core store ---- */

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;                 /* done() calls */
  int status[512];
  char code[512][32];
  int calls[512];
  int gate_open, gate_entered;
};

static void waiter_init(struct waiter *w)
{
  memset(w, 0, sizeof(*w));
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

static void waiter_wait(struct waiter *w, int n)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&w->mu);
  while (w->done < n)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
      break;
  int done = w->done;
  pthread_mutex_unlock(&w->mu);
  ck_assert_int_eq(done, n);
}

struct job {
  struct waiter *w;
  int index;
  enum { JOB_PUT, JOB_PUT_THEN_FAIL, JOB_UNBALANCED, JOB_GATE } kind;
  char id[32];
};

static int job_write(struct store_session *s, void *ud, struct provd_err *e)
{
  struct job *j = ud;
  if (j->kind == JOB_GATE) { /* holds the writer until released */
    pthread_mutex_lock(&j->w->mu);
    j->w->gate_entered = 1;
    pthread_cond_broadcast(&j->w->cv);
    while (!j->w->gate_open)
      pthread_cond_wait(&j->w->cv, &j->w->mu);
    pthread_mutex_unlock(&j->w->mu);
    return PROVD_OK;
  }
  struct store_rec r = { .id = j->id, .etag = (char *)"e",
                         .created_ms = 1, .updated_ms = 2 };
  r.body = json_pack("{s:i}", "n", j->index);
  int rc = store_put(s, PROVD_TABLE_REGISTRATIONS, &r, NULL, 1, e);
  json_decref(r.body);
  if (rc != PROVD_OK)
    return rc;
  if (j->kind == JOB_PUT_THEN_FAIL) {
    perr_set(e, "TEST_FAIL", "job %d fails on purpose", j->index);
    return PROVD_DENIED;
  }
  if (j->kind == JOB_UNBALANCED)
    return store_tx_begin(s, e); /* leaves a level open */
  return PROVD_OK;
}

static void job_done(void *ud, int status, const struct provd_err *err)
{
  struct job *j = ud;
  pthread_mutex_lock(&j->w->mu);
  j->w->status[j->index] = status;
  snprintf(j->w->code[j->index], sizeof(j->w->code[0]), "%s",
           err ? err->code : "");
  j->w->calls[j->index]++;
  j->w->done++;
  pthread_cond_broadcast(&j->w->cv);
  pthread_mutex_unlock(&j->w->mu);
}

static void gate_wait_entered(struct waiter *w)
{
  pthread_mutex_lock(&w->mu);
  while (!w->gate_entered)
    pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static void gate_open(struct waiter *w)
{
  pthread_mutex_lock(&w->mu);
  w->gate_open = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* The value of an unlabelled series in the metrics text, 0 if absent. */
static double metric_value(const char *name)
{
  char *text = metrics_render();
  double v = 0;
  char key[128];
  snprintf(key, sizeof(key), "\n%s ", name);
  const char *p = text ? strstr(text, key) : NULL;
  if (p)
    v = strtod(p + strlen(key), NULL);
  free(text);
  return v;
}

static struct store *open_store(struct plugin_instance *inst, int readers,
                                size_t queue_max, size_t batch_max)
{
  struct provd_err err = { { 0 }, { 0 } };
  struct store_opts o = { .readers = readers, .queue_max = queue_max,
                          .batch_max = batch_max };
  struct store *st = NULL;
  ck_assert_msg(store_open(inst, &o, &st, &err) == PROVD_OK, "%s", err.msg);
  return st;
}

static int exists(struct store_session *s, const char *id)
{
  struct provd_err err = { { 0 }, { 0 } };
  struct store_rec r;
  int rc = store_get(s, PROVD_TABLE_REGISTRATIONS, id, &r, &err);
  if (rc == PROVD_OK)
    store_rec_clear(&r);
  ck_assert(rc == PROVD_OK || rc == PROVD_NOT_FOUND);
  return rc == PROVD_OK;
}

/* Queues `n` jobs behind a gate so that they form one batch. */
static void run_gated_batch(struct store *st, struct waiter *w,
                            struct job *jobs, int n)
{
  struct job gate = { .w = w, .index = n, .kind = JOB_GATE };
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &gate),
                   PROVD_OK);
  gate_wait_entered(w);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(store_submit_write(st, job_write, job_done, &jobs[i]),
                     PROVD_OK);
  gate_open(w);
  waiter_wait(w, n + 1);
}

START_TEST(test_store_group_commit_one_job_fails)
{
  struct plugin_instance inst;
  struct waiter w;
  struct job jobs[40];
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 128, 64);
  waiter_init(&w);
  for (int i = 0; i < 40; i++) {
    jobs[i] = (struct job){ .w = &w, .index = i, .kind = JOB_PUT };
    snprintf(jobs[i].id, sizeof(jobs[i].id), "dev-%02d", i);
  }
  jobs[17].kind = JOB_PUT_THEN_FAIL;
  snprintf(jobs[25].id, sizeof(jobs[25].id), "DEV-03"); /* duplicate id */
  double batches0 = metric_value("provd_store_write_batches_total");
  run_gated_batch(st, &w, jobs, 40);
  /* The gate's batch plus one batch for all 40 jobs. */
  ck_assert_int_eq(
      (int)(metric_value("provd_store_write_batches_total") - batches0), 2);
  struct provd_err err = { { 0 }, { 0 } };
  struct store_session *s = store_session_open(st, &err);
  ck_assert_ptr_nonnull(s);
  for (int i = 0; i < 40; i++) {
    ck_assert_int_eq(w.calls[i], 1);
    if (i == 17) {
      ck_assert_int_eq(w.status[i], PROVD_DENIED);
      ck_assert_str_eq(w.code[i], "TEST_FAIL");
      ck_assert(!exists(s, jobs[i].id)); /* its savepoint rolled back */
    } else if (i == 25) {
      ck_assert_int_eq(w.status[i], PROVD_EXISTS);
    } else {
      ck_assert_int_eq(w.status[i], PROVD_OK);
      ck_assert(exists(s, jobs[i].id));
    }
  }
  uint64_t n = 0;
  ck_assert_int_eq(store_count(s, PROVD_TABLE_REGISTRATIONS, NULL, &n, &err),
                   PROVD_OK);
  ck_assert_uint_eq(n, 38);
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

static double mono_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* A registration's read: it submits its write from the writer, as the
 * engine does. */
struct reg_like {
  struct store *st;
  struct job *write;
};

static void read_then_write(struct store_session *s, void *ud)
{
  (void)s;
  struct reg_like *r = ud;
  ck_assert_int_eq(store_submit_write(r->st, job_write, job_done, r->write),
                   PROVD_OK);
}

static double elapsed_until_done(struct waiter *w, int n, double t0)
{
  waiter_wait(w, n);
  return mono_ms() - t0;
}

/* storage.commit_window: after a commit that held several writes, a
 * registration (a read that ends in a write) makes the writer wait for
 * the window before the next transaction, so a registration arriving
 * later shares its commit (no answer before it).  Other writes never
 * wait, nor does a registration after a commit of one write (a quiet
 * server). */
START_TEST(test_store_commit_window)
{
  enum { WINDOW_MS = 100 };
  struct plugin_instance inst;
  struct waiter w;
  struct job jobs[6];
  inst_up(&inst, "full");
  struct provd_err err = { { 0 }, { 0 } };
  struct store_opts o = { .readers = 1, .queue_max = 64, .batch_max = 64,
                          .commit_window_us = WINDOW_MS * 1000L };
  struct store *st = NULL;
  ck_assert_msg(store_open(&inst, &o, &st, &err) == PROVD_OK, "%s", err.msg);
  waiter_init(&w);
  for (int i = 0; i < 6; i++) { /* index 2 is the gate's */
    jobs[i] = (struct job){ .w = &w, .index = i < 2 ? i : i + 1,
                            .kind = JOB_PUT };
    snprintf(jobs[i].id, sizeof(jobs[i].id), "win-%d", i);
  }
  /* A gate (one write, committed alone), then a batch of two: busy. */
  run_gated_batch(st, &w, jobs, 2);
  double batches0 = metric_value("provd_store_write_batches_total");
  struct reg_like r1 = { st, &jobs[2] }, r2 = { st, &jobs[3] };
  double t0 = mono_ms();
  ck_assert_int_eq(store_submit_read_on_writer(st, read_then_write, &r1),
                   PROVD_OK);
  usleep(WINDOW_MS * 1000 / 4);
  pthread_mutex_lock(&w.mu);
  int answered_early = w.calls[3];
  pthread_mutex_unlock(&w.mu);
  ck_assert_int_eq(answered_early, 0); /* waiting for company */
  ck_assert_int_eq(store_submit_read_on_writer(st, read_then_write, &r2),
                   PROVD_OK);
  ck_assert_double_ge(elapsed_until_done(&w, 5, t0), WINDOW_MS);
  ck_assert_int_eq(w.status[3], PROVD_OK);
  ck_assert_int_eq(w.status[4], PROVD_OK);
  ck_assert_int_eq(
      (int)(metric_value("provd_store_write_batches_total") - batches0), 1);
  /* A plain write (the service API's) is committed at once, busy or not;
   * after that commit of one, so is a registration. */
  t0 = mono_ms();
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &jobs[4]),
                   PROVD_OK);
  ck_assert_double_lt(elapsed_until_done(&w, 6, t0), WINDOW_MS);
  struct reg_like r3 = { st, &jobs[5] };
  t0 = mono_ms();
  ck_assert_int_eq(store_submit_read_on_writer(st, read_then_write, &r3),
                   PROVD_OK);
  ck_assert_double_lt(elapsed_until_done(&w, 7, t0), WINDOW_MS);
  store_close(st);
  inst_down(&inst);
}
END_TEST

START_TEST(test_store_broken_batch_retries_alone)
{
  struct plugin_instance inst;
  struct waiter w;
  struct job jobs[10];
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 64, 64);
  waiter_init(&w);
  for (int i = 0; i < 10; i++) {
    jobs[i] = (struct job){ .w = &w, .index = i, .kind = JOB_PUT };
    snprintf(jobs[i].id, sizeof(jobs[i].id), "alone-%d", i);
  }
  jobs[4].kind = JOB_UNBALANCED;
  run_gated_batch(st, &w, jobs, 10);
  struct provd_err err = { { 0 }, { 0 } };
  struct store_session *s = store_session_open(st, &err);
  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq(w.calls[i], 1);
    ck_assert_int_eq(w.status[i], i == 4 ? PROVD_E_INTERNAL : PROVD_OK);
    ck_assert_int_eq(exists(s, jobs[i].id), i != 4);
  }
  store_session_close(s);
  /* The writer still works afterwards. */
  struct waiter w2;
  waiter_init(&w2);
  struct job after = { .w = &w2, .index = 0, .kind = JOB_PUT,
                       .id = "after" };
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &after),
                   PROVD_OK);
  waiter_wait(&w2, 1);
  ck_assert_int_eq(w2.status[0], PROVD_OK);
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* A storage plugin whose rollback fails like an I/O error would: the
 * real sqlite ops, except that the next `rollback_failures` tx_rollback
 * calls return PROVD_E_IO and leave SQLite's nesting as it was. */
static int rollback_failures;
static int (*real_tx_rollback)(void *, struct provd_err *);

static int flaky_tx_rollback(void *session, struct provd_err *err)
{
  if (__atomic_load_n(&rollback_failures, __ATOMIC_SEQ_CST) > 0) {
    __atomic_sub_fetch(&rollback_failures, 1, __ATOMIC_SEQ_CST);
    perr_set(err, "STORE_IO", "injected rollback failure");
    return PROVD_E_IO;
  }
  return real_tx_rollback(session, err);
}

static void make_rollback_flaky(struct plugin_instance *inst)
{
  static struct provd_plugin flaky_desc;
  static struct provd_storage_ops flaky_ops;
  flaky_ops = *ops();
  real_tx_rollback = flaky_ops.tx_rollback;
  flaky_ops.tx_rollback = flaky_tx_rollback;
  flaky_desc = *desc;
  flaky_desc.ops = &flaky_ops;
  inst->desc = &flaky_desc;
}

/* Whether another connection sees the row: only committed data counts. */
static int committed(struct store *st, const char *id)
{
  struct provd_err err = { { 0 }, { 0 } };
  struct store_session *s = store_session_open(st, &err);
  ck_assert_msg(s != NULL, "%s", err.msg);
  int found = exists(s, id);
  store_session_close(s);
  return found;
}

START_TEST(test_store_failed_rollback_never_reports_uncommitted)
{
  struct plugin_instance inst;
  struct waiter w;
  struct job jobs[6];
  inst_up(&inst, "full");
  make_rollback_flaky(&inst);
  struct store *st = open_store(&inst, 1, 64, 64);
  waiter_init(&w);
  for (int i = 0; i < 6; i++) {
    jobs[i] = (struct job){ .w = &w, .index = i, .kind = JOB_PUT };
    snprintf(jobs[i].id, sizeof(jobs[i].id), "rb-%d", i);
  }
  /* Job 2's savepoint rollback fails once; the writer must not go on
   * counting levels that SQLite still has open. */
  jobs[2].kind = JOB_PUT_THEN_FAIL;
  rollback_failures = 1;
  run_gated_batch(st, &w, jobs, 6);
  ck_assert_int_eq(rollback_failures, 0);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(w.calls[i], 1);
    ck_assert_int_eq(w.status[i], i == 2 ? PROVD_DENIED : PROVD_OK);
    /* done(OK) means committed: visible to another connection now. */
    int found = committed(st, jobs[i].id);
    ck_assert_msg(found == (i != 2), "job %d: done(%d) but committed=%d",
                  i, w.status[i], found);
  }
  store_close(st);
  inst_down(&inst);
}
END_TEST

struct read_job_ud {
  struct waiter *w;
  int index;
  pthread_t main_thread;
  char id[32];
};

static void job_read(struct store_session *s, void *ud)
{
  struct read_job_ud *r = ud;
  struct provd_err err = { { 0 }, { 0 } };
  struct store_rec rec;
  int rc = store_get(s, PROVD_TABLE_REGISTRATIONS, r->id, &rec, &err);
  int n = -1;
  if (rc == PROVD_OK) {
    n = (int)json_integer_value(json_object_get(rec.body, "n"));
    store_rec_clear(&rec);
  }
  pthread_mutex_lock(&r->w->mu);
  r->w->status[r->index] = rc == PROVD_OK ? n : -1000 + rc;
  r->w->calls[r->index] =
      pthread_equal(pthread_self(), r->main_thread) ? -1 : 1;
  r->w->done++;
  pthread_cond_broadcast(&r->w->cv);
  pthread_mutex_unlock(&r->w->mu);
}

START_TEST(test_store_async_reads)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 3, 256, 64);
  struct store_session *s = store_session_open(st, &err);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(store_tx_begin(s, &err), PROVD_OK);
  for (int i = 0; i < 50; i++) {
    char id[32];
    snprintf(id, sizeof(id), "r-%d", i);
    struct store_rec r = { .id = id, .created_ms = 1, .updated_ms = 1 };
    r.body = json_pack("{s:i}", "n", i * 7);
    ck_assert_int_eq(store_put(s, PROVD_TABLE_REGISTRATIONS, &r, NULL, 1,
                               &err),
                     PROVD_OK);
    json_decref(r.body);
  }
  ck_assert_int_eq(store_tx_commit(s, &err), PROVD_OK);
  store_session_close(s);

  struct waiter w;
  static struct read_job_ud reads[60];
  waiter_init(&w);
  for (int i = 0; i < 60; i++) {
    reads[i] = (struct read_job_ud){ .w = &w, .index = i,
                                     .main_thread = pthread_self() };
    snprintf(reads[i].id, sizeof(reads[i].id), "R-%d", i); /* any case */
    ck_assert_int_eq(store_submit_read(st, job_read, &reads[i]), PROVD_OK);
  }
  waiter_wait(&w, 60);
  for (int i = 0; i < 60; i++) {
    ck_assert_int_eq(w.calls[i], 1); /* ran on a reader thread */
    ck_assert_int_eq(w.status[i], i < 50 ? i * 7 : -1000 + PROVD_NOT_FOUND);
  }
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* A registration-shaped job: read, then submit a write from the read. */
struct read_write_ud {
  struct store *st;
  struct job write;       /* submitted from the read */
  pthread_t read_thread;  /* where the read ran */
  pthread_t write_thread; /* where the write ran (the writer) */
};

static int rw_write(struct store_session *s, void *ud, struct provd_err *e)
{
  struct read_write_ud *rw = (struct read_write_ud *)((char *)ud -
                             offsetof(struct read_write_ud, write));
  rw->write_thread = pthread_self();
  return job_write(s, ud, e);
}

static void rw_read(struct store_session *s, void *ud)
{
  struct read_write_ud *rw = ud;
  ck_assert_ptr_nonnull(s);
  pthread_mutex_lock(&rw->write.w->mu);
  rw->read_thread = pthread_self();
  pthread_cond_broadcast(&rw->write.w->cv);
  pthread_mutex_unlock(&rw->write.w->mu);
  if (store_submit_write(rw->st, rw_write, job_done, &rw->write) !=
      PROVD_OK)
    job_done(&rw->write, PROVD_E_UNAVAILABLE, NULL);
}

static void rw_init(struct read_write_ud *rw, struct store *st,
                    struct waiter *w, int index)
{
  memset(rw, 0, sizeof(*rw));
  rw->st = st;
  rw->write = (struct job){ .w = w, .index = index, .kind = JOB_PUT };
  snprintf(rw->write.id, sizeof(rw->write.id), "rw-%d", index);
}

/* An idle writer runs the read itself, then commits the read's write. */
START_TEST(test_store_read_for_write_idle_writer)
{
  struct plugin_instance inst;
  struct waiter w;
  static struct read_write_ud rw[50];
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 2, 64, 16);
  waiter_init(&w);
  /* The writer is idle once it waits for work; give it up to ~5 s to get
   * there (each attempt waits for the previous one to finish). */
  int on_writer = -1;
  for (int i = 0; i < 50 && on_writer < 0; i++) {
    rw_init(&rw[i], st, &w, i);
    ck_assert_int_eq(store_submit_read_for_write(st, rw_read, &rw[i]),
                     PROVD_OK);
    waiter_wait(&w, i + 1);
    ck_assert_int_eq(w.status[i], PROVD_OK);
    if (pthread_equal(rw[i].read_thread, rw[i].write_thread))
      on_writer = i;
    else
      usleep(100 * 1000);
  }
  ck_assert_msg(on_writer >= 0, "the read never ran on the idle writer");
  struct store_session *s = store_session_open(st, &err);
  ck_assert_ptr_nonnull(s);
  ck_assert(exists(s, rw[on_writer].write.id));
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* A busy writer is not kept from its batch: the read runs on a reader,
 * and its write is committed once the writer is free. */
START_TEST(test_store_read_for_write_busy_writer)
{
  struct plugin_instance inst;
  struct waiter w, wg;
  struct read_write_ud rw;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 2, 64, 16);
  waiter_init(&w);
  waiter_init(&wg);
  struct job gate = { .w = &wg, .index = 0, .kind = JOB_GATE };
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &gate),
                   PROVD_OK);
  gate_wait_entered(&wg); /* the writer is busy until the gate opens */
  rw_init(&rw, st, &w, 0);
  ck_assert_int_eq(store_submit_read_for_write(st, rw_read, &rw), PROVD_OK);
  /* The read runs while the writer is still held. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&w.mu);
  while (!rw.read_thread &&
         pthread_cond_timedwait(&w.cv, &w.mu, &until) != ETIMEDOUT)
    ;
  int ran = rw.read_thread != 0;
  pthread_mutex_unlock(&w.mu);
  ck_assert_msg(ran, "the read waited for the busy writer");
  gate_open(&wg);
  waiter_wait(&wg, 1);
  waiter_wait(&w, 1);
  ck_assert_int_eq(w.status[0], PROVD_OK);
  ck_assert(!pthread_equal(rw.read_thread, rw.write_thread));
  struct store_session *s = store_session_open(st, &err);
  ck_assert(exists(s, "rw-0"));
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* On the writer even when it is busy: the read waits its turn behind
 * the batch, runs on the writer, and its write joins the next batch. */
START_TEST(test_store_read_on_writer_waits_for_busy_writer)
{
  struct plugin_instance inst;
  struct waiter w, wg;
  struct read_write_ud rw;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 2, 64, 16);
  waiter_init(&w);
  waiter_init(&wg);
  struct job gate = { .w = &wg, .index = 0, .kind = JOB_GATE };
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &gate),
                   PROVD_OK);
  gate_wait_entered(&wg);
  rw_init(&rw, st, &w, 0);
  ck_assert_int_eq(store_submit_read_on_writer(st, rw_read, &rw), PROVD_OK);
  usleep(200 * 1000); /* a reader would have run it by now */
  pthread_mutex_lock(&w.mu);
  int ran_early = rw.read_thread != 0;
  pthread_mutex_unlock(&w.mu);
  ck_assert_msg(!ran_early, "the read ran while the writer was held");
  gate_open(&wg);
  waiter_wait(&wg, 1);
  waiter_wait(&w, 1);
  ck_assert_int_eq(w.status[0], PROVD_OK);
  ck_assert(pthread_equal(rw.read_thread, rw.write_thread));
  struct store_session *s = store_session_open(st, &err);
  ck_assert(exists(s, "rw-0"));
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

struct sees_ud {
  struct waiter *w;
  const char *id;
  int seen; /* 1: the record was there, 0: not, -1: not run */
};

static void read_sees(struct store_session *s, void *ud)
{
  struct sees_ud *u = ud;
  int seen = exists(s, u->id);
  pthread_mutex_lock(&u->w->mu);
  u->seen = seen;
  u->w->done++;
  pthread_cond_broadcast(&u->w->cv);
  pthread_mutex_unlock(&u->w->mu);
}

/* A read on the writer runs inside the batch's transaction, after the
 * writes queued before it: it sees them before they are committed. */
START_TEST(test_store_read_on_writer_sees_earlier_writes_of_its_batch)
{
  struct plugin_instance inst;
  struct waiter w, wg, wr;
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 2, 64, 16);
  waiter_init(&w);
  waiter_init(&wg);
  waiter_init(&wr);
  struct job gate = { .w = &wg, .index = 0, .kind = JOB_GATE };
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &gate),
                   PROVD_OK);
  gate_wait_entered(&wg);
  struct job put = { .w = &w, .index = 0, .kind = JOB_PUT };
  snprintf(put.id, sizeof(put.id), "batch-mate");
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &put),
                   PROVD_OK);
  struct sees_ud sees = { .w = &wr, .id = "batch-mate", .seen = -1 };
  ck_assert_int_eq(store_submit_read_on_writer(st, read_sees, &sees),
                   PROVD_OK);
  gate_open(&wg);
  waiter_wait(&wg, 1);
  waiter_wait(&wr, 1);
  waiter_wait(&w, 1);
  ck_assert_int_eq(w.status[0], PROVD_OK);
  ck_assert_int_eq(sees.seen, 1);
  store_close(st);
  inst_down(&inst);
}
END_TEST

static void read_gate(struct store_session *s, void *ud)
{
  (void)s;
  struct job gate = { .w = ud, .kind = JOB_GATE };
  struct provd_err err;
  job_write(NULL, &gate, &err);
}

static void read_noop(struct store_session *s, void *ud)
{
  (void)s;
  struct waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  w->done++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

START_TEST(test_store_queue_full)
{
  struct plugin_instance inst;
  struct waiter w, wr;
  struct job jobs[3];
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 2, 1);
  waiter_init(&w);
  struct job gate = { .w = &w, .index = 3, .kind = JOB_GATE };
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &gate),
                   PROVD_OK);
  gate_wait_entered(&w); /* the writer holds the gate; the queue is empty */
  for (int i = 0; i < 3; i++) {
    jobs[i] = (struct job){ .w = &w, .index = i, .kind = JOB_PUT };
    snprintf(jobs[i].id, sizeof(jobs[i].id), "q-%d", i);
  }
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &jobs[0]),
                   PROVD_OK);
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &jobs[1]),
                   PROVD_OK);
  ck_assert_int_eq(store_submit_write(st, job_write, job_done, &jobs[2]),
                   PROVD_E_UNAVAILABLE);

  /* Same for reads: one reader held, two queued, the third refused. */
  waiter_init(&wr);
  ck_assert_int_eq(store_submit_read(st, read_gate, &wr), PROVD_OK);
  gate_wait_entered(&wr);
  ck_assert_int_eq(store_submit_read(st, read_noop, &wr), PROVD_OK);
  ck_assert_int_eq(store_submit_read(st, read_noop, &wr), PROVD_OK);
  ck_assert_int_eq(store_submit_read(st, read_noop, &wr), PROVD_E_UNAVAILABLE);
  gate_open(&wr);
  waiter_wait(&wr, 2);

  gate_open(&w);
  waiter_wait(&w, 3); /* gate + two queued jobs; the refused one never */
  ck_assert_int_eq(w.calls[2], 0);
  ck_assert_int_eq(w.status[0], PROVD_OK);
  ck_assert_int_eq(w.status[1], PROVD_OK);
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* Challenge rounds through the core's wrappers and the sqlite plugin:
 * one per registration, never returned after expiry, bounded in count,
 * answered once, kept across a reopen of the database. */
START_TEST(test_store_challenges)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  const unsigned char s1[] = { 1, 2, 3, 0, 5 }, s2[] = { 9, 9 };
  struct store_challenge ch;
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 16, 16);
  struct store_session *s = store_session_open(st, &err);
  ck_assert_int_eq(store_challenge_get(s, "dev-1", 1000, &ch, &err),
                   PROVD_NOT_FOUND);
  ck_assert_int_eq(store_challenge_put(s, "dev-1", s1, sizeof(s1), 1000,
                                       2000, 2, &err),
                   PROVD_OK);
  ck_assert_int_eq(store_challenge_get(s, "DEV-1", 1999, &ch, &err),
                   PROVD_OK);
  ck_assert_uint_eq(ch.session_len, sizeof(s1));
  ck_assert_mem_eq(ch.session, s1, sizeof(s1));
  ck_assert_int_eq(ch.answered_ms, 0);
  store_challenge_clear(&ch);
  ck_assert_int_eq(store_challenge_get(s, "dev-1", 2000, &ch, &err),
                   PROVD_NOT_FOUND); /* expired */
  /* Answered once; a second answer is a replay. */
  ck_assert_int_eq(store_challenge_answer(s, "dev-1", 1500, &err), PROVD_OK);
  ck_assert_int_eq(store_challenge_answer(s, "dev-1", 1600, &err),
                   PROVD_EXISTS);
  ck_assert_int_eq(store_challenge_answer(s, "dev-9", 1600, &err),
                   PROVD_NOT_FOUND);
  ck_assert_int_eq(store_challenge_get(s, "dev-1", 1700, &ch, &err),
                   PROVD_OK);
  ck_assert_int_eq(ch.answered_ms, 1500);
  store_challenge_clear(&ch);
  /* A new challenge replaces the old one, unanswered. */
  ck_assert_int_eq(store_challenge_put(s, "dev-1", s2, sizeof(s2), 1800,
                                       5000, 2, &err),
                   PROVD_OK);
  ck_assert_int_eq(store_challenge_get(s, "dev-1", 1900, &ch, &err),
                   PROVD_OK);
  ck_assert_int_eq(ch.answered_ms, 0);
  ck_assert_mem_eq(ch.session, s2, sizeof(s2));
  store_challenge_clear(&ch);
  /* At most max_open (2) open: a third registration is refused until one
   * expires. */
  ck_assert_int_eq(store_challenge_put(s, "dev-2", s1, sizeof(s1), 1800,
                                       3000, 2, &err),
                   PROVD_OK);
  ck_assert_int_eq(store_challenge_put(s, "dev-3", s1, sizeof(s1), 1800,
                                       3000, 2, &err),
                   PROVD_E_UNAVAILABLE);
  ck_assert_str_eq(err.code, "THROTTLED");
  ck_assert_int_eq(store_challenge_put(s, "dev-3", s1, sizeof(s1), 3000,
                                       6000, 2, &err),
                   PROVD_OK); /* dev-2's expired and was deleted */
  ck_assert_int_eq(store_challenge_get(s, "dev-2", 1900, &ch, &err),
                   PROVD_NOT_FOUND);
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
  /* What a restart finds. */
  inst_up(&inst, "full");
  st = open_store(&inst, 1, 16, 16);
  s = store_session_open(st, &err);
  ck_assert_int_eq(store_challenge_get(s, "dev-1", 4000, &ch, &err),
                   PROVD_OK);
  ck_assert_mem_eq(ch.session, s2, sizeof(s2));
  store_challenge_clear(&ch);
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

START_TEST(test_store_outbox_order)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 16, 16);
  struct store_session *s = store_session_open(st, &err);
  uint64_t seq[4] = { 0 };
  json_t *body = json_pack("{s:s}", "hub", "hub-1");
  ck_assert_int_eq(store_tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(store_event(s, "enrollment.created", "dev-1", body,
                               &seq[0], &err),
                   PROVD_OK);
  ck_assert_int_eq(store_event(s, "device.assigned", "dev-1", body, &seq[1],
                               &err),
                   PROVD_OK);
  ck_assert_int_eq(store_tx_commit(s, &err), PROVD_OK);
  /* An event in a rolled back transaction never happened. */
  ck_assert_int_eq(store_tx_begin(s, &err), PROVD_OK);
  ck_assert_int_eq(store_event(s, "lost", "dev-2", NULL, &seq[2], &err),
                   PROVD_OK);
  ck_assert_int_eq(store_tx_rollback(s, &err), PROVD_OK);
  ck_assert_int_eq(store_event(s, "registration.failed", NULL, NULL, &seq[3],
                               &err),
                   PROVD_OK);
  json_decref(body);
  ck_assert_uint_lt(seq[0], seq[1]);
  ck_assert_uint_lt(seq[1], seq[3]);

  /* The store has no outbox reader; the notifier side uses the plugin. */
  void *ps = sess_open(&inst);
  struct ids ev = { 0 };
  ck_assert_int_eq(ops()->outbox_list(ps, 0, 0, collect_event, &ev, &err),
                   PROVD_OK);
  ck_assert_int_eq(ev.n, 3);
  char want[64];
  snprintf(want, sizeof(want), "%llu:enrollment.created:dev-1",
           (unsigned long long)seq[0]);
  ck_assert_str_eq(ev.id[0], want);
  snprintf(want, sizeof(want), "%llu:device.assigned:dev-1",
           (unsigned long long)seq[1]);
  ck_assert_str_eq(ev.id[1], want);
  snprintf(want, sizeof(want), "%llu:registration.failed:-",
           (unsigned long long)seq[3]);
  ck_assert_str_eq(ev.id[2], want);
  struct ids page = { 0 };
  ck_assert_int_eq(
      ops()->outbox_list(ps, seq[0], 1, collect_event, &page, &err),
      PROVD_OK);
  ck_assert_int_eq(page.n, 1);
  ck_assert_str_eq(page.id[0], ev.id[1]);
  ops()->session_close(ps);
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* ---- the journal's hash chain ---- */

static void put_events(struct store_session *s, int n)
{
  struct provd_err err = { { 0 }, { 0 } };
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof(id), "dev-%d", i);
    json_t *body = json_pack("{s:s}", "registrationId", id);
    ck_assert_int_eq(store_event(s, "device.assigned", id, body, NULL, &err),
                     PROVD_OK);
    json_decref(body);
  }
}

/* Rewrites one event's body behind the store's back, as an attacker
 * with the database file would. */
static void tamper_body(uint64_t seq, const char *body)
{
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "sqlite3 '%s' \"UPDATE outbox SET body = '%s' WHERE seq = %llu\"",
           db_path, body, (unsigned long long)seq);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_journal_chain_verify_and_trim)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 16, 16);
  struct store_session *s = store_session_open(st, &err);
  put_events(s, 5);
  struct journal_report r;
  ck_assert_int_eq(journal_verify(s, &r, &err), PROVD_OK);
  ck_assert_uint_eq(r.events, 5);
  ck_assert_uint_eq(r.broken_seq, 0);
  ck_assert_uint_eq(r.first_seq, 1);
  ck_assert_uint_eq(r.last_seq, 5);

  /* Retention keeps the chain verifiable from its anchor, and the next
   * event links to the newest kept one. */
  uint64_t removed = 0;
  ck_assert_int_eq(journal_trim(s, 3, &removed, &err), PROVD_OK);
  ck_assert_uint_eq(removed, 2);
  put_events(s, 1);
  ck_assert_int_eq(journal_verify(s, &r, &err), PROVD_OK);
  ck_assert_uint_eq(r.broken_seq, 0);
  ck_assert_uint_eq(r.first_seq, 3);
  ck_assert_uint_eq(r.events, 4);

  /* A modified event is named by its sequence number. */
  tamper_body(4, "{\"registrationId\":\"dev-X\"}");
  ck_assert_int_eq(journal_verify(s, &r, &err), PROVD_OK);
  ck_assert_uint_eq(r.broken_seq, 4);
  ck_assert_ptr_nonnull(strstr(r.problem, "modified"));
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* A session links its next event to the one it wrote last without
 * reading it back; a rollback or another writer must not leave a wrong
 * link behind. */
START_TEST(test_journal_head_cache_rollback_and_conflict)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 16, 16);
  struct store_session *a = store_session_open(st, &err);
  struct store_session *b = store_session_open(st, &err);
  put_events(a, 2);
  ck_assert_int_eq(store_tx_begin(a, &err), PROVD_OK);
  put_events(a, 1);
  ck_assert_int_eq(store_tx_rollback(a, &err), PROVD_OK);
  put_events(a, 1); /* links to event 2, not to the rolled back one */
  put_events(b, 1); /* another writer */
  json_t *body = json_pack("{s:s}", "registrationId", "late");
  ck_assert_int_eq(store_tx_begin(a, &err), PROVD_OK);
  ck_assert_int_eq(store_event(a, "device.assigned", "late", body, NULL,
                               &err),
                   PROVD_E_UNAVAILABLE);
  ck_assert_str_eq(err.code, "STORE_CONFLICT");
  ck_assert_int_eq(store_tx_rollback(a, &err), PROVD_OK);
  ck_assert_int_eq(store_event(a, "device.assigned", "late", body, NULL,
                               &err),
                   PROVD_OK); /* read the head again: fine now */
  json_decref(body);
  struct journal_report r;
  ck_assert_int_eq(journal_verify(a, &r, &err), PROVD_OK);
  ck_assert_msg(r.broken_seq == 0, "broken at %llu: %s",
                (unsigned long long)r.broken_seq, r.problem);
  ck_assert_uint_eq(r.events, 5);
  store_session_close(a);
  store_session_close(b);
  store_close(st);
  inst_down(&inst);
}
END_TEST

START_TEST(test_journal_removed_event_breaks_link)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 16, 16);
  struct store_session *s = store_session_open(st, &err);
  put_events(s, 4);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "sqlite3 '%s' 'DELETE FROM outbox WHERE seq = 2'",
           db_path);
  ck_assert_int_eq(system(cmd), 0);
  struct journal_report r;
  ck_assert_int_eq(journal_verify(s, &r, &err), PROVD_OK);
  ck_assert_uint_eq(r.broken_seq, 3);
  ck_assert_ptr_nonnull(strstr(r.problem, "prev_hash"));
  store_session_close(s);
  store_close(st);
  inst_down(&inst);
}
END_TEST

START_TEST(test_store_close_drains_queue)
{
  struct plugin_instance inst;
  struct waiter w;
  static struct job jobs[300];
  inst_up(&inst, "normal");
  struct store *st = open_store(&inst, 1, 512, 32);
  waiter_init(&w);
  for (int i = 0; i < 300; i++) {
    jobs[i] = (struct job){ .w = &w, .index = i, .kind = JOB_PUT };
    snprintf(jobs[i].id, sizeof(jobs[i].id), "drain-%d", i);
    ck_assert_int_eq(store_submit_write(st, job_write, job_done, &jobs[i]),
                     PROVD_OK);
  }
  store_close(st); /* returns once every queued job ran */
  ck_assert_int_eq(w.done, 300);
  for (int i = 0; i < 300; i++)
    ck_assert_int_eq(w.status[i % 512], PROVD_OK);
  inst_down(&inst);
  inst_up(&inst, "normal");
  void *s = sess_open(&inst);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_REGISTRATIONS, NULL), 300);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

/* store_generation: what group_cache relies on to know a copy is
 * current. */
static void put_group(struct store_session *s, const char *id)
{
  struct provd_err err = { { 0 }, { 0 } };
  json_t *body = json_pack("{s:s}", "enrollmentGroupId", id);
  struct store_rec r = { .id = (char *)id, .etag = (char *)"\"e\"",
                         .body = body };
  ck_assert_msg(store_put(s, PROVD_TABLE_ENROLLMENT_GROUPS, &r, NULL, 0,
                          &err) == PROVD_OK, "%s", err.msg);
  json_decref(body);
}

START_TEST(test_store_generation)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "normal");
  struct store *st = open_store(&inst, 1, 16, 16);
  struct store_session *a = store_session_open(st, &err);
  struct store_session *b = store_session_open(st, &err);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  enum provd_table g = PROVD_TABLE_ENROLLMENT_GROUPS;
  uint64_t g0 = store_generation(a, g);
  uint64_t h0 = store_generation(a, PROVD_TABLE_HUBS);
  ck_assert_uint_ne(g0, 0);
  ck_assert_uint_eq(store_generation(b, g), g0);

  put_group(a, "autocommitted"); /* outside a transaction */
  uint64_t g1 = store_generation(b, g);
  ck_assert_uint_ne(g1, g0);
  ck_assert_uint_eq(store_generation(a, g), g1); /* a is clean again */

  ck_assert_int_eq(store_tx_begin(a, &err), PROVD_OK);
  put_group(a, "in-a-transaction");
  /* a reads its own uncommitted write: nothing to share */
  ck_assert_uint_eq(store_generation(a, g), 0);
  uint64_t during = store_generation(b, g);
  ck_assert_uint_ne(during, g1);
  ck_assert_int_eq(store_tx_commit(a, &err), PROVD_OK);
  uint64_t after = store_generation(b, g);
  ck_assert_uint_ne(after, during); /* read during it, stale after it */
  ck_assert_uint_eq(store_generation(a, g), after);

  ck_assert_int_eq(store_tx_begin(a, &err), PROVD_OK);
  put_group(a, "rolled-back");
  uint64_t before_rollback = store_generation(b, g);
  ck_assert_int_eq(store_tx_rollback(a, &err), PROVD_OK);
  ck_assert_uint_ne(store_generation(b, g), before_rollback);
  ck_assert_uint_ne(store_generation(a, g), 0);

  /* other tables keep their number */
  ck_assert_uint_eq(store_generation(a, PROVD_TABLE_HUBS), h0);
  store_session_close(a);
  store_session_close(b);
  store_close(st);
  inst_down(&inst);
}
END_TEST

/* ---- durability across SIGKILL ---- */

#define CRASH_ROWS 500

struct crash_ctx {
  int fd;        /* pipe to the parent */
  int done, ok;
  pthread_mutex_t mu;
};

static int crash_write(struct store_session *s, void *ud,
                       struct provd_err *e)
{
  intptr_t i = (intptr_t)ud;
  char id[32];
  snprintf(id, sizeof(id), "crash-%04d", (int)i);
  struct store_rec r = { .id = id, .etag = (char *)"e", .created_ms = i,
                         .updated_ms = i };
  r.body = json_pack("{s:i}", "n", (int)i);
  int rc = store_put(s, PROVD_TABLE_REGISTRATIONS, &r, NULL, 1, e);
  json_decref(r.body);
  if (rc == PROVD_OK)
    rc = store_event(s, "device.assigned", id, NULL, NULL, e);
  return rc;
}

static struct crash_ctx crash;

/* On the writer thread: once every row is reported committed, tell the
 * parent and die without any cleanup. */
static void crash_done(void *ud, int status, const struct provd_err *err)
{
  (void)ud;
  (void)err;
  pthread_mutex_lock(&crash.mu);
  crash.done++;
  crash.ok += status == PROVD_OK;
  int all = crash.done == CRASH_ROWS;
  pthread_mutex_unlock(&crash.mu);
  if (!all)
    return;
  char msg[32];
  int n = snprintf(msg, sizeof(msg), "committed %d\n", crash.ok);
  if (write(crash.fd, msg, (size_t)n) != n)
    _exit(3);
  kill(getpid(), SIGKILL);
}

static void crash_child(int fd)
{
  struct plugin_instance inst;
  struct provd_err err = { { 0 }, { 0 } };
  struct store *st = NULL;
  struct store_opts o = { .readers = 1, .queue_max = 1024,
                          .batch_max = 64 };
  crash.fd = fd;
  pthread_mutex_init(&crash.mu, NULL);
  /* normal: the weaker setting still has to survive a process crash. */
  if (inst_try_up(&inst, options("normal"), &err) != PROVD_OK ||
      store_open(&inst, &o, &st, &err) != PROVD_OK)
    _exit(2);
  for (intptr_t i = 0; i < CRASH_ROWS; i++)
    if (store_submit_write(st, crash_write, crash_done, (void *)i) !=
        PROVD_OK)
      _exit(2);
  pause(); /* the writer thread kills the process */
  _exit(4);
}

START_TEST(test_crash_durability)
{
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    crash_child(fds[1]);
  }
  close(fds[1]);
  char buf[64] = { 0 };
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  int wstatus = 0;
  ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
  ck_assert_msg(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL,
                "child did not die by SIGKILL (status %d)", wstatus);
  ck_assert_int_gt(n, 0);
  char want[32];
  snprintf(want, sizeof(want), "committed %d\n", CRASH_ROWS);
  ck_assert_str_eq(buf, want);

  /* The WAL was never checkpointed; reopening must recover every row. */
  struct plugin_instance inst;
  struct got g;
  struct provd_err err = { { 0 }, { 0 } };
  inst_up(&inst, "full");
  void *s = sess_open(&inst);
  ck_assert_uint_eq(count_of(s, PROVD_TABLE_REGISTRATIONS, NULL),
                    CRASH_ROWS);
  for (int i = 0; i < CRASH_ROWS; i++) {
    char id[32], body[32];
    snprintf(id, sizeof(id), "crash-%04d", i);
    snprintf(body, sizeof(body), "{\"n\":%d}", i);
    ck_assert_int_eq(get(s, PROVD_TABLE_REGISTRATIONS, id, &g), PROVD_OK);
    ck_assert_str_eq(g.body, body);
  }
  struct ids ev = { 0 };
  ck_assert_int_eq(ops()->outbox_list(s, 0, 64, collect_event, &ev, &err),
                   PROVD_OK);
  ck_assert_int_eq(ev.n, 64);
  ops()->session_close(s);
  inst_down(&inst);
}
END_TEST

/* ---- throughput: the registration path writes one row per device ---- */

#define BENCH_ROWS 20000

struct bench_ctx {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, ok;
};

static int bench_write(struct store_session *s, void *ud,
                       struct provd_err *e)
{
  intptr_t i = (intptr_t)ud;
  char id[32];
  snprintf(id, sizeof(id), "bench-%06d", (int)i);
  struct store_rec r = { .id = id, .etag = (char *)"e", .hub = (char *)"h1",
                         .group_id = (char *)"g1" };
  r.body = json_pack("{s:s, s:s, s:s, s:s}", "registrationId", id,
                     "assignedHub", "hub-1.example.net", "deviceId", id,
                     "status", "assigned");
  int rc = store_put(s, PROVD_TABLE_REGISTRATIONS, &r, NULL, 0, e);
  json_decref(r.body);
  return rc;
}

static struct bench_ctx bench;

static void bench_done(void *ud, int status, const struct provd_err *err)
{
  (void)ud;
  (void)err;
  pthread_mutex_lock(&bench.mu);
  bench.done++;
  bench.ok += status == PROVD_OK;
  pthread_cond_broadcast(&bench.cv);
  pthread_mutex_unlock(&bench.mu);
}

START_TEST(test_store_write_throughput)
{
  struct plugin_instance inst;
  inst_up(&inst, "full");
  struct store *st = open_store(&inst, 1, 4096, 256);
  pthread_mutex_init(&bench.mu, NULL);
  pthread_cond_init(&bench.cv, NULL);
  double batches0 = metric_value("provd_store_write_batches_total");
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (intptr_t i = 0; i < BENCH_ROWS; i++) {
    /* Producers back off on E_UNAVAILABLE, as the engine does. */
    int tries = 0;
    while (store_submit_write(st, bench_write, bench_done, (void *)i) !=
           PROVD_OK) {
      ck_assert_int_lt(++tries, 100000);
      usleep(100);
    }
  }
  pthread_mutex_lock(&bench.mu);
  while (bench.done < BENCH_ROWS)
    pthread_cond_wait(&bench.cv, &bench.mu);
  pthread_mutex_unlock(&bench.mu);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  double batches = metric_value("provd_store_write_batches_total") - batches0;
  fprintf(stderr,
          "store: %d durable writes in %.3f s = %.0f/s, %.0f batches "
          "(mean %.1f jobs)\n",
          BENCH_ROWS, secs, BENCH_ROWS / secs, batches,
          batches > 0 ? BENCH_ROWS / batches : 0.0);
  ck_assert_int_eq(bench.ok, BENCH_ROWS);
  /* Group commit must batch: far fewer transactions than writes. */
  ck_assert(batches > 0 && batches < BENCH_ROWS / 4);
  store_close(st);
  inst_down(&inst);
}
END_TEST

static Suite *store_suite(void)
{
  Suite *s = suite_create("store");
  TCase *plugin = tcase_create("sqlite-plugin");
  tcase_add_checked_fixture(plugin, setup, teardown);
  tcase_add_test(plugin, test_migrations_fresh_and_reopen);
  tcase_add_test(plugin, test_refuses_newer_and_foreign_db);
  tcase_add_test(plugin, test_configure_errors);
  tcase_add_test(plugin, test_crud_each_table);
  tcase_add_test(plugin, test_if_match_and_must_create);
  tcase_add_test(plugin, test_list_filters_and_count);
  tcase_add_test(plugin, test_tx_rollback_and_savepoints);
  tcase_add_test(plugin, test_backup_is_a_consistent_copy);
  suite_add_tcase(s, plugin);
  TCase *core = tcase_create("core-store");
  tcase_add_checked_fixture(core, setup, teardown);
  tcase_set_timeout(core, 120);
  tcase_add_test(core, test_store_group_commit_one_job_fails);
  tcase_add_test(core, test_store_broken_batch_retries_alone);
  tcase_add_test(core, test_store_commit_window);
  tcase_add_test(core, test_store_failed_rollback_never_reports_uncommitted);
  tcase_add_test(core, test_store_async_reads);
  tcase_add_test(core, test_store_queue_full);
  tcase_add_test(core, test_store_read_for_write_idle_writer);
  tcase_add_test(core, test_store_read_for_write_busy_writer);
  tcase_add_test(core, test_store_read_on_writer_waits_for_busy_writer);
  tcase_add_test(core, test_store_read_on_writer_sees_earlier_writes_of_its_batch);
  tcase_add_test(core, test_store_outbox_order);
  tcase_add_test(core, test_store_challenges);
  tcase_add_test(core, test_journal_chain_verify_and_trim);
  tcase_add_test(core, test_journal_removed_event_breaks_link);
  tcase_add_test(core, test_journal_head_cache_rollback_and_conflict);
  tcase_add_test(core, test_store_close_drains_queue);
  tcase_add_test(core, test_store_generation);
  tcase_add_test(core, test_crash_durability);
  tcase_add_test(core, test_store_write_throughput);
  suite_add_tcase(s, core);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(store_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
