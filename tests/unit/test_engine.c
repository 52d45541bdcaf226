/* The registration engine driven through engine_submit() as a transport
 * drives it, with the real plugins (symmetric-key.so, hashed.so,
 * sqlite.so, loaded from a YAML config like the daemon's) over a
 * temporary SQLite file: enrollments, allocation, reprovisioning,
 * refusals, throttling and the poll cache. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "config/config.h"
#include "engine/allocation.h"
#include "engine/engine.h"
#include "plugin/loader.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/metrics.h"
#include "util/sas.h"

#define SCOPE "0ne00000001"
#define WAIT_S 20
#define HOUR 3600

/* The symmetric-key plugin without clock skew, so a token's reuse ends
 * exactly at its expiry; hashed allocation. */
static const char *const default_plugins =
    "  - { kind: attestation, name: symmetric-key,"
    " options: { clock_skew: 0s } }\n"
    "  - { kind: allocation, name: hashed }\n";

/* ---------------------------------------------------------------------
 * The rig: config + plugins + store + engine, as the daemon wires them.
 * ------------------------------------------------------------------- */

struct rig {
  char dir[256];
  char config_path[512];
  struct provd_config cfg;
  struct plugin_set plugins;
  struct store *store;
  struct engine *engine;
};

static struct rig rig;
/* Overrides of the rig's hubs: and extra top-level YAML (NULL: none). */
static const char *rig_hubs_yaml;
static const char *rig_extra_yaml;
static const char *const three_hubs =
    "  - { name: hub-1, hostname: hub-1.example.net }\n"
    "  - { name: hub-2, hostname: hub-2.example.net }\n"
    "  - { name: hub-3, hostname: hub-3.example.net }\n";
static char key1[96], key2[96]; /* base64 enrollment keys */

static void random_key(char *out, size_t cap)
{
  uint8_t raw[32];
  ck_assert_int_eq(RAND_bytes(raw, sizeof(raw)), 1);
  char *b64 = b64_encode(raw, sizeof(raw));
  ck_assert_ptr_nonnull(b64);
  ck_assert_uint_lt(strlen(b64), cap);
  snprintf(out, cap, "%s", b64);
  free(b64);
}

static void write_config(const char *plugins_yaml)
{
  const char *plugin_dir = getenv("PROVD_PLUGIN_DIR");
  const char *test_plugin_dir = getenv("PROVD_TEST_PLUGIN_DIR");
  ck_assert_msg(plugin_dir && test_plugin_dir,
                "PROVD_PLUGIN_DIR / PROVD_TEST_PLUGIN_DIR are not set");
  snprintf(rig.config_path, sizeof(rig.config_path), "%s/provd.yaml",
           rig.dir);
  FILE *f = fopen(rig.config_path, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "id_scope: " SCOPE "\n"
          "data_dir: %s\n"
          "plugin_path: [ '%s', '%s' ]\n"
          "%s"
          "hubs:\n%s"
          "plugins:\n%s",
          rig.dir, plugin_dir, test_plugin_dir,
          rig_extra_yaml ? rig_extra_yaml : "",
          rig_hubs_yaml ? rig_hubs_yaml : three_hubs, plugins_yaml);
  ck_assert_int_eq(fclose(f), 0);
}

/* readers / queue_max: the store's bounds (0: the store's defaults). */
static void rig_up(const char *plugins_yaml, int readers, size_t queue_max)
{
  memset(&rig, 0, sizeof(rig));
  snprintf(rig.dir, sizeof(rig.dir), "/tmp/provd-test-engine-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(rig.dir));
  write_config(plugins_yaml);
  struct diag d = {0};
  int rc = config_load(rig.config_path, &rig.cfg, &d);
  if (rc == 0)
    rc = plugins_load(&rig.cfg, &rig.plugins, &d);
  ck_assert_msg(rc == 0, "%s", d.n ? d.lines[0] : "config");
  diag_free(&d);
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(plugins_start(&rig.plugins, &err) == PROVD_OK, "%s",
                err.msg);
  struct store_opts so = {.readers = readers, .queue_max = queue_max};
  ck_assert_msg(store_open(plugins_nth(&rig.plugins, PROVD_KIND_STORAGE, 0),
                           &so, &rig.store, &err) == PROVD_OK,
                "%s", err.msg);
  ck_assert_int_eq(
      engine_new(&rig.cfg, rig.store, &rig.plugins, &rig.engine, &err),
      PROVD_OK);
}

static void rig_down(void)
{
  engine_free(rig.engine);
  store_close(rig.store);
  plugins_stop(&rig.plugins);
  plugins_free(&rig.plugins);
  config_free(&rig.cfg);
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rig.dir);
  ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
  random_key(key1, sizeof(key1));
  random_key(key2, sizeof(key2));
  rig_up(default_plugins, 0, 0);
}

static void teardown(void) { rig_down(); }

/* ---------------------------------------------------------------------
 * Records in the store, written on the test thread.
 * ------------------------------------------------------------------- */

static void put_record(enum provd_table t, const struct store_rec *rec)
{
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  ck_assert_msg(s != NULL, "%s", err.msg);
  ck_assert_msg(store_put(s, t, rec, NULL, 0, &err) == PROVD_OK, "%s",
                err.msg);
  store_session_close(s);
}

/* Returns PROVD_OK or PROVD_NOT_FOUND; out is filled on OK. */
static int get_record(enum provd_table t, const char *id,
                      struct store_rec *out)
{
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  ck_assert_msg(s != NULL, "%s", err.msg);
  int rc = store_get(s, t, id, out, &err);
  store_session_close(s);
  ck_assert_msg(rc == PROVD_OK || rc == PROVD_NOT_FOUND, "%s", err.msg);
  return rc;
}

/* An enrollment or group document as the service API stores it. */
static json_t *enrollment_doc(const char *id_field, const char *id,
                              const char *key)
{
  return json_pack("{s:s, s:{s:s, s:{s:s, s:s}}, s:s}", id_field, id,
                   "attestation", "type", "symmetricKey", "symmetricKey",
                   "primaryKey", key, "secondaryKey", key,
                   "provisioningStatus", "enabled");
}

static json_t *individual(const char *reg_id, const char *key)
{
  return enrollment_doc("registrationId", reg_id, key);
}

static json_t *group(const char *group_id, const char *key)
{
  return enrollment_doc("enrollmentGroupId", group_id, key);
}

/* Stores doc (taken) in table t under id. */
static void enroll_in(enum provd_table t, const char *id, json_t *doc)
{
  const char *type = json_string_value(
      json_object_get(json_object_get(doc, "attestation"), "type"));
  struct store_rec rec = {.id = (char *)id, .etag = (char *)"\"e\"",
                          .body = doc, .kind = (char *)type};
  put_record(t, &rec);
  json_decref(doc);
}

static void enroll(const char *reg_id, json_t *doc)
{
  enroll_in(PROVD_TABLE_ENROLLMENTS, reg_id, doc);
}

/* A "tpm" individual enrollment (the challenge test plugin reads no key). */
static void enroll_tpm(const char *reg_id)
{
  enroll(reg_id, json_pack("{s:s,s:{s:s,s:{s:s}},s:s}", "registrationId",
                           reg_id, "attestation", "type", "tpm", "tpm",
                           "endorsementKey", "AAAA", "provisioningStatus",
                           "enabled"));
}

static void enroll_group(const char *group_id, json_t *doc)
{
  enroll_in(PROVD_TABLE_ENROLLMENT_GROUPS, group_id, doc);
}

/* ---------------------------------------------------------------------
 * Tokens, signed with the enrollment key or the group-derived key.
 * ------------------------------------------------------------------- */

static char *token_until(const char *key_b64, int from_group,
                         const char *reg_id, int64_t se)
{
  char derived[96];
  if (from_group) {
    ck_assert_int_eq(sas_derive_device_key(key_b64, reg_id, derived,
                                           sizeof(derived)), 0);
    key_b64 = derived;
  }
  uint8_t key[64];
  size_t key_len = 0;
  ck_assert_int_eq(b64_decode(key_b64, key, sizeof(key), &key_len), 0);
  char resource[256];
  snprintf(resource, sizeof(resource), SCOPE "/registrations/%s", reg_id);
  char *tok = sas_build(resource, key, key_len, se, "registration");
  ck_assert_ptr_nonnull(tok);
  return tok;
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

static char *token(const char *key_b64, int from_group, const char *reg_id)
{
  return token_until(key_b64, from_group, reg_id, now_s() + HOUR);
}

/* ---------------------------------------------------------------------
 * Submitting and reading outcomes.  Only answer_take() reads a
 * struct reg_outcome: the one place to adapt when its shape changes.
 * ------------------------------------------------------------------- */

struct answer {
  int http_status;
  int error_code;   /* DPS errorCode of a refusal, else 0 */
  int retry_after_s;
  char reason[64];
  json_t *doc;      /* the success document, or NULL */
  struct engine_known *known; /* REG_AUTHENTICATE's, or NULL */
};

static void answer_take(struct answer *a, struct reg_outcome *o)
{
  memset(a, 0, sizeof(*a));
  a->http_status = o->http_status;
  a->error_code = o->error_code;
  a->retry_after_s = o->retry_after_s;
  snprintf(a->reason, sizeof(a->reason), "%s", o->reason);
  /* A refusal is shaped by the transport from {reason, status, code}; a
   * challenge is a 401 document without an error code. */
  if (o->error_code)
    ck_assert_ptr_null(o->body_text);
  else
    ck_assert(o->http_status < 400 ||
              (o->http_status == 401 && o->body_text));
  if (o->body_text)
    a->doc = json_loads(o->body_text, 0, NULL);
  free(o->body_text);
  a->known = o->known;
}

static void answer_clear(struct answer *a)
{
  json_decref(a->doc);
  a->doc = NULL;
  engine_known_free(a->known);
  a->known = NULL;
}

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  struct answer answer;
};

static void on_done(void *ud, struct reg_outcome *o)
{
  struct waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  ck_assert_int_eq(w->done, 0); /* exactly once */
  answer_take(&w->answer, o);
  w->done = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Submits without waiting; await_answer() collects and frees. */
static struct waiter *submit_async(struct reg_request *req)
{
  struct waiter *w = calloc(1, sizeof(*w));
  ck_assert_ptr_nonnull(w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  engine_submit(rig.engine, req, on_done, w);
  return w;
}

/* True once w was answered, waiting at most seconds. */
static int answered_within(struct waiter *w, int seconds)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += seconds;
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  while (!w->done && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
  int done = w->done;
  pthread_mutex_unlock(&w->mu);
  return done;
}

static struct answer await_answer(struct waiter *w)
{
  ck_assert_msg(answered_within(w, WAIT_S), "engine did not answer within %d s",
                WAIT_S);
  struct answer a = w->answer;
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
  return a;
}

static struct answer submit(struct reg_request *req)
{
  return await_answer(submit_async(req));
}

static struct reg_request *request(enum reg_op op, const char *reg_id,
                                   const char *operation_id,
                                   const char *authorization)
{
  struct reg_request *req = calloc(1, sizeof(*req));
  ck_assert_ptr_nonnull(req);
  req->op = op;
  snprintf(req->registration_id, sizeof(req->registration_id), "%s",
           reg_id);
  if (operation_id)
    snprintf(req->operation_id, sizeof(req->operation_id), "%s",
             operation_id);
  req->authorization = authorization ? strdup(authorization) : NULL;
  if (op == REG_REGISTER)
    req->body = json_pack("{s:s}", "registrationId", reg_id);
  snprintf(req->trace_id, sizeof(req->trace_id), "test-engine");
  return req;
}

/* A register call whose body carries "tpm" (the mechanism). */
static struct answer do_register_tpm(const char *reg_id, const char *auth)
{
  struct reg_request *req = request(REG_REGISTER, reg_id, NULL, auth);
  json_object_set_new(req->body, "tpm",
                      json_pack("{s:s}", "endorsementKey", "AAAA"));
  return submit(req);
}

static struct answer do_register(const char *reg_id, const char *auth)
{
  return submit(request(REG_REGISTER, reg_id, NULL, auth));
}

static struct answer do_poll(const char *reg_id, const char *operation_id,
                             const char *auth)
{
  return submit(request(REG_OPERATION_STATUS, reg_id, operation_id, auth));
}

/* register must answer 202 assigning; out gets its operation id. */
static void register_ok(const char *reg_id, const char *auth,
                        char out[128])
{
  struct answer a = do_register(reg_id, auth);
  ck_assert_msg(a.http_status == 202, "register %s: %d %s", reg_id,
                a.http_status, a.reason);
  ck_assert_int_gt(a.retry_after_s, 0);
  ck_assert_str_eq(json_string_value(json_object_get(a.doc, "status")),
                   "assigning");
  const char *op = json_string_value(json_object_get(a.doc, "operationId"));
  ck_assert_ptr_nonnull(op);
  snprintf(out, 128, "%s", op);
  answer_clear(&a);
}

/* The final state of a registration: register, then poll once.  Returns
 * the registrationState (caller decrefs) after checking the poll's own
 * status matches it. */
static json_t *register_and_poll(const char *reg_id, const char *auth)
{
  char op[128];
  register_ok(reg_id, auth, op);
  struct answer a = do_poll(reg_id, op, auth);
  ck_assert_msg(a.http_status == 200, "poll %s: %d %s", reg_id,
                a.http_status, a.reason);
  ck_assert_str_eq(json_string_value(json_object_get(a.doc, "operationId")),
                   op);
  json_t *state = json_incref(json_object_get(a.doc, "registrationState"));
  ck_assert_ptr_nonnull(state);
  ck_assert_str_eq(json_string_value(json_object_get(a.doc, "status")),
                   json_string_value(json_object_get(state, "status")));
  answer_clear(&a);
  return state;
}

/* register_and_poll with a fresh token of key (group-derived when
 * from_group). */
static json_t *state_after_register(const char *reg_id, const char *key,
                                    int from_group)
{
  char *tok = token(key, from_group, reg_id);
  json_t *st = register_and_poll(reg_id, tok);
  free(tok);
  return st;
}

/* The answer to a register call with a fresh token of key. */
static struct answer register_with_key(const char *reg_id, const char *key,
                                       int from_group)
{
  char *tok = token(key, from_group, reg_id);
  struct answer a = do_register(reg_id, tok);
  free(tok);
  return a;
}

static const char *field(const json_t *obj, const char *key)
{
  const char *v = json_string_value(json_object_get(obj, key));
  return v ? v : "(absent)";
}

/* Registers with a fresh token of key (individual enrollment) and checks
 * status, hub host name and substatus of the result. */
static void expect_assigned(const char *reg_id, const char *key,
                            const char *hub_host, const char *substatus)
{
  json_t *st = state_after_register(reg_id, key, 0);
  ck_assert_str_eq(field(st, "status"), "assigned");
  ck_assert_str_eq(field(st, "assignedHub"), hub_host);
  ck_assert_str_eq(field(st, "substatus"), substatus);
  json_decref(st);
}

static void expect_refused(struct answer a, int http_status,
                           const char *reason, int error_code)
{
  ck_assert_int_eq(a.http_status, http_status);
  ck_assert_str_eq(a.reason, reason);
  ck_assert_int_eq(a.error_code, error_code);
  answer_clear(&a);
}

/* The reason in the newest outbox event about subject ("" if none). */
struct last_event {
  const char *subject;
  char reason[64];
  char type[64];
};

static int note_event(void *ud, const struct provd_outbox_event *ev)
{
  struct last_event *le = ud;
  if (strcmp(ev->subject, le->subject) != 0)
    return 0;
  json_t *body = json_loads(ev->body_json, 0, NULL);
  snprintf(le->reason, sizeof(le->reason), "%s", field(body, "reason"));
  snprintf(le->type, sizeof(le->type), "%s", ev->type);
  json_decref(body);
  return 0;
}

static struct last_event last_event_of(const char *subject)
{
  struct last_event le = {.subject = subject};
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(store_events(s, 0, 10000, note_event, &le, &err),
                   PROVD_OK);
  store_session_close(s);
  return le;
}

static void expect_event_reason(const char *subject, const char *reason)
{
  ck_assert_str_eq(last_event_of(subject).reason, reason);
}

static void expect_event_type(const char *subject, const char *type)
{
  ck_assert_str_eq(last_event_of(subject).type, type);
}

/* Sets a top-level field of the stored individual enrollment. */
static void enrollment_set(const char *reg_id, const char *key,
                           json_t *value)
{
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_ENROLLMENTS, reg_id, &rec),
                   PROVD_OK);
  json_object_set_new(rec.body, key, value);
  put_record(PROVD_TABLE_ENROLLMENTS, &rec);
  store_rec_clear(&rec);
}

static json_t *policy(int update_hub, int migrate_data)
{
  return json_pack("{s:b, s:b}", "updateHubAssignment", update_hub,
                   "migrateDeviceData", migrate_data);
}

/* ---------------------------------------------------------------------
 * Individual and group enrollments.
 * ------------------------------------------------------------------- */

START_TEST(t_individual_enrollment_assigned)
{
  enroll("dev-1", individual("dev-1", key1));
  json_t *st = state_after_register("dev-1", key1, 0);
  ck_assert_str_eq(field(st, "registrationId"), "dev-1");
  ck_assert_str_eq(field(st, "deviceId"), "dev-1");
  ck_assert_str_eq(field(st, "status"), "assigned");
  ck_assert_str_eq(field(st, "substatus"), "initialAssignment");
  ck_assert_ptr_null(json_object_get(st, "symmetricKey"));
  json_decref(st);
  /* The record in the store says the same. */
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "dev-1", &rec),
                   PROVD_OK);
  ck_assert_ptr_nonnull(rec.hub);
  ck_assert_ptr_null(rec.group_id);
  store_rec_clear(&rec);
}
END_TEST

START_TEST(t_individual_device_id_from_enrollment)
{
  json_t *doc = individual("dev-2", key1);
  json_object_set_new(doc, "deviceId", json_string("custom-device"));
  enroll("dev-2", doc);
  json_t *st = state_after_register("dev-2", key1, 0);
  ck_assert_str_eq(field(st, "deviceId"), "custom-device");
  json_decref(st);
}
END_TEST

START_TEST(t_group_member_assigned)
{
  enroll_group("group-a", group("group-a", key1));
  json_t *st = state_after_register("member-1", key1, 1);
  ck_assert_str_eq(field(st, "status"), "assigned");
  ck_assert_str_eq(field(st, "deviceId"), "member-1");
  ck_assert_str_eq(field(json_object_get(st, "symmetricKey"),
                         "enrollmentGroupId"), "group-a");
  json_decref(st);
}
END_TEST

/* A group whose key does not fit declines; the next group is asked. */
START_TEST(t_second_group_accepts)
{
  enroll_group("group-a", group("group-a", key1));
  enroll_group("group-b", group("group-b", key2));
  json_t *st = state_after_register("member-2", key2, 1);
  ck_assert_str_eq(field(json_object_get(st, "symmetricKey"),
                         "enrollmentGroupId"), "group-b");
  json_decref(st);
}
END_TEST

/* An individual enrollment decides alone: a group key does not get the
 * device in behind it. */
START_TEST(t_individual_enrollment_shadows_groups)
{
  enroll("dev-3", individual("dev-3", key1));
  enroll_group("group-b", group("group-b", key2));
  expect_refused(register_with_key("dev-3", key2, 1), 401, "BAD_SIGNATURE",
                 401002);
}
END_TEST

static void delete_record(enum provd_table t, const char *id)
{
  struct provd_err err = {{0}, {0}};
  struct store_session *s = store_session_open(rig.store, &err);
  ck_assert_msg(s != NULL, "%s", err.msg);
  ck_assert_msg(store_del(s, t, id, NULL, &err) == PROVD_OK, "%s", err.msg);
  store_session_close(s);
}

/* Groups are kept in memory between registrations: every change to
 * them counts from the next registration on. */
START_TEST(t_group_changes_count_at_once)
{
  expect_refused(register_with_key("member-c", key1, 1), 401,
                 "ENROLLMENT_NOT_FOUND", 401002);
  enroll_group("group-c", group("group-c", key1));
  json_t *st = state_after_register("member-c", key1, 1);
  ck_assert_str_eq(field(st, "status"), "assigned");
  json_decref(st);
  enroll_group("group-c", group("group-c", key2)); /* new keys */
  expect_refused(register_with_key("member-c", key1, 1), 401,
                 "BAD_SIGNATURE", 401002);
  st = state_after_register("member-c", key2, 1);
  ck_assert_str_eq(field(st, "status"), "assigned");
  json_decref(st);
  delete_record(PROVD_TABLE_ENROLLMENT_GROUPS, "group-c");
  expect_refused(register_with_key("member-c", key2, 1), 401,
                 "ENROLLMENT_NOT_FOUND", 401002);
}
END_TEST

START_TEST(t_unknown_device_refused)
{
  enroll_group("group-a", group("group-a", key1));
  expect_refused(register_with_key("stranger", key2, 1), 401,
                 "BAD_SIGNATURE", 401002);
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "stranger",
                              &(struct store_rec){0}),
                   PROVD_NOT_FOUND);
}
END_TEST

START_TEST(t_no_enrollment_at_all)
{
  expect_refused(register_with_key("nobody", key1, 0), 401,
                 "ENROLLMENT_NOT_FOUND", 401002);
}
END_TEST

/* The enrollment is for another mechanism than the device presents. */
START_TEST(t_attestation_mismatch)
{
  json_t *doc = json_pack("{s:s, s:{s:s, s:{}}}", "registrationId", "dev-x",
                          "attestation", "type", "x509", "x509");
  enroll("dev-x", doc);
  expect_refused(register_with_key("dev-x", key1, 0), 401,
                 "ATTESTATION_MISMATCH", 401002);
}
END_TEST

/* The MQTT CONNECT check: the proof alone, answered 200, nothing
 * written; refusals carry the register's reasons. */
START_TEST(t_authenticate_only)
{
  enroll("dev-a", individual("dev-a", key1));
  enroll_group("group-a", group("group-a", key2));
  char *tok = token(key1, 0, "dev-a");
  struct answer a = submit(request(REG_AUTHENTICATE, "dev-a", NULL, tok));
  free(tok);
  ck_assert_int_eq(a.http_status, 200);
  ck_assert_int_eq(a.error_code, 0);
  answer_clear(&a);
  tok = token(key2, 1, "member-a");
  a = submit(request(REG_AUTHENTICATE, "member-a", NULL, tok));
  free(tok);
  ck_assert_int_eq(a.http_status, 200);
  answer_clear(&a);
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "dev-a",
                              &(struct store_rec){0}),
                   PROVD_NOT_FOUND);
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "member-a",
                              &(struct store_rec){0}),
                   PROVD_NOT_FOUND);
  tok = token(key2, 0, "dev-a");
  expect_refused(submit(request(REG_AUTHENTICATE, "dev-a", NULL, tok)), 401,
                 "BAD_SIGNATURE", 401002);
  free(tok);
  tok = token(key1, 0, "nobody");
  expect_refused(submit(request(REG_AUTHENTICATE, "nobody", NULL, tok)), 401,
                 "BAD_SIGNATURE", 401002);
  free(tok);
}
END_TEST

/* A counter's value in the metrics text; 0 when it was never counted. */
static double metric_value(const char *name)
{
  char *text = metrics_render();
  ck_assert_ptr_nonnull(text);
  double v = 0;
  size_t len = strlen(name);
  for (const char *line = text; line && *line;) {
    if (strncmp(line, name, len) == 0 && line[len] == ' ')
      v = strtod(line + len + 1, NULL);
    line = strchr(line, '\n');
    line = line ? line + 1 : NULL;
  }
  free(text);
  return v;
}

static struct answer register_knowing(const char *reg_id, const char *tok,
                                      const struct engine_known *known)
{
  struct reg_request *r = request(REG_REGISTER, reg_id, NULL, tok);
  r->known = engine_known_dup(known);
  ck_assert_ptr_nonnull(r->known);
  return submit(r);
}

/* MQTT: a register uses the enrollment its connection's CONNECT check
 * read, while the enrollments are unchanged; after a change it reads
 * the store again (and the proof is checked every time). */
START_TEST(t_authenticated_enrollment_reused)
{
  const char *reused = "provd_enrollment_reads_reused_total";
  enroll("dev-k", individual("dev-k", key1));
  char *tok1 = token(key1, 0, "dev-k"), *tok2 = token(key2, 0, "dev-k");
  struct answer auth = submit(request(REG_AUTHENTICATE, "dev-k", NULL, tok1));
  ck_assert_int_eq(auth.http_status, 200);
  ck_assert_ptr_nonnull(auth.known);
  double before = metric_value(reused);
  struct answer a = register_knowing("dev-k", tok1, auth.known);
  ck_assert_int_eq(a.http_status, 202);
  answer_clear(&a);
  ck_assert(metric_value(reused) == before + 1);
  /* Recording a registration does not change the enrollments. */
  a = register_knowing("dev-k", tok1, auth.known);
  ck_assert_int_eq(a.http_status, 202);
  answer_clear(&a);
  ck_assert(metric_value(reused) == before + 2);
  /* The proof still counts: a bad token with a kept enrollment fails. */
  expect_refused(register_knowing("dev-k", tok2, auth.known), 401,
                 "BAD_SIGNATURE", 401002);
  /* New keys: the kept copy is out of date and not used. */
  enroll("dev-k", individual("dev-k", key2));
  expect_refused(register_knowing("dev-k", tok1, auth.known), 401,
                 "BAD_SIGNATURE", 401002);
  a = register_knowing("dev-k", tok2, auth.known);
  ck_assert_int_eq(a.http_status, 202);
  answer_clear(&a);
  ck_assert(metric_value(reused) == before + 3);
  /* Deleted: refused, not served from the kept copy. */
  delete_record(PROVD_TABLE_ENROLLMENTS, "dev-k");
  expect_refused(register_knowing("dev-k", tok2, auth.known), 401,
                 "ENROLLMENT_NOT_FOUND", 401002);
  answer_clear(&auth);
  free(tok1);
  free(tok2);
}
END_TEST

/* ---------------------------------------------------------------------
 * Disabled enrollments.
 * ------------------------------------------------------------------- */

START_TEST(t_disabled_enrollment)
{
  json_t *doc = individual("dev-d", key1);
  json_object_set_new(doc, "provisioningStatus", json_string("disabled"));
  enroll("dev-d", doc);
  /* Authentication comes first: without the key nothing is revealed. */
  expect_refused(register_with_key("dev-d", key2, 0), 401, "BAD_SIGNATURE",
                 401002);
  json_t *st = state_after_register("dev-d", key1, 0);
  ck_assert_str_eq(field(st, "status"), "disabled");
  ck_assert_ptr_null(json_object_get(st, "assignedHub"));
  ck_assert_ptr_null(json_object_get(st, "deviceId"));
  json_decref(st);
  expect_event_reason("dev-d", "ENROLLMENT_DISABLED");
}
END_TEST

START_TEST(t_disabled_group)
{
  json_t *doc = group("group-d", key1);
  json_object_set_new(doc, "provisioningStatus", json_string("disabled"));
  enroll_group("group-d", doc);
  json_t *st = state_after_register("member-d", key1, 1);
  ck_assert_str_eq(field(st, "status"), "disabled");
  json_decref(st);
}
END_TEST

/* Disabling a registered device keeps its hub in the record: the back end
 * never forgets where an identity lives. */
START_TEST(t_disabled_keeps_known_hub)
{
  enroll("dev-k", individual("dev-k", key1));
  enrollment_set("dev-k", "iotHubs", json_pack("[s]", "hub-2"));
  expect_assigned("dev-k", key1, "hub-2.example.net", "initialAssignment");
  enrollment_set("dev-k", "provisioningStatus", json_string("disabled"));
  json_t *st = state_after_register("dev-k", key1, 0);
  ck_assert_str_eq(field(st, "status"), "disabled");
  json_decref(st);
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "dev-k", &rec),
                   PROVD_OK);
  ck_assert_str_eq(rec.hub, "hub-2");
  store_rec_clear(&rec);
}
END_TEST

/* ---------------------------------------------------------------------
 * Allocation: candidates, policies.
 * ------------------------------------------------------------------- */

START_TEST(t_iot_hubs_by_host_name)
{
  enroll("dev-h", individual("dev-h", key1));
  enrollment_set("dev-h", "iotHubs", json_pack("[s]", "hub-2.example.net"));
  expect_assigned("dev-h", key1, "hub-2.example.net", "initialAssignment");
}
END_TEST

START_TEST(t_iot_hub_host_name_legacy)
{
  enroll("dev-l", individual("dev-l", key1));
  enrollment_set("dev-l", "iotHubHostName",
                 json_string("hub-3.example.net"));
  expect_assigned("dev-l", key1, "hub-3.example.net", "initialAssignment");
}
END_TEST

/* hashed spreads a group over its candidates and never outside them. */
START_TEST(t_iot_hubs_candidates_only)
{
  json_t *doc = group("group-c", key1);
  json_object_set_new(doc, "iotHubs", json_pack("[s,s]", "hub-1", "hub-3"));
  enroll_group("group-c", doc);
  int on_1 = 0, on_3 = 0;
  for (int i = 0; i < 16; i++) {
    char reg_id[32];
    snprintf(reg_id, sizeof(reg_id), "spread-%02d", i);
    json_t *st = state_after_register(reg_id, key1, 1);
    const char *hub = field(st, "assignedHub");
    on_1 += strcmp(hub, "hub-1.example.net") == 0;
    on_3 += strcmp(hub, "hub-3.example.net") == 0;
    ck_assert_msg(strcmp(hub, "hub-2.example.net") != 0,
                  "%s went to hub-2, not a candidate", reg_id);
    json_decref(st);
  }
  ck_assert_int_eq(on_1 + on_3, 16);
  ck_assert_int_gt(on_1, 0);
  ck_assert_int_gt(on_3, 0);
}
END_TEST

/* No candidate is a configured hub: recorded as failed, 400208. */
START_TEST(t_iot_hubs_unknown)
{
  enroll("dev-u", individual("dev-u", key1));
  enrollment_set("dev-u", "iotHubs", json_pack("[s]", "elsewhere.example"));
  json_t *st = state_after_register("dev-u", key1, 0);
  ck_assert_str_eq(field(st, "status"), "failed");
  ck_assert_int_eq(json_integer_value(json_object_get(st, "errorCode")),
                   400208);
  json_decref(st);
  expect_event_reason("dev-u", "NO_HUB_AVAILABLE");
}
END_TEST

/* A policy no declared allocation plugin implements. */
START_TEST(t_allocation_policy_unavailable)
{
  enroll("dev-p", individual("dev-p", key1));
  enrollment_set("dev-p", "iotHubs", json_pack("[s]", "hub-1"));
  expect_assigned("dev-p", key1, "hub-1.example.net", "initialAssignment");
  enrollment_set("dev-p", "allocationPolicy", json_string("geoLatency"));
  json_t *st = state_after_register("dev-p", key1, 0);
  ck_assert_str_eq(field(st, "status"), "failed");
  ck_assert_int_eq(json_integer_value(json_object_get(st, "errorCode")),
                   400208);
  ck_assert_ptr_null(json_object_get(st, "assignedHub"));
  json_decref(st);
  expect_event_reason("dev-p", "ALLOCATION_POLICY_UNAVAILABLE");
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "dev-p", &rec),
                   PROVD_OK);
  ck_assert_str_eq(rec.hub, "hub-1"); /* the device keeps its home */
  store_rec_clear(&rec);
}
END_TEST

START_TEST(t_allocation_policy_named)
{
  enroll("dev-n", individual("dev-n", key1));
  enrollment_set("dev-n", "allocationPolicy", json_string("hashed"));
  enrollment_set("dev-n", "iotHubs", json_pack("[s]", "hub-3"));
  expect_assigned("dev-n", key1, "hub-3.example.net", "initialAssignment");
}
END_TEST

/* ---------------------------------------------------------------------
 * Reprovisioning (DPS reprovisionPolicy; substatus as DPS reports it).
 * ------------------------------------------------------------------- */

/* Registers dev on hub-1, then moves its enrollment to hub-2 with
 * the given policy (NULL: none) and registers again. */
static void move_to_hub_2(const char *reg_id, json_t *reprovision_policy)
{
  enroll(reg_id, individual(reg_id, key1));
  enrollment_set(reg_id, "iotHubs", json_pack("[s]", "hub-1"));
  expect_assigned(reg_id, key1, "hub-1.example.net", "initialAssignment");
  enrollment_set(reg_id, "iotHubs", json_pack("[s]", "hub-2"));
  if (reprovision_policy)
    enrollment_set(reg_id, "reprovisionPolicy", reprovision_policy);
}

START_TEST(t_reprovision_migrates_data)
{
  move_to_hub_2("dev-m", policy(1, 1));
  expect_assigned("dev-m", key1, "hub-2.example.net", "deviceDataMigrated");
  expect_event_type("dev-m", "device.reprovisioned");
}
END_TEST

START_TEST(t_reprovision_resets_data)
{
  move_to_hub_2("dev-r", policy(1, 0));
  expect_assigned("dev-r", key1, "hub-2.example.net", "deviceDataReset");
}
END_TEST

/* DPS default for an enrollment without a policy: update and migrate. */
START_TEST(t_reprovision_default_policy)
{
  move_to_hub_2("dev-0", NULL);
  expect_assigned("dev-0", key1, "hub-2.example.net", "deviceDataMigrated");
}
END_TEST

/* updateHubAssignment false: the device stays where it is, whatever
 * migrateDeviceData says. */
START_TEST(t_reprovision_never)
{
  move_to_hub_2("dev-s", policy(0, 1));
  expect_assigned("dev-s", key1, "hub-1.example.net", "initialAssignment");
  enrollment_set("dev-s", "reprovisionPolicy", policy(0, 0));
  expect_assigned("dev-s", key1, "hub-1.example.net", "initialAssignment");
}
END_TEST

/* Registering again on the same hub is no move. */
START_TEST(t_reprovision_same_hub)
{
  enroll("dev-same", individual("dev-same", key1));
  enrollment_set("dev-same", "iotHubs", json_pack("[s]", "hub-3"));
  enrollment_set("dev-same", "reprovisionPolicy", policy(1, 1));
  expect_assigned("dev-same", key1, "hub-3.example.net",
                  "initialAssignment");
  expect_event_type("dev-same", "device.assigned");
  expect_assigned("dev-same", key1, "hub-3.example.net",
                  "initialAssignment");
  expect_event_type("dev-same", "device.assigned");
}
END_TEST

/* ---------------------------------------------------------------------
 * Polls.
 * ------------------------------------------------------------------- */

/* Rewrites the stored registration's deviceId (etag unchanged), so a poll
 * answered from the store shows "from-store" and one answered from memory
 * shows the original. */
static void mark_registration_in_store(const char *reg_id)
{
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, reg_id, &rec),
                   PROVD_OK);
  json_object_set_new(rec.body, "deviceId", json_string("from-store"));
  put_record(PROVD_TABLE_REGISTRATIONS, &rec);
  store_rec_clear(&rec);
}

/* Polls and returns registrationState.deviceId (or the refusal reason). */
static const char *poll_device_id(const char *reg_id, const char *op,
                                  const char *auth, char out[64])
{
  struct answer a = do_poll(reg_id, op, auth);
  if (a.http_status == 200)
    snprintf(out, 64, "%s",
             field(json_object_get(a.doc, "registrationState"), "deviceId"));
  else
    snprintf(out, 64, "%d %s", a.http_status, a.reason);
  answer_clear(&a);
  return out;
}

START_TEST(t_poll_same_token_from_memory)
{
  enroll("dev-c", individual("dev-c", key1));
  char *tok = token(key1, 0, "dev-c");
  char op[128], got[64];
  register_ok("dev-c", tok, op);
  mark_registration_in_store("dev-c");
  ck_assert_str_eq(poll_device_id("dev-c", op, tok, got), "dev-c");
  /* Another valid token of the same key is not the same credential:
   * the store answers. */
  char *other = token_until(key1, 0, "dev-c", now_s() + HOUR + 1);
  ck_assert_str_eq(poll_device_id("dev-c", op, other, got), "from-store");
  free(other);
  free(tok);
}
END_TEST

/* A poll the cache does not answer is attested again: after the key
 * changed, another token of the old key is refused. */
START_TEST(t_poll_other_token_goes_through_plugin)
{
  enroll("dev-c", individual("dev-c", key1));
  char *tok = token(key1, 0, "dev-c");
  char op[128], got[64];
  register_ok("dev-c", tok, op);
  enroll("dev-c", individual("dev-c", key2)); /* key rotated */
  ck_assert_str_eq(poll_device_id("dev-c", op, tok, got), "dev-c");
  char *old_key = token_until(key1, 0, "dev-c", now_s() + HOUR + 1);
  ck_assert_str_eq(poll_device_id("dev-c", op, old_key, got),
                   "401 BAD_SIGNATURE");
  char *new_key = token(key2, 0, "dev-c");
  ck_assert_str_eq(poll_device_id("dev-c", op, new_key, got), "dev-c");
  free(new_key);
  free(old_key);
  free(tok);
}
END_TEST

/* The cached answer belongs to one registration id. */
START_TEST(t_poll_other_registration_id_misses)
{
  enroll("dev-c", individual("dev-c", key1));
  enroll("dev-e", individual("dev-e", key1));
  char *tok = token(key1, 0, "dev-c");
  char op[128], got[64];
  register_ok("dev-c", tok, op);
  ck_assert_str_eq(poll_device_id("dev-e", op, tok, got),
                   "401 TOKEN_RESOURCE_MISMATCH");
  char *tok_e = token(key1, 0, "dev-e");
  ck_assert_str_eq(poll_device_id("dev-e", op, tok_e, got),
                   "404 OPERATION_NOT_FOUND");
  free(tok_e);
  free(tok);
}
END_TEST

/* The plugin vouched for the token until its expiry (clock_skew 0s):
 * later the same bytes are attested again, and refused. */
START_TEST(t_poll_expired_token_misses)
{
  enroll("dev-t", individual("dev-t", key1));
  int64_t se = now_s() + 2;
  char *tok = token_until(key1, 0, "dev-t", se);
  char op[128], got[64];
  register_ok("dev-t", tok, op);
  mark_registration_in_store("dev-t");
  ck_assert_str_eq(poll_device_id("dev-t", op, tok, got), "dev-t");
  while (now_s() <= se)
    usleep(100 * 1000);
  ck_assert_str_eq(poll_device_id("dev-t", op, tok, got),
                   "401 TOKEN_EXPIRED");
  free(tok);
}
END_TEST

START_TEST(t_poll_unknown_operation)
{
  enroll("dev-o", individual("dev-o", key1));
  char *tok = token(key1, 0, "dev-o");
  char op[128];
  register_ok("dev-o", tok, op);
  struct answer a = do_poll("dev-o", "5.0123456789abcdef.nope", tok);
  expect_refused(a, 404, "OPERATION_NOT_FOUND", 404204);
  free(tok);
}
END_TEST

/* An attestation plugin that does not call attest_set_reuse_until
 * (tests/plugins/good_attest.c: the token must equal its greeting) gets
 * every poll: nothing is served from memory. */
START_TEST(t_poll_without_reuse_is_never_cached)
{
  rig_down();
  rig_up("  - { kind: attestation, name: good_attest,"
         " options: { greeting: open-sesame } }\n"
         "  - { kind: allocation, name: hashed }\n",
         0, 0);
  enroll("dev-g", individual("dev-g", key1));
  char op[128], got[64];
  register_ok("dev-g", "open-sesame", op);
  mark_registration_in_store("dev-g");
  ck_assert_str_eq(poll_device_id("dev-g", op, "open-sesame", got),
                   "from-store");
  ck_assert_str_eq(poll_device_id("dev-g", op, "other", got),
                   "401 BAD_SIGNATURE");
}
END_TEST

/* ---------------------------------------------------------------------
 * Bounded queues: a full store queue answers 429 THROTTLED at once.
 * ------------------------------------------------------------------- */

/* Store jobs that hold their thread until the test opens the gate, and
 * a filler job that reports when it ran (its queue is empty again). */
struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered, open, filler_ran;
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER,
                           PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void gate_count(int *counter)
{
  pthread_mutex_lock(&gate.mu);
  (*counter)++;
  pthread_cond_broadcast(&gate.cv);
  pthread_mutex_unlock(&gate.mu);
}

static void gate_wait(const int *counter, int at_least)
{
  pthread_mutex_lock(&gate.mu);
  while (*counter < at_least)
    pthread_cond_wait(&gate.cv, &gate.mu);
  pthread_mutex_unlock(&gate.mu);
}

/* Runs on a store thread: counts itself in, waits for the gate. */
static void gate_hold(void)
{
  gate_count(&gate.entered);
  gate_wait(&gate.open, 1);
}

/* Opens the gate and waits until the filler behind it ran. */
static void gate_open_and_drain(void)
{
  gate_count(&gate.open);
  gate_wait(&gate.filler_ran, 1);
}

static void read_held(struct store_session *s, void *ud)
{
  (void)s;
  (void)ud;
  gate_hold();
}

static void read_filler(struct store_session *s, void *ud)
{
  (void)s;
  (void)ud;
  gate_count(&gate.filler_ran);
}

static int write_held(struct store_session *s, void *ud,
                      struct provd_err *err)
{
  (void)s;
  (void)ud;
  (void)err;
  gate_hold();
  return PROVD_OK;
}

static int write_nothing(struct store_session *s, void *ud,
                         struct provd_err *err)
{
  (void)s;
  (void)ud;
  (void)err;
  return PROVD_OK;
}

static void write_done(void *ud, int status, const struct provd_err *err)
{
  (void)ud;
  (void)status;
  (void)err;
}

static void write_filler_done(void *ud, int status,
                              const struct provd_err *err)
{
  write_done(ud, status, err);
  gate_count(&gate.filler_ran);
}

static void throttle_rig(void)
{
  rig_down();
  rig_up(default_plugins, 1, 1); /* one reader, one queued job per queue */
  enroll("dev-q", individual("dev-q", key1));
}

/* With the only reader busy and its queue full, polls are refused at
 * once; a registration is not: its plugins only compute, so it reads on
 * the writer and waits for it. */
START_TEST(t_throttled_when_read_queue_full)
{
  throttle_rig();
  char *tok = token(key1, 0, "dev-q");
  ck_assert_int_eq(
      store_submit_write(rig.store, write_held, write_done, NULL), PROVD_OK);
  ck_assert_int_eq(store_submit_read(rig.store, read_held, NULL), PROVD_OK);
  gate_wait(&gate.entered, 2); /* the writer and the only reader are busy */
  ck_assert_int_eq(store_submit_read(rig.store, read_filler, NULL),
                   PROVD_OK); /* the read queue is full */
  expect_refused(do_poll("dev-q", "5.0123456789abcdef.op", tok), 429,
                 "THROTTLED", 429001);
  struct waiter *reg = submit_async(request(REG_REGISTER, "dev-q", NULL, tok));
  ck_assert_msg(!answered_within(reg, 1),
                "the registration did not wait for the writer");
  gate_open_and_drain();
  struct answer a = await_answer(reg);
  ck_assert_int_eq(a.http_status, 202);
  answer_clear(&a);
  free(tok);
}
END_TEST

START_TEST(t_throttled_when_write_queue_full)
{
  throttle_rig();
  char *tok = token(key1, 0, "dev-q");
  ck_assert_int_eq(
      store_submit_write(rig.store, write_held, write_done, NULL), PROVD_OK);
  gate_wait(&gate.entered, 1); /* the writer is busy */
  ck_assert_int_eq(
      store_submit_write(rig.store, write_nothing, write_filler_done, NULL),
      PROVD_OK); /* the queue is full */
  struct answer a = do_register("dev-q", tok);
  ck_assert_int_gt(a.retry_after_s, 0);
  expect_refused(a, 429, "THROTTLED", 429001);
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "dev-q",
                              &(struct store_rec){0}),
                   PROVD_NOT_FOUND);
  gate_open_and_drain();
  char op[128];
  register_ok("dev-q", tok, op);
  free(tok);
}
END_TEST

/* limits.first_boot_max_wait: while the store is behind, a device it
 * already knows registers; a first boot that waited too long is told to
 * come back (429), writes nothing, and gets in once the store caught up. */
START_TEST(t_first_boots_deferred_while_store_behind)
{
  rig_down();
  rig_extra_yaml = "limits: { first_boot_max_wait: 100ms }\n";
  rig_up(default_plugins, 1, 0);
  rig_extra_yaml = NULL;
  enroll("dev-known", individual("dev-known", key1));
  enroll("dev-new", individual("dev-new", key1));
  char *known_tok = token(key1, 0, "dev-known");
  char *new_tok = token(key1, 0, "dev-new");
  char op[128];
  register_ok("dev-known", known_tok, op);
  ck_assert_int_eq(
      store_submit_write(rig.store, write_held, write_done, NULL), PROVD_OK);
  gate_wait(&gate.entered, 1); /* the writer is busy: the store is behind */
  struct waiter *known =
      submit_async(request(REG_REGISTER, "dev-known", NULL, known_tok));
  struct waiter *first =
      submit_async(request(REG_REGISTER, "dev-new", NULL, new_tok));
  usleep(250 * 1000);
  gate_count(&gate.open);
  struct answer a = await_answer(known);
  ck_assert_int_eq(a.http_status, 202);
  answer_clear(&a);
  a = await_answer(first);
  ck_assert_int_gt(a.retry_after_s, 0);
  expect_refused(a, 429, "THROTTLED", 429001);
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "dev-new",
                              &(struct store_rec){0}),
                   PROVD_NOT_FOUND);
  char *text = metrics_render();
  ck_assert_ptr_nonnull(strstr(text, "provd_first_boots_deferred_total 1"));
  free(text);
  register_ok("dev-new", new_tok, op); /* the store is idle again */
  free(known_tok);
  free(new_tok);
}
END_TEST

/* ---------------------------------------------------------------------
 * Allocation policies (DPS allocation policies; docs/allocation.md):
 * every allocation plugin loaded, hashed first (the fallback and tie
 * breaker).
 * ------------------------------------------------------------------- */

static const char *const policy_plugins =
    "  - { kind: attestation, name: symmetric-key,"
    " options: { clock_skew: 0s } }\n"
    "  - { kind: allocation, name: hashed }\n"
    "  - { kind: allocation, name: static }\n"
    "  - kind: allocation\n"
    "    name: geo-latency\n"
    "    options:\n"
    "      hub_regions:\n"
    "        - { hub: hub-1, region: westeurope }\n"
    "        - { hub: hub-2, region: eastus }\n"
    "        - { hub: hub-3, region: eastus }\n"
    "      latencies:\n"
    "        - { from: westeurope, to: eastus, ms: 80 }\n"
    "        - { from: northeurope, to: westeurope, ms: 15 }\n"
    "        - { from: northeurope, to: eastus, ms: 90 }\n"
    "      client_regions:\n"
    "        - { cidr: 10.20.0.0/16, region: northeurope }\n"
    "        - { cidr: '2001:db8::/32', region: eastus }\n"
    "  - kind: allocation\n"
    "    name: custom-webhook\n"
    "    options: { timeout: 400ms, fallback: hashed, breaker_failures: 2,"
    " breaker_cooldown: 600ms }\n";

static void setup_policies(void)
{
  random_key(key1, sizeof(key1));
  random_key(key2, sizeof(key2));
  rig_up(policy_plugins, 2, 0);
}

static void teardown_policies(void)
{
  rig_down();
  rig_hubs_yaml = NULL;
  rig_extra_yaml = NULL;
}

/* A register call whose body carries payload (taken). */
static json_t *state_with_payload(const char *reg_id, json_t *payload)
{
  char *tok = token(key1, 0, reg_id);
  struct reg_request *req = request(REG_REGISTER, reg_id, NULL, tok);
  json_object_set_new(req->body, "payload", payload);
  struct answer a = submit(req);
  ck_assert_msg(a.http_status == 202, "register %s: %d %s", reg_id,
                a.http_status, a.reason);
  char op[128];
  snprintf(op, sizeof(op), "%s", field(a.doc, "operationId"));
  answer_clear(&a);
  a = do_poll(reg_id, op, tok);
  free(tok);
  ck_assert_int_eq(a.http_status, 200);
  json_t *st = json_incref(json_object_get(a.doc, "registrationState"));
  answer_clear(&a);
  return st;
}

/* The explain answer for an individual enrollment (payload taken) from a
 * device at client_ip (NULL: unknown). */
static json_t *explain_from(const char *reg_id, json_t *payload,
                            int call_webhook, const char *client_ip)
{
  struct reg_request *req = request(REG_EXPLAIN, reg_id, NULL, NULL);
  if (client_ip)
    snprintf(req->client_ip, sizeof(req->client_ip), "%s", client_ip);
  if (payload)
    req->body = json_pack("{s:o}", "payload", payload);
  req->call_webhook = call_webhook;
  struct answer a = submit(req);
  ck_assert_int_eq(a.http_status, 200);
  json_t *doc = json_incref(a.doc);
  answer_clear(&a);
  return doc;
}

static json_t *explain(const char *reg_id, json_t *payload, int call_webhook)
{
  return explain_from(reg_id, payload, call_webhook, NULL);
}

/* allocation.steps[i].<key> of an explain answer. */
static const char *step_field(const json_t *doc, size_t i, const char *key)
{
  const json_t *steps = json_object_get(json_object_get(doc, "allocation"),
                                        "steps");
  return field(json_array_get(steps, i), key);
}

static void enroll_with_policy(const char *reg_id, const char *policy_name)
{
  enroll(reg_id, individual(reg_id, key1));
  enrollment_set(reg_id, "allocationPolicy", json_string(policy_name));
}

START_TEST(t_default_policy_from_config)
{
  rig_down();
  rig_extra_yaml = "registration: { allocation_policy: static }\n";
  rig_up(policy_plugins, 2, 0);
  enroll("dev-def", individual("dev-def", key1));
  enrollment_set("dev-def", "iotHubHostName",
                 json_string("hub-3.example.net"));
  json_t *doc = explain("dev-def", NULL, 0);
  ck_assert_str_eq(field(json_object_get(doc, "allocation"), "policySource"),
                   "registration.allocation_policy");
  ck_assert_str_eq(step_field(doc, 0, "policy"), "static");
  json_decref(doc);
  expect_assigned("dev-def", key1, "hub-3.example.net", "initialAssignment");
}
END_TEST

/* limits.register_rate_per_device|source: register calls beyond the
 * rate are THROTTLED (429) before any store work; polls are not counted. */
START_TEST(t_register_rate_limits)
{
  rig_down();
  rig_extra_yaml = "limits: { register_rate_per_device: 2, "
                   "register_rate_per_source: 3 }\n";
  rig_up(policy_plugins, 2, 0);
  enroll("dev-r", individual("dev-r", key1));
  char *tok = token(key1, 0, "dev-r");
  char op[128];
  register_ok("dev-r", tok, op);
  struct answer a = do_poll("dev-r", op, tok);
  ck_assert_int_eq(a.http_status, 200); /* a poll costs no admission */
  answer_clear(&a);
  register_ok("dev-r", tok, op);
  a = do_register("dev-r", tok);
  ck_assert_int_eq(a.retry_after_s >= 1, 1);
  expect_refused(a, 429, "THROTTLED", 429001);
  free(tok);
  /* the source: three registers from one address, whatever the id */
  for (int i = 0; i < 4; i++) {
    char id[16];
    snprintf(id, sizeof(id), "dev-s%d", i);
    enroll(id, individual(id, key1));
    tok = token(key1, 0, id);
    struct reg_request *req = request(REG_REGISTER, id, NULL, tok);
    snprintf(req->client_ip, sizeof(req->client_ip), "10.9.8.7");
    a = submit(req);
    if (i < 3)
      ck_assert_int_eq(a.http_status, 202);
    else
      ck_assert_int_eq(a.http_status, 429);
    answer_clear(&a);
    free(tok);
  }
  rig_extra_yaml = NULL;
}
END_TEST

START_TEST(t_default_policy_unknown_refused)
{
  char *saved = rig.cfg.allocation_policy;
  rig.cfg.allocation_policy = (char *)"nearest";
  struct engine *e = NULL;
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(engine_new(&rig.cfg, rig.store, &rig.plugins, &e, &err),
                   PROVD_E_CONFIG);
  ck_assert_ptr_nonnull(strstr(err.msg, "nearest"));
  ck_assert_ptr_null(e);
  rig.cfg.allocation_policy = saved;
}
END_TEST

START_TEST(t_drained_and_closed_hubs_get_no_devices)
{
  rig_down();
  rig_hubs_yaml =
      "  - { name: hub-1, hostname: hub-1.example.net }\n"
      "  - { name: hub-2, hostname: hub-2.example.net, weight: 0 }\n"
      "  - { name: hub-3, hostname: hub-3.example.net,"
      " apply_allocation_policy: false }\n";
  rig_up(policy_plugins, 2, 0);
  char id[32];
  for (int i = 0; i < 12; i++) {
    snprintf(id, sizeof(id), "dev-dr-%d", i);
    enroll(id, individual(id, key1));
    expect_assigned(id, key1, "hub-1.example.net", "initialAssignment");
  }
  json_t *doc = explain("dev-dr-0", NULL, 0);
  json_t *alloc = json_object_get(doc, "allocation");
  ck_assert_uint_eq(json_array_size(json_object_get(alloc, "candidates")), 1);
  ck_assert_uint_eq(json_array_size(json_object_get(alloc, "excluded")), 2);
  json_decref(doc);
  /* Drained: a device already on hub-2 would keep it (never moved by the
   * drain itself) only with updateHubAssignment false; a static
   * enrollment naming the drained hub is refused, naming it. */
  enroll_with_policy("dev-dr-s", "static");
  enrollment_set("dev-dr-s", "iotHubs", json_pack("[s]", "hub-2"));
  doc = explain("dev-dr-s", NULL, 0);
  ck_assert_str_eq(field(doc, "reason"), "NO_HUB_AVAILABLE");
  ck_assert_ptr_nonnull(strstr(field(doc, "detail"), "hub-2"));
  ck_assert_ptr_nonnull(strstr(field(doc, "detail"), "drained"));
  json_decref(doc);
}
END_TEST

START_TEST(t_static_named_hub)
{
  enroll_with_policy("dev-st", "static");
  enrollment_set("dev-st", "iotHubs", json_pack("[s]", "hub-2.example.net"));
  expect_assigned("dev-st", key1, "hub-2.example.net", "initialAssignment");
  enroll_with_policy("dev-st-legacy", "static");
  enrollment_set("dev-st-legacy", "iotHubHostName", json_string("hub-3"));
  expect_assigned("dev-st-legacy", key1, "hub-3.example.net",
                  "initialAssignment");
}
END_TEST

START_TEST(t_static_missing_or_unknown_hub)
{
  enroll_with_policy("dev-st-none", "static");
  json_t *doc = explain("dev-st-none", NULL, 0);
  ck_assert_str_eq(field(doc, "reason"), "NO_HUB_AVAILABLE");
  ck_assert_ptr_nonnull(strstr(field(doc, "detail"), "names none"));
  json_decref(doc);
  enroll_with_policy("dev-st-unk", "static");
  enrollment_set("dev-st-unk", "iotHubs",
                 json_pack("[s]", "hub-9.example.net"));
  json_t *st = state_after_register("dev-st-unk", key1, 0);
  ck_assert_str_eq(field(st, "status"), "failed");
  ck_assert_int_eq(json_integer_value(json_object_get(st, "errorCode")),
                   400208);
  json_decref(st);
  doc = explain("dev-st-unk", NULL, 0);
  ck_assert_ptr_nonnull(strstr(field(doc, "detail"), "hub-9.example.net"));
  json_decref(doc);
  enroll_with_policy("dev-st-two", "static");
  enrollment_set("dev-st-two", "iotHubs", json_pack("[s,s]", "hub-1",
                                                    "hub-2"));
  doc = explain("dev-st-two", NULL, 0);
  ck_assert_ptr_nonnull(strstr(field(doc, "detail"), "exactly one"));
  json_decref(doc);
}
END_TEST

START_TEST(t_geo_latency_nearest)
{
  enroll_with_policy("dev-geo", "geoLatency");
  json_t *st = state_with_payload("dev-geo",
                                  json_pack("{s:s}", "region", "northeurope"));
  ck_assert_str_eq(field(st, "assignedHub"), "hub-1.example.net");
  json_decref(st);
  json_t *doc = explain("dev-geo", json_pack("{s:s}", "region", "westeurope"),
                        0);
  ck_assert_str_eq(field(doc, "hub"), "hub-1");
  ck_assert_ptr_nonnull(strstr(step_field(doc, 0, "said"), "0 ms"));
  json_decref(doc);
}
END_TEST

/* A linked hub's own region (provctl hub set --region) wins over the
 * plugin's hub_regions, and a region only a hub names is known. */
START_TEST(t_geo_latency_hub_region_from_hubs)
{
  const struct alloc_hub hubs[] = {
      {.name = "hub-1", .hostname = "hub-1.example.net", .weight = 1,
       .apply_allocation_policy = 1, .region = "eastus"},
      {.name = "hub-2", .hostname = "hub-2.example.net", .weight = 1,
       .apply_allocation_policy = 1, .region = "northeurope"},
      {.name = "hub-3", .hostname = "hub-3.example.net", .weight = 1,
       .apply_allocation_policy = 1, .region = "westeurope"}};
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(engine_set_hubs(rig.engine, hubs, 3, &err), PROVD_OK);
  enroll_with_policy("dev-hr", "geoLatency");
  /* northeurope: hub-2 is there now (0 ms), though hub_regions says
   * eastus for it */
  json_t *st = state_with_payload("dev-hr",
                                  json_pack("{s:s}", "region", "northeurope"));
  ck_assert_str_eq(field(st, "assignedHub"), "hub-2.example.net");
  json_decref(st);
  enroll_with_policy("dev-hr2", "geoLatency");
  json_t *doc = explain("dev-hr2", json_pack("{s:s}", "region", "eastus"), 0);
  /* hub-1 moved to eastus, hub-3 (eastus in hub_regions) to westeurope */
  ck_assert_str_eq(field(doc, "hub"), "hub-1");
  json_decref(doc);
}
END_TEST

/* eastus: hub-2 and hub-3 tie at 0 ms; hashed chooses among them only. */
START_TEST(t_geo_latency_tie_hashed)
{
  enroll_with_policy("dev-geo-t", "geoLatency");
  json_t *doc = explain("dev-geo-t", json_pack("{s:s}", "region", "eastus"),
                        0);
  ck_assert_str_eq(step_field(doc, 0, "delegatedTo"), "hashed");
  ck_assert_str_eq(step_field(doc, 1, "policy"), "hashed");
  const char *hub = field(doc, "hub");
  ck_assert_msg(strcmp(hub, "hub-2") == 0 || strcmp(hub, "hub-3") == 0,
                "tie went to %s", hub);
  json_decref(doc);
}
END_TEST

/* No region in the payload: the client address through client_regions. */
START_TEST(t_geo_latency_client_address)
{
  enroll_with_policy("dev-geo-a", "geoLatency");
  json_t *doc = explain_from("dev-geo-a", NULL, 0, "10.20.3.4");
  ck_assert_str_eq(field(doc, "hub"), "hub-1"); /* northeurope: 15 ms */
  json_decref(doc);
  doc = explain_from("dev-geo-a", NULL, 0, "2001:db8::5");
  ck_assert_str_eq(step_field(doc, 0, "delegatedTo"), "hashed"); /* tie */
  ck_assert_ptr_nonnull(strstr(step_field(doc, 0, "why"), "eastus"));
  json_decref(doc);
  doc = explain_from("dev-geo-a", NULL, 0, "10.21.0.1");
  ck_assert_ptr_nonnull(strstr(step_field(doc, 0, "why"), "unknown region"));
  json_decref(doc);
  /* the payload wins over the address */
  doc = explain_from("dev-geo-a", json_pack("{s:s}", "region", "eastus"), 0,
                     "10.20.3.4");
  ck_assert_str_eq(step_field(doc, 0, "delegatedTo"), "hashed");
  json_decref(doc);
}
END_TEST

START_TEST(t_geo_latency_unknown_region)
{
  enroll_with_policy("dev-geo-u", "geoLatency");
  json_t *doc = explain("dev-geo-u", json_pack("{s:s}", "region", "mars"), 0);
  ck_assert_ptr_nonnull(strstr(step_field(doc, 0, "why"),
                               "unknown region 'mars'"));
  ck_assert_str_eq(step_field(doc, 1, "policy"), "hashed");
  ck_assert_str_eq(field(doc, "outcome"), "assigned");
  json_decref(doc);
}
END_TEST

/* ---- the custom webhook, against a real HTTP server on loopback ---- */

enum hook_mode { HOOK_GOOD, HOOK_SLOW, HOOK_500, HOOK_GARBAGE, HOOK_OTHER_HUB };

struct hook {
  int fd;
  int port;
  pthread_t thread;
  pthread_mutex_t lock;
  enum hook_mode mode;
  int calls;
  char last_body[16384];
  int stop;
};

static struct hook hook;

/* Reads one request; returns its body in hook.last_body. */
static int hook_read(int c)
{
  char buf[20000];
  size_t len = 0;
  char *end = NULL;
  while (!end && len < sizeof(buf) - 1) {
    ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0)
      return -1;
    len += (size_t)n;
    buf[len] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  if (!end)
    return -1;
  const char *cl = strcasestr(buf, "Content-Length:");
  size_t want = cl ? (size_t)atol(cl + 15) : 0;
  size_t have = len - (size_t)(end + 4 - buf);
  while (have < want && len < sizeof(buf) - 1) {
    ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0)
      return -1;
    len += (size_t)n;
    have += (size_t)n;
  }
  buf[len] = '\0';
  pthread_mutex_lock(&hook.lock);
  snprintf(hook.last_body, sizeof(hook.last_body), "%s", end + 4);
  hook.calls++;
  pthread_mutex_unlock(&hook.lock);
  return 0;
}

static void hook_answer(int c, enum hook_mode mode)
{
  const char *status = "200 OK", *body;
  switch (mode) {
  case HOOK_500:
    status = "500 Internal Server Error";
    body = "{}";
    break;
  case HOOK_GARBAGE:
    body = "<html>not json</html>";
    break;
  case HOOK_OTHER_HUB:
    body = "{\"iotHubHostName\":\"elsewhere.example.net\"}";
    break;
  default:
    body = "{\"iotHubHostName\":\"hub-2.example.net\","
           "\"initialTwin\":{\"tags\":{\"deviceType\":\"toaster\"},"
           "\"properties\":{\"desired\":{\"state\":\"ready\"}}},"
           "\"payload\":{\"anything\":\"returned to the device\"}}";
  }
  if (mode == HOOK_SLOW)
    usleep(1500 * 1000);
  char head[256];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, strlen(body));
  /* the client may have given up (slow mode): no SIGPIPE */
  if (send(c, head, (size_t)n, MSG_NOSIGNAL) < 0 ||
      send(c, body, strlen(body), MSG_NOSIGNAL) < 0)
    return;
}

static void *hook_main(void *ud)
{
  (void)ud;
  for (;;) {
    int c = accept(hook.fd, NULL, NULL);
    if (c < 0)
      return NULL;
    pthread_mutex_lock(&hook.lock);
    int stop = hook.stop;
    enum hook_mode mode = hook.mode;
    pthread_mutex_unlock(&hook.lock);
    if (stop) {
      close(c);
      return NULL;
    }
    if (hook_read(c) == 0)
      hook_answer(c, mode);
    close(c);
  }
}

/* A listening socket on 127.0.0.1 (port 0: any). */
static int listen_loopback(int *port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  socklen_t len = sizeof(sa);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

static void hook_start(enum hook_mode mode)
{
  memset(&hook, 0, sizeof(hook));
  pthread_mutex_init(&hook.lock, NULL);
  hook.mode = mode;
  hook.fd = listen_loopback(&hook.port);
  ck_assert_int_eq(listen(hook.fd, 16), 0);
  ck_assert_int_eq(pthread_create(&hook.thread, NULL, hook_main, NULL), 0);
}

static void hook_set(enum hook_mode mode)
{
  pthread_mutex_lock(&hook.lock);
  hook.mode = mode;
  pthread_mutex_unlock(&hook.lock);
}

static int hook_calls(void)
{
  pthread_mutex_lock(&hook.lock);
  int n = hook.calls;
  pthread_mutex_unlock(&hook.lock);
  return n;
}

static void hook_stop(void)
{
  pthread_mutex_lock(&hook.lock);
  hook.stop = 1;
  pthread_mutex_unlock(&hook.lock);
  int fd = socket(AF_INET, SOCK_STREAM, 0); /* wakes accept() */
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)hook.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
    ck_abort_msg("cannot wake the webhook server");
  close(fd);
  pthread_join(hook.thread, NULL);
  close(hook.fd);
  pthread_mutex_destroy(&hook.lock);
}

static void setup_webhook(void)
{
  setup_policies();
  hook_start(HOOK_GOOD);
}

static void teardown_webhook(void)
{
  hook_stop();
  teardown_policies();
}

/* An individual enrollment with policy custom and the test's webhook (or
 * url when not NULL); fallback NULL: the instance's (hashed). */
static void enroll_custom(const char *reg_id, const char *url,
                          const char *fallback)
{
  char own[128];
  snprintf(own, sizeof(own), "http://127.0.0.1:%d/api/alloc?code=k",
           hook.port);
  enroll_with_policy(reg_id, "custom");
  json_t *def = json_pack("{s:s,s:s}", "webhookUrl", url ? url : own,
                          "apiVersion", "2021-10-01");
  if (fallback)
    json_object_set_new(def, "fallbackPolicy", json_string(fallback));
  enrollment_set(reg_id, "customAllocationDefinition", def);
}

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* §8.1 field by field; §8.2 hub, initialTwin and payload taken. */
START_TEST(t_webhook_good_answer)
{
  enroll_custom("dev-wh", NULL, NULL);
  enrollment_set("dev-wh", "iotHubs",
                 json_pack("[s,s]", "hub-1.example.net", "hub-2.example.net"));
  json_t *st = state_with_payload(
      "dev-wh", json_pack("{s:s}", "MyDeviceFirmwareVersion", "12.0.2.5"));
  ck_assert_str_eq(field(st, "assignedHub"), "hub-2.example.net");
  ck_assert_str_eq(field(json_object_get(st, "payload"), "anything"),
                   "returned to the device");
  ck_assert_ptr_null(json_object_get(st, "initialTwin"));
  json_decref(st);
  json_t *body = json_loads(hook.last_body, 0, NULL);
  ck_assert_msg(body != NULL, "webhook body is not JSON: %s", hook.last_body);
  ck_assert_uint_eq(json_object_size(body), 3);
  const json_t *enr = json_object_get(body, "individualEnrollment");
  ck_assert_str_eq(field(enr, "registrationId"), "dev-wh");
  ck_assert_str_eq(field(enr, "allocationPolicy"), "custom");
  const json_t *att = json_object_get(enr, "attestation");
  ck_assert_uint_eq(json_object_size(att), 1); /* no keys */
  ck_assert_str_eq(field(att, "type"), "symmetricKey");
  const json_t *ctx = json_object_get(body, "deviceRuntimeContext");
  ck_assert_str_eq(field(ctx, "registrationId"), "dev-wh");
  ck_assert_ptr_null(json_object_get(ctx, "currentIotHubHostName"));
  ck_assert_uint_eq(json_object_size(json_object_get(ctx, "symmetricKey")),
                    0);
  ck_assert_str_eq(field(json_object_get(ctx, "payload"),
                         "MyDeviceFirmwareVersion"), "12.0.2.5");
  const json_t *linked = json_object_get(body, "linkedHubs");
  ck_assert_uint_eq(json_array_size(linked), 2);
  ck_assert_str_eq(json_string_value(json_array_get(linked, 0)),
                   "hub-1.example.net");
  json_decref(body);
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, "dev-wh", &rec),
                   PROVD_OK);
  const json_t *twin = json_object_get(rec.body, "initialTwin");
  ck_assert_str_eq(field(json_object_get(twin, "tags"), "deviceType"),
                   "toaster");
  store_rec_clear(&rec);
  /* Registering again: the current hub and device id go along. */
  st = state_with_payload("dev-wh", json_object());
  json_decref(st);
  body = json_loads(hook.last_body, 0, NULL);
  ctx = json_object_get(body, "deviceRuntimeContext");
  ck_assert_str_eq(field(ctx, "currentIotHubHostName"), "hub-2.example.net");
  ck_assert_str_eq(field(ctx, "currentDeviceId"), "dev-wh");
  json_decref(body);
}
END_TEST

START_TEST(t_webhook_slow_falls_back_within_budget)
{
  hook_set(HOOK_SLOW);
  enroll_custom("dev-slow", NULL, NULL);
  int64_t t0 = mono_ms();
  json_t *st = state_after_register("dev-slow", key1, 0);
  int64_t took = mono_ms() - t0;
  ck_assert_str_eq(field(st, "status"), "assigned"); /* by hashed */
  ck_assert_ptr_null(json_object_get(st, "payload"));
  json_decref(st);
  ck_assert_msg(took < 1200, "budget 400 ms, registration took %lld ms",
                (long long)took);
}
END_TEST

START_TEST(t_webhook_500_fails_with_400207)
{
  hook_set(HOOK_500);
  enroll_custom("dev-500", NULL, "fail");
  json_t *st = state_after_register("dev-500", key1, 0);
  ck_assert_str_eq(field(st, "status"), "failed");
  ck_assert_int_eq(json_integer_value(json_object_get(st, "errorCode")),
                   400207);
  ck_assert_str_eq(field(st, "errorMessage"),
                   "Custom allocation failed with status code: 500");
  json_decref(st);
  expect_event_reason("dev-500", "ALLOCATION_WEBHOOK_FAILED");
}
END_TEST

static void expect_fallback_why(const char *reg_id, const char *why)
{
  json_t *doc = explain(reg_id, NULL, 1);
  ck_assert_str_eq(step_field(doc, 0, "delegatedTo"), "hashed");
  ck_assert_msg(strstr(step_field(doc, 0, "why"), why) != NULL,
                "why: %s", step_field(doc, 0, "why"));
  ck_assert_str_eq(field(doc, "outcome"), "assigned");
  json_decref(doc);
}

START_TEST(t_webhook_garbage_and_other_hub_fall_back)
{
  hook_set(HOOK_GARBAGE);
  enroll_custom("dev-gb", NULL, NULL);
  expect_fallback_why("dev-gb", "not a JSON object");
  hook_set(HOOK_OTHER_HUB);
  expect_fallback_why("dev-gb", "elsewhere.example.net");
}
END_TEST

START_TEST(t_webhook_down_and_bad_scheme_fall_back)
{
  int port = 0;
  int fd = listen_loopback(&port); /* bound, never listening: refused */
  char url[96];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/alloc", port);
  enroll_custom("dev-down", url, NULL);
  int64_t t0 = mono_ms();
  expect_fallback_why("dev-down", "connection refused");
  ck_assert_int_lt(mono_ms() - t0, 1200);
  close(fd);
  enroll_custom("dev-ftp", "http://example.net/alloc", NULL);
  expect_fallback_why("dev-ftp", "neither https");
  ck_assert_int_eq(hook_calls(), 0);
}
END_TEST

/* breaker_failures 2, breaker_cooldown 600 ms. */
START_TEST(t_webhook_breaker_opens_and_closes)
{
  hook_set(HOOK_500);
  enroll_custom("dev-br", NULL, NULL);
  expect_fallback_why("dev-br", "HTTP 500");
  expect_fallback_why("dev-br", "HTTP 500");
  ck_assert_int_eq(hook_calls(), 2);
  expect_fallback_why("dev-br", "circuit breaker open");
  ck_assert_int_eq(hook_calls(), 2); /* not called while open */
  hook_set(HOOK_GOOD);
  usleep(700 * 1000);
  json_t *doc = explain("dev-br", NULL, 1); /* the probe */
  ck_assert_str_eq(field(doc, "hub"), "hub-2");
  json_decref(doc);
  ck_assert_int_eq(hook_calls(), 3);
  doc = explain("dev-br", NULL, 1); /* closed again */
  ck_assert_str_eq(field(doc, "hub"), "hub-2");
  json_decref(doc);
  ck_assert_int_eq(hook_calls(), 4);
}
END_TEST

/* explain does not call the webhook unless asked. */
START_TEST(t_webhook_explain_dry_run)
{
  enroll_custom("dev-dry", NULL, NULL);
  json_t *doc = explain("dev-dry", NULL, 0);
  ck_assert_ptr_nonnull(strstr(step_field(doc, 0, "why"), "dry run"));
  json_decref(doc);
  ck_assert_int_eq(hook_calls(), 0);
}
END_TEST

/* ---- reprovisioning: history and the initial twin ---- */

static json_t *twin(const char *tag)
{
  return json_pack("{s:{s:s},s:{s:{}}}", "tags", "v", tag, "properties",
                   "desired");
}

static const char *stored_twin_tag(const char *reg_id, char out[32])
{
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, reg_id, &rec),
                   PROVD_OK);
  snprintf(out, 32, "%s",
           field(json_object_get(json_object_get(rec.body, "initialTwin"),
                                 "tags"),
                 "v"));
  store_rec_clear(&rec);
  return out;
}

static json_t *stored_history(const char *reg_id)
{
  struct store_rec rec = {0};
  ck_assert_int_eq(get_record(PROVD_TABLE_REGISTRATIONS, reg_id, &rec),
                   PROVD_OK);
  json_t *h = json_incref(json_object_get(rec.body, "assignmentHistory"));
  store_rec_clear(&rec);
  return h;
}

START_TEST(t_reprovision_history_and_twin_on_migrate)
{
  char tag[32];
  enroll("dev-hm", individual("dev-hm", key1));
  enrollment_set("dev-hm", "initialTwin", twin("first"));
  enrollment_set("dev-hm", "iotHubs", json_pack("[s]", "hub-1"));
  expect_assigned("dev-hm", key1, "hub-1.example.net", "initialAssignment");
  ck_assert_str_eq(stored_twin_tag("dev-hm", tag), "first");
  ck_assert_ptr_null(stored_history("dev-hm"));
  enrollment_set("dev-hm", "initialTwin", twin("second"));
  enrollment_set("dev-hm", "iotHubs", json_pack("[s]", "hub-2"));
  expect_assigned("dev-hm", key1, "hub-2.example.net", "deviceDataMigrated");
  ck_assert_str_eq(stored_twin_tag("dev-hm", tag), "first"); /* not applied */
  json_t *h = stored_history("dev-hm");
  ck_assert_uint_eq(json_array_size(h), 1);
  const json_t *e = json_array_get(h, 0);
  ck_assert_str_eq(field(e, "hub"), "hub-1");
  ck_assert_str_eq(field(e, "assignedHub"), "hub-1.example.net");
  ck_assert_str_eq(field(e, "reason"), "deviceDataMigrated");
  ck_assert_str_eq(field(e, "policy"), "hashed");
  ck_assert_str_ne(field(e, "until"), "(absent)");
  json_decref(h);
  /* back to hub-1, where it was before */
  enrollment_set("dev-hm", "iotHubs", json_pack("[s]", "hub-1"));
  expect_assigned("dev-hm", key1, "hub-1.example.net",
                  "reprovisionedToInitialAssignment");
  h = stored_history("dev-hm");
  ck_assert_uint_eq(json_array_size(h), 2);
  json_decref(h);
}
END_TEST

START_TEST(t_reprovision_reset_applies_twin)
{
  char tag[32];
  move_to_hub_2("dev-hr", policy(1, 0));
  enrollment_set("dev-hr", "initialTwin", twin("fresh"));
  expect_assigned("dev-hr", key1, "hub-2.example.net", "deviceDataReset");
  ck_assert_str_eq(stored_twin_tag("dev-hr", tag), "fresh");
  json_t *h = stored_history("dev-hr");
  ck_assert_str_eq(field(json_array_get(h, 0), "reason"), "deviceDataReset");
  json_decref(h);
}
END_TEST

/* updateHubAssignment false: no move, no history, twin kept. */
START_TEST(t_reprovision_never_keeps_history_empty)
{
  char tag[32];
  enroll("dev-hn", individual("dev-hn", key1));
  enrollment_set("dev-hn", "initialTwin", twin("kept"));
  enrollment_set("dev-hn", "iotHubs", json_pack("[s]", "hub-1"));
  expect_assigned("dev-hn", key1, "hub-1.example.net", "initialAssignment");
  enrollment_set("dev-hn", "iotHubs", json_pack("[s]", "hub-2"));
  enrollment_set("dev-hn", "initialTwin", twin("ignored"));
  enrollment_set("dev-hn", "reprovisionPolicy", policy(0, 0));
  expect_assigned("dev-hn", key1, "hub-1.example.net", "initialAssignment");
  ck_assert_ptr_null(stored_history("dev-hn"));
  ck_assert_str_eq(stored_twin_tag("dev-hn", tag), "kept");
}
END_TEST

/* ---------------------------------------------------------------------
 * Challenge rounds (tests/plugins/challenge_attest.c)
 * ------------------------------------------------------------------- */

static const char *const challenge_plugins =
    "  - { kind: attestation, name: challenge_attest }\n"
    "  - { kind: allocation, name: hashed }\n";

static void setup_challenge(void) { rig_up(challenge_plugins, 0, 0); }

/* First round: 401 with the plugin's document; the answer the plugin
 * expects back goes to out. */
static void challenged(const char *reg_id, char out[64])
{
  struct answer a = do_register_tpm(reg_id, NULL);
  ck_assert_int_eq(a.http_status, 401);
  ck_assert_int_eq(a.error_code, 0);
  const char *nonce = json_string_value(json_object_get(a.doc, "nonce"));
  ck_assert_ptr_nonnull(nonce);
  snprintf(out, 64, "Nonce %s", nonce);
  answer_clear(&a);
}

START_TEST(t_challenge_round)
{
  enroll_tpm("tpm-1");
  char answer[64], op[128], claim[80];
  challenged("tpm-1", answer);
  snprintf(claim, sizeof(claim), "answered-%s", answer + strlen("Nonce "));
  struct answer a = do_register_tpm("tpm-1", answer);
  ck_assert_msg(a.http_status == 202, "%d %s", a.http_status, a.reason);
  snprintf(op, sizeof(op), "%s",
           json_string_value(json_object_get(a.doc, "operationId")));
  answer_clear(&a);
  /* The poll has no "tpm" body: the enrollment's plugin checks it with
   * the stored challenge; the claims show under registrationState.tpm. */
  a = do_poll("tpm-1", op, answer);
  ck_assert_msg(a.http_status == 200, "%d %s", a.http_status, a.reason);
  json_t *state = json_object_get(a.doc, "registrationState");
  ck_assert_str_eq(json_string_value(json_object_get(state, "status")),
                   "assigned");
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(state, "tpm"), "authenticationKey")),
                   claim);
  answer_clear(&a);
  /* The same answer again: the plugin hears that it was used. */
  a = do_register_tpm("tpm-1", answer);
  ck_assert_int_eq(a.http_status, 401);
  ck_assert_int_eq(a.error_code, 401002);
  ck_assert_str_eq(a.reason, "TPM_CHALLENGE_REPLAYED");
  answer_clear(&a);
}
END_TEST

START_TEST(t_challenge_replaced_and_missing)
{
  enroll_tpm("tpm-2");
  char first[64], second[64];
  struct answer a = do_register_tpm("tpm-2", "Nonce 00");
  ck_assert_str_eq(a.reason, "TPM_CHALLENGE_EXPIRED"); /* none issued */
  answer_clear(&a);
  challenged("tpm-2", first);
  challenged("tpm-2", second); /* a new round replaces the first */
  a = do_register_tpm("tpm-2", first);
  ck_assert_str_eq(a.reason, "BAD_SIGNATURE");
  answer_clear(&a);
  a = do_register_tpm("tpm-2", second);
  ck_assert_msg(a.http_status == 202, "%d %s", a.http_status, a.reason);
  answer_clear(&a);
  /* Another registration id never sees this challenge. */
  enroll_tpm("tpm-3");
  a = do_register_tpm("tpm-3", second);
  ck_assert_str_eq(a.reason, "TPM_CHALLENGE_EXPIRED");
  answer_clear(&a);
}
END_TEST

START_TEST(t_challenge_needs_a_register_call)
{
  /* A poll without a token gets no challenge: only register calls do. */
  enroll_tpm("tpm-4");
  struct answer a = do_poll("tpm-4", "5.0000000000000000.x", NULL);
  ck_assert_int_eq(a.http_status, 401);
  ck_assert_ptr_null(a.doc);
  answer_clear(&a);
}
END_TEST

static Suite *engine_suite(void)
{
  Suite *s = suite_create("engine");
  TCase *enr = tcase_create("enrollments");
  tcase_add_checked_fixture(enr, setup, teardown);
  tcase_add_test(enr, t_individual_enrollment_assigned);
  tcase_add_test(enr, t_individual_device_id_from_enrollment);
  tcase_add_test(enr, t_group_member_assigned);
  tcase_add_test(enr, t_second_group_accepts);
  tcase_add_test(enr, t_individual_enrollment_shadows_groups);
  tcase_add_test(enr, t_unknown_device_refused);
  tcase_add_test(enr, t_group_changes_count_at_once);
  tcase_add_test(enr, t_no_enrollment_at_all);
  tcase_add_test(enr, t_attestation_mismatch);
  tcase_add_test(enr, t_authenticate_only);
  tcase_add_test(enr, t_authenticated_enrollment_reused);
  tcase_add_test(enr, t_disabled_enrollment);
  tcase_add_test(enr, t_disabled_group);
  tcase_add_test(enr, t_disabled_keeps_known_hub);
  suite_add_tcase(s, enr);
  TCase *alloc = tcase_create("allocation");
  tcase_add_checked_fixture(alloc, setup, teardown);
  tcase_add_test(alloc, t_iot_hubs_by_host_name);
  tcase_add_test(alloc, t_iot_hub_host_name_legacy);
  tcase_add_test(alloc, t_iot_hubs_candidates_only);
  tcase_add_test(alloc, t_iot_hubs_unknown);
  tcase_add_test(alloc, t_allocation_policy_unavailable);
  tcase_add_test(alloc, t_allocation_policy_named);
  tcase_add_test(alloc, t_reprovision_migrates_data);
  tcase_add_test(alloc, t_reprovision_resets_data);
  tcase_add_test(alloc, t_reprovision_default_policy);
  tcase_add_test(alloc, t_reprovision_never);
  tcase_add_test(alloc, t_reprovision_same_hub);
  tcase_add_test(alloc, t_reprovision_history_and_twin_on_migrate);
  tcase_add_test(alloc, t_reprovision_reset_applies_twin);
  tcase_add_test(alloc, t_reprovision_never_keeps_history_empty);
  suite_add_tcase(s, alloc);
  TCase *pol = tcase_create("policies");
  tcase_add_checked_fixture(pol, setup_policies, teardown_policies);
  tcase_add_test(pol, t_default_policy_from_config);
  tcase_add_test(pol, t_register_rate_limits);
  tcase_add_test(pol, t_default_policy_unknown_refused);
  tcase_add_test(pol, t_drained_and_closed_hubs_get_no_devices);
  tcase_add_test(pol, t_static_named_hub);
  tcase_add_test(pol, t_static_missing_or_unknown_hub);
  tcase_add_test(pol, t_geo_latency_nearest);
  tcase_add_test(pol, t_geo_latency_hub_region_from_hubs);
  tcase_add_test(pol, t_geo_latency_tie_hashed);
  tcase_add_test(pol, t_geo_latency_unknown_region);
  tcase_add_test(pol, t_geo_latency_client_address);
  suite_add_tcase(s, pol);
  TCase *hook_tc = tcase_create("webhook");
  tcase_add_checked_fixture(hook_tc, setup_webhook, teardown_webhook);
  tcase_add_test(hook_tc, t_webhook_good_answer);
  tcase_add_test(hook_tc, t_webhook_slow_falls_back_within_budget);
  tcase_add_test(hook_tc, t_webhook_500_fails_with_400207);
  tcase_add_test(hook_tc, t_webhook_garbage_and_other_hub_fall_back);
  tcase_add_test(hook_tc, t_webhook_down_and_bad_scheme_fall_back);
  tcase_add_test(hook_tc, t_webhook_breaker_opens_and_closes);
  tcase_add_test(hook_tc, t_webhook_explain_dry_run);
  suite_add_tcase(s, hook_tc);
  TCase *polls = tcase_create("polls");
  tcase_add_checked_fixture(polls, setup, teardown);
  tcase_add_test(polls, t_poll_same_token_from_memory);
  tcase_add_test(polls, t_poll_other_token_goes_through_plugin);
  tcase_add_test(polls, t_poll_other_registration_id_misses);
  tcase_add_test(polls, t_poll_expired_token_misses);
  tcase_add_test(polls, t_poll_unknown_operation);
  tcase_add_test(polls, t_poll_without_reuse_is_never_cached);
  suite_add_tcase(s, polls);
  TCase *chal = tcase_create("challenges");
  tcase_add_checked_fixture(chal, setup_challenge, teardown);
  tcase_add_test(chal, t_challenge_round);
  tcase_add_test(chal, t_challenge_replaced_and_missing);
  tcase_add_test(chal, t_challenge_needs_a_register_call);
  suite_add_tcase(s, chal);
  TCase *bounds = tcase_create("bounds");
  tcase_add_checked_fixture(bounds, setup, teardown);
  tcase_add_test(bounds, t_throttled_when_read_queue_full);
  tcase_add_test(bounds, t_throttled_when_write_queue_full);
  tcase_add_test(bounds, t_first_boots_deferred_while_store_behind);
  suite_add_tcase(s, bounds);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(engine_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
