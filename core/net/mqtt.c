/* MQTT 3.1.1 server sessions on the HTTP server's workers.  Threads and
 * ownership:
 *
 * - A connection (struct mconn) lives on one worker's loop and is only
 *   touched by that loop's thread, except its exchange's answer, which
 *   mqtt_answer fills on any thread and hands back with http_worker_post.
 * - A connection is freed when its socket is closed and no handler owns
 *   its exchange.  When the worker's loop is gone before the answer
 *   comes, the answer's task frees the connection on the answering
 *   thread (the loop no longer knows it). */
#include "net/mqtt.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "net/conn.h"
#include "net/mqtt_codec.h"
#include "net/stream.h"
#include "tls/server_ctx.h"
#include "util/log.h"
#include "util/metrics.h"

#define COMPONENT "mqtt"
#define DEFAULT_MAX_PACKET (96 * 1024 + MQTT_PUBLISH_OVERHEAD)
#define DEFAULT_CONNECT_TIMEOUT_S 10
#define DEFAULT_MAX_CONNECTIONS 16384
#define DEFAULT_MAX_HANDSHAKES 256
/* A packet must arrive whole within this many seconds of its first byte
 * (the idle timeout restarts with every byte). */
#define PACKET_DEADLINE_S 10
/* Keep-alive 0 means "none" to the client; we still end silence. */
#define MAX_IDLE_S 1800
#define PACKETS_PER_PASS 32
#define OUTPUT_HIGH_WATER (256 * 1024)
#define MAX_WORKERS 1024

#define LABEL "transport=\"mqtt\""
#define M_OPEN "provd_connections_open"
#define M_OPEN_HELP "Open device connections, by transport"
#define M_CONNECTS "provd_mqtt_connects_total"
#define M_CONNECTS_HELP "MQTT CONNECTs answered, by CONNACK return code"
#define M_CLOSED "provd_mqtt_protocol_errors_total"
#define M_CLOSED_HELP "MQTT connections closed for a protocol violation"
#define M_HANDSHAKES "provd_tls_handshakes_total"
#define M_HANDSHAKES_HELP "Completed TLS handshakes"

struct mconn;

struct mqtt_exchange {
  struct mconn *conn;
  struct loop_task task;
  bool refused;
  bool connecting; /* a CONNECT's verification, answered by a verdict */
  uint8_t connack; /* that verdict */
  char *topic;   /* the answer, filled by mqtt_answer */
  char *payload;
  size_t payload_len;
};

struct mqtt_worker {
  struct net_conns conns; /* of struct mconn (nc first); loop thread only */
  size_t in_flight; /* exchanges owned by handlers */
};

struct mconn {
  /* First member.  Its deadline bounds the handshake and CONNECT, then
   * each partly received packet. */
  struct net_conn nc;
  struct mqtt_server *srv; /* not touched once orphaned */
  struct http_worker *hw;
  struct mqtt_worker *mw;
  bool connected, subscribed, in_flight, processing, closing;
  uint8_t sub_qos;
  uint16_t next_packet_id;
  uint16_t keepalive_s;
  char *client_id, *username, *password, *peer_chain;
  STACK_OF(X509) *peer_certs; /* peer_chain parsed; owned */
  char peer_addr[64];
  struct mqtt_session session;
  void (*verified_free)(void *); /* frees session.verified */
  struct mqtt_exchange ex;
};

struct mqtt_server {
  struct mqtt_server_opts o;
  _Atomic(SSL_CTX *) ssl_now; /* o.ssl, or what mqtt_server_set_ssl gave */
  struct net_sources *sources; /* NULL: no per-source limit */
  struct mqtt_worker *workers;
  atomic_size_t n_open;
};

/* ---- small helpers ----------------------------------------------------- */

static char *dup_str(struct mqtt_str s)
{
  char *p = malloc((size_t)s.len + 1);
  if (p) {
    if (s.len)
      memcpy(p, s.p, s.len);
    p[s.len] = '\0';
  }
  return p;
}

static void count(const char *name, const char *help, const char *extra)
{
  char labels[96];
  snprintf(labels, sizeof labels, "%s%s%s", LABEL, extra ? "," : "",
           extra ? extra : "");
  metrics_add(name, help, labels, 1);
}

static void publish_open(struct mqtt_server *s)
{
  metrics_set(M_OPEN, M_OPEN_HELP, LABEL,
              (double)atomic_load_explicit(&s->n_open, memory_order_relaxed));
}

/* ---- connection lifetime (loop thread) --------------------------------- */

static void conn_free(struct mconn *c)
{
  free(c->client_id);
  free(c->username);
  free(c->password);
  free(c->peer_chain);
  sk_X509_pop_free(c->peer_certs, X509_free);
  free(c->ex.topic);
  free(c->ex.payload);
  if (c->verified_free)
    c->verified_free(c->session.verified);
  free(c);
}

static void conn_unlink(struct mconn *c)
{
  net_conns_remove(&c->mw->conns, &c->nc); /* trims after a flood */
}

static void conn_close_socket(struct mconn *c)
{
  if (!net_conn_close_socket(&c->nc))
    return;
  atomic_fetch_sub_explicit(&c->srv->n_open, 1, memory_order_relaxed);
  publish_open(c->srv);
}

/* Frees c once nothing refers to it. */
static void conn_release(struct mconn *c)
{
  if (c->nc.stream || c->in_flight || c->processing)
    return;
  conn_unlink(c);
  conn_free(c);
}

static void conn_close(struct mconn *c)
{
  conn_close_socket(c);
  conn_release(c);
}

static void conn_violation(struct mconn *c, const char *what)
{
  log_info(COMPONENT, "%s client=%s: %s; closing transport=mqtt",
           c->peer_addr, c->client_id ? c->client_id : "-", what);
  count(M_CLOSED, M_CLOSED_HELP, NULL);
  conn_close_socket(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  struct mconn *c = arg;
  if (!c->nc.stream || c->in_flight)
    return;
  log_debug(COMPONENT, "%s: %s deadline passed; closing", c->peer_addr,
            c->connected ? "packet" : "CONNECT");
  conn_close(c);
}

/* ---- writing ------------------------------------------------------------ */

static void put(struct mconn *c, const uint8_t *b, size_t n)
{
  if (n)
    evbuffer_add(stream_output(c->nc.stream), b, n);
}

/* Flush what is queued, then close (a refused CONNECT). */
static void close_after_flush(struct mconn *c)
{
  c->closing = true;
  stream_set_reading(c->nc.stream, false);
}

static void send_answer(struct mconn *c)
{
  struct mqtt_exchange *ex = &c->ex;
  if (ex->refused) {
    conn_violation(c, "request refused (unknown topic or bad request)");
    return;
  }
  if (!c->subscribed || !ex->topic)
    return; /* MQTT: no subscription, no delivery */
  uint8_t qos = c->sub_qos;
  uint16_t id = 0;
  if (qos) {
    if (++c->next_packet_id == 0)
      c->next_packet_id = 1;
    id = c->next_packet_id;
  }
  uint8_t head[MQTT_MAX_HEADER + 2 + MQTT_MAX_TOPIC + 2];
  size_t h = mqtt_encode_publish_head(head, sizeof head, ex->topic,
                                      strlen(ex->topic), qos, id,
                                      ex->payload_len);
  if (!h) {
    log_error(COMPONENT, "%s: answer topic too long; closing", c->peer_addr);
    conn_close_socket(c);
    return;
  }
  put(c, head, h);
  put(c, (const uint8_t *)ex->payload, ex->payload_len);
}

/* ---- packets (loop thread) ---------------------------------------------- */

/* Sends the CONNACK for code and, when it accepts, starts the session. */
static void finish_connect(struct mconn *c, uint8_t code)
{
  uint8_t b[4];
  put(c, b, mqtt_encode_connack(b, sizeof b, false, code));
  char labels[32];
  snprintf(labels, sizeof labels, "code=\"%u\"", code);
  count(M_CONNECTS, M_CONNECTS_HELP, labels);
  if (code != MQTT_CONNACK_ACCEPTED) {
    close_after_flush(c);
    return;
  }
  c->connected = true;
  net_conn_deadline_stop(&c->nc);
  int ka = c->keepalive_s ? c->keepalive_s + c->keepalive_s / 2 : MAX_IDLE_S;
  stream_set_idle_timeout(c->nc.stream, ka < MAX_IDLE_S ? ka : MAX_IDLE_S);
}

/* Hands the exchange to a handler: reading pauses until it answers. */
static struct mqtt_exchange *exchange_start(struct mconn *c)
{
  struct mqtt_exchange *ex = &c->ex;
  free(ex->topic);
  free(ex->payload);
  *ex = (struct mqtt_exchange){.conn = c};
  c->in_flight = true;
  c->mw->in_flight++;
  stream_set_reading(c->nc.stream, false); /* one request at a time */
  return ex;
}

static void handle_connect(struct mconn *c, const struct mqtt_connect *k)
{
  struct mqtt_server *srv = c->srv;
  c->client_id = dup_str(k->client_id);
  c->username = dup_str(k->has_username ? k->username : (struct mqtt_str){0});
  c->password = k->has_password ? dup_str(k->password) : NULL;
  if (!c->client_id || !c->username || (k->has_password && !c->password)) {
    conn_violation(c, "out of memory");
    return;
  }
  if (stream_ssl(c->nc.stream)) {
    c->peer_certs = stream_peer_chain(c->nc.stream);
    c->peer_chain = peer_chain_to_pem(c->peer_certs);
  }
  c->session = (struct mqtt_session){
      c->client_id, c->username, c->password, c->peer_chain,
      c->peer_chain ? c->peer_certs : NULL, c->peer_addr, NULL};
  c->keepalive_s = k->keepalive_s;
  uint8_t code = k->has_will ? MQTT_CONNACK_NOT_AUTHORIZED
                             : srv->o.handlers.connect(&c->session, srv->o.ud);
  if (k->has_will)
    log_info(COMPONENT, "%s client=%s: CONNECT with a will refused (not a "
                        "broker) transport=mqtt", c->peer_addr, c->client_id);
  if (code != MQTT_CONNACK_ACCEPTED || !srv->o.handlers.verify) {
    finish_connect(c, code);
    return;
  }
  struct mqtt_exchange *ex = exchange_start(c);
  ex->connecting = true;
  srv->o.handlers.verify(ex, srv->o.ud);
}

static void handle_subscribe(struct mconn *c, const struct mqtt_subscribe *s,
                             bool subscribe)
{
  uint8_t codes[MQTT_MAX_FILTERS];
  for (size_t i = 0; subscribe && i < s->n; i++) {
    bool ok = c->srv->o.handlers.filter_ok(s->filter[i].p, s->filter[i].len,
                                           c->srv->o.ud);
    /* QoS 2 requested: DPS grants 1. */
    codes[i] = ok ? (s->qos[i] ? 1 : 0) : 0x80;
    if (ok) {
      c->subscribed = true;
      c->sub_qos = codes[i];
    }
  }
  uint8_t b[MQTT_MAX_HEADER + 2 + MQTT_MAX_FILTERS];
  size_t n = subscribe ? mqtt_encode_suback(b, sizeof b, s->packet_id, codes,
                                            s->n)
                       : mqtt_encode_ack(b, sizeof b, MQTT_UNSUBACK,
                                         s->packet_id);
  if (!subscribe)
    c->subscribed = false;
  put(c, b, n);
}

static void handle_publish(struct mconn *c, const struct mqtt_publish *p)
{
  if (p->qos == 2) {
    conn_violation(c, "PUBLISH at QoS 2 (not served)");
    return;
  }
  if (p->topic.len > MQTT_MAX_TOPIC) {
    conn_violation(c, "topic too long");
    return;
  }
  if (p->qos == 1) {
    uint8_t b[4];
    put(c, b, mqtt_encode_ack(b, sizeof b, MQTT_PUBACK, p->packet_id));
  }
  char topic[MQTT_MAX_TOPIC + 1];
  memcpy(topic, p->topic.p, p->topic.len);
  topic[p->topic.len] = '\0';
  struct mqtt_exchange *ex = exchange_start(c);
  c->srv->o.handlers.publish(ex, topic, (const char *)p->payload,
                             p->payload_len, c->srv->o.ud);
}

static void handle_packet(struct mconn *c, const struct mqtt_packet *p)
{
  if (!c->connected && p->f.type != MQTT_CONNECT) {
    conn_violation(c, "first packet is not CONNECT");
    return;
  }
  switch (p->f.type) {
  case MQTT_CONNECT:
    if (c->connected)
      conn_violation(c, "second CONNECT");
    else
      handle_connect(c, &p->u.connect);
    break;
  case MQTT_SUBSCRIBE:
  case MQTT_UNSUBSCRIBE:
    handle_subscribe(c, &p->u.subscribe, p->f.type == MQTT_SUBSCRIBE);
    break;
  case MQTT_PUBLISH:
    handle_publish(c, &p->u.publish);
    break;
  case MQTT_PUBACK: /* our answers are not retried: nothing to release */
    break;
  case MQTT_PINGREQ: {
    uint8_t b[2];
    put(c, b, mqtt_encode_pingresp(b, sizeof b));
    break;
  }
  case MQTT_DISCONNECT:
    conn_close_socket(c);
    break;
  default: /* PUBREC, PUBREL, PUBCOMP: QoS 2 flows */
    conn_violation(c, "QoS 2 flow (not served)");
  }
}

static void refuse_protocol(struct mconn *c)
{
  log_info(COMPONENT, "%s: CONNECT with a protocol other than MQTT 3.1.1; "
                      "closing transport=mqtt", c->peer_addr);
  uint8_t b[4];
  put(c, b, mqtt_encode_connack(b, sizeof b, false,
                                MQTT_CONNACK_BAD_PROTOCOL));
  count(M_CONNECTS, M_CONNECTS_HELP, "code=\"1\"");
  close_after_flush(c);
}

/* Handles one buffered packet; false when none is complete (or the
 * connection stops reading). */
static bool conn_step(struct mconn *c)
{
  if (!c->nc.stream || c->in_flight || c->closing)
    return false;
  struct evbuffer *in = stream_input(c->nc.stream);
  size_t avail = evbuffer_get_length(in);
  if (avail == 0)
    return false;
  if (evbuffer_get_length(stream_output(c->nc.stream)) > OUTPUT_HIGH_WATER) {
    stream_set_reading(c->nc.stream, false); /* on_drained resumes */
    return false;
  }
  size_t peek = avail < MQTT_MAX_HEADER ? avail : MQTT_MAX_HEADER;
  const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)peek);
  struct mqtt_frame f;
  enum mqtt_status st = mqtt_frame_read(p, peek, c->srv->o.max_packet_bytes,
                                        &f);
  size_t total = st == MQTT_OK ? f.header_len + f.remaining_len : 0;
  if (st == MQTT_NEED_MORE || (st == MQTT_OK && avail < total)) {
    net_conn_deadline_start(&c->nc, PACKET_DEADLINE_S);
    return false;
  }
  if (st != MQTT_OK) {
    conn_violation(c, st == MQTT_TOO_LARGE ? "packet over the size limit"
                                           : "malformed packet header");
    return false;
  }
  if (c->connected)
    net_conn_deadline_stop(&c->nc);
  p = evbuffer_pullup(in, (ev_ssize_t)total);
  struct mqtt_packet pk;
  st = p ? mqtt_decode(p, total, &f, &pk) : MQTT_MALFORMED;
  if (st == MQTT_BAD_PROTOCOL && !c->connected)
    refuse_protocol(c);
  else if (st != MQTT_OK)
    conn_violation(c, "malformed packet");
  else
    handle_packet(c, &pk);
  if (c->nc.stream)
    evbuffer_drain(in, total);
  return c->nc.stream != NULL;
}

/* c may be freed on return. */
static void conn_process(struct mconn *c)
{
  if (c->processing)
    return;
  c->processing = true;
  int n = 0;
  while (n < PACKETS_PER_PASS && conn_step(c))
    n++;
  c->processing = false;
  if (n == PACKETS_PER_PASS && c->nc.stream && !c->in_flight)
    stream_trigger_read(c->nc.stream);
  conn_release(c);
}

/* ---- answers ------------------------------------------------------------ */

static void on_answer(struct loop_task *t, bool alive)
{
  struct mqtt_exchange *ex = (struct mqtt_exchange *)((char *)t -
                                 offsetof(struct mqtt_exchange, task));
  struct mconn *c = ex->conn;
  if (!alive) { /* the loop is gone; so is every reference to c */
    conn_free(c);
    return;
  }
  c->in_flight = false;
  c->mw->in_flight--;
  if (c->nc.stream) {
    if (ex->connecting)
      finish_connect(c, ex->connack);
    else
      send_answer(c);
    if (c->nc.stream && !c->closing)
      stream_set_reading(c->nc.stream, true);
  }
  if (c->nc.stream)
    conn_process(c); /* a packet may already be buffered */
  else
    conn_release(c);
}

const struct mqtt_session *mqtt_exchange_session(struct mqtt_exchange *ex)
{
  return &ex->conn->session;
}

void mqtt_answer(struct mqtt_exchange *ex, const char *topic,
                 const char *payload, size_t payload_len)
{
  ex->topic = strdup(topic);
  ex->payload = malloc(payload_len ? payload_len : 1);
  if (ex->topic && ex->payload) {
    memcpy(ex->payload, payload, payload_len);
    ex->payload_len = payload_len;
  } else { /* without memory the client gets no answer but a close */
    ex->refused = true;
  }
  ex->task.run = on_answer;
  http_worker_post(ex->conn->hw, &ex->task);
}

void mqtt_connect_verdict_keep(struct mqtt_exchange *ex, uint8_t code,
                               void *data_take, void (*free_fn)(void *))
{
  struct mconn *c = ex->conn; /* the loop reads these after the post */
  c->session.verified = data_take;
  c->verified_free = data_take ? free_fn : NULL;
  mqtt_connect_verdict(ex, code);
}

void mqtt_connect_verdict(struct mqtt_exchange *ex, uint8_t code)
{
  ex->connack = code;
  ex->task.run = on_answer;
  http_worker_post(ex->conn->hw, &ex->task);
}

void mqtt_refuse(struct mqtt_exchange *ex)
{
  ex->refused = true;
  ex->task.run = on_answer;
  http_worker_post(ex->conn->hw, &ex->task);
}

/* ---- stream callbacks ---------------------------------------------------- */

static void on_read(struct stream *s, void *arg)
{
  (void)s;
  conn_process(arg);
}

static void on_drained(struct stream *s, void *arg)
{
  struct mconn *c = arg;
  if (c->closing) {
    stream_shutdown_write(s);
    conn_close(c);
  } else if (!c->in_flight) {
    stream_set_reading(s, true);
    conn_process(c);
  }
}

static void on_event(struct stream *s, int what, void *arg)
{
  struct mconn *c = arg;
  if (what & STREAM_CONNECTED) {
    net_conns_handshake_end(&c->mw->conns, &c->nc);
    count(M_HANDSHAKES, M_HANDSHAKES_HELP, NULL);
    return;
  }
  if ((what & STREAM_ERROR) && log_get_level() >= LOG_DEBUG) {
    char buf[256] = "";
    unsigned long e = stream_tls_error(s);
    if (e)
      ERR_error_string_n(e, buf, sizeof buf);
    log_debug(COMPONENT, "%s: connection error %s", c->peer_addr, buf);
  }
  conn_close(c);
}

/* ---- the protocol on the HTTP server's workers --------------------------- */

/* A stalled handshake making room (net_conns_admit_handshake). */
static void close_stalled(struct net_conn *n)
{
  conn_close((struct mconn *)n);
}

static void on_accept(struct http_worker *hw, int fd, const char *peer,
                      void *ud)
{
  struct mqtt_server *srv = ud;
  struct mqtt_worker *mw = &srv->workers[http_worker_index(hw)];
  if (mw->conns.n >= srv->o.max_connections) {
    net_conns_shed(&mw->conns, "mqtt", "max_connections", peer);
    close(fd);
    return;
  }
  if (srv->o.ssl && !net_conns_admit_handshake(&mw->conns,
                                               srv->o.max_handshakes, "mqtt",
                                               peer, close_stalled)) {
    close(fd);
    return;
  }
  struct event_base *base = http_worker_base(hw);
  struct mconn *c = calloc(1, sizeof *c);
  struct event *deadline = c ? evtimer_new(base, on_deadline, c) : NULL;
  struct stream *stream =
      deadline ? stream_new(base, fd,
                            tls_ctx_for_worker(
                                atomic_load_explicit(&srv->ssl_now,
                                                     memory_order_acquire),
                                http_worker_index(hw)))
               : NULL;
  if (!deadline)
    close(fd);
  if (!stream || stream_start(stream, on_read, on_drained, on_event, c,
                              srv->o.connect_timeout_s) != 0) {
    log_warn(COMPONENT, "cannot set up a connection (out of memory)");
    stream_free(stream);
    if (deadline)
      event_free(deadline);
    free(c);
    return;
  }
  *c = (struct mconn){.nc = {.stream = stream, .deadline = deadline},
                      .srv = srv, .hw = hw, .mw = mw};
  snprintf(c->peer_addr, sizeof c->peer_addr, "%s", peer);
  net_conn_deadline_start(&c->nc, srv->o.connect_timeout_s);
  net_conns_add(&mw->conns, &c->nc);
  if (srv->o.ssl)
    net_conns_handshake_begin(&mw->conns, &c->nc);
  atomic_fetch_add_explicit(&srv->n_open, 1, memory_order_relaxed);
  publish_open(srv);
  if (!net_sources_take(srv->sources, &c->nc, peer)) {
    net_conns_shed(&mw->conns, "mqtt", "per_source", peer);
    conn_close(c);
  }
}

/* Stopping: MQTT clients reconnect, so every connection closes now; an
 * answer still being computed is dropped when it comes. */
static void on_stop(struct http_worker *hw, void *ud)
{
  struct mqtt_server *srv = ud;
  struct mqtt_worker *mw = &srv->workers[http_worker_index(hw)];
  struct mconn *next;
  for (struct mconn *c = (struct mconn *)mw->conns.head; c; c = next) {
    next = (struct mconn *)c->nc.next;
    conn_close(c);
  }
}

static size_t on_teardown(struct http_worker *hw, void *ud)
{
  struct mqtt_server *srv = ud;
  struct mqtt_worker *mw = &srv->workers[http_worker_index(hw)];
  on_stop(hw, ud);
  /* What is left waits for an answer: it becomes the answer's to free. */
  size_t orphans = mw->in_flight;
  struct mconn *next;
  for (struct mconn *c = (struct mconn *)mw->conns.head; c; c = next) {
    next = (struct mconn *)c->nc.next;
    conn_unlink(c);
  }
  mw->in_flight = 0;
  return orphans;
}

int mqtt_server_new(const struct mqtt_server_opts *o, struct mqtt_server **out,
                    struct provd_err *err)
{
  *out = NULL;
  if (!o->handlers.connect || !o->handlers.filter_ok ||
      !o->handlers.publish || o->workers < 1 || o->workers > MAX_WORKERS) {
    perr_set(err, "MQTT_CONFIG", "mqtt server: handlers and 1..%d workers "
                                 "are required", MAX_WORKERS);
    return -1;
  }
  struct mqtt_server *s = calloc(1, sizeof *s);
  if (!s || !(s->workers = calloc((size_t)o->workers, sizeof *s->workers))) {
    free(s);
    perr_set(err, "MQTT_INIT", "out of memory");
    return -1;
  }
  s->o = *o;
  if (!s->o.max_packet_bytes)
    s->o.max_packet_bytes = DEFAULT_MAX_PACKET;
  if (s->o.connect_timeout_s <= 0)
    s->o.connect_timeout_s = DEFAULT_CONNECT_TIMEOUT_S;
  if (!s->o.max_connections)
    s->o.max_connections = DEFAULT_MAX_CONNECTIONS;
  if (!s->o.max_handshakes)
    s->o.max_handshakes = DEFAULT_MAX_HANDSHAKES;
  atomic_init(&s->n_open, 0);
  atomic_init(&s->ssl_now, o->ssl);
  if (o->max_connections_per_source &&
      !(s->sources = net_sources_new(o->max_connections_per_source))) {
    free(s->workers);
    free(s);
    perr_set(err, "MQTT_INIT", "out of memory");
    return -1;
  }
  *out = s;
  return 0;
}

void mqtt_server_set_ssl(struct mqtt_server *s, SSL_CTX *borrow)
{
  if (s->o.ssl && borrow)
    atomic_store_explicit(&s->ssl_now, borrow, memory_order_release);
}

struct http_protocol mqtt_server_protocol(struct mqtt_server *s,
                                          const char *host, int port)
{
  return (struct http_protocol){.name = s->o.ssl ? "mqtts" : "mqtt",
                                .host = host, .port = port,
                                .on_accept = on_accept, .on_stop = on_stop,
                                .on_teardown = on_teardown, .ud = s};
}

void mqtt_server_free(struct mqtt_server *s)
{
  if (!s)
    return;
  metrics_set(M_OPEN, M_OPEN_HELP, LABEL, 0);
  net_sources_free(s->sources);
  free(s->workers);
  free(s);
}
