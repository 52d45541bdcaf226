/* The DPS device API over MQTT as a transport of the registration flow
 * (provd_device.c): public Azure docs "Communicate with DPS using the MQTT
 * protocol".  A request is published on $dps/registrations/PUT|GET/...
 * with a fresh $rid and its answer, read from $dps/registrations/res/#,
 * comes back shaped like an HTTPS answer (status, body, Retry-After), so
 * the flow's polling and retries serve both transports. */
#ifndef TOOLS_PROVD_DEVICE_DPS_MQTT_H
#define TOOLS_PROVD_DEVICE_DPS_MQTT_H

#include "https.h"
#include "provd/device.h"
#include "util/err.h"

#define DPS_MQTT_DEFAULT_PORT 8883

struct dps_mqtt;

/* 1 when url is mqtts://... */
int dps_mqtt_url(const char *url);

/* Connects to url (mqtts://HOST[:PORT]) as registration_id: the token as
 * password, or o->cert_file as TLS client certificate when token is NULL;
 * subscribes to the answers.  NULL with err set. */
struct dps_mqtt *dps_mqtt_open(const char *url,
                               const struct provd_device_opts *o,
                               const char *registration_id,
                               const char *api_version, const char *token,
                               double deadline, struct provd_err *err);
void dps_mqtt_close(struct dps_mqtt *d);

/* The register (operation_id NULL, body the DeviceRegistration JSON) or
 * the operation status poll.  rs is (re)initialised as https_do does;
 * release it with https_response_clear.  0, or -1 with err set. */
int dps_mqtt_request(struct dps_mqtt *d, const char *operation_id,
                     const char *body, double deadline,
                     struct https_response *rs, struct provd_err *err);

#endif
