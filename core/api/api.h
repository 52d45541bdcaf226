/* The HTTPS front door: routes requests to the device API (DPS device
 * REST), the service API (DPS enrollment REST + provd extensions) and the
 * operational endpoints (/healthz, /metrics). */
#ifndef CORE_API_API_H
#define CORE_API_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/path.h"
#include "config/config.h"
#include "config/permissions.h"
#include <jansson.h>

#include "net/http.h"
#include "net/mqtt.h"
#include "store/store.h"

struct engine;

struct service_policy {
  char name[64];
  uint8_t key[128];
  size_t key_len;
  unsigned permissions; /* enum service_permission (config/permissions.h) */
};

/* The policies in force (api/policies.c). */
struct policy_table {
  struct policy_table *retired_next; /* main thread only */
  size_t n;
  struct service_policy p[];         /* [0] = the data dir's owner */
};

struct api_ctx {
  const struct provd_config *cfg;
  struct store *store;
  struct engine *engine;
  char service_host[256]; /* HostName of the connection string; fixed */
  _Atomic(const struct policy_table *) policies;
  struct policy_table *retired_policies; /* main thread only */
  atomic_bool ready;      /* /healthz answers 200 once set;
                             written by main, read by workers */
};

/* Reads the owner policy from the connection string file and the
 * configured ones, and puts them in force for the next request (at
 * start and on SIGHUP; main thread).  On failure nothing changes. */
int api_policies_load(struct api_ctx *ctx, const char *conn_string_path,
                      const struct provd_config *cfg, struct provd_err *err);
/* The policy named name (case-insensitive) or NULL; valid until
 * api_policies_clear.  Any thread. */
const struct service_policy *api_policy_find(const struct api_ctx *ctx,
                                             const char *name);
/* At exit, once no worker runs. */
void api_policies_clear(struct api_ctx *ctx);

/* http_handler_fn: ud is the struct api_ctx. */
void api_handle(struct http_exchange *ex, void *ud);
/* The same without the device API (listen.console: the console and the
 * service API it calls, /healthz, /metrics). */
void api_handle_console_listener(struct http_exchange *ex, void *ud);

/* Each answers exactly once through http_respond (possibly later, from
 * a store thread).  parts is the request path split by api_handle, with
 * the status of that split (the segments before a failure are kept). */
void device_api_handle(struct api_ctx *ctx, struct http_exchange *ex,
                       const struct path_parts *parts,
                       enum path_split_status split);
void service_api_handle(struct api_ctx *ctx, struct http_exchange *ex,
                        const struct path_parts *parts,
                        enum path_split_status split);

/* Why a DeviceRegistration body cannot be served (answered as
 * BAD_REQUEST with this message), or NULL.  Shared by both transports. */
const char *device_body_problem(const json_t *body, bool status_lookup,
                                const char *regid);

/* The device's address without the port, for geoLatency allocation:
 * "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1"; "" when unknown. */
void device_peer_ip(const char *peer, char *out, size_t cap);

/* The DPS device API over MQTT (net/mqtt.h); ud is the struct api_ctx. */
struct mqtt_handlers device_mqtt_handlers(void);

#endif
