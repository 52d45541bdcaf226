/* libFuzzer target over the MQTT codec (core/net/mqtt_codec.c).  The input
 * is a byte stream as a client would send it; packets are framed and
 * decoded one after the other, as the listener does.  Contract checked
 * on every input: a frame never claims more than the limit, every
 * decoded string and payload lies inside its own frame, a complete
 * frame is "need more" (never a decision) one byte earlier when the
 * header itself was cut, and re-encoding a decoded PUBLISH gives back
 * the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/mqtt_codec.h"

#define LIMIT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int ok)
{
  if (!ok)
    abort();
}

static void inside(const uint8_t *frame, size_t n, struct mqtt_str s)
{
  if (s.len == 0)
    return;
  require((const uint8_t *)s.p >= frame &&
          (const uint8_t *)s.p + s.len <= frame + n);
}

static void check_publish(const uint8_t *p, size_t n,
                          const struct mqtt_packet *pk)
{
  const struct mqtt_publish *pub = &pk->u.publish;
  inside(p, n, pub->topic);
  require(pub->payload >= p && pub->payload + pub->payload_len == p + n);
  require(pub->qos <= 2 && (pub->qos == 0) == (pub->packet_id == 0));
  if (pub->dup || pub->retain)
    return; /* the encoder never sets them */
  uint8_t head[MQTT_MAX_HEADER + 2 + 65535 + 2];
  size_t h = mqtt_encode_publish_head(head, sizeof head, pub->topic.p,
                                      pub->topic.len, pub->qos,
                                      pub->packet_id, pub->payload_len);
  /* Same bytes unless the client used a longer length encoding. */
  if (h == n - pub->payload_len)
    require(memcmp(head, p, h) == 0);
}

static void check(const uint8_t *p, size_t n, const struct mqtt_packet *pk)
{
  switch (pk->f.type) {
  case MQTT_CONNECT: {
    const struct mqtt_connect *c = &pk->u.connect;
    require(c->level == 4 && c->will_qos <= 2);
    require(!c->has_password || c->has_username);
    inside(p, n, c->client_id);
    inside(p, n, c->username);
    inside(p, n, c->password);
    inside(p, n, c->will_topic);
    inside(p, n, c->will_message);
    require(memchr(c->client_id.p ? c->client_id.p : "", 0,
                   c->client_id.len) == NULL);
    break;
  }
  case MQTT_PUBLISH:
    check_publish(p, n, pk);
    break;
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE:
    require(pk->u.subscribe.n >= 1 && pk->u.subscribe.n <= MQTT_MAX_FILTERS);
    require(pk->u.subscribe.packet_id != 0);
    for (size_t i = 0; i < pk->u.subscribe.n; i++) {
      inside(p, n, pk->u.subscribe.filter[i]);
      require(pk->u.subscribe.qos[i] <= 2);
    }
    break;
  default:
    break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  size_t off = 0;
  while (off < size) {
    struct mqtt_frame f;
    enum mqtt_status st = mqtt_frame_read(data + off, size - off, LIMIT, &f);
    if (st != MQTT_OK)
      return 0;
    require(f.remaining_len <= LIMIT && f.header_len >= 2 &&
            f.header_len <= MQTT_MAX_HEADER);
    struct mqtt_frame cut;
    require(mqtt_frame_read(data + off, f.header_len - 1, LIMIT, &cut) ==
            MQTT_NEED_MORE);
    size_t total = f.header_len + f.remaining_len;
    if (total > size - off)
      return 0;
    /* A private copy: ASan catches any read outside the frame. */
    uint8_t *copy = malloc(total ? total : 1);
    require(copy != NULL);
    memcpy(copy, data + off, total);
    struct mqtt_packet pk;
    st = mqtt_decode(copy, total, &f, &pk);
    require(st == MQTT_OK || st == MQTT_MALFORMED || st == MQTT_BAD_PROTOCOL);
    if (st == MQTT_OK)
      check(copy, total, &pk);
    free(copy);
    if (st != MQTT_OK)
      return 0;
    off += total;
  }
  return 0;
}
