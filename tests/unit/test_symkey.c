/* The symmetric-key attestation plugin, loaded from its .so through the
 * real loader and host table, checked on individual and group enrollments.
 * Tokens are signed here with OpenSSL directly, not with sas_build, so a
 * bug shared by signer and verifier cannot hide. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "config/config.h"
#include "plugin/loader.h"
#include "provd/attest.h"
#include "provd/host.h"
#include "provd/plugin.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/sas.h"
#include "util/url.h"

#define SCOPE "0ne00000001"
#define NOW 1800000000LL

static const struct provd_plugin *desc;
static const struct provd_attest_ops *ops;

/* One configured instance. */
struct inst {
  struct plugin_instance pi;
  void *state;
};

/* Enrollment keys, fresh per test run. */
static char primary[96], secondary[96], other[96];

static void random_key(char *out, size_t cap)
{
  uint8_t raw[64];
  ck_assert_int_eq(RAND_bytes(raw, sizeof(raw)), 1);
  char *s = b64_encode(raw, sizeof(raw));
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_lt(strlen(s), cap);
  memcpy(out, s, strlen(s) + 1);
  free(s);
}

static void load_plugin(void)
{
  const char *dir = getenv("PROVD_PLUGIN_DIR");
  ck_assert_msg(dir != NULL, "PROVD_PLUGIN_DIR is not set");
  char path[4096];
  snprintf(path, sizeof(path), "%s/symmetric-key.so", dir);
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(plugin_open(path, &desc, &err) == PROVD_OK, "%s: %s", path,
                err.msg);
  ops = desc->ops;
  random_key(primary, sizeof(primary));
  random_key(secondary, sizeof(secondary));
  random_key(other, sizeof(other));
}

/* Typed options as the daemon makes them when the YAML has no
 * `options:`: every schema default applied. */
static json_t *default_options(void)
{
  struct cfg_pos where = {"test", 1, 1};
  struct diag d = {0};
  json_t *out = NULL;
  int rc = config_check_options(desc->options, NULL, &where, "symmetric-key",
                                &out, &d);
  ck_assert_msg(rc == 0 && out, "defaults: %s", d.n ? d.lines[0] : "?");
  diag_free(&d);
  return out;
}

/* options: JSON text of the typed options (durations in ms), or NULL for
 * the schema defaults. */
static void inst_open(struct inst *in, const char *options)
{
  memset(in, 0, sizeof(*in));
  in->pi.desc = desc;
  in->pi.kind = PROVD_KIND_ATTESTATION;
  in->pi.name = (char *)"symmetric-key";
  in->pi.id = (char *)"symmetric-key";
  in->pi.path = (char *)"symmetric-key.so";
  pthread_mutex_init(&in->pi.op_lock, NULL);
  if (options) {
    json_error_t jerr;
    in->pi.options = json_loads(options, 0, &jerr);
    ck_assert_ptr_nonnull(in->pi.options);
  } else {
    in->pi.options = default_options();
  }
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(desc->lifecycle->create(host_api(),
                                           (struct provd_instance *)&in->pi,
                                           &in->state, &err),
                   PROVD_OK);
  in->pi.state = in->state;
  int rc = desc->lifecycle->configure(in->state,
                                      cfg_from_json(in->pi.options), &err);
  ck_assert_msg(rc == PROVD_OK, "configure: %s", err.msg);
}

static void inst_close(struct inst *in)
{
  desc->lifecycle->destroy(in->state);
  json_decref(in->pi.options);
  pthread_mutex_destroy(&in->pi.op_lock);
}

/* ---- tokens ---- */

/* The device key a device holds: the key itself, or for a group
 * base64(HMAC-SHA256(b64dec(groupKey), regId)) computed here. */
static size_t device_key(const char *key_b64, int is_group,
                         const char *reg_id, uint8_t *out)
{
  uint8_t raw[128];
  size_t n = 0;
  ck_assert_int_eq(b64_decode(key_b64, raw, sizeof(raw), &n), 0);
  if (!is_group) {
    memcpy(out, raw, n);
    return n;
  }
  unsigned int len = 0;
  ck_assert_ptr_nonnull(HMAC(EVP_sha256(), raw, (int)n,
                             (const unsigned char *)reg_id, strlen(reg_id),
                             out, &len));
  return len;
}

/* "SharedAccessSignature sr=<sr>&sig=<urlenc b64>&se=<se>[&skn=<skn>]"
 * signed over sr exactly as given. */
static char *make_token(const char *sr, const uint8_t *key, size_t key_len,
                        long long se, const char *skn)
{
  char msg[512], sig_enc[128];
  int n = snprintf(msg, sizeof(msg), "%s\n%lld", sr, se);
  uint8_t mac[32];
  unsigned int mac_len = 0;
  ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)key_len,
                             (const unsigned char *)msg, (size_t)n, mac,
                             &mac_len));
  char *sig = b64_encode(mac, mac_len);
  ck_assert_int_eq(url_encode(sig, sig_enc, sizeof(sig_enc)), 0);
  free(sig);
  char *tok = malloc(1024);
  snprintf(tok, 1024, "SharedAccessSignature sr=%s&sig=%s&se=%lld%s%s", sr,
           sig_enc, se, skn ? "&skn=" : "", skn ? skn : "");
  return tok;
}

/* A token for reg_id as the C SDK writes it (lowercase %2f). */
static char *token_for(const char *key_b64, int is_group, const char *reg_id,
                       long long se)
{
  char sr[256];
  snprintf(sr, sizeof(sr), SCOPE "%%2fregistrations%%2f%s", reg_id);
  uint8_t key[128];
  size_t klen = device_key(key_b64, is_group, reg_id, key);
  return make_token(sr, key, klen, se, "registration");
}

/* ---- calls ---- */

static json_t *enrollment_json(const char *p, const char *s)
{
  json_t *sym = json_object();
  if (p)
    json_object_set_new(sym, "primaryKey", json_string(p));
  if (s)
    json_object_set_new(sym, "secondaryKey", json_string(s));
  return json_pack("{s:s, s:{s:s, s:o}}", "registrationId", "x",
                   "attestation", "type", "symmetricKey", "symmetricKey",
                   sym);
}

struct outcome {
  int status;
  char code[64];
};

static struct outcome attest_with(struct inst *in, json_t *enrollment,
                                  int is_group, const char *reg_id,
                                  const char *authorization)
{
  struct provd_attest_request req = {
      .struct_size = sizeof(req),
      .id_scope = SCOPE,
      .registration_id = reg_id,
      .mechanism = "symmetricKey",
      .enrollment = cfg_from_json(enrollment),
      .is_group = is_group,
      .enrollment_id = is_group ? "group-1" : reg_id,
      .authorization = authorization,
      .now_unix = NOW,
  };
  struct provd_attest_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err = {{0}, {0}};
  struct outcome o;
  o.status = ops->attest(in->state, NULL, &req, &res, &err);
  memcpy(o.code, err.code, sizeof(o.code));
  /* Reasons never carry the key material. */
  ck_assert_ptr_null(strstr(err.msg, primary));
  ck_assert_ptr_null(strstr(err.msg, secondary));
  return o;
}

/* attest() for an enrollment holding primary + secondary. */
static struct outcome attest_keys(struct inst *in, int is_group,
                                  const char *reg_id, const char *auth)
{
  json_t *e = enrollment_json(primary, secondary);
  struct outcome o = attest_with(in, e, is_group, reg_id, auth);
  json_decref(e);
  return o;
}

/* Evaluates `call` once. */
#define ck_outcome(call, st, cd)                                          \
  do {                                                                    \
    struct outcome o_ = (call);                                           \
    ck_assert_int_eq(o_.status, (st));                                    \
    ck_assert_str_eq(o_.code, (cd));                                      \
  } while (0)

static struct inst in;

static void setup(void)
{
  if (!desc)
    load_plugin();
  inst_open(&in, NULL); /* clock_skew 5m, no lifetime limit */
}

static void teardown(void)
{
  inst_close(&in);
}

/* ---- descriptor ---- */

START_TEST(t_descriptor)
{
  ck_assert_str_eq(desc->name, "symmetric-key");
  ck_assert_int_eq(desc->kind, PROVD_KIND_ATTESTATION);
  ck_assert(desc->flags & PROVD_PLUGIN_THREADSAFE);
  ck_assert_str_eq(ops->mechanisms[0], "symmetricKey");
  ck_assert_ptr_null(ops->mechanisms[1]);
  ck_assert_str_eq(desc->options[0].name, "clock_skew");
  ck_assert_str_eq(desc->options[0].default_value, "5m");
  ck_assert_str_eq(desc->options[1].name, "max_token_lifetime");
  ck_assert_str_eq(desc->options[1].default_value, "0");
  ck_assert_ptr_null(desc->options[2].name);
}
END_TEST

/* ---- accepted ---- */

START_TEST(t_individual_primary)
{
  char *tok = token_for(primary, 0, "dev-1", NOW + 3600);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

START_TEST(t_individual_secondary)
{
  char *tok = token_for(secondary, 0, "dev-1", NOW + 3600);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

/* Only a secondary key on the enrollment is enough. */
START_TEST(t_secondary_only)
{
  json_t *e = enrollment_json(NULL, secondary);
  char *tok = token_for(secondary, 0, "dev-1", NOW + 3600);
  ck_outcome(attest_with(&in, e, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
  json_decref(e);
}
END_TEST

START_TEST(t_group_primary)
{
  char *tok = token_for(primary, 1, "dev-7", NOW + 3600);
  ck_outcome(attest_keys(&in, 1, "dev-7", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

START_TEST(t_group_secondary)
{
  char *tok = token_for(secondary, 1, "dev-7", NOW + 3600);
  ck_outcome(attest_keys(&in, 1, "dev-7", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

/* The Node SDK sends sr unencoded and signs it that way (wire trace a). */
START_TEST(t_node_form)
{
  uint8_t key[128];
  size_t klen = device_key(primary, 0, "symkey-http-01", key);
  char *tok = make_token(SCOPE "/registrations/symkey-http-01", key, klen,
                         NOW + 3600, "registration");
  ck_outcome(attest_keys(&in, 0, "symkey-http-01", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

/* The spec's group vector end to end (dps-protocol.md 3.2). */
START_TEST(t_spec_group_vector)
{
  static const char group_key[] =
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy"
      "MzQ1Njc4OTo7PD0+Pw==";
  struct inst old;
  inst_open(&old, "{\"clock_skew\": 0}");
  json_t *e = enrollment_json(group_key, NULL);
  struct provd_attest_request req = {
      .struct_size = sizeof(req),
      .id_scope = SCOPE,
      .registration_id = "my-device-001",
      .mechanism = "symmetricKey",
      .enrollment = cfg_from_json(e),
      .is_group = 1,
      .enrollment_id = "g",
      .authorization =
          "SharedAccessSignature sr=0ne00000001%2fregistrations%2fmy-device-"
          "001&sig=awS%2Bv1Fh%2B1614Lq27zBB4sO9mtdb%2FEB51OADzSgPdfM%3D&se="
          "1700000000&skn=registration",
      .now_unix = 1699999000,
  };
  struct provd_attest_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(ops->attest(old.state, NULL, &req, &res, &err), PROVD_OK);
  json_decref(e);
  inst_close(&old);
}
END_TEST

START_TEST(t_resource_case_insensitive)
{
  char *tok = token_for(primary, 0, "dev-1", NOW + 3600);
  ck_outcome(attest_keys(&in, 0, "DEV-1", tok), PROVD_OK, "");
  free(tok);
  /* Token minted for "Dev-1" (signed over that text) checks against the
   * request for "dev-1": the resource matches ignoring case. */
  uint8_t key[128];
  size_t klen = device_key(primary, 0, "Dev-1", key);
  tok = make_token(SCOPE "%2Fregistrations%2FDev-1", key, klen, NOW + 60,
                   NULL);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

START_TEST(t_within_clock_skew)
{
  char *tok = token_for(primary, 0, "dev-1", NOW - 300);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

START_TEST(t_no_skn)
{
  uint8_t key[128];
  size_t klen = device_key(primary, 0, "dev-1", key);
  char *tok = make_token(SCOPE "%2fregistrations%2fdev-1", key, klen,
                         NOW + 60, NULL);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
}
END_TEST

/* ---- refused ---- */

START_TEST(t_wrong_key)
{
  char *tok = token_for(other, 0, "dev-1", NOW + 3600);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_DENIED,
             "BAD_SIGNATURE");
  free(tok);
}
END_TEST

/* A group that does not know the key declines: the core tries the next. */
START_TEST(t_group_wrong_key_declines)
{
  char *tok = token_for(other, 1, "dev-7", NOW + 3600);
  ck_outcome(attest_keys(&in, 1, "dev-7", tok), PROVD_DECLINED,
             "BAD_SIGNATURE");
  free(tok);
}
END_TEST

/* Signing with the group key itself (not the derived key) is refused. */
START_TEST(t_group_key_used_directly)
{
  char *tok = token_for(primary, 0, "dev-7", NOW + 3600);
  ck_outcome(attest_keys(&in, 1, "dev-7", tok), PROVD_DECLINED,
             "BAD_SIGNATURE");
  free(tok);
}
END_TEST

/* A device key derived for another registration id does not carry over. */
START_TEST(t_group_key_of_other_device)
{
  uint8_t key[128];
  size_t klen = device_key(primary, 1, "dev-8", key);
  char *tok = make_token(SCOPE "%2fregistrations%2fdev-7", key, klen,
                         NOW + 60, "registration");
  ck_outcome(attest_keys(&in, 1, "dev-7", tok), PROVD_DECLINED,
             "BAD_SIGNATURE");
  free(tok);
}
END_TEST

START_TEST(t_expired)
{
  char *tok = token_for(primary, 0, "dev-1", NOW - 301);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_DENIED,
             "TOKEN_EXPIRED");
  free(tok);
  tok = token_for(primary, 1, "dev-1", NOW - 3600);
  ck_outcome(attest_keys(&in, 1, "dev-1", tok), PROVD_DENIED,
             "TOKEN_EXPIRED");
  free(tok);
}
END_TEST

START_TEST(t_missing_token)
{
  ck_outcome(attest_keys(&in, 0, "dev-1", NULL), PROVD_DENIED,
             "MISSING_TOKEN");
  ck_outcome(attest_keys(&in, 0, "dev-1", ""), PROVD_DENIED,
             "MISSING_TOKEN");
}
END_TEST

START_TEST(t_malformed_token)
{
  static const char *const bad[] = {
      "Bearer abc",
      "SharedAccessSignature sr=" SCOPE "%2fregistrations%2fdev-1&se=1",
      "SharedAccessSignature sr=a&sig=QQ%3D%3D&se=soon",
      "SharedAccessSignature sr=a%zz&sig=QQ%3D%3D&se=1",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_outcome(attest_keys(&in, 0, "dev-1", bad[i]), PROVD_DENIED,
               "MALFORMED_TOKEN");
}
END_TEST

START_TEST(t_resource_mismatch)
{
  char *tok = token_for(primary, 0, "dev-2", NOW + 3600);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_DENIED,
             "TOKEN_RESOURCE_MISMATCH");
  free(tok);
  uint8_t key[128];
  size_t klen = device_key(primary, 0, "dev-1", key);
  tok = make_token("0ne00000002%2fregistrations%2fdev-1", key, klen,
                   NOW + 60, "registration");
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_DENIED,
             "TOKEN_RESOURCE_MISMATCH");
  free(tok);
}
END_TEST

START_TEST(t_bad_key_name)
{
  uint8_t key[128];
  size_t klen = device_key(primary, 0, "dev-1", key);
  char *tok = make_token(SCOPE "%2fregistrations%2fdev-1", key, klen,
                         NOW + 60, "provisioningserviceowner");
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_DENIED,
             "BAD_KEY_NAME");
  free(tok);
}
END_TEST

START_TEST(t_lifetime_limit)
{
  struct inst lim;
  inst_open(&lim, "{\"max_token_lifetime\": 3600000}");
  char *tok = token_for(primary, 0, "dev-1", NOW + 3601);
  ck_outcome(attest_keys(&lim, 0, "dev-1", tok), PROVD_DENIED,
             "TOKEN_LIFETIME_TOO_LONG");
  free(tok);
  tok = token_for(primary, 0, "dev-1", NOW + 3600);
  ck_outcome(attest_keys(&lim, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
  /* Without a limit the same long token is fine. */
  tok = token_for(primary, 0, "dev-1", NOW + 30 * 86400);
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
  inst_close(&lim);
}
END_TEST

/* clock_skew 0: one second past se is expired. */
START_TEST(t_skew_option)
{
  struct inst strict;
  inst_open(&strict, "{\"clock_skew\": 0}");
  char *tok = token_for(primary, 0, "dev-1", NOW - 1);
  ck_outcome(attest_keys(&strict, 0, "dev-1", tok), PROVD_DENIED,
             "TOKEN_EXPIRED");
  ck_outcome(attest_keys(&in, 0, "dev-1", tok), PROVD_OK, "");
  free(tok);
  inst_close(&strict);
}
END_TEST

START_TEST(t_bad_option)
{
  struct plugin_instance pi;
  memset(&pi, 0, sizeof(pi));
  void *state = NULL;
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(desc->lifecycle->create(host_api(),
                                           (struct provd_instance *)&pi,
                                           &state, &err),
                   PROVD_OK);
  json_t *o = json_pack("{s:I}", "clock_skew", (json_int_t)-1);
  ck_assert_int_eq(desc->lifecycle->configure(state, cfg_from_json(o), &err),
                   PROVD_E_CONFIG);
  ck_assert_ptr_nonnull(strstr(err.msg, "clock_skew"));
  json_decref(o);
  desc->lifecycle->destroy(state);
}
END_TEST

START_TEST(t_enrollment_without_keys)
{
  char *tok = token_for(primary, 0, "dev-1", NOW + 60);
  json_t *e = enrollment_json(NULL, NULL);
  struct outcome o = attest_with(&in, e, 0, "dev-1", tok);
  ck_assert_int_eq(o.status, PROVD_E_CONFIG);
  json_decref(e);
  e = json_pack("{s:s}", "registrationId", "dev-1");
  o = attest_with(&in, e, 1, "dev-1", tok);
  ck_assert_int_eq(o.status, PROVD_E_CONFIG);
  json_decref(e);
  /* A key that is not base64 is unusable too. */
  e = enrollment_json("not base64!", NULL);
  o = attest_with(&in, e, 0, "dev-1", tok);
  ck_assert_int_eq(o.status, PROVD_E_CONFIG);
  json_decref(e);
  free(tok);
}
END_TEST

/* A broken primary key does not stop the secondary from working. */
START_TEST(t_bad_primary_good_secondary)
{
  char *tok = token_for(secondary, 0, "dev-1", NOW + 60);
  json_t *e = enrollment_json("%%%%", secondary);
  ck_outcome(attest_with(&in, e, 0, "dev-1", tok), PROVD_OK, "");
  json_decref(e);
  free(tok);
}
END_TEST

static Suite *symkey_suite(void)
{
  Suite *s = suite_create("symmetric-key");
  TCase *tc = tcase_create("accept");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_descriptor);
  tcase_add_test(tc, t_individual_primary);
  tcase_add_test(tc, t_individual_secondary);
  tcase_add_test(tc, t_secondary_only);
  tcase_add_test(tc, t_group_primary);
  tcase_add_test(tc, t_group_secondary);
  tcase_add_test(tc, t_node_form);
  tcase_add_test(tc, t_spec_group_vector);
  tcase_add_test(tc, t_resource_case_insensitive);
  tcase_add_test(tc, t_within_clock_skew);
  tcase_add_test(tc, t_no_skn);
  tcase_add_test(tc, t_bad_primary_good_secondary);
  suite_add_tcase(s, tc);

  tc = tcase_create("refuse");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_wrong_key);
  tcase_add_test(tc, t_group_wrong_key_declines);
  tcase_add_test(tc, t_group_key_used_directly);
  tcase_add_test(tc, t_group_key_of_other_device);
  tcase_add_test(tc, t_expired);
  tcase_add_test(tc, t_missing_token);
  tcase_add_test(tc, t_malformed_token);
  tcase_add_test(tc, t_resource_mismatch);
  tcase_add_test(tc, t_bad_key_name);
  tcase_add_test(tc, t_lifetime_limit);
  tcase_add_test(tc, t_skew_option);
  tcase_add_test(tc, t_bad_option);
  tcase_add_test(tc, t_enrollment_without_keys);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(symkey_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
