/* Routes every HTTPS request: operational endpoints, the DPS device API
 * (paths under /{idScope}/registrations/) and the service API. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/ids.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timefmt.h"
#include "util/url.h"

#define JSON_CONTENT_TYPE "application/json; charset=utf-8"

void api_respond_json(struct http_exchange *ex, int status, json_t *body,
                      const struct http_header *extra, size_t n_extra)
{
  char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(body);
  if (body && !text) {
    http_respond(ex, 500, JSON_CONTENT_TYPE,
                 "{\"errorCode\":500001,\"message\":\"Internal error.\"}", 48,
                 NULL, 0);
    return;
  }
  http_respond(ex, status, JSON_CONTENT_TYPE, text ? text : "",
               text ? strlen(text) : 0, extra, n_extra);
  free(text);
}

void api_respond_error(struct http_exchange *ex, int status, int error_code,
                       const char *message)
{
  api_respond_error_with(ex, status, error_code, message, NULL, 0);
}

void api_respond_error_with(struct http_exchange *ex, int status,
                            int error_code, const char *message,
                            const struct http_header *extra, size_t n_extra)
{
  char tracking[37], now[32], code_text[16];
  ids_uuid(tracking);
  time_iso8601(time_now_ms(), now);
  snprintf(code_text, sizeof(code_text), "%d", error_code);
  json_t *body = json_pack("{s:i,s:s,s:s,s:s}", "errorCode", error_code,
                           "trackingId", tracking, "message", message,
                           "timestampUtc", now);
  struct http_header headers[8] = {{"x-ms-error-code", code_text}};
  size_t n = 1;
  for (size_t i = 0; i < n_extra && n < 8; i++)
    headers[n++] = extra[i];
  api_respond_json(ex, status, body, headers, n);
}

/* Copies path segment `index` (still percent-encoded) into out. */
static int path_segment(const char *path, int index, char *out, size_t cap)
{
  const char *p = path;
  for (int i = 0; i <= index; i++) {
    if (*p != '/')
      return -1;
    p++;
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (i == index) {
      if (len == 0 || len >= cap)
        return -1;
      memcpy(out, p, len);
      out[len] = '\0';
      return 0;
    }
    p += len;
  }
  return -1;
}

static const char *const service_roots[] = {
    "enrollments", "enrollmentGroups", "registrations", "hubs", "events",
    "explain", NULL};

static int is_service_root(const char *seg)
{
  for (const char *const *r = service_roots; *r; r++)
    if (strcasecmp(seg, *r) == 0)
      return 1;
  return 0;
}

static void respond_health(struct api_ctx *ctx, struct http_exchange *ex)
{
  if (ctx->ready)
    api_respond_json(ex, 200, json_pack("{s:s}", "status", "ok"), NULL, 0);
  else
    api_respond_error(ex, 503, 503001, "Starting or stopping.");
}

static void respond_metrics(struct http_exchange *ex)
{
  char *text = metrics_render();
  if (!text) {
    api_respond_error(ex, 500, 500001, "Internal error.");
    return;
  }
  http_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", text,
               strlen(text), NULL, 0);
  free(text);
}

void api_handle(struct http_exchange *ex, void *ud)
{
  struct api_ctx *ctx = ud;
  const struct http_request *req = http_exchange_request(ex);
  int is_get = strcmp(req->method, "GET") == 0;
  if (is_get && strcmp(req->path, "/healthz") == 0) {
    respond_health(ctx, ex);
    return;
  }
  if (is_get && strcmp(req->path, "/metrics") == 0) {
    respond_metrics(ex);
    return;
  }
  char first[160], second[32], scope[160];
  if (path_segment(req->path, 0, first, sizeof(first)) == 0 &&
      path_segment(req->path, 1, second, sizeof(second)) == 0 &&
      strcasecmp(second, "registrations") == 0 && !is_service_root(first)) {
    if (url_decode(first, strlen(first), scope, sizeof(scope)) != 0 ||
        strcasecmp(scope, ctx->cfg->id_scope) != 0) {
      log_info("api", "unknown id scope reason=UNKNOWN_ID_SCOPE peer=%s",
               req->peer_addr ? req->peer_addr : "?");
      api_respond_error(ex, 404, 404001, "Unknown ID scope.");
      return;
    }
    device_api_handle(ctx, ex);
    return;
  }
  service_api_handle(ctx, ex);
}
