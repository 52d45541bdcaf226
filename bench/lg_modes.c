/* What each load-generator mode sends and when a unit is done.
 *
 * register: one device = one new connection with a full TLS handshake,
 *   PUT .../register like the Node SDK (trace (a) of dps-wire-traces.md),
 *   then GET .../operations/{id} on the same connection, immediately (the
 *   Retry-After the server sends is ignored), until "assigned".
 * register-mqtt: the same device over MQTT/TLS (lg_mqtt.c): CONNECT +
 *   SUBSCRIBE + PUBLISH register in one write, then PUBLISH polls.
 * baseline: the register unit's bytes against a server that answers
 *   every request with a fixed body: new connection + full handshake,
 *   PUT .../register, one GET .../operations/{id}, close.
 * enroll: PUT /enrollments/{id} over keep-alive connections (service API),
 *   seeding individual symmetric-key enrollments whose keys the register
 *   mode can recompute: key = base64(HMAC-SHA256(seed, registration id)).
 * enroll-bulk: the same enrollments, 10 per POST /enrollments bulk
 *   operation (mode create); --count is the number of operations and
 *   --ids the number of enrollments.  With --tpm-keys both create TPM
 *   enrollments of the software TPM's EK instead.
 * register-tpm: the TPM flow of trace (d): PUT .../register with the EK
 *   and SRK and no token, 401 with an authenticationKey, activation in
 *   software (lg_tpm.c), the same PUT with a token signed by the imported
 *   key, then polls as in register. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>

#include "lg_tpm.h"
#include "loadgen.h"
#include "util/b64.h"
#include "util/connstr.h"
#include "util/sas.h"
#include "util/url.h"

#define USER_AGENT "provd-loadgen/" PROVD_VERSION
#define SERVICE_API_VERSION "2021-10-01"
#define DEVICE_KEY_MAX 64
#define TOKEN_LIFETIME_S (24 * 3600)
/* Under provd's default limits.max_service_token_lifetime (1 h); a
 * seeding longer than this would need a fresh token. */
#define SERVICE_TOKEN_LIFETIME_S (50 * 60)

struct lg_mode_ctx {
  const struct lg_opts *o;   /* borrowed */
  char *seed_b64;            /* base64(seed): the "group key" of the
                                individual-key derivation */
  char *service_auth;        /* enroll: service SAS token */
  char service_host[256];    /* enroll: HostName, also the Host header */
  /* register: every device's SAS token, signed before the measured run.
   * A real device signs on its own CPU, not on the server's machine, so
   * the bench keeps that work out of the shared cores while it measures.
   * Read-only once built; shared by the engine threads. */
  char **tokens;
  long n_tokens;
  /* X.509 devices (--client-ca): a certificate per device instead of a
   * token, made before the measured run for the same reason. */
  struct lg_identity *identities;
  long n_identities;
  struct lg_tpm tpm;         /* --tpm-keys */
  bool have_tpm;
};

/* More X.509 devices than this would hold too much memory. */
#define IDENTITY_CACHE_MAX 200000L

/* Up to this many ids the tokens are precomputed (about 200 bytes each). */
#define TOKEN_CACHE_MAX 2000000L

/* ---- helpers ---- */

/* xorshift64* per engine (no locking): Request-Ids only need to differ. */
static uint64_t next_random(struct lg_engine *e)
{
  e->rng ^= e->rng >> 12;
  e->rng ^= e->rng << 25;
  e->rng ^= e->rng >> 27;
  return e->rng * 0x2545F4914F6CDD1DULL;
}

static void request_id(struct lg_engine *e, char out[37])
{
  uint64_t a = next_random(e), b = next_random(e);
  snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
           (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
           (unsigned)((b >> 48) & 0x3fff) | 0x8000,
           (unsigned long long)(b & 0xffffffffffffULL));
}

static void set_error(struct lg_verdict *v, enum lg_err_kind kind,
                      int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(struct lg_verdict *v, enum lg_err_kind kind,
                      int status, const char *fmt, ...)
{
  va_list ap;
  v->action = LG_UNIT_ERROR;
  v->kind = kind;
  v->status = status;
  va_start(ap, fmt);
  vsnprintf(v->detail, sizeof v->detail, fmt, ap);
  va_end(ap);
}

/* The first bytes of an error body, on one line, for the report. */
static void body_excerpt(const char *buf, const struct lg_resp *r,
                         char *out, size_t cap)
{
  size_t n = r->body_len < cap - 1 ? r->body_len : cap - 1;
  memcpy(out, buf + r->body_off, n);
  out[n] = '\0';
  for (size_t i = 0; i < n; i++)
    if (out[i] == '\r' || out[i] == '\n')
      out[i] = ' ';
}

/* The device (index into the --ids devices) that global unit u registers:
 * runs started at the previous run's next_id use devices not yet used. */
static long unit_device(const struct lg_opts *o, long unit)
{
  return (long)(((unsigned long)o->first_id + (unsigned long)unit) %
                (unsigned long)o->ids);
}

static int unit_reg_id(const struct lg_opts *o, long n, char *out,
                       size_t cap)
{
  int len = snprintf(out, cap, "%s%ld", o->prefix, n);
  return len < 0 || (size_t)len >= cap ? -1 : 0;
}

/* key = base64decode(sas_derive_device_key(base, reg_id)): with the group
 * key as base this is the DPS group derivation; with base64(seed) it is
 * base64(HMAC-SHA256(seed, reg_id)), the bench's individual keys. */
static int derive_key_b64(const char *base_b64, const char *reg_id,
                          char *out, size_t cap)
{
  return sas_derive_device_key(base_b64, reg_id, out, cap);
}

static int device_key(const struct lg_mode_ctx *m, const char *reg_id,
                      uint8_t *key, size_t *key_len)
{
  char key_b64[96];
  const char *base = m->o->group_key ? m->o->group_key : m->seed_b64;
  if (derive_key_b64(base, reg_id, key_b64, sizeof key_b64) != 0)
    return -1;
  return b64_decode(key_b64, key, DEVICE_KEY_MAX, key_len);
}

/* ---- register ---- */

static int put_auth(struct lg_conn *c, char *token)
{
  int len;
  if (!token)
    return -1;
  len = snprintf(c->auth, sizeof c->auth, "%s", token);
  free(token);
  return len < 0 || (size_t)len >= sizeof c->auth ? -1 : 0;
}

static char *sign_device_token(const struct lg_mode_ctx *m,
                               const char *reg_id)
{
  uint8_t key[DEVICE_KEY_MAX];
  size_t key_len;
  char resource[2 * LG_MAX_ID];
  if (device_key(m, reg_id, key, &key_len) != 0)
    return NULL;
  snprintf(resource, sizeof resource, "%s/registrations/%s", m->o->scope,
           reg_id);
  return sas_build(resource, key, key_len,
                   (int64_t)time(NULL) + TOKEN_LIFETIME_S, "registration");
}

static int device_token(struct lg_mode_ctx *m, struct lg_conn *c)
{
  long i = unit_device(m->o, c->unit);
  c->identity = NULL;
  if (m->identities) { /* mutual TLS: the certificate is the proof */
    c->identity = &m->identities[i];
    c->auth[0] = '\0';
    return 0;
  }
  if (m->tokens && i < m->n_tokens) {
    int len = snprintf(c->auth, sizeof c->auth, "%s", m->tokens[i]);
    return len < 0 || (size_t)len >= sizeof c->auth ? -1 : 0;
  }
  return put_auth(c, sign_device_token(m, c->reg_id));
}

static int precompute_tokens(struct lg_mode_ctx *m)
{
  if (m->identities)
    return 0;
  if (m->o->ids > TOKEN_CACHE_MAX)
    return 0; /* sign on the fly */
  m->tokens = calloc((size_t)m->o->ids, sizeof *m->tokens);
  if (!m->tokens)
    return -1;
  m->n_tokens = m->o->ids;
  for (long i = 0; i < m->n_tokens; i++) {
    char reg_id[LG_MAX_ID];
    if (unit_reg_id(m->o, i, reg_id, sizeof reg_id) != 0 ||
        !(m->tokens[i] = sign_device_token(m, reg_id)))
      return -1;
  }
  return 0;
}

/* A JSON request with the headers the Node SDKs send, in their order
 * (dps-wire-traces.md 1.2 and 1.7), appended to the connection's output. */
static int json_request(struct lg_conn *c, const char *method,
                        const char *target, const char *auth,
                        const char *rid, const char *host, const char *body)
{
  /* No token at all: the first PUT of the TPM flow. */
  return lg_conn_printf(c, "%s %s HTTP/1.1\r\n"
                           "Accept: application/json\r\n"
                           "Content-Type: application/json; charset=utf-8\r\n"
                           "%s%s%s"
                           "Request-Id: %s\r\n"
                           "User-Agent: " USER_AGENT "\r\n"
                           "Content-Length: %zu\r\n"
                           "Host: %s\r\n"
                           "Connection: keep-alive\r\n\r\n%s",
                        method, target, auth[0] ? "Authorization: " : "",
                        auth, auth[0] ? "\r\n" : "", rid, strlen(body), host,
                        body);
}

/* Headers in the Node SDK's order (dps-wire-traces.md 1.2). */
static int device_request(struct lg_engine *e, struct lg_conn *c,
                          const char *method, const char *path_tail,
                          const char *body)
{
  const struct lg_opts *o = e->mode_ctx->o;
  char rid[37];
  char target[4 * LG_MAX_ID];
  request_id(e, rid);
  c->out_len = c->out_off = 0;
  int len = snprintf(target, sizeof target,
                     "/%s/registrations/%s/%s?api-version=%s", o->scope,
                     c->reg_id, path_tail, o->api_version);
  if (len < 0 || (size_t)len >= sizeof target)
    return -1;
  return json_request(c, method, target, c->auth, rid, e->target.host, body);
}

static int register_first(struct lg_engine *e, struct lg_conn *c,
                          struct lg_verdict *v)
{
  const struct lg_opts *o = e->mode_ctx->o;
  char body[LG_MAX_ID + 32];
  if (unit_reg_id(o, unit_device(o, c->unit), c->reg_id,
                  sizeof c->reg_id) != 0 ||
      device_token(e->mode_ctx, c) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "cannot build the SAS token");
    return -1;
  }
  snprintf(body, sizeof body, "{\"registrationId\":\"%s\"}", c->reg_id);
  if (device_request(e, c, "PUT", "register", body) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "request too large");
    return -1;
  }
  return 0;
}

/* register-mqtt: the same device over MQTT (lg_mqtt.c). */
static int register_mqtt_first(struct lg_engine *e, struct lg_conn *c,
                               struct lg_verdict *v)
{
  const struct lg_opts *o = e->mode_ctx->o;
  if (unit_reg_id(o, unit_device(o, c->unit), c->reg_id,
                  sizeof c->reg_id) != 0 ||
      device_token(e->mode_ctx, c) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "cannot build the SAS token");
    return -1;
  }
  if (lg_mqtt_register(c, o->scope, o->api_version) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "request too large");
    return -1;
  }
  return 0;
}

static void judge_assigned(json_t *root, struct lg_verdict *v)
{
  json_t *state = json_object_get(root, "registrationState");
  if (!json_is_string(json_object_get(state, "assignedHub")) ||
      !json_is_string(json_object_get(state, "deviceId")))
    set_error(v, LG_ERR_PROTOCOL, 0,
              "assigned without assignedHub/deviceId");
  else
    v->action = LG_UNIT_OK;
}

static void judge_failed(json_t *root, const char *status,
                         struct lg_verdict *v)
{
  json_t *state = json_object_get(root, "registrationState");
  json_t *msg = json_object_get(state, "errorMessage");
  set_error(v, LG_ERR_FAILED, 0, "status %s: %.100s", status,
            json_is_string(msg) ? json_string_value(msg) : "");
}

/* "assigning": ask again right away on the same connection. */
static void poll_operation(struct lg_engine *e, struct lg_conn *c,
                           json_t *root, struct lg_verdict *v)
{
  const char *op = json_string_value(json_object_get(root, "operationId"));
  char tail[LG_MAX_ID + 16];
  if (!op || url_encode(op, c->op_id, sizeof c->op_id) < 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "assigning without a usable "
              "operationId");
    return;
  }
  if (c->polls >= e->mode_ctx->o->max_polls) {
    set_error(v, LG_ERR_FAILED, 0, "still assigning after --max-polls");
    return;
  }
  c->polls++;
  snprintf(tail, sizeof tail, "operations/%s", c->op_id);
  if (e->mode->parse == lg_mqtt_parse ? lg_mqtt_poll(c, c->op_id) != 0
      : device_request(e, c, "GET", tail, "{}") != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "request too large");
    return;
  }
  v->action = LG_SEND;
}

static void register_response(struct lg_engine *e, struct lg_conn *c,
                              const char *buf, const struct lg_resp *r,
                              struct lg_verdict *v)
{
  json_error_t jerr;
  json_t *root;
  const char *status;
  char excerpt[120];
  if (r->status != 200 && r->status != 202) {
    body_excerpt(buf, r, excerpt, sizeof excerpt);
    set_error(v, LG_ERR_HTTP, r->status, "%s", excerpt);
    return;
  }
  root = json_loadb(buf + r->body_off, r->body_len, 0, &jerr);
  if (!json_is_object(root)) {
    set_error(v, LG_ERR_PROTOCOL, 0, "body is not a JSON object");
    json_decref(root);
    return;
  }
  status = json_string_value(json_object_get(root, "status"));
  if (status && strcasecmp(status, "assigned") == 0)
    judge_assigned(root, v);
  else if ((status && strcasecmp(status, "assigning") == 0) ||
           (!status && r->status == 202))
    poll_operation(e, c, root, v);
  else
    judge_failed(root, status ? status : "(none)", v);
  json_decref(root);
}

/* ---- register-tpm ---- */

/* The register body with the software TPM's keys (trace (d)). */
static int tpm_register_request(struct lg_engine *e, struct lg_conn *c)
{
  const struct lg_tpm *t = &e->mode_ctx->tpm;
  char body[2048];
  int len = snprintf(body, sizeof body,
                     "{\"registrationId\":\"%s\",\"tpm\":{\"endorsementKey\":"
                     "\"%s\",\"storageRootKey\":\"%s\"}}",
                     c->reg_id, t->ek_b64, t->srk_b64);
  if (len < 0 || (size_t)len >= sizeof body)
    return -1;
  return device_request(e, c, "PUT", "register", body);
}

static int register_tpm_first(struct lg_engine *e, struct lg_conn *c,
                              struct lg_verdict *v)
{
  const struct lg_opts *o = e->mode_ctx->o;
  c->auth[0] = '\0';
  if (unit_reg_id(o, unit_device(o, c->unit), c->reg_id,
                  sizeof c->reg_id) != 0 ||
      tpm_register_request(e, c) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "request too large");
    return -1;
  }
  return 0;
}

/* The 401 challenge: activate it as the device's TPM would, sign the
 * token with the imported key (on the device's CPU, as a TPM would). */
static void answer_challenge(struct lg_engine *e, struct lg_conn *c,
                             const char *buf, const struct lg_resp *r,
                             struct lg_verdict *v)
{
  json_t *root = json_loadb(buf + r->body_off, r->body_len, 0, NULL);
  const char *b64 = json_string_value(json_object_get(root,
                                                      "authenticationKey"));
  uint8_t blob[4096], key[LG_TPM_KEY_LEN];
  size_t len = 0;
  char resource[2 * LG_MAX_ID];
  int ok = b64 && b64_decode(b64, blob, sizeof blob, &len) == 0 &&
           lg_tpm_activate(&e->mode_ctx->tpm, blob, len, key) == 0;
  json_decref(root);
  if (!ok) {
    set_error(v, LG_ERR_PROTOCOL, 401, "challenge did not activate");
    return;
  }
  snprintf(resource, sizeof resource, "%s/registrations/%s",
           e->mode_ctx->o->scope, c->reg_id);
  if (put_auth(c, sas_build(resource, key, sizeof key,
                            (int64_t)time(NULL) + TOKEN_LIFETIME_S,
                            "registration")) != 0 ||
      tpm_register_request(e, c) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "cannot answer the challenge");
    return;
  }
  v->action = LG_SEND;
}

static void register_tpm_response(struct lg_engine *e, struct lg_conn *c,
                                  const char *buf, const struct lg_resp *r,
                                  struct lg_verdict *v)
{
  if (r->status == 401 && !c->auth[0])
    answer_challenge(e, c, buf, r, v);
  else
    register_response(e, c, buf, r, v);
}

/* ---- baseline ---- */

/* The operation id a ceiling server's fixed answer names; the unit polls
 * it once whatever the answer says. */
#define BASELINE_OPERATION "5.0000000000000000.00000000-0000-0000-0000-000000000000"

/* The same bytes a registering device sends: PUT .../register with its
 * SAS token, then one GET .../operations/{id} on the same connection.  A
 * ceiling server answers both with a fixed body, so its CPU per unit is a
 * handshake plus two requests, like a registration. */
static int baseline_first(struct lg_engine *e, struct lg_conn *c,
                          struct lg_verdict *v)
{
  return register_first(e, c, v);
}

static void baseline_response(struct lg_engine *e, struct lg_conn *c,
                              const char *buf, const struct lg_resp *r,
                              struct lg_verdict *v)
{
  char excerpt[120];
  if (r->status < 200 || r->status >= 300) {
    body_excerpt(buf, r, excerpt, sizeof excerpt);
    set_error(v, LG_ERR_HTTP, r->status, "%s", excerpt);
    return;
  }
  if (c->polls > 0) {
    v->action = LG_UNIT_OK;
    return;
  }
  c->polls++;
  if (device_request(e, c, "GET", "operations/" BASELINE_OPERATION, "{}") !=
      0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "request too large");
    return;
  }
  v->action = LG_SEND;
}

static void status_200_response(struct lg_engine *e, struct lg_conn *c,
                                const char *buf, const struct lg_resp *r,
                                struct lg_verdict *v)
{
  char excerpt[120];
  (void)e;
  (void)c;
  if (r->status >= 200 && r->status < 300) {
    v->action = LG_UNIT_OK;
    return;
  }
  body_excerpt(buf, r, excerpt, sizeof excerpt);
  set_error(v, LG_ERR_HTTP, r->status, "%s", excerpt);
}

/* ---- enroll ---- */

static int enrollment_body(const struct lg_mode_ctx *m, const char *id,
                           char *out, size_t cap)
{
  char primary[96], secondary[96], other[LG_MAX_ID + 16];
  int len;
  if (m->have_tpm) {
    len = snprintf(out, cap,
                   "{\"registrationId\":\"%s\",\"deviceId\":\"%s\","
                   "\"provisioningStatus\":\"enabled\",\"attestation\":"
                   "{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"%s\"}}}",
                   id, id, m->tpm.ek_b64);
    return len < 0 || (size_t)len >= cap ? -1 : 0;
  }
  snprintf(other, sizeof other, "secondary:%s", id);
  if (derive_key_b64(m->seed_b64, id, primary, sizeof primary) != 0 ||
      derive_key_b64(m->seed_b64, other, secondary, sizeof secondary) != 0)
    return -1;
  len = snprintf(out, cap,
                 "{\"registrationId\":\"%s\",\"deviceId\":\"%s\","
                 "\"provisioningStatus\":\"enabled\",\"attestation\":"
                 "{\"type\":\"symmetricKey\",\"symmetricKey\":"
                 "{\"primaryKey\":\"%s\",\"secondaryKey\":\"%s\"}}}",
                 id, id, primary, secondary);
  return len < 0 || (size_t)len >= cap ? -1 : 0;
}

/* Headers as the Node service client sends them (traces 1.7, (e)). */
static int enroll_first(struct lg_engine *e, struct lg_conn *c,
                        struct lg_verdict *v)
{
  struct lg_mode_ctx *m = e->mode_ctx;
  char body[512], rid[37];
  if (unit_reg_id(m->o, c->unit, c->reg_id, sizeof c->reg_id) != 0 ||
      enrollment_body(m, c->reg_id, body, sizeof body) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "cannot build the enrollment");
    return -1;
  }
  request_id(e, rid);
  char target[2 * LG_MAX_ID];
  snprintf(target, sizeof target,
           "/enrollments/%s?api-version=" SERVICE_API_VERSION, c->reg_id);
  if (json_request(c, "PUT", target, m->service_auth, rid, m->service_host,
                   body) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "request too large");
    return -1;
  }
  return 0;
}

/* One bulk operation (POST /enrollments, mode create) per unit: unit u
 * creates ids u*ENROLL_BULK_ITEMS .. up to --ids.  DPS takes at most 10
 * items per bulk operation. */
#define ENROLL_BULK_ITEMS 10

static int bulk_body(const struct lg_mode_ctx *m, long unit, char *out,
                     size_t cap)
{
  long first = unit * ENROLL_BULK_ITEMS;
  long end = first + ENROLL_BULK_ITEMS < m->o->ids ? first + ENROLL_BULK_ITEMS
                                                   : m->o->ids;
  size_t len = (size_t)snprintf(out, cap, "{\"mode\":\"create\","
                                          "\"enrollments\":[");
  for (long i = first; i < end; i++) {
    char id[LG_MAX_ID];
    if (unit_reg_id(m->o, i, id, sizeof id) != 0 || len + 2 >= cap ||
        enrollment_body(m, id, out + len, cap - len) != 0)
      return -1;
    len += strlen(out + len);
    out[len++] = i + 1 < end ? ',' : ']';
  }
  if (first >= end || len + 2 > cap)
    return -1;
  out[len++] = '}';
  out[len] = '\0';
  return 0;
}

static int enroll_bulk_first(struct lg_engine *e, struct lg_conn *c,
                             struct lg_verdict *v)
{
  struct lg_mode_ctx *m = e->mode_ctx;
  char body[LG_OUT_CAP], rid[37];
  if (bulk_body(m, c->unit, body, sizeof body) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "cannot build the bulk operation");
    return -1;
  }
  request_id(e, rid);
  if (json_request(c, "POST", "/enrollments?api-version=" SERVICE_API_VERSION,
                   m->service_auth, rid, m->service_host, body) != 0) {
    set_error(v, LG_ERR_PROTOCOL, 0, "request too large");
    return -1;
  }
  return 0;
}

/* A bulk operation answers 200 even when items failed. */
static void bulk_response(struct lg_engine *e, struct lg_conn *c,
                          const char *buf, const struct lg_resp *r,
                          struct lg_verdict *v)
{
  json_error_t jerr;
  json_t *root;
  char excerpt[120];
  status_200_response(e, c, buf, r, v);
  if (v->action != LG_UNIT_OK)
    return;
  root = json_loadb(buf + r->body_off, r->body_len, 0, &jerr);
  if (!json_is_true(json_object_get(root, "isSuccessful"))) {
    body_excerpt(buf, r, excerpt, sizeof excerpt);
    set_error(v, LG_ERR_FAILED, 0, "bulk: %s", excerpt);
  }
  json_decref(root);
}

/* ---- the connection string of the service API ---- */

static int read_small_file(const char *path, char *out, size_t cap)
{
  FILE *f = fopen(path, "r");
  size_t n;
  if (!f)
    return -1;
  n = fread(out, 1, cap - 1, f);
  fclose(f);
  out[n] = '\0';
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
                   out[n - 1] == ' '))
    out[--n] = '\0';
  return n > 0 ? 0 : -1;
}

static int build_service_auth(struct lg_mode_ctx *m, char *err,
                              size_t err_len)
{
  const struct lg_opts *o = m->o;
  char text[1024], path[4096];
  struct connstr cs;
  struct provd_err perr;
  uint8_t key[192];
  size_t key_len;
  const char *conn = o->connection_string;
  if (!conn && o->data_dir) {
    snprintf(path, sizeof path, "%s/service-connection-string", o->data_dir);
    if (read_small_file(path, text, sizeof text) != 0) {
      snprintf(err, err_len, "cannot read %s", path);
      return -1;
    }
    conn = text;
  }
  if (!conn) {
    snprintf(err, err_len, "enroll needs --connection-string or --data-dir");
    return -1;
  }
  if (connstr_parse(conn, &cs, &perr) != 0) {
    snprintf(err, err_len, "service connection string: %s", perr.msg);
    return -1;
  }
  if (b64_decode(cs.key, key, sizeof key, &key_len) != 0) {
    memset(&cs, 0, sizeof cs);
    snprintf(err, err_len, "service connection string: key is not base64");
    return -1;
  }
  snprintf(m->service_host, sizeof m->service_host, "%s", cs.host);
  m->service_auth = sas_build(m->service_host, key, key_len,
                              (int64_t)time(NULL) + SERVICE_TOKEN_LIFETIME_S,
                              cs.key_name);
  memset(&cs, 0, sizeof cs);
  if (!m->service_auth) {
    snprintf(err, err_len, "cannot build the service SAS token");
    return -1;
  }
  return 0;
}

/* ---- registry ---- */

static const struct lg_mode modes[] = {
  { "register", "registrations", false, register_first, register_response,
    NULL },
  { "register-mqtt", "registrations", false, register_mqtt_first,
    register_response, lg_mqtt_parse },
  { "register-tpm", "registrations", false, register_tpm_first,
    register_tpm_response, NULL },
  { "baseline", "units", false, baseline_first, baseline_response, NULL },
  { "enroll", "enrollments", true, enroll_first, status_200_response, NULL },
  { "enroll-bulk", "bulk operations", true, enroll_bulk_first, bulk_response,
    NULL },
};

const struct lg_mode *lg_mode_find(const char *name)
{
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp(modes[i].name, name) == 0)
      return &modes[i];
  return NULL;
}

struct lg_mode_ctx *lg_mode_ctx_new(const struct lg_opts *o, char *err,
                                    size_t err_len)
{
  struct lg_mode_ctx *m = calloc(1, sizeof *m);
  char probe[96];
  if (!m) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  m->o = o;
  m->seed_b64 = b64_encode((const uint8_t *)o->keys_seed,
                           strlen(o->keys_seed));
  if (!m->seed_b64) {
    snprintf(err, err_len, "out of memory");
    lg_mode_ctx_free(m);
    return NULL;
  }
  if (o->group_key &&
      sas_derive_device_key(o->group_key, "probe", probe, sizeof probe)) {
    snprintf(err, err_len, "--group-key is not base64");
    lg_mode_ctx_free(m);
    return NULL;
  }
  if (o->tpm_keys && lg_tpm_load(o->tpm_keys, &m->tpm, err, err_len) != 0) {
    lg_mode_ctx_free(m);
    return NULL;
  }
  m->have_tpm = o->tpm_keys != NULL;
  if (strcmp(o->mode, "register-tpm") == 0 && !m->have_tpm) {
    snprintf(err, err_len, "register-tpm needs --tpm-keys");
    lg_mode_ctx_free(m);
    return NULL;
  }
  if (strncmp(o->mode, "enroll", 6) == 0 &&
      build_service_auth(m, err, err_len) != 0) {
    lg_mode_ctx_free(m);
    return NULL;
  }
  if (o->client_ca) {
    if (!o->client_ca_key) {
      snprintf(err, err_len, "--client-ca needs --client-ca-key");
      lg_mode_ctx_free(m);
      return NULL;
    }
    if (o->ids > IDENTITY_CACHE_MAX) {
      snprintf(err, err_len, "--client-ca: at most %ld --ids",
               IDENTITY_CACHE_MAX);
      lg_mode_ctx_free(m);
      return NULL;
    }
    m->identities = lg_identities_new(o->client_ca, o->client_ca_key,
                                      o->prefix, o->ids, err, err_len);
    if (!m->identities) {
      lg_mode_ctx_free(m);
      return NULL;
    }
    m->n_identities = o->ids;
  }
  if ((strcmp(o->mode, "register") == 0 ||
       strcmp(o->mode, "register-mqtt") == 0 ||
       strcmp(o->mode, "baseline") == 0) && precompute_tokens(m) != 0) {
    snprintf(err, err_len, "cannot sign the device tokens");
    lg_mode_ctx_free(m);
    return NULL;
  }
  return m;
}

void lg_mode_ctx_free(struct lg_mode_ctx *m)
{
  if (!m)
    return;
  free(m->seed_b64);
  free(m->service_auth);
  lg_tpm_free(&m->tpm);
  for (long i = 0; i < m->n_tokens; i++)
    free(m->tokens[i]);
  free(m->tokens);
  lg_identities_free(m->identities, m->n_identities);
  free(m);
}
