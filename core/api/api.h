/* The HTTPS front door: routes requests to the device API (DPS device
 * REST), the service API (DPS enrollment REST + provd extensions) and the
 * operational endpoints (/healthz, /metrics). */
#ifndef CORE_API_API_H
#define CORE_API_API_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "config/config.h"
#include "net/http.h"
#include "plugin/loader.h"
#include "store/store.h"

struct engine;

struct service_policy {
  char name[64];
  uint8_t key[128];
  size_t key_len;
  int can_write;
};

struct api_ctx {
  const struct provd_config *cfg;
  struct store *store;
  struct plugin_set *plugins;
  struct engine *engine;
  char service_host[256];          /* HostName of the connection string */
  struct service_policy *policies; /* [0] = provisioningserviceowner */
  size_t n_policies;
  volatile int ready;              /* /healthz answers 200 once set */
};

/* http_handler_fn: ud is the struct api_ctx. */
void api_handle(struct http_exchange *ex, void *ud);

/* Each answers exactly once through http_respond (possibly later, from
 * a store thread). */
void device_api_handle(struct api_ctx *ctx, struct http_exchange *ex);
void service_api_handle(struct api_ctx *ctx, struct http_exchange *ex);

/* Responses.  Every JSON answer carries Content-Type application/json;
 * charset=utf-8.  api_respond_json steals `body`. */
void api_respond_json(struct http_exchange *ex, int status, json_t *body,
                      const struct http_header *extra, size_t n_extra);
/* DPS error body {"errorCode":N,"trackingId":"..","message":"..",
 * "timestampUtc":".."} plus x-ms-error-code. */
void api_respond_error(struct http_exchange *ex, int status, int error_code,
                       const char *message);
/* The same with extra headers (e.g. Retry-After on 429/503). */
void api_respond_error_with(struct http_exchange *ex, int status,
                            int error_code, const char *message,
                            const struct http_header *extra, size_t n_extra);

#endif
