/* DPS device API over HTTPS: checks the transport-level shape of a request
 * (path, api-version, content type, body) on the event loop, then hands a
 * reg_request to the engine, which answers from a store thread. */
#include "api/api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/json_body.h"
#include "api/respond.h"
#include "engine/engine.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/url.h"

/* message NULL: the documented message of the reason. */
static void refuse(struct http_exchange *ex, const char *reason,
                   const char *message)
{
  const struct http_request *req = http_exchange_request(ex);
  log_info("device-api", "request refused reason=%s %s %s peer=%s", reason,
           req->method, req->path, req->peer_addr ? req->peer_addr : "?");
  api_respond_reason(ex, reason, message);
}

static int has_empty_segment(const struct path_parts *dp)
{
  for (size_t i = 0; i < dp->n; i++)
    if (!dp->seg[i][0])
      return 1;
  return 0;
}

/* Which operation the method and path shape name; 0 when none. */
static enum reg_op operation_of(const char *method,
                                const struct path_parts *dp, int *wrong_method)
{
  *wrong_method = 0;
  enum reg_op op = 0;
  const char *want = NULL;
  if (dp->n == 4 && strcasecmp(dp->seg[3], "register") == 0) {
    op = REG_REGISTER;
    want = "PUT";
  } else if (dp->n == 5 && strcasecmp(dp->seg[3], "operations") == 0) {
    op = REG_OPERATION_STATUS;
    want = "GET";
  } else if (dp->n == 3) {
    op = REG_STATUS_LOOKUP;
    want = "POST";
  }
  if (op && strcmp(method, want) != 0) {
    *wrong_method = 1;
    return 0;
  }
  return op;
}

static void trace_id_of(const struct http_request *req, char out[40])
{
  const char *rid = http_request_header(req, "Request-Id");
  size_t n = rid ? strlen(rid) : 0;
  int ok = n > 0 && n <= 36;
  for (size_t i = 0; ok && i < n; i++)
    ok = isxdigit((unsigned char)rid[i]) || rid[i] == '-';
  if (ok)
    snprintf(out, 40, "%s", rid);
  else
    ids_uuid(out);
}

/* Parses and checks the body of PUT/POST; NULL after answering. */
static json_t *checked_body(struct http_exchange *ex,
                            const struct http_request *req, enum reg_op op,
                            const char *regid, size_t max_body)
{
  enum json_body_status why;
  json_t *body = json_body_read(http_request_header(req, "Content-Type"),
                                req->body, req->body_len, max_body,
                                JSON_BODY_REQUIRED, &why);
  if (why == JSON_BODY_MEDIA_TYPE) {
    refuse(ex, "UNSUPPORTED_MEDIA_TYPE", NULL);
    return NULL;
  }
  if (!body) {
    refuse(ex, why == JSON_BODY_TOO_LARGE ? "PAYLOAD_TOO_LARGE" : "BAD_REQUEST",
           json_body_problem(why));
    return NULL;
  }
  const char *problem = device_body_problem(body, op == REG_STATUS_LOOKUP,
                                            regid);
  if (problem) {
    json_decref(body);
    refuse(ex, "BAD_REQUEST", problem);
    return NULL;
  }
  return body;
}

const char *device_body_problem(const json_t *body, bool status_lookup,
                                const char *regid)
{
  const json_t *id = json_object_get(body, "registrationId");
  if (id && (!json_is_string(id) ||
             strcasecmp(json_string_value(id), regid) != 0))
    return "registrationId in the body does not match the registration id "
           "of the request.";
  /* Certificates are issued by register only (DPS); the engine checks a
   * register's csr once the device has proved itself. */
  if (status_lookup && json_object_get(body, "csr"))
    return "csr is accepted by register only.";
  return NULL;
}

static void device_done(void *ud, struct reg_outcome *out)
{
  api_respond_outcome(ud, out);
}

void device_peer_ip(const char *peer, char *out, size_t cap)
{
  out[0] = '\0';
  if (!peer)
    return;
  const char *start = peer[0] == '[' ? peer + 1 : peer;
  const char *end = peer[0] == '[' ? strchr(start, ']') : strrchr(start, ':');
  size_t n = end ? (size_t)(end - start) : strlen(start);
  if (n < cap)
    snprintf(out, cap, "%.*s", (int)n, start);
}

static struct reg_request *request_from(const struct http_request *req,
                                        enum reg_op op, const char *regid,
                                        const char *opid, json_t *body)
{
  struct reg_request *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  r->op = op;
  snprintf(r->registration_id, sizeof(r->registration_id), "%s", regid);
  snprintf(r->operation_id, sizeof(r->operation_id), "%s", opid ? opid : "");
  const char *auth = http_request_header(req, "Authorization");
  r->authorization = auth ? strdup(auth) : NULL;
  r->peer_chain_pem = req->peer_chain_pem ? strdup(req->peer_chain_pem) : NULL;
  r->peer_chain = req->peer_chain ? X509_chain_up_ref(req->peer_chain) : NULL;
  device_peer_ip(req->peer_addr, r->client_ip, sizeof(r->client_ip));
  r->body = body;
  trace_id_of(req, r->trace_id);
  return r;
}

#define REGID_RULES                                                        \
  "Invalid registration id: 1-128 characters from A-Z a-z 0-9 - . _ :, "   \
  "starting with a letter or digit."

void device_api_handle(struct api_ctx *ctx, struct http_exchange *ex,
                       const struct path_parts *dp,
                       enum path_split_status split)
{
  const struct http_request *req = http_exchange_request(ex);
  int wrong_method = 0;
  enum reg_op op = 0;
  if (split == PATH_SEGMENT_TOO_LONG && dp->n == 2) {
    refuse(ex, "BAD_REQUEST", REGID_RULES);
    return;
  }
  if (split == PATH_OK && !has_empty_segment(dp))
    op = operation_of(req->method, dp, &wrong_method);
  if (!op) {
    refuse(ex, wrong_method ? "METHOD_NOT_ALLOWED" : "NOT_FOUND", NULL);
    return;
  }
  char version[64], regid[160], opid[160] = "";
  if (http_query_param(req, "api-version", version, sizeof(version)) < 0 ||
      !version[0]) {
    refuse(ex, "BAD_REQUEST", "api-version is required.");
    return;
  }
  if (url_decode(dp->seg[2], strlen(dp->seg[2]), regid, sizeof(regid)) != 0 ||
      !ids_registration_id_valid(regid)) {
    refuse(ex, "BAD_REQUEST", REGID_RULES);
    return;
  }
  if (op == REG_OPERATION_STATUS &&
      url_decode(dp->seg[4], strlen(dp->seg[4]), opid, sizeof(opid)) != 0) {
    refuse(ex, "BAD_REQUEST", "Invalid operation id.");
    return;
  }
  json_t *body = NULL;
  if (op != REG_OPERATION_STATUS &&
      !(body = checked_body(ex, req, op, regid, ctx->cfg->max_body_bytes)))
    return;
  struct reg_request *r = request_from(req, op, regid, opid, body);
  if (!r) {
    json_decref(body);
    refuse(ex, "INTERNAL", NULL);
    return;
  }
  engine_submit(ctx->engine, r, device_done, ex);
}
