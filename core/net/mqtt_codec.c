#include "net/mqtt_codec.h"

#include <string.h>

/* A cursor over the variable header and payload of one packet. */
struct reader {
  const uint8_t *p;
  size_t left;
  bool bad;
};

static uint8_t rd_u8(struct reader *r)
{
  if (r->left < 1) {
    r->bad = true;
    return 0;
  }
  r->left--;
  return *r->p++;
}

static uint16_t rd_u16(struct reader *r)
{
  uint16_t hi = rd_u8(r);
  return (uint16_t)(hi << 8 | rd_u8(r));
}

/* 1.5.3: well-formed UTF-8, no surrogates, no U+0000. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c == 0)
      return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len)
      return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    static const uint32_t min_of_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of_len[len] || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

static struct mqtt_str rd_bytes(struct reader *r)
{
  struct mqtt_str s = {NULL, rd_u16(r)};
  if (r->bad || r->left < s.len) {
    r->bad = true;
    s.len = 0;
    return s;
  }
  s.p = (const char *)r->p;
  r->p += s.len;
  r->left -= s.len;
  return s;
}

static struct mqtt_str rd_string(struct reader *r)
{
  struct mqtt_str s = rd_bytes(r);
  if (!r->bad && !utf8_ok((const uint8_t *)s.p, s.len))
    r->bad = true;
  return s;
}

enum mqtt_status mqtt_frame_read(const uint8_t *p, size_t n,
                                 size_t max_remaining, struct mqtt_frame *f)
{
  if (n < 2)
    return MQTT_NEED_MORE;
  size_t len = 0;
  for (size_t i = 1; i < MQTT_MAX_HEADER; i++) {
    if (i >= n)
      return MQTT_NEED_MORE;
    len |= (size_t)(p[i] & 0x7F) << (7 * (i - 1));
    if (len > max_remaining)
      return MQTT_TOO_LARGE;
    if (!(p[i] & 0x80)) {
      f->type = p[0] >> 4;
      f->flags = p[0] & 0x0F;
      f->header_len = i + 1;
      f->remaining_len = len;
      return MQTT_OK;
    }
  }
  return MQTT_MALFORMED; /* a fifth length byte */
}

/* 2.2.2: the flags each packet type must carry. */
static bool flags_ok(const struct mqtt_frame *f)
{
  switch (f->type) {
  case MQTT_PUBLISH:
    return ((f->flags >> 1) & 3) != 3;
  case MQTT_PUBREL:
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE:
    return f->flags == 2;
  default:
    return f->flags == 0;
  }
}

static enum mqtt_status decode_connect(struct reader *r,
                                       struct mqtt_connect *c)
{
  struct mqtt_str proto = rd_bytes(r);
  c->level = rd_u8(r);
  uint8_t fl = rd_u8(r);
  c->keepalive_s = rd_u16(r);
  if (r->bad)
    return MQTT_MALFORMED;
  if (proto.len != 4 || memcmp(proto.p, "MQTT", 4) != 0 || c->level != 4)
    return MQTT_BAD_PROTOCOL; /* 3.1.2.2: answer 0x01, then close */
  c->clean_session = fl & 0x02;
  c->has_will = fl & 0x04;
  c->will_qos = (fl >> 3) & 3;
  bool will_retain = fl & 0x20;
  c->has_password = fl & 0x40;
  c->has_username = fl & 0x80;
  if ((fl & 0x01) || c->will_qos == 3 ||
      (!c->has_will && (c->will_qos || will_retain)) ||
      (c->has_password && !c->has_username))
    return MQTT_MALFORMED;
  c->client_id = rd_string(r);
  if (c->has_will) {
    c->will_topic = rd_string(r);
    c->will_message = rd_bytes(r);
  }
  if (c->has_username)
    c->username = rd_string(r);
  if (c->has_password)
    c->password = rd_bytes(r);
  return r->bad ? MQTT_MALFORMED : MQTT_OK;
}

static bool has_wildcard(struct mqtt_str s)
{
  return memchr(s.p, '+', s.len) || memchr(s.p, '#', s.len);
}

static enum mqtt_status decode_publish(struct reader *r, uint8_t flags,
                                       struct mqtt_publish *pub)
{
  pub->dup = flags & 0x08;
  pub->qos = (flags >> 1) & 3;
  pub->retain = flags & 0x01;
  pub->topic = rd_string(r);
  if (pub->qos > 0)
    pub->packet_id = rd_u16(r);
  if (r->bad || pub->topic.len == 0 || has_wildcard(pub->topic) ||
      (pub->qos > 0 && pub->packet_id == 0) || (pub->qos == 0 && pub->dup))
    return MQTT_MALFORMED;
  pub->payload = r->p;
  pub->payload_len = r->left;
  r->p += r->left;
  r->left = 0;
  return MQTT_OK;
}

static enum mqtt_status decode_subscribe(struct reader *r, bool with_qos,
                                         struct mqtt_subscribe *s)
{
  s->packet_id = rd_u16(r);
  s->n = 0;
  while (!r->bad && r->left > 0) {
    if (s->n == MQTT_MAX_FILTERS)
      return MQTT_MALFORMED; /* more than any DPS client sends */
    s->filter[s->n] = rd_string(r);
    s->qos[s->n] = with_qos ? rd_u8(r) : 0;
    if (!r->bad && (s->filter[s->n].len == 0 || s->qos[s->n] > 2))
      return MQTT_MALFORMED;
    s->n++;
  }
  if (r->bad || s->n == 0 || s->packet_id == 0)
    return MQTT_MALFORMED;
  return MQTT_OK;
}

enum mqtt_status mqtt_decode(const uint8_t *p, size_t n,
                             const struct mqtt_frame *f,
                             struct mqtt_packet *out)
{
  memset(out, 0, sizeof *out);
  out->f = *f;
  if (n != f->header_len + f->remaining_len || !flags_ok(f))
    return MQTT_MALFORMED;
  struct reader r = {p + f->header_len, f->remaining_len, false};
  enum mqtt_status st;
  switch (f->type) {
  case MQTT_CONNECT:
    st = decode_connect(&r, &out->u.connect);
    break;
  case MQTT_PUBLISH:
    st = decode_publish(&r, f->flags, &out->u.publish);
    break;
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE:
    st = decode_subscribe(&r, f->type == MQTT_SUBSCRIBE, &out->u.subscribe);
    break;
  case MQTT_PUBACK:
  case MQTT_PUBREC:
  case MQTT_PUBREL:
  case MQTT_PUBCOMP:
    out->u.packet_id = rd_u16(&r);
    st = r.bad || out->u.packet_id == 0 ? MQTT_MALFORMED : MQTT_OK;
    break;
  case MQTT_PINGREQ:
  case MQTT_DISCONNECT:
    st = MQTT_OK;
    break;
  default: /* 0, 15 and what only a server sends */
    return MQTT_MALFORMED;
  }
  if (st == MQTT_OK && r.left != 0)
    return MQTT_MALFORMED; /* trailing bytes inside the frame */
  return st;
}

/* ---- encoders ---------------------------------------------------------- */

/* Writes the fixed header; 0 when it does not fit. */
static size_t put_header(uint8_t *out, size_t cap, uint8_t first,
                         size_t remaining)
{
  if (remaining > MQTT_REMAINING_MAX || cap < 1)
    return 0;
  size_t i = 0;
  out[i++] = first;
  do {
    if (i >= cap)
      return 0;
    uint8_t b = remaining & 0x7F;
    remaining >>= 7;
    out[i++] = (uint8_t)(remaining ? b | 0x80 : b);
  } while (remaining);
  return i;
}

static size_t put_u16(uint8_t *out, uint16_t v)
{
  out[0] = (uint8_t)(v >> 8);
  out[1] = (uint8_t)v;
  return 2;
}

size_t mqtt_encode_connack(uint8_t *out, size_t cap, bool session_present,
                           uint8_t code)
{
  if (cap < 4)
    return 0;
  out[0] = MQTT_CONNACK << 4;
  out[1] = 2;
  out[2] = session_present ? 1 : 0;
  out[3] = code;
  return 4;
}

size_t mqtt_encode_ack(uint8_t *out, size_t cap, enum mqtt_type type,
                       uint16_t packet_id)
{
  if (cap < 4)
    return 0;
  out[0] = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0));
  out[1] = 2;
  put_u16(out + 2, packet_id);
  return 4;
}

size_t mqtt_encode_suback(uint8_t *out, size_t cap, uint16_t packet_id,
                          const uint8_t *codes, size_t n)
{
  size_t h = put_header(out, cap, MQTT_SUBACK << 4, 2 + n);
  if (!h || cap - h < 2 + n)
    return 0;
  h += put_u16(out + h, packet_id);
  memcpy(out + h, codes, n);
  return h + n;
}

size_t mqtt_encode_pingresp(uint8_t *out, size_t cap)
{
  if (cap < 2)
    return 0;
  out[0] = MQTT_PINGRESP << 4;
  out[1] = 0;
  return 2;
}

size_t mqtt_encode_publish_head(uint8_t *out, size_t cap, const char *topic,
                                size_t topic_len, uint8_t qos,
                                uint16_t packet_id, size_t payload_len)
{
  if (topic_len == 0 || topic_len > UINT16_MAX || qos > 2)
    return 0;
  size_t var = 2 + topic_len + (qos ? 2 : 0);
  if (payload_len > MQTT_REMAINING_MAX - var)
    return 0;
  size_t h = put_header(out, cap, (uint8_t)(MQTT_PUBLISH << 4 | qos << 1),
                        var + payload_len);
  if (!h || cap - h < var)
    return 0;
  h += put_u16(out + h, (uint16_t)topic_len);
  memcpy(out + h, topic, topic_len);
  h += topic_len;
  if (qos)
    h += put_u16(out + h, packet_id);
  return h;
}
