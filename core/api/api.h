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
#include <jansson.h>

#include "net/http.h"
#include "net/mqtt.h"
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
  struct engine *engine;
  char service_host[256];          /* HostName of the connection string */
  struct service_policy *policies; /* [0] = provisioningserviceowner */
  size_t n_policies;
  atomic_bool ready;               /* /healthz answers 200 once set;
                                      written by main, read by workers */
};

/* http_handler_fn: ud is the struct api_ctx. */
void api_handle(struct http_exchange *ex, void *ud);

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
