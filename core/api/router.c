/* Routes every HTTPS request: operational endpoints, the web console
 * (/console/), the DPS device API (paths under /{idScope}/registrations/)
 * and the service API. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/respond.h"
#include "console/console.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/url.h"

static const char *const service_roots[] = {
    "enrollments", "enrollmentGroups", "registrations", "hubs", "events",
    "explain", "policy", NULL};

static int is_service_root(const char *seg)
{
  for (const char *const *r = service_roots; *r; r++)
    if (strcasecmp(seg, *r) == 0)
      return 1;
  return 0;
}

static void respond_health(struct api_ctx *ctx, struct http_exchange *ex)
{
  char why[256], msg[320];
  if (!atomic_load(&ctx->ready)) {
    api_respond_error(ex, 503, 503001, "Starting or stopping.");
  } else if (ctx->store && !store_reachable(ctx->store)) {
    api_respond_error(ex, 503, 503001, "The database is unreachable.");
  } else if (ctx->store && !store_writable(ctx->store, why, sizeof(why))) {
    snprintf(msg, sizeof(msg), "The database refuses writes: %s", why);
    api_respond_error(ex, 503, 503001, msg);
  } else {
    api_respond_json(ex, 200, json_pack("{s:s}", "status", "ok"), NULL, 0);
  }
}

static void respond_metrics(struct http_exchange *ex)
{
  char *text = metrics_render();
  if (!text) {
    api_respond_reason(ex, "INTERNAL", NULL);
    return;
  }
  http_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", text,
               strlen(text), NULL, 0);
  free(text);
}

/* /{idScope}/registrations/...: the device API (its first segment is not
 * one of the service API's collections).  Read from the raw path, so that
 * a segment too long to split still reaches the API it was meant for and
 * gets that API's answer. */
static int is_device_path(const char *path)
{
  if (path[0] != '/')
    return 0;
  const char *first = path + 1, *slash = strchr(first, '/');
  if (!slash || slash == first)
    return 0;
  const char *second = slash + 1, *end = strchr(second, '/');
  size_t len = end ? (size_t)(end - second) : strlen(second);
  size_t first_len = (size_t)(slash - first);
  char root[32];
  if (first_len < sizeof(root)) {
    memcpy(root, first, first_len);
    root[first_len] = '\0';
    if (is_service_root(root))
      return 0;
  }
  return len == strlen("registrations") &&
         strncasecmp(second, "registrations", len) == 0;
}

static int is_our_scope(const struct api_ctx *ctx, const char *raw)
{
  char scope[160];
  return url_decode(raw, strlen(raw), scope, sizeof(scope)) == 0 &&
         strcasecmp(scope, ctx->cfg->id_scope) == 0;
}

/* device_api: whether this listener serves the DPS device API. */
static void route(struct api_ctx *ctx, struct http_exchange *ex,
                  bool device_api)
{
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
  if (console_owns_path(req->path)) {
    console_handle(ex);
    return;
  }
  struct path_parts parts;
  enum path_split_status split = path_split(req->path, &parts);
  if (!is_device_path(req->path)) {
    service_api_handle(ctx, ex, &parts, split);
    return;
  }
  if (!device_api) {
    api_respond_reason(ex, "NOT_FOUND", NULL);
    return;
  }
  if (parts.n == 0 || !is_our_scope(ctx, parts.seg[0])) {
    log_info("api", "unknown id scope reason=UNKNOWN_ID_SCOPE peer=%s",
             req->peer_addr ? req->peer_addr : "?");
    api_respond_reason(ex, "UNKNOWN_ID_SCOPE", NULL);
    return;
  }
  device_api_handle(ctx, ex, &parts, split);
}

void api_handle(struct http_exchange *ex, void *ud)
{
  route(ud, ex, true);
}

void api_handle_console_listener(struct http_exchange *ex, void *ud)
{
  route(ud, ex, false);
}
