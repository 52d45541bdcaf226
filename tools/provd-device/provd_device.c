#include "provd_device.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "device_internal.h"
#include "dps_mqtt.h"
#include "https.h"
#include "provd_device_tpm.h"
#include "util/b64.h"
#include "util/sas.h"
#include "util/url.h"

#define TOKEN_LIFETIME_S 3600
#define DEFAULT_POLL_S 2     /* what the SDKs wait without Retry-After */
#define MAX_ROUNDS 1000      /* requests per registration, whatever happens */
#define MAX_REQUEST_S 30     /* the Node SDK's per-request limit */
#define MAX_KEY_BYTES 256
#define MAX_PAYLOAD (64u * 1024u)
#define PATH_MAX_LEN 2048
#define MAX_BACKOFF_S 30    /* transient errors without Retry-After */

/* Everything one registration needs between requests. */
struct reg_flow {
  const struct provd_device_opts *opts;
  struct https_client *http; /* NULL over MQTT */
  struct dps_mqtt *mqtt;    /* owned; the MQTT transport (mqtts:// URL) */
  struct device_tpm *tpm;   /* owned; NULL unless TPM attestation */
  char api[64];             /* api-version */
  char regid[PROVD_DEVICE_MAX_ID];
  char *token;              /* owned; NULL until a TPM has its key */
  char *body;               /* owned, the register PUT body */
  char scope_enc[3 * PROVD_DEVICE_MAX_ID + 1];
  char regid_enc[3 * PROVD_DEVICE_MAX_ID + 1];
  char api_enc[128];
  double deadline;          /* monotonic seconds */
};

static double mono_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
  struct timespec ts;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

void provd_device_result_clear(struct provd_device_result *result)
{
  free(result->registration_state_json);
  free(result->payload_json);
  free(result->issued_certificate_pem);
  memset(result, 0, sizeof(*result));
}

static int check_id(const char *what, const char *v, struct provd_err *err)
{
  if (!v || !v[0]) {
    perr_set(err, "BAD_INPUT", "%s is required", what);
    return -1;
  }
  if (strlen(v) >= PROVD_DEVICE_MAX_ID) {
    perr_set(err, "BAD_INPUT", "%s is longer than %d bytes", what,
             PROVD_DEVICE_MAX_ID - 1);
    return -1;
  }
  return 0;
}

static int check_opts(const struct provd_device_opts *o,
                      struct provd_err *err)
{
  if (check_id("the ID scope", o->id_scope, err) != 0 ||
      ((o->registration_id || !o->tpm_tcti) &&
       check_id("the registration id", o->registration_id, err) != 0))
    return -1;
  if (!!o->symmetric_key + !!o->group_key + !!o->cert_file +
          !!o->tpm_tcti != 1) {
    perr_set(err, "BAD_INPUT", "give exactly one of a symmetric key, a "
             "group key, a certificate or a TPM");
    return -1;
  }
  if (!o->cert_file != !o->key_file) {
    perr_set(err, "BAD_INPUT", "a certificate needs its private key, and "
             "a private key its certificate");
    return -1;
  }
  if (o->timeout_s < 0 || o->timeout_s > 86400) {
    perr_set(err, "BAD_INPUT", "timeout must be 0..86400 seconds");
    return -1;
  }
  if (o->payload_json && strlen(o->payload_json) > MAX_PAYLOAD) {
    perr_set(err, "BAD_INPUT", "payload is larger than %u bytes",
             MAX_PAYLOAD);
    return -1;
  }
  return 0;
}

/* The device key in raw bytes: the given key, or the one derived from the
 * group key for this registration id (dps-protocol.md 3.2). */
static int device_key(const struct provd_device_opts *o, uint8_t *key,
                      size_t *key_len, struct provd_err *err)
{
  char derived[128];
  const char *b64 = o->symmetric_key;
  if (o->group_key) {
    if (sas_derive_device_key(o->group_key, o->registration_id, derived,
                              sizeof(derived)) < 0) {
      perr_set(err, "BAD_INPUT", "the group key is not valid base64");
      return -1;
    }
    b64 = derived;
  }
  if (b64_decode(b64, key, MAX_KEY_BYTES, key_len) < 0 || *key_len == 0) {
    perr_set(err, "BAD_INPUT", "the %s key is not valid base64",
             o->group_key ? "derived" : "symmetric");
    return -1;
  }
  return 0;
}

int device_key_b64(const struct provd_device_opts *o, char *out, size_t cap,
                   struct provd_err *err)
{
  uint8_t key[MAX_KEY_BYTES];
  size_t key_len = 0;
  int rc = device_key(o, key, &key_len, err);
  if (rc == 0 && b64_encode_to(key, key_len, out, cap, NULL) < 0) {
    perr_set(err, "BAD_INPUT", "the device key is too long");
    rc = -1;
  }
  memset(key, 0, sizeof(key));
  return rc;
}

static char *make_token(const struct provd_device_opts *o,
                        struct provd_err *err)
{
  uint8_t key[MAX_KEY_BYTES];
  size_t key_len = 0;
  char resource[2 * PROVD_DEVICE_MAX_ID + 32];
  if (device_key(o, key, &key_len, err) != 0)
    return NULL;
  snprintf(resource, sizeof(resource), "%s/registrations/%s", o->id_scope,
           o->registration_id);
  char *token = sas_build(resource, key, key_len,
                          (int64_t)time(NULL) + TOKEN_LIFETIME_S,
                          "registration");
  memset(key, 0, sizeof(key));
  if (!token)
    perr_set(err, "NO_MEMORY", "could not build the SAS token");
  return token;
}

/* {"registrationId": ..., "payload": ...}; caller frees. */
static char *make_body(const struct reg_flow *f, struct provd_err *err)
{
  const struct provd_device_opts *o = f->opts;
  json_t *doc = json_pack("{s:s}", "registrationId", f->regid);
  if (!doc) {
    perr_set(err, "BAD_INPUT", "registration id is not valid UTF-8");
    return NULL;
  }
  if (f->tpm)
    json_object_set_new(
        doc, "tpm",
        json_pack("{s:s,s:s}", "endorsementKey",
                  device_tpm_endorsement_key(f->tpm), "storageRootKey",
                  device_tpm_storage_root_key(f->tpm)));
  if (o->payload_json) {
    json_error_t jerr;
    json_t *payload = json_loads(o->payload_json, JSON_DECODE_ANY, &jerr);
    if (!payload) {
      perr_set(err, "BAD_INPUT", "payload is not JSON: %s (column %d)",
               jerr.text, jerr.column);
      json_decref(doc);
      return NULL;
    }
    json_object_set_new(doc, "payload", payload);
  }
  if (o->csr_b64)
    json_object_set_new(doc, "csr", json_string(o->csr_b64));
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if (!text)
    perr_set(err, "NO_MEMORY", "out of memory");
  return text;
}

/* The MQTT transport: DPS serves TPM attestation over HTTPS only. */
static int open_mqtt(struct reg_flow *f, struct provd_err *err)
{
  if (f->tpm) {
    perr_set(err, "BAD_INPUT", "TPM attestation registers over HTTPS only "
             "(DPS does not serve it over MQTT)");
    return -1;
  }
  f->mqtt = dps_mqtt_open(f->opts->url, f->opts, f->regid, f->api, f->token,
                          f->deadline, err);
  return f->mqtt ? 0 : -1;
}

static int flow_init(struct reg_flow *f, const struct provd_device_opts *o,
                     struct provd_err *err)
{
  char ua[64];
  const char *api = o->api_version  ? o->api_version
                    : o->csr_b64    ? PROVD_DEVICE_CSR_API_VERSION
                                    : PROVD_DEVICE_DEFAULT_API_VERSION;
  int timeout = o->timeout_s ? o->timeout_s : PROVD_DEVICE_DEFAULT_TIMEOUT_S;
  memset(f, 0, sizeof(*f));
  f->opts = o;
  if (o->tpm_tcti && device_tpm_open(o->tpm_tcti, &f->tpm, err) != 0)
    return -1;
  if (o->registration_id)
    snprintf(f->regid, sizeof(f->regid), "%s", o->registration_id);
  else
    device_tpm_registration_id(f->tpm, f->regid);
  if (url_encode(o->id_scope, f->scope_enc, sizeof(f->scope_enc)) < 0 ||
      url_encode(f->regid, f->regid_enc, sizeof(f->regid_enc)) < 0
      || url_encode(api, f->api_enc, sizeof(f->api_enc)) < 0) {
    perr_set(err, "BAD_INPUT", "scope, registration id or api-version too "
             "long");
    return -1;
  }
  /* A certificate or a TPM needs no token up front. */
  f->token = o->cert_file || f->tpm ? NULL : make_token(o, err);
  if (!f->token && !o->cert_file && !f->tpm)
    return -1;
  f->body = make_body(f, err);
  if (!f->body)
    return -1;
  f->deadline = mono_now() + timeout;
  snprintf(f->api, sizeof(f->api), "%s", api);
  if (dps_mqtt_url(o->url))
    return open_mqtt(f, err);
  snprintf(ua, sizeof(ua), "provd-device/%s", PROVD_VERSION);
  f->http = https_client_new(o->url ? o->url : PROVD_DEVICE_DEFAULT_URL,
                             o->ca_file, o->user_agent ? o->user_agent : ua,
                             MAX_REQUEST_S, err);
  if (!f->http)
    return -1;
  if (o->cert_file &&
      https_client_set_identity(f->http, o->cert_file, o->key_file, err) != 0)
    return -1;
  return 0;
}

static void flow_clear(struct reg_flow *f)
{
  https_client_free(f->http);
  dps_mqtt_close(f->mqtt);
  device_tpm_close(f->tpm);
  if (f->token) {
    memset(f->token, 0, strlen(f->token));
    free(f->token);
  }
  free(f->body);
}

static void copy_string(char *dst, size_t cap, json_t *obj, const char *key)
{
  json_t *v = json_object_get(obj, key);
  if (json_is_string(v))
    snprintf(dst, cap, "%s", json_string_value(v));
}

/* Picks errorCode / message out of a DPS error body or registrationState
 * (errorCode may be a number or, from some servers, a string). */
static void read_error_fields(json_t *obj, struct provd_device_result *r)
{
  json_t *code = json_object_get(obj, "errorCode");
  if (json_is_integer(code))
    r->error_code = (long)json_integer_value(code);
  else if (json_is_string(code))
    r->error_code = strtol(json_string_value(code), NULL, 10);
  copy_string(r->error_message, sizeof(r->error_message), obj,
              "errorMessage");
  if (!r->error_message[0])
    copy_string(r->error_message, sizeof(r->error_message), obj, "message");
}

static void note_http_error(const struct https_response *rs,
                            struct provd_device_result *r,
                            struct provd_err *err)
{
  char text[768];
  json_t *doc = json_loadb(rs->body, rs->body_len, 0, NULL);
  if (json_is_object(doc))
    read_error_fields(doc, r);
  json_decref(doc);
  https_describe_error(rs, text, sizeof(text));
  perr_set(err, "HTTP_ERROR", "%s", text);
}

/* Reads a RegistrationOperationStatus into r.  -1 when it is not one. */
static int read_operation(const struct https_response *rs,
                          struct provd_device_result *r,
                          struct provd_err *err)
{
  json_error_t jerr;
  json_t *doc = json_loadb(rs->body, rs->body_len, 0, &jerr);
  if (!json_is_object(doc)) {
    perr_set(err, "BAD_RESPONSE", "HTTP %ld answer is not a JSON object%s%s",
             rs->status, doc ? "" : ": ", doc ? "" : jerr.text);
    json_decref(doc);
    return -1;
  }
  r->status[0] = '\0';
  copy_string(r->status, sizeof(r->status), doc, "status");
  copy_string(r->operation_id, sizeof(r->operation_id), doc, "operationId");
  json_t *state = json_object_get(doc, "registrationState");
  if (json_is_object(state)) {
    copy_string(r->assigned_hub, sizeof(r->assigned_hub), state,
                "assignedHub");
    copy_string(r->device_id, sizeof(r->device_id), state, "deviceId");
    read_error_fields(state, r);
    free(r->registration_state_json);
    r->registration_state_json = json_dumps(state, JSON_COMPACT);
    json_t *payload = json_object_get(state, "payload");
    free(r->payload_json);
    r->payload_json = payload ? json_dumps(payload, JSON_COMPACT |
                                                        JSON_ENCODE_ANY)
                              : NULL;
  }
  json_decref(doc);
  if (!r->status[0]) {
    perr_set(err, "BAD_RESPONSE", "answer has no \"status\"");
    return -1;
  }
  return 0;
}

/* Up to 25 % more than `s`, at random: devices throttled together must
 * not come back together. */
static double jittered(double s)
{
  unsigned char r = 0;
  if (RAND_bytes(&r, 1) != 1)
    r = (unsigned char)(mono_now() * 1000.0);
  return s * (1.0 + 0.25 * (double)r / 255.0);
}

/* What to wait before sending again: Retry-After when the service gave
 * one, else DEFAULT_POLL_S for a poll, or for a transient error (attempt
 * >= 1) a backoff doubling from 1 s up to MAX_BACKOFF_S; jittered. */
static double wait_for(int retry_after_s, int attempt)
{
  double wait = DEFAULT_POLL_S;
  if (retry_after_s >= 0)
    wait = retry_after_s;
  else if (attempt > 0)
    wait = attempt >= 6 ? MAX_BACKOFF_S : (double)(1 << (attempt - 1));
  if (wait < 0.1)
    wait = 0.1; /* Retry-After: 0 must not become a busy loop */
  return jittered(wait);
}

/* Waits before the next request; -1 (TIMEOUT) when the wait would pass
 * the deadline. */
static int wait_before_retry(struct reg_flow *f, double wait, const char *why,
                             struct provd_err *err)
{
  if (mono_now() + wait > f->deadline) {
    perr_set(err, "TIMEOUT", "%s, and waiting %.0f s more would pass the "
             "%d s timeout (raise --timeout?)", why, wait,
             f->opts->timeout_s ? f->opts->timeout_s
                                : PROVD_DEVICE_DEFAULT_TIMEOUT_S);
    return -1;
  }
  sleep_seconds(wait);
  return 0;
}

/* The path of the next request: the register PUT, or the poll of the
 * operation the service handed out. */
static int request_path(const struct reg_flow *f, const char *operation_id,
                        char *path, size_t cap, struct provd_err *err)
{
  char op_enc[3 * 256 + 1];
  int w;
  if (!operation_id) {
    w = snprintf(path, cap, "/%s/registrations/%s/register?api-version=%s",
                 f->scope_enc, f->regid_enc, f->api_enc);
  } else {
    if (url_encode(operation_id, op_enc, sizeof(op_enc)) < 0) {
      perr_set(err, "BAD_RESPONSE", "operationId is too long");
      return -1;
    }
    w = snprintf(path, cap, "/%s/registrations/%s/operations/%s"
                 "?api-version=%s", f->scope_enc, f->regid_enc, op_enc,
                 f->api_enc);
  }
  if (w < 0 || (size_t)w >= cap) {
    perr_set(err, "BAD_INPUT", "request path too long");
    return -1;
  }
  return 0;
}

/* One request: the PUT when operation_id is NULL, else the status GET.
 * Each request may take at most what is left of the overall deadline. */
static int send_step(struct reg_flow *f, const char *operation_id,
                     struct https_response *rs, struct provd_err *err)
{
  char path[PATH_MAX_LEN];
  struct https_request rq = { .authorization = f->token };
  double left = f->deadline - mono_now();
  if (f->mqtt)
    return dps_mqtt_request(f->mqtt, operation_id,
                            operation_id ? NULL : f->body,
                            mono_now() + (left < MAX_REQUEST_S
                                              ? (left < 1 ? 1 : left)
                                              : MAX_REQUEST_S),
                            rs, err);
  if (request_path(f, operation_id, path, sizeof(path), err) != 0)
    return -1;
  rq.method = operation_id ? "GET" : "PUT";
  rq.body = operation_id ? NULL : f->body;
  rq.path = path;
  rq.timeout_s = left >= MAX_REQUEST_S ? MAX_REQUEST_S
                 : left < 1 ? 1 : (long)left + 1;
  return https_do(f->http, &rq, rs, err);
}

/* 429 and 5xx are transient for every DPS SDK but Node: wait as told and
 * send the same request again. */
static int is_transient(long status)
{
  return status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

enum step_next { STEP_DONE, STEP_POLL, STEP_REREGISTER, STEP_ERROR };

/* Decides what a 2xx operation status means. */
static enum step_next judge_status(struct provd_device_result *r,
                                   struct provd_err *err)
{
  const char *st = r->status;
  if (strcasecmp(st, "assigned") == 0) {
    if (!r->assigned_hub[0] || !r->device_id[0]) {
      perr_set(err, "BAD_RESPONSE", "status assigned without assignedHub "
               "and deviceId");
      return STEP_ERROR;
    }
    return STEP_DONE;
  }
  if (strcasecmp(st, "assigning") == 0)
    return r->operation_id[0] ? STEP_POLL : STEP_REREGISTER;
  if (strcasecmp(st, "registering") == 0)
    return STEP_REREGISTER; /* Node re-sends the PUT on this one */
  if (strcasecmp(st, "failed") == 0) {
    perr_set(err, "REGISTRATION_FAILED", "registration failed: errorCode "
             "%ld%s%s", r->error_code, r->error_message[0] ? ": " : "",
             r->error_message);
  } else if (strcasecmp(st, "disabled") == 0) {
    perr_set(err, "REGISTRATION_DISABLED",
             "the enrollment for this device is disabled");
  } else {
    perr_set(err, "UNEXPECTED_STATUS", "service answered status \"%s\"",
             st);
  }
  return STEP_ERROR;
}

/* The TPM challenge round: a PUT without token is answered 401 with an
 * authenticationKey; once the TPM imported it, it signs the token. */
static int tpm_challenge_round(struct reg_flow *f,
                               struct provd_device_result *r,
                               struct provd_err *err)
{
  struct https_response rs = { .retry_after_s = -1 };
  if (send_step(f, NULL, &rs, err) != 0)
    return -1;
  r->http_status = rs.status;
  json_t *doc = rs.status == 401 ? json_loadb(rs.body, rs.body_len, 0, NULL)
                                 : NULL;
  const char *blob = json_string_value(json_object_get(doc,
                                                       "authenticationKey"));
  int rc = -1;
  if (!blob)
    note_http_error(&rs, r, err);
  else if (device_tpm_activate(f->tpm, blob, err) == 0)
    rc = (f->token = device_tpm_token(f->tpm, f->opts->id_scope, f->regid,
                                      (int64_t)time(NULL) + TOKEN_LIFETIME_S,
                                      err))
             ? 0
             : -1;
  json_decref(doc);
  https_response_clear(&rs);
  return rc;
}

/* The assigned answer wraps the hub identity key for the TPM once more
 * (registrationState.tpm.authenticationKey): import it. */
static int tpm_import_final_key(struct reg_flow *f,
                                const struct provd_device_result *r,
                                struct provd_err *err)
{
  json_t *state = r->registration_state_json
                      ? json_loads(r->registration_state_json, 0, NULL)
                      : NULL;
  const char *blob = json_string_value(
      json_object_get(json_object_get(state, "tpm"), "authenticationKey"));
  int rc = blob ? device_tpm_activate(f->tpm, blob, err) : 0;
  json_decref(state);
  return rc;
}

static int run_flow(struct reg_flow *f, struct provd_device_result *r,
                    struct provd_err *err)
{
  struct https_response rs = { .retry_after_s = -1 };
  int polling = 0;
  if (f->tpm && tpm_challenge_round(f, r, err) != 0)
    return -1;
  for (int round = 0; round < MAX_ROUNDS; round++) {
    if (send_step(f, polling ? r->operation_id : NULL, &rs, err) != 0)
      return -1;
    if (polling)
      r->polls++;
    r->http_status = rs.status;
    int retry_after = rs.retry_after_s;
    if (is_transient(rs.status)) {
      char why[256];
      https_describe_error(&rs, why, sizeof(why));
      https_response_clear(&rs);
      if (wait_before_retry(f, wait_for(retry_after, r->retries + 1), why,
                            err) != 0)
        return -1;
      r->retries++;
      continue;
    }
    if (!https_ok(&rs)) {
      note_http_error(&rs, r, err);
      https_response_clear(&rs);
      return -1;
    }
    int rc = read_operation(&rs, r, err);
    https_response_clear(&rs);
    if (rc != 0)
      return -1;
    enum step_next next = judge_status(r, err);
    if (next == STEP_DONE)
      return f->tpm ? tpm_import_final_key(f, r, err) : 0;
    if (next == STEP_ERROR)
      return -1;
    polling = next == STEP_POLL;
    if (wait_before_retry(f, wait_for(retry_after, 0), "still assigning",
                          err) != 0)
      return -1;
  }
  perr_set(err, "TIMEOUT", "no decision after %d requests", MAX_ROUNDS);
  return -1;
}

/* The chain issued for the CSR, when the answer has one (the caller
 * decides whether its absence is an error: provd_device_issued_chain_pem
 * says why). */
static void keep_issued_chain(struct provd_device_result *r)
{
  struct provd_err ignored;
  char *pem = NULL;
  if (provd_device_issued_chain_pem(r->registration_state_json, &pem,
                                    &ignored) > 0)
    r->issued_certificate_pem = pem;
  else
    free(pem);
}

int provd_device_register(const struct provd_device_opts *opts,
                          struct provd_device_result *result,
                          struct provd_err *err)
{
  struct reg_flow flow;
  memset(result, 0, sizeof(*result));
  perr_clear(err);
  if (check_opts(opts, err) != 0)
    return -1;
  int rc = flow_init(&flow, opts, err);
  snprintf(result->registration_id, sizeof(result->registration_id), "%s",
           flow.regid);
  if (rc == 0)
    rc = run_flow(&flow, result, err);
  flow_clear(&flow);
  if (rc == 0 && opts->csr_b64)
    keep_issued_chain(result);
  if (rc != 0)
    snprintf(result->reason, sizeof(result->reason), "%s", err->code);
  return rc;
}
