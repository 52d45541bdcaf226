/* The tpm attestation plugin against a real TPM: every test starts its own
 * swtpm, the device side runs through tpm2-tss ESAPI (tpm_device.h), the
 * server side is the plugin loaded from its .so through the real loader
 * and host table. */
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
#include "swtpm_fixture.h"
#include "tpm_device.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/url.h"

#define SCOPE "0ne00000001"
#define REGID "tpm-device-01"
#define NOW 1800000000LL

static const struct provd_plugin *desc;
static const struct provd_attest_ops *ops;

struct inst {
  struct plugin_instance pi;
  void *state;
};

/* Per test: a TPM, its keys, a configured plugin instance. */
static struct swtpm tpm;
static struct tpm_device *dev;
static char *ek_b64, *srk_b64;
static struct inst in;

static void load_plugin(void)
{
  const char *dir = getenv("PROVD_PLUGIN_DIR");
  ck_assert_msg(dir != NULL, "PROVD_PLUGIN_DIR is not set");
  char path[4096];
  snprintf(path, sizeof(path), "%s/tpm.so", dir);
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(plugin_open(path, &desc, &err) == PROVD_OK, "%s: %s", path,
                err.msg);
  ops = desc->ops;
}

static void inst_open(struct inst *i)
{
  memset(i, 0, sizeof(*i));
  i->pi.desc = desc;
  i->pi.kind = PROVD_KIND_ATTESTATION;
  i->pi.name = i->pi.id = i->pi.path = (char *)"tpm";
  pthread_mutex_init(&i->pi.op_lock, NULL);
  struct cfg_pos where = {"test", 1, 1};
  struct diag d = {0};
  ck_assert_int_eq(config_check_options(desc->options, NULL, &where, "tpm",
                                        &i->pi.options, &d),
                   0);
  diag_free(&d);
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(desc->lifecycle->create(host_api(),
                                           (struct provd_instance *)&i->pi,
                                           &i->state, &err),
                   PROVD_OK);
  ck_assert_int_eq(desc->lifecycle->configure(
                       i->state, cfg_from_json(i->pi.options), &err),
                   PROVD_OK);
}

static void setup(void)
{
  if (!desc)
    load_plugin();
  ck_assert_int_eq(swtpm_start(&tpm), 0);
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(tpm_device_open(tpm.tcti, &dev, &err) == 0, "%s", err.msg);
  uint8_t ek[TPM_DEVICE_PUBLIC_MAX], srk[TPM_DEVICE_PUBLIC_MAX];
  size_t ek_len = 0, srk_len = 0;
  ck_assert_msg(tpm_device_keys(dev, ek, &ek_len, srk, &srk_len, &err) == 0,
                "%s", err.msg);
  ck_assert_uint_eq(ek_len, 316); /* the SDK template (dps-protocol §4.1) */
  ck_assert_uint_eq(srk_len, 284);
  ek_b64 = b64_encode(ek, ek_len);
  srk_b64 = b64_encode(srk, srk_len);
  inst_open(&in);
}

static void teardown(void)
{
  desc->lifecycle->destroy(in.state);
  json_decref(in.pi.options);
  pthread_mutex_destroy(&in.pi.op_lock);
  free(ek_b64);
  free(srk_b64);
  tpm_device_close(dev);
  swtpm_stop(&tpm);
}

/* ---- calls ---- */

static json_t *enrollment_for(const char *ek)
{
  return json_pack("{s:s,s:{s:s,s:{s:s}}}", "registrationId", REGID,
                   "attestation", "type", "tpm", "tpm", "endorsementKey",
                   ek);
}

static json_t *device_body(const char *ek, const char *srk)
{
  return json_pack("{s:s,s:{s:s,s:s}}", "registrationId", REGID, "tpm",
                   "endorsementKey", ek, "storageRootKey", srk);
}

struct round {
  int status;
  char code[64];
  char *challenge_json;         /* owned */
  uint8_t session[256];
  size_t session_len;
  char *authentication_key;     /* registrationState.tpm's; owned */
  char *hub_key_b64;            /* attest_set_hub_key's; owned */
};

static void round_clear(struct round *r)
{
  free(r->challenge_json);
  free(r->authentication_key);
  free(r->hub_key_b64);
}

static struct round attest_at(json_t *enrollment, json_t *body,
                              const char *authorization,
                              const struct round *challenge, int answered,
                              long long now)
{
  struct provd_attest_request req = {
      .struct_size = sizeof(req),
      .id_scope = SCOPE,
      .registration_id = REGID,
      .mechanism = "tpm",
      .enrollment = cfg_from_json(enrollment),
      .enrollment_id = REGID,
      .authorization = authorization,
      .body = body ? cfg_from_json(body) : NULL,
      .now_unix = now,
      .session = challenge ? challenge->session : NULL,
      .session_len = challenge ? challenge->session_len : 0,
      .session_answered = answered,
  };
  struct provd_attest_result res;
  memset(&res, 0, sizeof(res));
  struct provd_err err = {{0}, {0}};
  struct round r;
  memset(&r, 0, sizeof(r));
  r.status = ops->attest(in.state, NULL, &req, &res, &err);
  memcpy(r.code, err.code, sizeof(r.code));
  if (res.challenge_json)
    r.challenge_json = strdup(res.challenge_json);
  ck_assert_uint_le(res.session_len, sizeof(r.session));
  if (res.session_len)
    memcpy(r.session, res.session, res.session_len);
  r.session_len = res.session_len;
  /* registrationState.tpm of the answer */
  const char *ak = res.state_key && strcmp(res.state_key, "tpm") == 0
                       ? json_string_value(json_object_get(
                             res.state, "authenticationKey"))
                       : NULL;
  if (ak)
    r.authentication_key = strdup(ak);
  if (res.hub_key_b64)
    r.hub_key_b64 = strdup(res.hub_key_b64);
  attest_result_clear(&res);
  return r;
}

/* First PUT: no token. */
static struct round first_put(void)
{
  json_t *e = enrollment_for(ek_b64), *b = device_body(ek_b64, srk_b64);
  struct round r = attest_at(e, b, NULL, NULL, 0, NOW);
  json_decref(e);
  json_decref(b);
  return r;
}

static uint8_t *decode(const char *b64, size_t *len)
{
  uint8_t *out = malloc(strlen(b64));
  ck_assert_int_eq(b64_decode(b64, out, strlen(b64), len), 0);
  return out;
}

/* The authenticationKey of a 401 answer, decoded. */
static uint8_t *challenge_blob(const struct round *r, size_t *len)
{
  json_t *j = json_loads(r->challenge_json, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "keyName")),
                   "registration");
  uint8_t *blob = decode(
      json_string_value(json_object_get(j, "authenticationKey")), len);
  json_decref(j);
  return blob;
}

/* sig over "urlenc(scope/registrations/regid)\nse" as the Node TPM client
 * writes it; mac is computed by the caller (TPM or software). */
static char *token_with(const char *sr, long long se, const uint8_t *mac)
{
  char *sig = b64_encode(mac, 32), sig_enc[128];
  ck_assert_int_eq(url_encode(sig, sig_enc, sizeof(sig_enc)), 0);
  free(sig);
  char *tok = malloc(1024);
  snprintf(tok, 1024,
           "SharedAccessSignature sr=%s&sig=%s&se=%lld&skn=registration", sr,
           sig_enc, se);
  return tok;
}

static void string_to_sign(char *sr, size_t sr_cap, char *msg,
                           size_t msg_cap, long long se)
{
  ck_assert_int_eq(url_encode(SCOPE "/registrations/" REGID, sr, sr_cap), 0);
  snprintf(msg, msg_cap, "%s\n%lld", sr, se);
}

/* A token signed inside the TPM by the imported identity key. */
static char *tpm_token(long long se)
{
  char sr[256], msg[512];
  string_to_sign(sr, sizeof(sr), msg, sizeof(msg), se);
  uint8_t mac[32];
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(tpm_device_hmac(dev, (const uint8_t *)msg, strlen(msg), mac,
                                &err) == 0,
                "%s", err.msg);
  return token_with(sr, se, mac);
}

static void import_ok(const uint8_t *blob, size_t len)
{
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(tpm_device_import(dev, blob, len, &err) == 0, "%s",
                err.msg);
}

/* The whole first round: challenge issued, activated by the TPM. */
static struct round challenged(void)
{
  struct round r = first_put();
  ck_assert_int_eq(r.status, PROVD_CHALLENGE);
  size_t len = 0;
  uint8_t *blob = challenge_blob(&r, &len);
  import_ok(blob, len);
  free(blob);
  return r;
}

static struct round second_put(const struct round *ch, const char *token,
                               int answered, long long now)
{
  json_t *e = enrollment_for(ek_b64), *b = device_body(ek_b64, srk_b64);
  struct round r = attest_at(e, b, token, ch, answered, now);
  json_decref(e);
  json_decref(b);
  return r;
}

/* ---- tests ---- */

START_TEST(t_challenge_activated_by_tpm)
{
  struct round ch = challenged();
  /* dps-protocol layout: 54 + 258 + 144 + 258 + 82 + 2 for RSA-2048. */
  size_t len = 0;
  uint8_t *blob = challenge_blob(&ch, &len);
  ck_assert_uint_eq(len, 798);
  ck_assert_uint_eq((blob[0] << 8) | blob[1], 52);
  free(blob);
  char *tok = tpm_token(NOW + 3600);
  struct round ok = second_put(&ch, tok, 0, NOW + 5);
  ck_assert_msg(ok.status == PROVD_OK, "%d %s", ok.status, ok.code);
  /* The answer's blob wraps the same key again: the TPM imports it and
   * signs the same token. */
  ck_assert_ptr_nonnull(ok.authentication_key);
  uint8_t *again = decode(ok.authentication_key, &len);
  ck_assert_uint_eq(len, 798);
  import_ok(again, len);
  char *tok2 = tpm_token(NOW + 3600);
  ck_assert_str_eq(tok, tok2);
  /* The host got that key for the hub: its HMAC is the TPM's. */
  ck_assert_ptr_null(ch.hub_key_b64);
  ck_assert_ptr_nonnull(ok.hub_key_b64);
  size_t key_len = 0;
  uint8_t *hub_key = decode(ok.hub_key_b64, &key_len);
  ck_assert_uint_eq(key_len, 32);
  char sr[256], msg[512];
  string_to_sign(sr, sizeof(sr), msg, sizeof(msg), NOW + 3600);
  uint8_t by_tpm[32], by_host[32];
  unsigned int host_len = 0;
  struct provd_err err = {{0}, {0}};
  ck_assert_int_eq(tpm_device_hmac(dev, (const uint8_t *)msg, strlen(msg),
                                   by_tpm, &err), 0);
  ck_assert_ptr_nonnull(HMAC(EVP_sha256(), hub_key, (int)key_len,
                             (const uint8_t *)msg, strlen(msg), by_host,
                             &host_len));
  ck_assert_mem_eq(by_tpm, by_host, 32);
  free(hub_key);
  free(again);
  free(tok);
  free(tok2);
  round_clear(&ok);
  round_clear(&ch);
}
END_TEST

START_TEST(t_tampered_blob_refused_by_tpm)
{
  struct round ch = first_put();
  ck_assert_int_eq(ch.status, PROVD_CHALLENGE);
  size_t len = 0;
  uint8_t *blob = challenge_blob(&ch, &len);
  struct provd_err err = {{0}, {0}};
  blob[10] ^= 0x01; /* inside encIdentity: ActivateCredential's HMAC */
  ck_assert_int_eq(tpm_device_import(dev, blob, len, &err), -1);
  ck_assert_str_eq(err.code, "TPM");
  blob[10] ^= 0x01;
  blob[54 + 258 + 40] ^= 0x01; /* inside the duplicate: Import's HMAC */
  ck_assert_int_eq(tpm_device_import(dev, blob, len, &err), -1);
  ck_assert_str_eq(err.code, "TPM");
  blob[54 + 258 + 40] ^= 0x01;
  import_ok(blob, len); /* the untouched blob still works */
  free(blob);
  round_clear(&ch);
}
END_TEST

START_TEST(t_tampered_keys_from_device)
{
  size_t len = 0;
  uint8_t *ek = decode(ek_b64, &len);
  ek[1] ^= 0x10; /* TPM2B size no longer matches */
  char *bad = b64_encode(ek, len);
  json_t *e = enrollment_for(ek_b64), *b = device_body(bad, srk_b64);
  struct round r = attest_at(e, b, NULL, NULL, 0, NOW);
  ck_assert_int_eq(r.status, PROVD_DENIED);
  ck_assert_str_eq(r.code, "TPM_BAD_BLOB");
  json_decref(b);
  free(bad);
  ek[1] ^= 0x10;
  ek[len - 1] ^= 0x01; /* an even modulus: no RSA key (found by fuzzing) */
  bad = b64_encode(ek, len);
  b = device_body(bad, srk_b64);
  round_clear(&r);
  r = attest_at(e, b, NULL, NULL, 0, NOW);
  ck_assert_int_eq(r.status, PROVD_DENIED);
  ck_assert_str_eq(r.code, "TPM_BAD_BLOB");
  json_decref(b);
  b = device_body(ek_b64, "AAAA");
  round_clear(&r);
  r = attest_at(e, b, NULL, NULL, 0, NOW);
  ck_assert_str_eq(r.code, "TPM_BAD_BLOB");
  round_clear(&r);
  json_decref(e);
  json_decref(b);
  free(bad);
  free(ek);
}
END_TEST

START_TEST(t_wrong_ek)
{
  size_t len = 0;
  uint8_t *ek = decode(ek_b64, &len);
  ek[len - 1] ^= 0x02; /* last modulus byte (still odd): another key */
  char *other = b64_encode(ek, len);
  json_t *e = enrollment_for(other), *b = device_body(ek_b64, srk_b64);
  struct round r = attest_at(e, b, NULL, NULL, 0, NOW);
  ck_assert_int_eq(r.status, PROVD_DENIED);
  ck_assert_str_eq(r.code, "TPM_EK_MISMATCH");
  ck_assert_ptr_null(r.challenge_json);
  round_clear(&r);
  json_decref(e);
  json_decref(b);
  free(other);
  free(ek);
}
END_TEST

START_TEST(t_token_by_another_key)
{
  struct round ch = challenged();
  char sr[256], msg[512];
  string_to_sign(sr, sizeof(sr), msg, sizeof(msg), NOW + 3600);
  uint8_t key[32], mac[32];
  unsigned int mac_len = 0;
  ck_assert_int_eq(RAND_bytes(key, sizeof(key)), 1);
  HMAC(EVP_sha256(), key, sizeof(key), (const uint8_t *)msg, strlen(msg),
       mac, &mac_len);
  char *tok = token_with(sr, NOW + 3600, mac);
  struct round r = second_put(&ch, tok, 0, NOW + 5);
  ck_assert_int_eq(r.status, PROVD_DENIED);
  ck_assert_str_eq(r.code, "BAD_SIGNATURE");
  free(tok);
  round_clear(&r);
  round_clear(&ch);
}
END_TEST

START_TEST(t_answered_twice)
{
  struct round ch = challenged();
  char *tok = tpm_token(NOW + 3600);
  struct round r = second_put(&ch, tok, 1, NOW + 5);
  ck_assert_int_eq(r.status, PROVD_DENIED);
  ck_assert_str_eq(r.code, "TPM_CHALLENGE_REPLAYED");
  free(tok);
  round_clear(&r);
  round_clear(&ch);
}
END_TEST

START_TEST(t_answered_after_lifetime)
{
  struct round ch = challenged();
  char *tok = tpm_token(NOW + 3600);
  struct round r = second_put(&ch, tok, 0, NOW + 301); /* lifetime 5m */
  ck_assert_int_eq(r.status, PROVD_DENIED);
  ck_assert_str_eq(r.code, "TPM_CHALLENGE_EXPIRED");
  round_clear(&r);
  r = second_put(NULL, tok, 0, NOW + 5); /* the store forgot it */
  ck_assert_str_eq(r.code, "TPM_CHALLENGE_EXPIRED");
  free(tok);
  round_clear(&r);
  round_clear(&ch);
}
END_TEST

START_TEST(t_poll_without_keys)
{
  /* Status polls carry no body: the token and the challenge suffice. */
  struct round ch = challenged();
  char *tok = tpm_token(NOW + 3600);
  json_t *e = enrollment_for(ek_b64), *b = json_object();
  struct round r = attest_at(e, b, tok, &ch, 0, NOW + 5);
  ck_assert_msg(r.status == PROVD_OK, "%d %s", r.status, r.code);
  ck_assert_ptr_null(r.authentication_key);
  ck_assert_ptr_null(r.hub_key_b64); /* only a register assigns */
  json_decref(e);
  json_decref(b);
  free(tok);
  round_clear(&r);
  round_clear(&ch);
}
END_TEST

/* The device keeps the imported hub key as a TPM object (credentials
 * file): it signs what the persistent key signs, and another TPM cannot
 * load it. */
START_TEST(t_kept_key_object_only_in_its_tpm)
{
  struct round ch = challenged();
  size_t len = 0;
  uint8_t *blob = challenge_blob(&ch, &len);
  struct tpm_device_key_object *obj = calloc(1, sizeof(*obj));
  struct provd_err err = {{0}, {0}};
  ck_assert_msg(tpm_device_import_object(dev, blob, len, obj, &err) == 0,
                "%s", err.msg);
  ck_assert_uint_gt(obj->priv_len, 0);
  ck_assert_uint_gt(obj->pub_len, 0);
  const uint8_t msg[] = "hub.local%2Fdevices%2Fdev\n1800003600";
  uint8_t by_handle[32], by_object[32];
  ck_assert_int_eq(tpm_device_hmac(dev, msg, sizeof(msg) - 1, by_handle,
                                   &err), 0);
  ck_assert_msg(tpm_device_hmac_object(dev, obj, msg, sizeof(msg) - 1,
                                       by_object, &err) == 0,
                "%s", err.msg);
  ck_assert_mem_eq(by_handle, by_object, 32);

  struct swtpm other;
  ck_assert_int_eq(swtpm_start(&other), 0);
  struct tpm_device *odev = NULL;
  uint8_t ek[TPM_DEVICE_PUBLIC_MAX], srk[TPM_DEVICE_PUBLIC_MAX];
  size_t ek_len = 0, srk_len = 0;
  ck_assert_int_eq(tpm_device_open(other.tcti, &odev, &err), 0);
  ck_assert_int_eq(tpm_device_keys(odev, ek, &ek_len, srk, &srk_len, &err),
                   0);
  ck_assert_int_eq(tpm_device_hmac_object(odev, obj, msg, sizeof(msg) - 1,
                                          by_object, &err),
                   -1);
  ck_assert_str_eq(err.code, "TPM");
  obj->priv[obj->priv_len - 1] ^= 1; /* and a damaged object loads nowhere */
  ck_assert_int_eq(tpm_device_hmac_object(dev, obj, msg, sizeof(msg) - 1,
                                          by_object, &err),
                   -1);
  ck_assert_str_eq(err.code, "TPM");
  tpm_device_close(odev);
  swtpm_stop(&other);
  free(obj);
  free(blob);
  round_clear(&ch);
}
END_TEST

static Suite *tpm_suite(void)
{
  Suite *s = suite_create("attestation-tpm");
  TCase *tc = tcase_create("swtpm");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, t_challenge_activated_by_tpm);
  tcase_add_test(tc, t_tampered_blob_refused_by_tpm);
  tcase_add_test(tc, t_tampered_keys_from_device);
  tcase_add_test(tc, t_wrong_ek);
  tcase_add_test(tc, t_token_by_another_key);
  tcase_add_test(tc, t_answered_twice);
  tcase_add_test(tc, t_answered_after_lifetime);
  tcase_add_test(tc, t_poll_without_keys);
  tcase_add_test(tc, t_kept_key_object_only_in_its_tpm);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(tpm_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
