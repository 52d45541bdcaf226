/* The DPS MQTT device flow for the load generator (docs/mqtt.md): one
 * write of CONNECT + SUBSCRIBE + PUBLISH register, then PUBLISH polls,
 * all at QoS 0 (the C SDK's choice), so the server's only packets are
 * CONNACK, SUBACK and one answer PUBLISH per request.  Framing and the
 * answer's decoding reuse the server's codec (core/net/mqtt_codec.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"
#include "net/mqtt_codec.h"

#define RES_PREFIX "$dps/registrations/res/"

static int put(struct lg_conn *c, const void *p, size_t n)
{
  if (c->out_len + n > sizeof c->out)
    return -1;
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  return 0;
}

static int put_u16(struct lg_conn *c, size_t v)
{
  unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
  return v > 0xFFFF ? -1 : put(c, b, 2);
}

static int put_str(struct lg_conn *c, const char *s)
{
  return put_u16(c, strlen(s)) || put(c, s, strlen(s)) ? -1 : 0;
}

static int put_header(struct lg_conn *c, unsigned char first, size_t rem)
{
  unsigned char b[MQTT_MAX_HEADER];
  size_t n = 0;
  b[n++] = first;
  do {
    unsigned char d = rem & 0x7F;
    rem >>= 7;
    b[n++] = rem ? d | 0x80 : d;
  } while (rem && n < sizeof b);
  return rem ? -1 : put(c, b, n);
}

static int put_publish(struct lg_conn *c, const char *topic,
                       const char *payload)
{
  size_t rem = 2 + strlen(topic) + strlen(payload);
  return put_header(c, MQTT_PUBLISH << 4, rem) || put_str(c, topic) ||
                 put(c, payload, strlen(payload))
             ? -1
             : 0;
}

int lg_mqtt_register(struct lg_conn *c, const char *scope,
                     const char *api_version)
{
  char user[3 * LG_MAX_ID], topic[2 * LG_MAX_ID], body[LG_MAX_ID + 32];
  snprintf(user, sizeof user, "%s/registrations/%s/api-version=%s", scope,
           c->reg_id, api_version);
  snprintf(topic, sizeof topic,
           "$dps/registrations/PUT/iotdps-register/?$rid=%ld", c->unit);
  snprintf(body, sizeof body, "{\"registrationId\":\"%s\"}", c->reg_id);
  bool pw = c->auth[0] != '\0';
  size_t rem = 10 + 2 + strlen(c->reg_id) + 2 + strlen(user) +
               (pw ? 2 + strlen(c->auth) : 0);
  static const char filter[] = "$dps/registrations/res/#";
  c->out_len = c->out_off = 0;
  if (put_header(c, MQTT_CONNECT << 4, rem) || put_str(c, "MQTT") ||
      put(c, "\x04", 1) || put(c, pw ? "\xC2" : "\x82", 1) ||
      put_u16(c, 180) || put_str(c, c->reg_id) || put_str(c, user) ||
      (pw && put_str(c, c->auth)))
    return -1;
  if (put_header(c, (MQTT_SUBSCRIBE << 4) | 2, 2 + 2 + strlen(filter) + 1) ||
      put_u16(c, 1) || put_str(c, filter) || put(c, "\x00", 1))
    return -1;
  return put_publish(c, topic, body);
}

int lg_mqtt_poll(struct lg_conn *c, const char *operation_id)
{
  char topic[3 * LG_MAX_ID];
  int n = snprintf(topic, sizeof topic,
                   "$dps/registrations/GET/iotdps-get-operationstatus/"
                   "?$rid=%ld.%d&operationId=%s",
                   c->unit, c->polls, operation_id);
  if (n < 0 || (size_t)n >= sizeof topic)
    return -1;
  c->out_len = c->out_off = 0;
  return put_publish(c, topic, " ");
}

/* 1 with the answer PUBLISH (status from its topic, body = payload), or
 * a refused CONNACK as status 401/400; 0 need more; -1 malformed. */
int lg_mqtt_parse(const char *buf, size_t len, bool at_eof,
                  struct lg_resp *out)
{
  (void)at_eof;
  size_t off = 0;
  memset(out, 0, sizeof *out);
  while (off < len) {
    const uint8_t *p = (const uint8_t *)buf + off;
    struct mqtt_frame f;
    enum mqtt_status st = mqtt_frame_read(p, len - off, LG_IN_CAP, &f);
    if (st == MQTT_NEED_MORE)
      return 0;
    if (st != MQTT_OK)
      return -1;
    size_t total = f.header_len + f.remaining_len;
    if (total > len - off)
      return 0;
    if (f.type == MQTT_CONNACK && (f.remaining_len != 2 || p[3] != 0)) {
      out->status = f.remaining_len == 2 && p[3] >= 4 ? 401 : 400;
      out->conn_close = true;
      return 1;
    }
    if (f.type == MQTT_PUBLISH) {
      struct mqtt_packet pk;
      if (mqtt_decode(p, total, &f, &pk) != MQTT_OK)
        return -1;
      const struct mqtt_publish *pub = &pk.u.publish;
      size_t plen = strlen(RES_PREFIX);
      if (pub->topic.len < plen + 3 ||
          memcmp(pub->topic.p, RES_PREFIX, plen) != 0)
        return -1;
      out->status = atoi(pub->topic.p + plen);
      out->body_off = (size_t)((const char *)pub->payload - buf);
      out->body_len = pub->payload_len;
      return 1;
    }
    off += total; /* CONNACK 0, SUBACK */
  }
  return 0;
}
