/* MQTT 3.1.1 packets, the subset a DPS endpoint serves (OASIS MQTT
 * 3.1.1).  Strict and bounded: the frame header is checked against the
 * caller's remaining-length limit before anything is read or allocated,
 * and a decoded packet only points into the bytes it was decoded from
 * (no allocation at all).  Every rule of the standard that a server can
 * check on these packets is checked; what DPS does not serve (QoS 2,
 * will messages, protocol levels other than 4) is decoded and left to
 * the caller to refuse with the right answer. */
#ifndef PROVD_NET_MQTT_CODEC_H
#define PROVD_NET_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mqtt_type {
  MQTT_CONNECT = 1,
  MQTT_CONNACK = 2,
  MQTT_PUBLISH = 3,
  MQTT_PUBACK = 4,
  MQTT_PUBREC = 5,
  MQTT_PUBREL = 6,
  MQTT_PUBCOMP = 7,
  MQTT_SUBSCRIBE = 8,
  MQTT_SUBACK = 9,
  MQTT_UNSUBSCRIBE = 10,
  MQTT_UNSUBACK = 11,
  MQTT_PINGREQ = 12,
  MQTT_PINGRESP = 13,
  MQTT_DISCONNECT = 14
};

/* CONNACK return codes (3.2.2.3). */
enum mqtt_connack_code {
  MQTT_CONNACK_ACCEPTED = 0,
  MQTT_CONNACK_BAD_PROTOCOL = 1,
  MQTT_CONNACK_BAD_CLIENT_ID = 2,
  MQTT_CONNACK_UNAVAILABLE = 3,
  MQTT_CONNACK_BAD_CREDENTIALS = 4,
  MQTT_CONNACK_NOT_AUTHORIZED = 5
};

enum mqtt_status {
  MQTT_OK = 0,
  MQTT_NEED_MORE = 1,     /* the frame is not complete yet */
  MQTT_MALFORMED = -1,    /* a protocol violation: close the connection */
  MQTT_TOO_LARGE = -2,    /* remaining length above the caller's limit */
  MQTT_BAD_PROTOCOL = -3  /* CONNECT with another protocol name or level */
};

/* A length-prefixed string or binary field, pointing into the packet. */
struct mqtt_str {
  const char *p;
  uint16_t len;
};

struct mqtt_frame {
  uint8_t type;         /* enum mqtt_type */
  uint8_t flags;        /* low nibble of the first byte */
  size_t header_len;    /* fixed header: 2..5 bytes */
  size_t remaining_len; /* bytes after the fixed header */
};

#define MQTT_MAX_FILTERS 8 /* per SUBSCRIBE / UNSUBSCRIBE */
#define MQTT_MAX_HEADER 5

struct mqtt_connect {
  uint8_t level;
  bool clean_session, has_will, has_username, has_password;
  uint8_t will_qos;
  uint16_t keepalive_s;
  struct mqtt_str client_id, will_topic, will_message, username, password;
};

struct mqtt_publish {
  uint8_t qos; /* 0..2 */
  bool dup, retain;
  struct mqtt_str topic;
  uint16_t packet_id; /* 0 for QoS 0 */
  const uint8_t *payload;
  size_t payload_len;
};

struct mqtt_subscribe { /* SUBSCRIBE and UNSUBSCRIBE */
  uint16_t packet_id;
  size_t n;
  struct mqtt_str filter[MQTT_MAX_FILTERS];
  uint8_t qos[MQTT_MAX_FILTERS]; /* requested; SUBSCRIBE only */
};

struct mqtt_packet {
  struct mqtt_frame f;
  union {
    struct mqtt_connect connect;
    struct mqtt_publish publish;
    struct mqtt_subscribe subscribe;
    uint16_t packet_id; /* PUBACK, PUBREC, PUBREL, PUBCOMP */
  } u;
};

/* Reads the fixed header from p[0..n).  MQTT_OK: *f is filled and the
 * whole packet is f->header_len + f->remaining_len bytes (which may be
 * more than n).  MQTT_TOO_LARGE as soon as the length says so. */
enum mqtt_status mqtt_frame_read(const uint8_t *p, size_t n,
                                 size_t max_remaining, struct mqtt_frame *f);

/* Decodes one complete packet (p[0..n) holds exactly the frame that
 * mqtt_frame_read described).  The packet's strings point into p.
 * Packets a server never receives (CONNACK, SUBACK, ...) are
 * MQTT_MALFORMED. */
enum mqtt_status mqtt_decode(const uint8_t *p, size_t n,
                             const struct mqtt_frame *f,
                             struct mqtt_packet *out);

/* Encoders write into out[0..cap) and return the length, or 0 when cap
 * is too small. */
size_t mqtt_encode_connack(uint8_t *out, size_t cap, bool session_present,
                           uint8_t code);
/* PUBACK, UNSUBACK: a packet id and nothing else. */
size_t mqtt_encode_ack(uint8_t *out, size_t cap, enum mqtt_type type,
                       uint16_t packet_id);
size_t mqtt_encode_suback(uint8_t *out, size_t cap, uint16_t packet_id,
                          const uint8_t *codes, size_t n);
size_t mqtt_encode_pingresp(uint8_t *out, size_t cap);
/* The fixed header, topic and packet id of a PUBLISH whose payload_len
 * bytes of payload the caller sends right after. */
size_t mqtt_encode_publish_head(uint8_t *out, size_t cap, const char *topic,
                                size_t topic_len, uint8_t qos,
                                uint16_t packet_id, size_t payload_len);

/* The largest remaining length the format can express. */
#define MQTT_REMAINING_MAX 268435455u

#endif
