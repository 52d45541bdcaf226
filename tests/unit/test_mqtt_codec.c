/* The MQTT codec decodes what the Azure SDKs send (packets rebuilt from
 * the captured Node SDK session), refuses every violation of MQTT 3.1.1
 * a server can see, and never reads past a limit. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/mqtt_codec.h"

#define LIMIT (96 * 1024)

struct pkt {
  uint8_t b[4096];
  size_t n;
};

static void put(struct pkt *p, const void *d, size_t n)
{
  ck_assert_uint_le(p->n + n, sizeof p->b);
  memcpy(p->b + p->n, d, n);
  p->n += n;
}
static void put8(struct pkt *p, uint8_t v) { put(p, &v, 1); }
static void put16(struct pkt *p, uint16_t v)
{
  put8(p, (uint8_t)(v >> 8));
  put8(p, (uint8_t)v);
}
static void putstr(struct pkt *p, const char *s)
{
  put16(p, (uint16_t)strlen(s));
  put(p, s, strlen(s));
}

/* Wraps a variable header + payload into a frame. */
static struct pkt frame(uint8_t first, const struct pkt *body)
{
  struct pkt f = {.n = 0};
  put8(&f, first);
  size_t rem = body->n;
  do {
    uint8_t b = rem & 0x7F;
    rem >>= 7;
    put8(&f, rem ? b | 0x80 : b);
  } while (rem);
  put(&f, body->b, body->n);
  return f;
}

static enum mqtt_status decode(const struct pkt *f, struct mqtt_packet *out)
{
  struct mqtt_frame fr;
  enum mqtt_status st = mqtt_frame_read(f->b, f->n, LIMIT, &fr);
  if (st != MQTT_OK)
    return st;
  ck_assert_uint_eq(fr.header_len + fr.remaining_len, f->n);
  return mqtt_decode(f->b, f->n, &fr, out);
}

static const char USERNAME[] =
    "0ne00000001/registrations/symkey-mqtt-01/api-version=2019-03-31&"
    "ClientVersion=azure-iot-provisioning-device%2F1.9.1";
static const char PASSWORD[] =
    "SharedAccessSignature sr=0ne00000001/registrations/symkey-mqtt-01&sig="
    "DrAjGbKPcjAR0pr8kLGn7H%2FKEghShqPOwbKOqPDh1t8%3D&skn=registration&se="
    "1795374525";

static struct pkt sdk_connect(uint8_t flags, uint8_t level)
{
  struct pkt v = {.n = 0};
  putstr(&v, "MQTT");
  put8(&v, level);
  put8(&v, flags);
  put16(&v, 180);
  putstr(&v, "symkey-mqtt-01");
  if (flags & 0x80)
    putstr(&v, USERNAME);
  if (flags & 0x40)
    putstr(&v, PASSWORD);
  return frame(0x10, &v);
}

START_TEST(decodes_the_node_sdk_connect)
{
  struct pkt f = sdk_connect(0xC2, 4);
  /* The first bytes the capture recorded: 10 a6 02 00 04 'MQTT' 04 c2 00 b4 */
  static const uint8_t head[] = {0x10, 0xa6, 0x02, 0x00, 0x04, 'M', 'Q',
                                 'T',  'T',  0x04, 0xc2, 0x00, 0xb4};
  ck_assert_mem_eq(f.b, head, sizeof head);
  struct mqtt_packet p;
  ck_assert_int_eq(decode(&f, &p), MQTT_OK);
  const struct mqtt_connect *c = &p.u.connect;
  ck_assert_int_eq(p.f.type, MQTT_CONNECT);
  ck_assert(c->clean_session && c->has_username && c->has_password);
  ck_assert_int_eq(c->keepalive_s, 180);
  ck_assert_int_eq(c->client_id.len, strlen("symkey-mqtt-01"));
  ck_assert_mem_eq(c->username.p, USERNAME, strlen(USERNAME));
  ck_assert_mem_eq(c->password.p, PASSWORD, strlen(PASSWORD));
}
END_TEST

START_TEST(x509_connect_has_no_password)
{
  struct pkt f = sdk_connect(0x82, 4);
  struct mqtt_packet p;
  ck_assert_int_eq(decode(&f, &p), MQTT_OK);
  ck_assert(!p.u.connect.has_password);
}
END_TEST

START_TEST(connect_violations_are_refused)
{
  struct mqtt_packet p;
  struct pkt f = sdk_connect(0xC2, 3); /* MQTT 3.1 */
  ck_assert_int_eq(decode(&f, &p), MQTT_BAD_PROTOCOL);
  f = sdk_connect(0xC3, 4); /* reserved bit */
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  f = sdk_connect(0x42, 4); /* password without username */
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  f = sdk_connect(0xD2, 4); /* will qos 2 without will flag */
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  f = sdk_connect(0xC2, 4);
  f.b[0] = 0x11; /* CONNECT flags must be 0 */
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  /* a NUL inside the client id (1.5.3) */
  f = sdk_connect(0x82, 4);
  f.b[2 + 2 + 4 + 1 + 1 + 2 + 2 + 3] = 0;
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
}
END_TEST

START_TEST(truncated_and_trailing_bytes_are_refused)
{
  struct pkt f = sdk_connect(0xC2, 4);
  struct mqtt_frame fr;
  for (size_t n = 0; n < 3; n++)
    ck_assert_int_eq(mqtt_frame_read(f.b, n, LIMIT, &fr), MQTT_NEED_MORE);
  ck_assert_int_eq(mqtt_frame_read(f.b, 3, LIMIT, &fr), MQTT_OK);
  struct mqtt_packet p;
  /* a frame whose declared fields run past its end */
  struct pkt v = {.n = 0};
  putstr(&v, "MQTT");
  put8(&v, 4);
  put8(&v, 0x02);
  put16(&v, 60);
  put16(&v, 40); /* client id claims 40 bytes, has 3 */
  put(&v, "abc", 3);
  struct pkt g = frame(0x10, &v);
  ck_assert_int_eq(decode(&g, &p), MQTT_MALFORMED);
  /* a byte after the last field */
  v.n = 0;
  put16(&v, 7);
  put8(&v, 1);
  g = frame(0x40, &v); /* PUBACK with 3 bytes */
  ck_assert_int_eq(decode(&g, &p), MQTT_MALFORMED);
}
END_TEST

START_TEST(remaining_length_is_bounded_before_reading)
{
  /* 2 MiB declared, nothing behind it: refused from the header alone. */
  static const uint8_t big[] = {0x30, 0x80, 0x80, 0x80, 0x01};
  struct mqtt_frame fr;
  ck_assert_int_eq(mqtt_frame_read(big, sizeof big, LIMIT, &fr),
                   MQTT_TOO_LARGE);
  static const uint8_t five[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f};
  ck_assert_int_eq(mqtt_frame_read(five, sizeof five, MQTT_REMAINING_MAX, &fr),
                   MQTT_MALFORMED);
  static const uint8_t max[] = {0x30, 0xff, 0xff, 0xff, 0x7f};
  ck_assert_int_eq(mqtt_frame_read(max, sizeof max, MQTT_REMAINING_MAX, &fr),
                   MQTT_OK);
  ck_assert_uint_eq(fr.remaining_len, MQTT_REMAINING_MAX);
}
END_TEST

static struct pkt publish(uint8_t first, const char *topic, uint16_t pid,
                          const char *payload)
{
  struct pkt v = {.n = 0};
  putstr(&v, topic);
  if (first & 0x06)
    put16(&v, pid);
  put(&v, payload, strlen(payload));
  return frame(first, &v);
}

START_TEST(decodes_register_and_poll_publishes)
{
  const char *reg = "$dps/registrations/PUT/iotdps-register/?$rid="
                    "f9593ba7-25ba-4e84-be2b-0e3c74b03f44";
  struct pkt f = publish(0x32, reg, 9338, "{\"registrationId\":\"x\"}");
  struct mqtt_packet p;
  ck_assert_int_eq(decode(&f, &p), MQTT_OK);
  ck_assert_int_eq(p.u.publish.qos, 1);
  ck_assert_int_eq(p.u.publish.packet_id, 9338);
  ck_assert_int_eq(p.u.publish.topic.len, strlen(reg));
  ck_assert_uint_eq(p.u.publish.payload_len, strlen("{\"registrationId\":\"x\"}"));
  f = publish(0x30, reg, 0, " "); /* the C SDK's QoS 0 */
  ck_assert_int_eq(decode(&f, &p), MQTT_OK);
  ck_assert_int_eq(p.u.publish.qos, 0);
  ck_assert_uint_eq(p.u.publish.payload_len, 1);
  f = publish(0x34, reg, 1, ""); /* QoS 2: decoded, the server refuses it */
  ck_assert_int_eq(decode(&f, &p), MQTT_OK);
  ck_assert_int_eq(p.u.publish.qos, 2);
  f = publish(0x36, reg, 1, ""); /* QoS 3 */
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  f = publish(0x32, reg, 0, ""); /* QoS 1 with packet id 0 */
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  f = publish(0x30, "$dps/registrations/res/#", 0, "");
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
}
END_TEST

START_TEST(decodes_subscribe_and_unsubscribe)
{
  struct pkt v = {.n = 0};
  put16(&v, 9337);
  putstr(&v, "$dps/registrations/res/#");
  put8(&v, 1);
  struct pkt f = frame(0x82, &v);
  struct mqtt_packet p;
  ck_assert_int_eq(decode(&f, &p), MQTT_OK);
  ck_assert_uint_eq(p.u.subscribe.n, 1);
  ck_assert_int_eq(p.u.subscribe.qos[0], 1);
  ck_assert_int_eq(p.u.subscribe.packet_id, 9337);
  f = frame(0x80, &v); /* flags must be 0010 */
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  v.b[v.n - 1] = 3; /* requested QoS 3 */
  f = frame(0x82, &v);
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  v.n = 2; /* no filter at all */
  f = frame(0x82, &v);
  ck_assert_int_eq(decode(&f, &p), MQTT_MALFORMED);
  v.n = 0;
  put16(&v, 9340);
  putstr(&v, "$dps/registrations/res/#");
  f = frame(0xA2, &v);
  ck_assert_int_eq(decode(&f, &p), MQTT_OK);
  ck_assert_int_eq(p.f.type, MQTT_UNSUBSCRIBE);
  ck_assert_uint_eq(p.u.subscribe.n, 1);
}
END_TEST

START_TEST(small_packets)
{
  static const uint8_t ping[] = {0xC0, 0}, disc[] = {0xE0, 0},
                       bad_ping[] = {0xC0, 1, 0}, connack[] = {0x20, 2, 0, 0};
  struct mqtt_frame fr;
  struct mqtt_packet p;
  ck_assert_int_eq(mqtt_frame_read(ping, 2, LIMIT, &fr), MQTT_OK);
  ck_assert_int_eq(mqtt_decode(ping, 2, &fr, &p), MQTT_OK);
  ck_assert_int_eq(mqtt_frame_read(disc, 2, LIMIT, &fr), MQTT_OK);
  ck_assert_int_eq(mqtt_decode(disc, 2, &fr, &p), MQTT_OK);
  ck_assert_int_eq(mqtt_frame_read(bad_ping, 3, LIMIT, &fr), MQTT_OK);
  ck_assert_int_eq(mqtt_decode(bad_ping, 3, &fr, &p), MQTT_MALFORMED);
  ck_assert_int_eq(mqtt_frame_read(connack, 4, LIMIT, &fr), MQTT_OK);
  ck_assert_int_eq(mqtt_decode(connack, 4, &fr, &p), MQTT_MALFORMED);
}
END_TEST

START_TEST(encoders_round_trip)
{
  uint8_t b[512];
  ck_assert_uint_eq(mqtt_encode_connack(b, sizeof b, false, 5), 4);
  ck_assert_int_eq(b[0], 0x20);
  ck_assert_int_eq(b[3], 5);
  ck_assert_uint_eq(mqtt_encode_ack(b, sizeof b, MQTT_PUBACK, 0x1234), 4);
  static const uint8_t puback[] = {0x40, 2, 0x12, 0x34};
  ck_assert_mem_eq(b, puback, 4);
  uint8_t codes[] = {1};
  ck_assert_uint_eq(mqtt_encode_suback(b, sizeof b, 7, codes, 1), 5);
  static const uint8_t suback[] = {0x90, 3, 0, 7, 1};
  ck_assert_mem_eq(b, suback, 5);
  ck_assert_uint_eq(mqtt_encode_pingresp(b, sizeof b), 2);
  ck_assert_uint_eq(mqtt_encode_pingresp(b, 1), 0);

  /* A response PUBLISH: head + payload decodes back to the same fields
   * (the decoder reads client packets, but PUBLISH is symmetric). */
  const char *topic = "$dps/registrations/res/202/?$rid=1&retry-after=3";
  const char *payload = "{\"operationId\":\"o\",\"status\":\"assigning\"}";
  size_t h = mqtt_encode_publish_head(b, sizeof b, topic, strlen(topic), 1,
                                      42, strlen(payload));
  ck_assert_uint_gt(h, 0);
  memcpy(b + h, payload, strlen(payload));
  size_t n = h + strlen(payload);
  struct mqtt_frame fr;
  struct mqtt_packet p;
  ck_assert_int_eq(mqtt_frame_read(b, n, LIMIT, &fr), MQTT_OK);
  ck_assert_int_eq(mqtt_decode(b, n, &fr, &p), MQTT_OK);
  ck_assert_int_eq(p.u.publish.packet_id, 42);
  ck_assert_mem_eq(p.u.publish.topic.p, topic, strlen(topic));
  ck_assert_mem_eq(p.u.publish.payload, payload, strlen(payload));
  /* a multi-byte remaining length */
  h = mqtt_encode_publish_head(b, sizeof b, topic, strlen(topic), 0, 0,
                               100000);
  ck_assert_uint_eq(h, 1 + 3 + 2 + strlen(topic));
  ck_assert_uint_eq(mqtt_encode_publish_head(b, 8, topic, strlen(topic), 0, 0,
                                             1),
                    0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("mqtt_codec");
  TCase *tc = tcase_create("codec");
  tcase_add_test(tc, decodes_the_node_sdk_connect);
  tcase_add_test(tc, x509_connect_has_no_password);
  tcase_add_test(tc, connect_violations_are_refused);
  tcase_add_test(tc, truncated_and_trailing_bytes_are_refused);
  tcase_add_test(tc, remaining_length_is_bounded_before_reading);
  tcase_add_test(tc, decodes_register_and_poll_publishes);
  tcase_add_test(tc, decodes_subscribe_and_unsubscribe);
  tcase_add_test(tc, small_packets);
  tcase_add_test(tc, encoders_round_trip);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
