/* libprovd-device against a real provd (and its mosquitto hub), built the
 * way a device maker builds it: only <provd/device.h> and
 * `pkg-config provd-device` (tests/e2e/device_library.sh compiles it
 * against an installed prefix, starts the servers and sets the
 * environment):
 *   DEV_URL DEV_CA DEV_SCOPE          provd
 *   DEV_THROTTLED_URL                 a front answering 429 twice
 *   DEV_MQTT_URL                      provd's DPS MQTT endpoint (mqtts://)
 *   DEV_SYM_ID DEV_SYM_KEY            an individual enrollment
 *   DEV_LIMITED_ID DEV_LIMITED_KEY    one provd throttles after 6
 *                                     registers a minute (Retry-After 1)
 *   DEV_GROUP_KEY DEV_GROUP_MEMBER    an enrollment group
 *   DEV_X509_ID DEV_X509_CERT DEV_X509_KEY  an X.509 enrollment
 *   DEV_TPM_TCTI                      a TPM whose EK is enrolled
 *   DEV_HUB_PORT                      the hub's MQTT/TLS port (tokens)
 *   DEV_HUB_CERT_PORT                 its port for X.509 devices
 *   DEV_WORK                          a scratch directory */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <provd/device.h>

static const char *env(const char *name)
{
  const char *v = getenv(name);
  ck_assert_msg(v && *v, "%s is not set", name);
  return v;
}

static struct provd_device_opts base_opts(void)
{
  struct provd_device_opts o = {0};
  o.url = env("DEV_URL");
  o.ca_file = env("DEV_CA");
  o.id_scope = env("DEV_SCOPE");
  o.timeout_s = 20;
  return o;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends through the hub's port named by port_env; asserts all arrived. */
static void send_all(const struct provd_device_credentials *c,
                     const char *port_env, const char *const *msgs, size_t n)
{
  struct provd_device_hub_opts hub = {.port = atoi(env(port_env)),
                                      .ca_file = env("DEV_CA"),
                                      .timeout_s = 10};
  struct provd_err err;
  size_t sent = 0;
  int rc = provd_device_send(c, &hub, msgs, n, 0.1, &sent, &err);
  ck_assert_msg(rc == 0, "send failed: %s %s", err.code, err.msg);
  ck_assert_uint_eq(sent, n);
}

static void assert_assigned(const struct provd_device_result *r, int rc,
                            const struct provd_err *err, const char *device)
{
  ck_assert_msg(rc == 0, "register failed: %s %s", err->code, err->msg);
  ck_assert_str_eq(r->status, "assigned");
  ck_assert_str_eq(r->assigned_hub, "localhost");
  ck_assert_str_eq(r->device_id, device);
  ck_assert_str_eq(r->reason, "");
  ck_assert_ptr_nonnull(r->registration_state_json);
}

/* Registers with o and asserts the assignment; the result is dropped. */
static void register_ok(const struct provd_device_opts *o)
{
  struct provd_device_result r;
  struct provd_err err;
  int rc = provd_device_register(o, &r, &err);
  assert_assigned(&r, rc, &err, o->registration_id);
  provd_device_result_clear(&r);
}

/* A refused registration: its reason, and no hub. */
static void register_refused(const struct provd_device_opts *o,
                             const char *reason)
{
  struct provd_device_result r;
  struct provd_err err;
  ck_assert_int_eq(provd_device_register(o, &r, &err), -1);
  ck_assert_str_eq(r.reason, reason);
  ck_assert_str_eq(err.code, reason);
  ck_assert_str_eq(r.assigned_hub, "");
  provd_device_result_clear(&r);
}

START_TEST(symmetric_key_registers_keeps_and_sends)
{
  struct provd_device_opts o = base_opts();
  o.registration_id = env("DEV_SYM_ID");
  o.symmetric_key = env("DEV_SYM_KEY");
  o.payload_json = "{\"model\":\"t-1000\"}";
  struct provd_device_result r;
  struct provd_err err;
  int rc = provd_device_register(&o, &r, &err);
  assert_assigned(&r, rc, &err, o.registration_id);
  ck_assert_int_eq(r.retries, 0);

  char path[1024];
  snprintf(path, sizeof(path), "%s/sym.json", env("DEV_WORK"));
  ck_assert_int_eq(provd_device_credentials_save(path, &o, &r, &err), 0);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  struct provd_device_credentials c;
  ck_assert_int_eq(provd_device_credentials_load(path, &c, &err), 0);
  ck_assert_str_eq(c.assigned_hub, "localhost");
  ck_assert_str_eq(c.device_id, o.registration_id);
  ck_assert_str_eq(c.symmetric_key, o.symmetric_key);
  provd_device_result_clear(&r);

  const char *msgs[] = {"{\"n\":1}", "{\"n\":2}"};
  send_all(&c, "DEV_HUB_PORT", msgs, 2);
}
END_TEST

/* A TPM device: the credentials file keeps the hub key as the TPM
 * imported it, so only the file-based calls can sign for it. */
START_TEST(tpm_device_signs_its_hub_tokens_in_the_tpm)
{
  struct provd_device_opts o = base_opts();
  o.tpm_tcti = env("DEV_TPM_TCTI");
  struct provd_device_result r;
  struct provd_err err;
  int rc = provd_device_register(&o, &r, &err);
  ck_assert_msg(rc == 0, "register failed: %s %s", err.code, err.msg);
  ck_assert_str_eq(r.assigned_hub, "localhost");
  char path[1024], sym_path[1024];
  snprintf(path, sizeof(path), "%s/tpm.json", env("DEV_WORK"));
  snprintf(sym_path, sizeof(sym_path), "%s/sym.json", env("DEV_WORK"));
  ck_assert_msg(provd_device_credentials_save(path, &o, &r, &err) == 0,
                "%s %s", err.code, err.msg);
  struct provd_device_credentials c;
  ck_assert_int_eq(provd_device_credentials_load(path, &c, &err), 0);
  ck_assert_str_eq(c.device_id, r.device_id);
  ck_assert_str_eq(c.symmetric_key, "");

  struct provd_device_hub_opts hub = {.port = atoi(env("DEV_HUB_PORT")),
                                      .ca_file = env("DEV_CA"),
                                      .timeout_s = 10};
  const char *msgs[] = {"{\"tpm\":1}", "{\"tpm\":2}"};
  size_t sent = 0;
  ck_assert_int_eq(provd_device_send(&c, &hub, msgs, 2, 0, &sent, &err), -1);
  ck_assert_str_eq(err.code, "UNSUPPORTED");
  rc = provd_device_send_file(path, NULL, &hub, msgs, 2, 0.1, &sent, &err);
  ck_assert_msg(rc == 0, "send failed: %s %s", err.code, err.msg);
  ck_assert_uint_eq(sent, 2);

  char *token = NULL, want[600];
  ck_assert_int_eq(provd_device_tpm_hub_token(path, NULL, 2000000000, &token,
                                              &err),
                   0);
  snprintf(want, sizeof(want), "SharedAccessSignature sr=localhost%%2Fdevices"
           "%%2F%s&sig=", r.device_id);
  ck_assert_msg(strncmp(token, want, strlen(want)) == 0, "%s", token);
  ck_assert_ptr_nonnull(strstr(token, "&se=2000000000"));
  ck_assert_ptr_null(strstr(token, "skn="));
  free(token);
  /* A file without a TPM key (the symmetric-key device's) signs nothing. */
  ck_assert_int_eq(provd_device_tpm_hub_token(sym_path, NULL, 2000000000,
                                              &token, &err),
                   -1);
  ck_assert_str_eq(err.code, "BAD_CREDENTIALS");
  ck_assert_ptr_null(token);
  provd_device_result_clear(&r);
}
END_TEST

START_TEST(group_key_derives_the_device_key)
{
  struct provd_device_opts o = base_opts();
  o.registration_id = env("DEV_GROUP_MEMBER");
  o.group_key = env("DEV_GROUP_KEY");
  register_ok(&o);
}
END_TEST

START_TEST(x509_certificate_registers)
{
  struct provd_device_opts o = base_opts();
  o.registration_id = env("DEV_X509_ID");
  o.cert_file = env("DEV_X509_CERT");
  o.key_file = env("DEV_X509_KEY");
  struct provd_device_result r;
  struct provd_err err;
  int rc = provd_device_register(&o, &r, &err);
  assert_assigned(&r, rc, &err, o.registration_id);

  char path[1024];
  snprintf(path, sizeof(path), "%s/x509.json", env("DEV_WORK"));
  ck_assert_int_eq(provd_device_credentials_save(path, &o, &r, &err), 0);
  provd_device_result_clear(&r);
  struct provd_device_credentials c;
  ck_assert_int_eq(provd_device_credentials_load(path, &c, &err), 0);
  ck_assert_str_eq(c.symmetric_key, "");
  ck_assert_str_eq(c.cert_file, o.cert_file);
  const char *msg = "{\"x509\":true}";
  send_all(&c, "DEV_HUB_CERT_PORT", &msg, 1);
}
END_TEST

START_TEST(wrong_key_is_refused_with_a_reason)
{
  struct provd_device_opts o = base_opts();
  o.registration_id = env("DEV_SYM_ID");
  o.symmetric_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  register_refused(&o, "HTTP_ERROR");
}
END_TEST

/* The front answers 429 with Retry-After: 1 twice: the library waits at
 * least what it was told each time (plus at most 25 % jitter), then
 * succeeds. */
START_TEST(retry_after_is_honoured_with_jitter)
{
  struct provd_device_opts o = base_opts();
  o.url = env("DEV_THROTTLED_URL");
  o.registration_id = env("DEV_SYM_ID");
  o.symmetric_key = env("DEV_SYM_KEY");
  struct provd_device_result r;
  struct provd_err err;
  double start = now_s();
  int rc = provd_device_register(&o, &r, &err);
  double took = now_s() - start;
  assert_assigned(&r, rc, &err, o.registration_id);
  ck_assert_int_eq(r.retries, 2);
  ck_assert_msg(took >= 2.0, "retried after %.2f s, before Retry-After", took);
  ck_assert_msg(took < 2.0 * 1.25 + 1.5, "waited %.2f s, far beyond it", took);
  provd_device_result_clear(&r);
}
END_TEST

/* provd's own limit: the 7th register within the minute is answered
 * 429 with Retry-After: 1, again and again; the library waits at least
 * that long each time and gives up at its deadline with TIMEOUT. */
START_TEST(provd_throttles_and_the_library_waits)
{
  struct provd_device_opts o = base_opts();
  o.registration_id = env("DEV_LIMITED_ID");
  o.symmetric_key = env("DEV_LIMITED_KEY");
  for (int i = 0; i < 6; i++)
    register_ok(&o);
  o.timeout_s = 3;
  struct provd_device_result r;
  struct provd_err err;
  double start = now_s();
  ck_assert_int_eq(provd_device_register(&o, &r, &err), -1);
  double took = now_s() - start;
  ck_assert_str_eq(r.reason, "TIMEOUT");
  ck_assert_int_eq(r.http_status, 429);
  ck_assert_int_ge(r.retries, 2);
  ck_assert_msg(took >= 1.0 * r.retries - 0.05,
                "%d retries in %.2f s: sooner than Retry-After", r.retries,
                took);
  provd_device_result_clear(&r);
}
END_TEST

START_TEST(credentials_readable_by_others_are_refused)
{
  char path[1024];
  snprintf(path, sizeof(path), "%s/open.json", env("DEV_WORK"));
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs("{\"idScope\":\"s\",\"registrationId\":\"r\",\"assignedHub\":\"h\","
        "\"deviceId\":\"d\"}", f);
  fclose(f);
  ck_assert_int_eq(chmod(path, 0644), 0);
  struct provd_device_credentials c;
  struct provd_err err;
  ck_assert_int_eq(provd_device_credentials_load(path, &c, &err), -1);
  ck_assert_str_eq(err.code, "BAD_CREDENTIALS");
  ck_assert_int_eq(chmod(path, 0600), 0);
  ck_assert_int_eq(provd_device_credentials_load(path, &c, &err), 0);
  ck_assert_str_eq(c.device_id, "d");
}
END_TEST

/* The same flow over DPS MQTT: a key, a group key, a certificate. */
START_TEST(mqtt_transport_registers_every_mechanism)
{
  struct provd_device_opts o = base_opts();
  o.url = env("DEV_MQTT_URL");
  o.registration_id = env("DEV_SYM_ID");
  o.symmetric_key = env("DEV_SYM_KEY");
  register_ok(&o);

  o.symmetric_key = NULL;
  o.registration_id = "lib-fleet-02";
  o.group_key = env("DEV_GROUP_KEY");
  register_ok(&o);

  o.group_key = NULL;
  o.registration_id = env("DEV_X509_ID");
  o.cert_file = env("DEV_X509_CERT");
  o.key_file = env("DEV_X509_KEY");
  register_ok(&o);
}
END_TEST

START_TEST(mqtt_transport_refuses_a_wrong_key)
{
  struct provd_device_opts o = base_opts();
  o.url = env("DEV_MQTT_URL");
  o.registration_id = env("DEV_SYM_ID");
  o.symmetric_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  register_refused(&o, "NOT_AUTHORIZED");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("libprovd-device");
  TCase *tc = tcase_create("against provd");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, symmetric_key_registers_keeps_and_sends);
  tcase_add_test(tc, tpm_device_signs_its_hub_tokens_in_the_tpm);
  tcase_add_test(tc, group_key_derives_the_device_key);
  tcase_add_test(tc, x509_certificate_registers);
  tcase_add_test(tc, wrong_key_is_refused_with_a_reason);
  tcase_add_test(tc, retry_after_is_honoured_with_jitter);
  tcase_add_test(tc, credentials_readable_by_others_are_refused);
  tcase_add_test(tc, mqtt_transport_registers_every_mechanism);
  tcase_add_test(tc, mqtt_transport_refuses_a_wrong_key);
  tcase_add_test(tc, provd_throttles_and_the_library_waits);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
