/* MQTT 3.1.1 server sessions (TLS or plain) on the HTTP server's worker
 * loops (net/http.h, struct http_protocol): CONNECT within a deadline,
 * keep-alive at 1.5 x the client's value, SUBSCRIBE/UNSUBSCRIBE,
 * PINGREQ, DISCONNECT, PUBLISH at QoS 0 and 1 (QoS 2 closes the
 * connection: the endpoint is not a broker).  What the packets mean
 * (who may connect, which topics exist) is the handlers' business.
 *
 * One PUBLISH per connection is served at a time: reading pauses while
 * the handler owns it, so input and output stay bounded per connection. */
#ifndef CORE_NET_MQTT_H
#define CORE_NET_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "net/http.h"
#include "util/err.h"

/* What the client said in CONNECT, plus the TLS peer.  Strings are
 * NUL-terminated and live as long as the connection. */
struct mqtt_session {
  const char *client_id;
  const char *username;       /* "" when absent */
  const char *password;       /* NULL when absent */
  const char *peer_chain_pem; /* client certificate chain or NULL */
  STACK_OF(X509) *peer_chain; /* the same, parsed (borrowed) or NULL */
  const char *peer_addr;
  void *verified; /* what verify kept (mqtt_connect_verdict_keep), or NULL */
};

struct mqtt_exchange;

#define MQTT_MAX_TOPIC 1024
/* Remaining-length room a PUBLISH needs beyond its payload: topic length,
 * topic, packet id. */
#define MQTT_PUBLISH_OVERHEAD (2 + MQTT_MAX_TOPIC + 2)

struct mqtt_handlers {
  /* On the loop, once: the CONNACK return code (0 accepts). */
  uint8_t (*connect)(const struct mqtt_session *s, void *ud);
  /* Optional.  On the loop, after connect accepted: the checks that
   * need more than the packet (the device's proof against the store).
   * Ends with exactly one mqtt_connect_verdict, now or later, from any
   * thread; the CONNACK waits for it and the connection reads nothing
   * meanwhile. */
  void (*verify)(struct mqtt_exchange *ex, void *ud);
  /* Whether a client may subscribe to this topic filter. */
  bool (*filter_ok)(const char *filter, size_t len, void *ud);
  /* On the loop: a PUBLISH, already acknowledged.  topic and payload
   * are borrowed for the call only.  Ends with exactly one
   * mqtt_answer or mqtt_refuse, now or later, from any thread. */
  void (*publish)(struct mqtt_exchange *ex, const char *topic,
                  const char *payload, size_t payload_len, void *ud);
};

const struct mqtt_session *mqtt_exchange_session(struct mqtt_exchange *ex);
/* Sends a PUBLISH of payload on topic to the client (at the QoS it
 * subscribed with; nothing when it has not subscribed).  Copies both;
 * any thread. */
void mqtt_answer(struct mqtt_exchange *ex, const char *topic,
                 const char *payload, size_t payload_len);
/* The CONNACK return code for a CONNECT handed to verify (0 accepts).
 * Any thread. */
void mqtt_connect_verdict(struct mqtt_exchange *ex, uint8_t code);
/* The same, and keeps data_take with the connection: it reads back as
 * the session's `verified` until the connection ends, then
 * free_fn(data_take) runs on the loop.  Any thread. */
void mqtt_connect_verdict_keep(struct mqtt_exchange *ex, uint8_t code,
                               void *data_take, void (*free_fn)(void *));
/* MQTT cannot refuse a PUBLISH: closes the connection.  Any thread. */
void mqtt_refuse(struct mqtt_exchange *ex);

struct mqtt_server_opts {
  SSL_CTX *ssl;             /* NULL: plain TCP (tests) */
  int workers;              /* as many as the HTTP server has */
  size_t max_packet_bytes;  /* remaining-length limit, default 97 KiB */
  int connect_timeout_s;    /* TLS handshake + CONNECT, default 10 */
  size_t max_connections;   /* per worker, default 16384 */
  size_t max_handshakes;    /* per worker, default 1024 (http.h) */
  size_t max_connections_per_source; /* as in http.h; 0: no limit */
  struct mqtt_handlers handlers;
  void *ud;
};

struct mqtt_server;

int mqtt_server_new(const struct mqtt_server_opts *o, struct mqtt_server **out,
                    struct provd_err *err);
/* The listener to give http_server_start (opts.protocols). */
struct http_protocol mqtt_server_protocol(struct mqtt_server *s,
                                          const char *host, int port);
/* As http_server_set_ssl: new connections use ctx (borrowed; it must
 * outlive the server).  Any thread. */
void mqtt_server_set_ssl(struct mqtt_server *s, SSL_CTX *borrow);
/* After http_server_stop.  Answers still on their way only touch the
 * connection they belong to, never the server. */
void mqtt_server_free(struct mqtt_server *s);

#endif
