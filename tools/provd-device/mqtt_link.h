/* One blocking MQTT 3.1.1 over TLS connection on libmosquitto, shared by
 * the device library's two MQTT uses: DPS registration (dps_mqtt.c) and
 * telemetry to the hub (telemetry.c). */
#ifndef TOOLS_PROVD_DEVICE_MQTT_LINK_H
#define TOOLS_PROVD_DEVICE_MQTT_LINK_H

#include <stddef.h>

#include "util/err.h"

struct mqtt_link;

/* Called on the caller's thread (inside mqtt_link_wait) for each message
 * that arrives. */
typedef void (*mqtt_link_message_fn)(void *ud, const char *topic,
                                     const void *payload, size_t len);

struct mqtt_link_opts {
  const char *host;
  int port;
  const char *client_id;
  const char *username;
  const char *password;  /* NULL: none (X.509) */
  const char *ca_file;   /* NULL: the system store */
  const char *cert_file; /* TLS client certificate, or NULL */
  const char *key_file;
  mqtt_link_message_fn on_message; /* or NULL */
  void *ud;
};

/* Connects and waits for the CONNACK until deadline (monotonic seconds,
 * mqtt_link_now).  NULL with err->code BAD_INPUT, NETWORK, TLS,
 * NOT_AUTHORIZED or TIMEOUT. */
struct mqtt_link *mqtt_link_open(const struct mqtt_link_opts *o,
                                 double deadline, struct provd_err *err);
/* Disconnects (when connected) and frees; NULL is fine. */
void mqtt_link_close(struct mqtt_link *l);

/* Subscribes at QoS 1 and waits for the SUBACK.  0 or -1. */
int mqtt_link_subscribe(struct mqtt_link *l, const char *topic,
                        double deadline, struct provd_err *err);
/* Publishes at QoS 1 and waits for the PUBACK.  0 or -1. */
int mqtt_link_publish(struct mqtt_link *l, const char *topic,
                      const void *payload, size_t len, double deadline,
                      struct provd_err *err);
/* Serves the connection until *done is non-zero (set by on_message) or
 * the deadline; 0, or -1 (TIMEOUT, NETWORK, TLS). */
int mqtt_link_wait(struct mqtt_link *l, const int *done, double deadline,
                   const char *what, struct provd_err *err);
/* Serves the connection for `seconds` (keep-alive while pausing). */
void mqtt_link_pause(struct mqtt_link *l, double seconds);

double mqtt_link_now(void);

#endif
