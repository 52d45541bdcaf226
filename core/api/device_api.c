/* DPS device API over HTTPS: checks the transport-level shape of a request
 * (path, api-version, content type, body) on the event loop, then hands a
 * reg_request to the engine, which answers from a store thread. */
#include "api/api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/url.h"

#define MAX_SEGMENTS 6

struct device_path {
  char seg[MAX_SEGMENTS][160];
  int n;
};

static int split_path(const char *path, struct device_path *out)
{
  out->n = 0;
  const char *p = path;
  while (*p == '/') {
    p++;
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (out->n == MAX_SEGMENTS || len == 0 || len >= sizeof(out->seg[0]))
      return -1;
    memcpy(out->seg[out->n], p, len);
    out->seg[out->n][len] = '\0';
    out->n++;
    p += len;
  }
  return *p == '\0' ? 0 : -1;
}

static void refuse(struct http_exchange *ex, int status, int code,
                   const char *reason, const char *message)
{
  const struct http_request *req = http_exchange_request(ex);
  log_info("device-api", "request refused reason=%s status=%d %s %s peer=%s",
           reason, status, req->method, req->path,
           req->peer_addr ? req->peer_addr : "?");
  api_respond_error(ex, status, code, message);
}

/* Which operation the method and path shape name; 0 when none. */
static enum reg_op operation_of(const char *method,
                                const struct device_path *dp, int *wrong_method)
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

static int is_json_content_type(const char *ct)
{
  if (!ct)
    return 0;
  while (*ct == ' ')
    ct++;
  return strncasecmp(ct, "application/json", 16) == 0 &&
         (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
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
                            const struct http_request *req, const char *regid)
{
  if (!is_json_content_type(http_request_header(req, "Content-Type"))) {
    refuse(ex, 415, 415001, "UNSUPPORTED_MEDIA_TYPE",
           "Content-Type must be application/json.");
    return NULL;
  }
  json_error_t jerr;
  json_t *body = req->body_len
                     ? json_loadb(req->body, req->body_len,
                                  JSON_REJECT_DUPLICATES, &jerr)
                     : NULL;
  if (!json_is_object(body)) {
    json_decref(body);
    refuse(ex, 400, 400004, "BAD_REQUEST",
           "The body must be a JSON object (DeviceRegistration).");
    return NULL;
  }
  const json_t *id = json_object_get(body, "registrationId");
  if (id && (!json_is_string(id) ||
             strcasecmp(json_string_value(id), regid) != 0)) {
    json_decref(body);
    refuse(ex, 400, 400004, "BAD_REQUEST",
           "registrationId in the body does not match the path.");
    return NULL;
  }
  if (json_object_get(body, "csr")) {
    json_decref(body);
    refuse(ex, 400, 400000, "CSR_NOT_CONFIGURED",
           "Device sent CSR but it is not configured in the service.");
    return NULL;
  }
  return body;
}

static void device_done(void *ud, struct reg_outcome *out)
{
  struct http_exchange *ex = ud;
  char retry[16];
  struct http_header extra[1];
  size_t n_extra = 0;
  if (out->retry_after_s > 0) {
    snprintf(retry, sizeof(retry), "%d", out->retry_after_s);
    extra[n_extra++] = (struct http_header){"Retry-After", retry};
  }
  if (out->http_status >= 400) {
    const char *msg = json_string_value(json_object_get(out->body, "message"));
    int code = (int)json_integer_value(json_object_get(out->body, "errorCode"));
    api_respond_error_with(ex, out->http_status, code, msg ? msg : "Error.",
                           extra, n_extra);
    json_decref(out->body);
    return;
  }
  if (out->body_text) {
    http_respond(ex, out->http_status, "application/json; charset=utf-8",
                 out->body_text, strlen(out->body_text), extra, n_extra);
    free(out->body_text);
    return;
  }
  api_respond_json(ex, out->http_status, out->body, extra, n_extra);
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
  r->body = body;
  trace_id_of(req, r->trace_id);
  return r;
}

void device_api_handle(struct api_ctx *ctx, struct http_exchange *ex)
{
  const struct http_request *req = http_exchange_request(ex);
  struct device_path dp;
  int wrong_method = 0;
  enum reg_op op = 0;
  if (split_path(req->path, &dp) == 0)
    op = operation_of(req->method, &dp, &wrong_method);
  if (!op) {
    if (wrong_method)
      refuse(ex, 405, 405000, "METHOD_NOT_ALLOWED", "Method not allowed.");
    else
      refuse(ex, 404, 404000, "NOT_FOUND", "Not found.");
    return;
  }
  char version[64], regid[160], opid[160] = "";
  if (http_query_param(req, "api-version", version, sizeof(version)) < 0 ||
      !version[0]) {
    refuse(ex, 400, 400004, "BAD_REQUEST", "api-version is required.");
    return;
  }
  if (url_decode(dp.seg[2], strlen(dp.seg[2]), regid, sizeof(regid)) != 0 ||
      !ids_registration_id_valid(regid)) {
    refuse(ex, 400, 400004, "BAD_REQUEST",
           "Invalid registration id: 1-128 characters from A-Z a-z 0-9 - . _ "
           ":, starting with a letter or digit.");
    return;
  }
  if (op == REG_OPERATION_STATUS &&
      url_decode(dp.seg[4], strlen(dp.seg[4]), opid, sizeof(opid)) != 0) {
    refuse(ex, 400, 400004, "BAD_REQUEST", "Invalid operation id.");
    return;
  }
  json_t *body = NULL;
  if (op != REG_OPERATION_STATUS && !(body = checked_body(ex, req, regid)))
    return;
  struct reg_request *r = request_from(req, op, regid, opid, body);
  if (!r) {
    json_decref(body);
    api_respond_error(ex, 500, 500001, "Internal error.");
    return;
  }
  engine_submit(ctx->engine, r, device_done, ex);
}
