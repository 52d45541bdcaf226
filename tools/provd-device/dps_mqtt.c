/* DPS over MQTT (dps_mqtt.h). */
#include "dps_mqtt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_link.h"
#include "util/url.h"

#define RES_PREFIX "$dps/registrations/res/"
#define MAX_ANSWER (1024u * 1024u)

struct dps_mqtt {
  struct mqtt_link *link;
  int rid;          /* of the request in flight */
  int answered;     /* its answer arrived */
  long status;
  int retry_after_s;
  char *body;       /* owned until handed to the response */
  size_t body_len;
};

int dps_mqtt_url(const char *url)
{
  return url && strncmp(url, "mqtts://", 8) == 0;
}

/* The value of `name=` in the topic's query, as a number; -1 if absent. */
static long query_number(const char *topic, const char *name)
{
  const char *q = strchr(topic, '?');
  size_t n = strlen(name);
  for (const char *p = q; p; p = strchr(p + 1, '&'))
    if (strncmp(p + 1, name, n) == 0 && p[1 + n] == '=')
      return strtol(p + 2 + n, NULL, 10);
  return -1;
}

/* $dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}] */
static void on_answer(void *ud, const char *topic, const void *payload,
                      size_t len)
{
  struct dps_mqtt *d = ud;
  if (strncmp(topic, RES_PREFIX, strlen(RES_PREFIX)) != 0 ||
      query_number(topic, "$rid") != d->rid || d->answered ||
      len > MAX_ANSWER)
    return;
  char *body = malloc(len + 1);
  if (!body)
    return;
  memcpy(body, payload, len);
  body[len] = '\0';
  d->status = strtol(topic + strlen(RES_PREFIX), NULL, 10);
  d->retry_after_s = (int)query_number(topic, "retry-after");
  d->body = body;
  d->body_len = len;
  d->answered = 1;
}

/* mqtts://HOST[:PORT] */
static int parse_url(const char *url, char *host, size_t cap, int *port,
                     struct provd_err *err)
{
  const char *h = url + 8;
  const char *colon = strrchr(h, ':');
  size_t hl = colon ? (size_t)(colon - h) : strlen(h);
  *port = colon ? atoi(colon + 1) : DPS_MQTT_DEFAULT_PORT;
  if (hl == 0 || hl >= cap || *port <= 0 || *port > 65535 ||
      memchr(h, '/', hl)) {
    perr_set(err, "BAD_URL", "'%s' is not mqtts://HOST[:PORT]", url);
    return -1;
  }
  memcpy(host, h, hl);
  host[hl] = '\0';
  return 0;
}

struct dps_mqtt *dps_mqtt_open(const char *url,
                               const struct provd_device_opts *o,
                               const char *registration_id,
                               const char *api_version, const char *token,
                               double deadline, struct provd_err *err)
{
  char host[256], username[1024];
  int port = 0;
  if (parse_url(url, host, sizeof(host), &port, err) != 0)
    return NULL;
  snprintf(username, sizeof(username),
           "%s/registrations/%s/api-version=%s&ClientVersion=provd-device%%2F%s",
           o->id_scope, registration_id, api_version, PROVD_VERSION);
  struct dps_mqtt *d = calloc(1, sizeof(*d));
  if (!d) {
    perr_set(err, "NO_MEMORY", "out of memory");
    return NULL;
  }
  struct mqtt_link_opts lo = {
      .host = host, .port = port, .client_id = registration_id,
      .username = username, .password = token, .ca_file = o->ca_file,
      .cert_file = o->cert_file, .key_file = o->key_file,
      .on_message = on_answer, .ud = d};
  d->link = mqtt_link_open(&lo, deadline, err);
  if (!d->link ||
      mqtt_link_subscribe(d->link, RES_PREFIX "#", deadline, err) != 0) {
    dps_mqtt_close(d);
    return NULL;
  }
  return d;
}

void dps_mqtt_close(struct dps_mqtt *d)
{
  if (!d)
    return;
  mqtt_link_close(d->link);
  free(d->body);
  free(d);
}

int dps_mqtt_request(struct dps_mqtt *d, const char *operation_id,
                     const char *body, double deadline,
                     struct https_response *rs, struct provd_err *err)
{
  char topic[1024], op_enc[3 * 256 + 1];
  memset(rs, 0, sizeof(*rs));
  rs->retry_after_s = -1;
  free(d->body);
  d->body = NULL;
  d->answered = 0;
  d->rid++;
  if (!operation_id) {
    snprintf(topic, sizeof(topic),
             "$dps/registrations/PUT/iotdps-register/?$rid=%d", d->rid);
  } else if (url_encode(operation_id, op_enc, sizeof(op_enc)) < 0) {
    perr_set(err, "BAD_RESPONSE", "operationId is too long");
    return -1;
  } else {
    snprintf(topic, sizeof(topic),
             "$dps/registrations/GET/iotdps-get-operationstatus/"
             "?$rid=%d&operationId=%s", d->rid, op_enc);
  }
  const char *payload = body ? body : "";
  if (mqtt_link_publish(d->link, topic, payload, strlen(payload), deadline,
                        err) != 0 ||
      mqtt_link_wait(d->link, &d->answered, deadline, "waiting for the DPS "
                     "answer", err) != 0)
    return -1;
  rs->status = d->status;
  rs->body = d->body;
  rs->body_len = d->body_len;
  rs->retry_after_s = d->retry_after_s;
  d->body = NULL;
  return 0;
}
