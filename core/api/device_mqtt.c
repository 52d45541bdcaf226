/* The DPS device API over MQTT: what CONNECT, SUBSCRIBE and PUBLISH mean
 * to DPS (public docs: "Communicate with DPS using the MQTT protocol").
 * A register or poll PUBLISH becomes the same reg_request the HTTPS API
 * hands the engine; the engine's outcome comes back on
 * $dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}] with the
 * body HTTPS would send.
 *
 * CONNECT first checks what needs no store: the username's shape, the
 * ID scope, client id = registration id, and a SAS token that parses,
 * names this registration and has not expired.  Then the engine checks
 * the device's proof (the token's signature, the certificate against
 * the enrollment) before the CONNACK, and again on register, exactly as
 * over HTTPS. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/json_body.h"
#include "engine/engine.h"
#include "net/mqtt_codec.h"
#include "net/wire_error.h"
#include "util/ids.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/sas.h"
#include "util/timefmt.h"

#define COMPONENT "device-mqtt"
#define RES_FILTER "$dps/registrations/res/#"
#define REGISTER_TOPIC "$dps/registrations/PUT/iotdps-register/?"
#define POLL_TOPIC "$dps/registrations/GET/iotdps-get-operationstatus/?"
#define MAX_RID 64
#define SAS_SKEW_S 300

/* An answer on its way back from the engine. */
struct mqtt_job {
  struct mqtt_exchange *ex;
  char regid[129];
  char rid[MAX_RID + 1];
};

/* ---- CONNECT ------------------------------------------------------------- */

/* "{scope}/registrations/{regId}/api-version=V[&...]" into scope and
 * regid; 0 when the shape holds and api-version is there. */
static int parse_username(const char *user, char *scope, size_t scope_len,
                          char *regid, size_t regid_len)
{
  const char *mark = strstr(user, "/registrations/");
  if (!mark || (size_t)(mark - user) >= scope_len)
    return -1;
  memcpy(scope, user, (size_t)(mark - user));
  scope[mark - user] = '\0';
  const char *id = mark + strlen("/registrations/");
  const char *slash = strchr(id, '/');
  if (!slash || (size_t)(slash - id) >= regid_len)
    return -1;
  memcpy(regid, id, (size_t)(slash - id));
  regid[slash - id] = '\0';
  struct http_request q = {.query = slash + 1};
  char version[64];
  return http_query_param(&q, "api-version", version, sizeof version) > 0
             ? 0
             : -1;
}

static uint8_t connect_refused(const struct mqtt_session *s, uint8_t code,
                               const char *reason, const char *detail)
{
  log_info(COMPONENT, "connect refused regid=%s reason=%s peer=%s "
                      "transport=mqtt%s%s",
           s->client_id, reason, s->peer_addr, detail ? " detail=" : "",
           detail ? detail : "");
  char labels[96];
  snprintf(labels, sizeof labels, "transport=\"mqtt\",reason=\"%s\"",
           wire_error_public_reason(reason));
  metrics_add("provd_registration_failures_total",
              "Registration requests refused, by reason.", labels, 1);
  return code;
}

static uint8_t check_token(const struct mqtt_session *s, const char *scope,
                           const char *regid)
{
  struct sas_token *t = malloc(sizeof *t);
  if (!t)
    return connect_refused(s, MQTT_CONNACK_UNAVAILABLE, "INTERNAL", NULL);
  struct provd_err err = {0};
  char resource[300];
  snprintf(resource, sizeof resource, "%s/registrations/%s", scope, regid);
  const char *reason = NULL;
  if (sas_parse(s->password, t, &err) != 0)
    reason = "MALFORMED_TOKEN";
  else if (!sas_resource_is(t, resource))
    reason = "TOKEN_RESOURCE_MISMATCH";
  else if (sas_expired(t, time_now_ms() / 1000, SAS_SKEW_S))
    reason = "TOKEN_EXPIRED";
  free(t);
  return reason ? connect_refused(s, MQTT_CONNACK_BAD_CREDENTIALS, reason,
                                  NULL)
                : MQTT_CONNACK_ACCEPTED;
}

static uint8_t on_connect(const struct mqtt_session *s, void *ud)
{
  const struct api_ctx *ctx = ud;
  char scope[128], regid[160];
  if (parse_username(s->username, scope, sizeof scope, regid,
                     sizeof regid) != 0)
    return connect_refused(s, MQTT_CONNACK_BAD_CREDENTIALS, "BAD_REQUEST",
                           "username is not {idScope}/registrations/{regId}/"
                           "api-version=...");
  if (strcmp(scope, ctx->cfg->id_scope) != 0)
    return connect_refused(s, MQTT_CONNACK_NOT_AUTHORIZED, "UNKNOWN_ID_SCOPE",
                           NULL);
  if (!ids_registration_id_valid(regid) ||
      strcasecmp(regid, s->client_id) != 0)
    return connect_refused(s, MQTT_CONNACK_BAD_CLIENT_ID, "BAD_REQUEST",
                           "client id must be the registration id of the "
                           "username");
  if (s->password)
    return check_token(s, scope, regid);
  if (!s->peer_chain_pem) /* what a TPM device would do */
    return connect_refused(s, MQTT_CONNACK_NOT_AUTHORIZED, "MISSING_TOKEN",
                           "no SAS token and no client certificate; TPM "
                           "attestation is served over HTTPS only");
  return MQTT_CONNACK_ACCEPTED;
}

static bool on_filter(const char *filter, size_t len, void *ud)
{
  (void)ud;
  return len == strlen(RES_FILTER) && memcmp(filter, RES_FILTER, len) == 0;
}

/* ---- answers ------------------------------------------------------------- */

/* The Node SDK decodes answers as ASCII: escape anything else. */
static char *ascii_json(const char *text)
{
  for (const char *p = text; *p; p++) {
    if ((unsigned char)*p >= 0x80) {
      json_t *v = json_text_parse(text, strlen(text), JSON_TEXT_ANY);
      char *out = v ? json_text(v, JSON_TEXT_ASCII) : NULL;
      json_decref(v);
      return out;
    }
  }
  return strdup(text);
}

static void answer(struct mqtt_exchange *ex, const char *rid, int status,
                   int retry_after_s, const char *body)
{
  char topic[sizeof("$dps/registrations/res/999/?$rid=&retry-after=") +
             MAX_RID + 12];
  int n = snprintf(topic, sizeof topic, "$dps/registrations/res/%d/?$rid=%s",
                   status, rid);
  if (retry_after_s > 0)
    snprintf(topic + n, sizeof topic - (size_t)n, "&retry-after=%d",
             retry_after_s);
  char labels[48];
  snprintf(labels, sizeof labels, "transport=\"mqtt\",code=\"%d\"", status);
  metrics_add("provd_device_answers_total",
              "Device API answers, by transport and status", labels, 1);
  char *ascii = ascii_json(body);
  if (!ascii) {
    mqtt_refuse(ex);
    return;
  }
  mqtt_answer(ex, topic, ascii, strlen(ascii));
  free(ascii);
}

static void answer_error(struct mqtt_exchange *ex, const char *rid,
                         int status, int error_code, const char *message)
{
  struct wire_error_answer a;
  wire_error_answer_init(&a, status, error_code, message, NULL, 0);
  answer(ex, rid, status, wire_error_retry_after_s(status), a.body);
  wire_error_answer_clear(&a);
}

/* A refusal before the engine; message NULL: the documented one. */
static void refuse(struct mqtt_exchange *ex, const char *rid,
                   const char *reason, const char *message)
{
  const struct mqtt_session *s = mqtt_exchange_session(ex);
  log_info(COMPONENT, "request refused regid=%s reason=%s peer=%s "
                      "transport=mqtt%s%s",
           s->client_id, reason, s->peer_addr, message ? " detail=" : "",
           message ? message : "");
  struct wire_error w = wire_error_of(reason);
  if (!message || w.http_status == 401)
    message = w.message;
  answer_error(ex, rid, w.http_status, w.error_code, message);
}

static void on_engine_done(void *ud, struct reg_outcome *out)
{
  struct mqtt_job *job = ud;
  if (out->error_code) {
    log_info(COMPONENT, "answered regid=%s status=%d reason=%s "
                        "transport=mqtt",
             job->regid, out->http_status, out->reason);
    answer_error(job->ex, job->rid, out->http_status, out->error_code,
                 wire_error_of(out->reason).message);
  } else {
    answer(job->ex, job->rid, out->http_status, out->retry_after_s,
           out->body_text);
  }
  free(out->body_text);
  out->body_text = NULL;
  free(job);
}

/* What every engine request from this connection carries. */
static void request_from_session(struct reg_request *r, enum reg_op op,
                                 const struct mqtt_session *s)
{
  r->op = op;
  snprintf(r->registration_id, sizeof r->registration_id, "%s", s->client_id);
  r->authorization = s->password ? strdup(s->password) : NULL;
  r->peer_chain_pem = s->peer_chain_pem ? strdup(s->peer_chain_pem) : NULL;
  r->peer_chain = s->peer_chain ? X509_chain_up_ref(s->peer_chain) : NULL;
  device_peer_ip(s->peer_addr, r->client_ip, sizeof r->client_ip);
  ids_uuid(r->trace_id);
  if (op != REG_AUTHENTICATE)
    r->known = engine_known_dup(s->verified); /* what CONNECT read */
}

/* ---- PUBLISH --------------------------------------------------------------- */

/* $rid is echoed in the answer's topic: a short token of safe bytes. */
static bool rid_ok(const char *rid)
{
  if (!rid[0])
    return false;
  for (const char *p = rid; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
          (*p >= 'A' && *p <= 'Z') || strchr("-._~:", *p)))
      return false;
  return true;
}

/* The register body; NULL after answering. */
static json_t *register_body(struct mqtt_exchange *ex, const char *rid,
                             const char *regid, const char *payload,
                             size_t len, size_t max_body)
{
  enum json_body_status why;
  json_t *body = json_body_read("application/json", payload, len, max_body,
                                JSON_BODY_REQUIRED, &why);
  if (!body) {
    refuse(ex, rid, "BAD_REQUEST", why == JSON_BODY_EMPTY
                                       ? "The payload must be a JSON object "
                                         "(DeviceRegistration)."
                                       : json_body_problem(why));
    return NULL;
  }
  const char *problem = device_body_problem(body, false, regid);
  if (!problem && json_object_get(body, "tpm"))
    problem = "TPM attestation is not served over MQTT; register over "
              "HTTPS.";
  if (problem) {
    json_decref(body);
    refuse(ex, rid, "BAD_REQUEST", problem);
    return NULL;
  }
  return body;
}

static void on_publish(struct mqtt_exchange *ex, const char *topic,
                       const char *payload, size_t payload_len, void *ud)
{
  struct api_ctx *ctx = ud;
  const struct mqtt_session *s = mqtt_exchange_session(ex);
  enum reg_op op;
  struct http_request q = {0};
  if (strncmp(topic, REGISTER_TOPIC, strlen(REGISTER_TOPIC)) == 0) {
    op = REG_REGISTER;
    q.query = topic + strlen(REGISTER_TOPIC);
  } else if (strncmp(topic, POLL_TOPIC, strlen(POLL_TOPIC)) == 0) {
    op = REG_OPERATION_STATUS;
    q.query = topic + strlen(POLL_TOPIC);
  } else {
    log_info(COMPONENT, "unknown topic regid=%s peer=%s transport=mqtt",
             s->client_id, s->peer_addr);
    mqtt_refuse(ex);
    return;
  }
  char rid[MAX_RID + 1], opid[128] = "";
  if (http_query_param(&q, "$rid", rid, sizeof rid) < 0 || !rid_ok(rid)) {
    log_info(COMPONENT, "request without a usable $rid regid=%s peer=%s "
                        "transport=mqtt", s->client_id, s->peer_addr);
    mqtt_refuse(ex); /* no way to address an answer */
    return;
  }
  if (op == REG_OPERATION_STATUS &&
      http_query_param(&q, "operationId", opid, sizeof opid) <= 0) {
    refuse(ex, rid, "BAD_REQUEST", "operationId is required.");
    return;
  }
  struct mqtt_job *job = calloc(1, sizeof *job);
  struct reg_request *r = calloc(1, sizeof *r);
  if (!job || !r) {
    free(job);
    free(r);
    refuse(ex, rid, "INTERNAL", NULL);
    return;
  }
  *job = (struct mqtt_job){.ex = ex};
  snprintf(job->rid, sizeof job->rid, "%s", rid);
  snprintf(job->regid, sizeof job->regid, "%s", s->client_id);
  /* The poll payload means nothing (Node sends " ", C the register body). */
  if (op == REG_REGISTER &&
      !(r->body = register_body(ex, rid, s->client_id, payload, payload_len,
                                ctx->cfg->max_body_bytes))) {
    free(job);
    free(r);
    return;
  }
  request_from_session(r, op, s);
  snprintf(r->operation_id, sizeof r->operation_id, "%s", opid);
  engine_submit(ctx->engine, r, on_engine_done, job);
}

/* ---- CONNECT's proof ------------------------------------------------------- */

/* The engine's refusal as a CONNACK: one code per wire status, so a
 * CONNACK says no more than the HTTPS answer would (an unknown id and a
 * bad signature both read "bad user name or password"). */
static uint8_t connack_for(const struct reg_outcome *out)
{
  if (!out->error_code)
    return MQTT_CONNACK_ACCEPTED;
  switch (out->http_status) {
  case 401:
    return MQTT_CONNACK_BAD_CREDENTIALS;
  case 429:
  case 500:
  case 503:
    return MQTT_CONNACK_UNAVAILABLE;
  default:
    return MQTT_CONNACK_NOT_AUTHORIZED;
  }
}

static void free_known(void *known)
{
  engine_known_free(known);
}

static void on_verified(void *ud, struct reg_outcome *out)
{
  struct mqtt_exchange *ex = ud;
  uint8_t code = connack_for(out);
  if (code != MQTT_CONNACK_ACCEPTED) { /* the engine counted it */
    const struct mqtt_session *s = mqtt_exchange_session(ex);
    log_info(COMPONENT, "connect refused regid=%s reason=%s connack=%u "
                        "peer=%s transport=mqtt",
             s->client_id, out->reason, code, s->peer_addr);
  }
  free(out->body_text);
  out->body_text = NULL;
  /* The enrollment CONNECT read serves the register too, unless it
   * changes meanwhile (engine_known). */
  struct engine_known *known = out->known;
  out->known = NULL;
  if (code != MQTT_CONNACK_ACCEPTED) {
    engine_known_free(known);
    known = NULL;
  }
  mqtt_connect_verdict_keep(ex, code, known, free_known);
}

/* The device's proof (token signature, certificate against the
 * enrollment) before CONNACK, as DPS refuses a wrong key at CONNECT.
 * Register checks it again: the token may expire and the enrollment
 * change in between. */
static void on_verify(struct mqtt_exchange *ex, void *ud)
{
  struct api_ctx *ctx = ud;
  struct reg_request *r = calloc(1, sizeof *r);
  if (!r) {
    mqtt_connect_verdict(ex, MQTT_CONNACK_UNAVAILABLE);
    return;
  }
  request_from_session(r, REG_AUTHENTICATE, mqtt_exchange_session(ex));
  engine_submit(ctx->engine, r, on_verified, ex);
}

struct mqtt_handlers device_mqtt_handlers(void)
{
  return (struct mqtt_handlers){.connect = on_connect,
                                .verify = on_verify,
                                .filter_ok = on_filter,
                                .publish = on_publish};
}
