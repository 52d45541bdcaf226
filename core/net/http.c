/* HTTPS/1.1 server.  Threads and ownership (details in
 * docs/internals/http.md):
 *
 * - One worker = one pthread + one event_base + one SO_REUSEPORT listener.
 *   A connection (struct conn) lives on exactly one worker and is only
 *   touched by that worker's thread, with two exceptions that go through
 *   the worker mutex: http_respond() from another thread (it fills the
 *   exchange's response buffer, then queues the conn on the completion
 *   list and wakes the loop), and an orphaned exchange after stop.
 * - Each conn embeds one exchange; requests on a connection are served
 *   one at a time (reading is paused while the handler owns the exchange),
 *   so the exchange and its buffers are reused without per-request mallocs.
 * - A conn is freed when its socket is closed AND no handler owns its
 *   exchange AND no callback of ours is on the stack for it (conn_release).
 *   If the client goes away first the conn stays until http_respond. */
#include "net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "net/conn.h"
#include "net/http_parse.h"
#include "net/stream.h"
#include "net/wire_error.h"
#include "tls/server_ctx.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timefmt.h"
#include "util/url.h"
#include "util/wake_batch.h"

#define DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define DEFAULT_MAX_BODY_BYTES (96 * 1024)
#define DEFAULT_IDLE_TIMEOUT_S 30
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_HANDSHAKES 256
#define DEFAULT_HANDSHAKE_TIMEOUT_S 5
#define MAX_WORKERS 1024
#define LISTEN_BACKLOG 1024
/* Stop serving pipelined requests while this much output is unread. */
#define OUTPUT_HIGH_WATER (256 * 1024)
/* Requests served from one read before yielding to other connections. */
#define MAX_PIPELINE_PER_PASS 32
/* After the last response of a connection: how long we keep reading (and
 * discarding) so that unread request bytes do not turn our close into a
 * reset that destroys the response in flight. */
#define LINGER_S 2
/* A request (head and body), and a TLS handshake, must arrive within this
 * many seconds of its first byte (or of the idle timeout, if shorter): the
 * idle timeout restarts with every byte, so alone it lets a client that
 * drips one byte at a time hold a connection forever (slowloris). */
#define REQUEST_DEADLINE_S 10
/* Per-connection buffers above this size are released after use. */
#define BUFFER_KEEP_BYTES (16 * 1024)
#define MAX_STATUS 600
#define ACCEPT_PAUSE_MS 100
#define MAX_PROTOCOLS 4 /* besides HTTP */

#define COMPONENT "http"
#define M_REQUESTS "provd_http_requests_total"
#define M_REQUESTS_HELP "HTTP responses sent, by status code"
#define M_HANDSHAKES "provd_tls_handshakes_total"
#define M_HANDSHAKES_HELP "Completed TLS handshakes"
#define M_OPEN "provd_http_connections_open"
#define M_OPEN_HELP "Open HTTP(S) connections"

enum ex_state { EX_IDLE, EX_HANDLER, EX_RESPONDED };

struct conn;

struct http_exchange {
  struct conn *conn;
  struct http_request req;
  enum ex_state state;
  bool keep_alive; /* what the request asked for */
  bool head_only;  /* HEAD: headers but no body */
  /* The serialized response minus the Connection line, which the loop
   * adds when it writes (only it knows whether the server is stopping).
   * Filled by http_respond on any thread, read by the loop after. */
  char *resp;
  size_t resp_len, resp_cap, resp_head_len;
  const char *out;    /* resp, or a static fallback when out of memory */
  size_t out_len, out_head_len;
  int status;
};

struct http_worker;

struct conn {
  /* First member.  Its deadline bounds the TLS handshake, a partly
   * received request, and the linger. */
  struct net_conn nc;
  struct http_worker *w;
  struct conn *done_next;   /* completion list link (under w->mu) */
  bool queued;              /* on the completion list (under w->mu) */
  bool tls;
  bool in_flight;  /* a handler owns the exchange (loop's view) */
  bool processing; /* conn_process is on the stack: do not free */
  bool closing;    /* last response queued; close once it is flushed */
  bool lingering;  /* write side shut; draining input until EOF */
  bool wait_drain; /* paused pipelining until the client reads */
  bool have_head;  /* head parsed, waiting for the body */
  bool sent_continue;
  bool chain_loaded;
  bool handshaken; /* TLS handshake done (always, for plain HTTP) */
  size_t scan_from; /* where to resume searching for the head's end */
  struct http_head head;
  char *arena; /* the current request: head + body + path copy */
  size_t arena_cap;
  struct http_header hdrs[HTTP_MAX_HEADERS];
  char *peer_chain; /* PEM, leaf first; NULL without client certificate */
  STACK_OF(X509) *peer_certs; /* the same chain, parsed; owned */
  char peer_addr[INET6_ADDRSTRLEN + 8];
  struct http_exchange ex;
};

struct http_server;

struct http_worker {
  struct http_server *srv;
  int index;
  pthread_t thread;
  bool thread_started;
  struct event_base *base;
  struct evconnlistener *listener;
  struct evconnlistener *side[MAX_PROTOCOLS]; /* o.protocols[i] */
  /* Completions and stop requests: other threads write the eventfd
   * (under mu) instead of calling into libevent, whose base lock the
   * loop holds most of the time (profiles showed a futex round trip per
   * answer from the store writer). */
  int wake_fd;
  struct event *wake;
  struct event *grace;        /* stop deadline */
  struct event *flush;        /* publish counters once the batch is done */
  struct event *accept_pause; /* re-enable accepting after EMFILE */
  /* Every HEARTBEAT_MS the loop notes the time (http_server_stall_ms). */
  struct event *heartbeat;
  atomic_llong last_turn_ms;

  pthread_mutex_t mu;
  struct conn *done_head, *done_tail; /* mu */
  struct loop_task *tasks_head, *tasks_tail; /* mu: http_worker_post */
  bool loop_alive;                    /* mu: false once torn down */
  bool stop_requested;                /* mu */
  int grace_ms;                       /* mu */

  /* Loop thread only. */
  bool stopping, torn_down, flush_pending;
  struct net_conns conns; /* of struct conn (nc first) */
  uint32_t code_counts[MAX_STATUS];
  /* The statuses counted since the last publish, so publishing does not
   * scan MAX_STATUS slots once per loop iteration. */
  uint16_t counted_codes[MAX_STATUS];
  size_t n_counted_codes;
  uint64_t handshakes;
  atomic_size_t n_open; /* read by other workers for the gauge */
};

struct http_server {
  struct http_server_opts o;
  _Atomic(SSL_CTX *) ssl_now; /* o.ssl, or what http_server_set_ssl gave */
  struct net_sources *sources; /* NULL: no per-source limit */
  char host[256];
  int port;
  struct http_protocol protocols[MAX_PROTOCOLS];
  char protocol_hosts[MAX_PROTOCOLS][256];
  int protocol_ports[MAX_PROTOCOLS];
  size_t n_protocols;
  int n_workers;
  struct http_worker *workers;
  struct http_parse_limits limits;
  pthread_mutex_t life_mu;
  size_t orphans; /* life_mu: exchanges still owned by handlers after stop */
  size_t holds;   /* life_mu: deferred wake-ups still to run (wake_batch) */
  bool detached;  /* life_mu: stop returned; last orphan frees the server */
};

static _Thread_local struct http_worker *tl_worker;

static const char OOM_RESPONSE[] =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n";

/* ---- small helpers ---------------------------------------------------- */

static bool grow(char **buf, size_t *cap, size_t need)
{
  if (need <= *cap)
    return true;
  size_t n = *cap ? *cap : 512;
  while (n < need)
    n *= 2;
  char *p = realloc(*buf, n);
  if (!p)
    return false;
  *buf = p;
  *cap = n;
  return true;
}

static bool is_token(const char *s)
{
  if (!s || !*s)
    return false;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    bool alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                 (ch >= 'A' && ch <= 'Z');
    if (!alnum && !strchr("!#$%&'*+-.^_`|~", ch))
      return false;
  }
  return true;
}

/* A header value we can put on the wire: no CR, LF, NUL or other CTL
 * (HTAB allowed), so a value can never start a new header. */
static bool is_safe_value(const char *s)
{
  if (!s)
    return false;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return false;
  }
  return true;
}

/* ---- response serialization (any thread) ------------------------------ */

struct out {
  char **buf;
  size_t *len, *cap;
  bool failed;
};

static void out_put(struct out *o, const char *s, size_t n)
{
  if (o->failed || !grow(o->buf, o->cap, *o->len + n)) {
    o->failed = true;
    return;
  }
  memcpy(*o->buf + *o->len, s, n);
  *o->len += n;
}

static void out_str(struct out *o, const char *s)
{
  out_put(o, s, strlen(s));
}

static void out_header(struct out *o, const char *name, const char *value)
{
  out_str(o, name);
  out_put(o, ": ", 2);
  out_str(o, value);
  out_put(o, "\r\n", 2);
}

static bool header_is_ours(const char *name)
{
  return strcasecmp(name, "Content-Length") == 0 ||
         strcasecmp(name, "Connection") == 0 ||
         strcasecmp(name, "Transfer-Encoding") == 0 ||
         strcasecmp(name, "Content-Type") == 0;
}

static void out_extra_headers(struct out *o, const struct http_header *extra,
                              size_t n_extra)
{
  for (size_t i = 0; i < n_extra; i++) {
    if (!is_token(extra[i].name) || !is_safe_value(extra[i].value) ||
        header_is_ours(extra[i].name)) {
      log_warn(COMPONENT, "dropped unsafe or reserved response header %s",
               is_token(extra[i].name) ? extra[i].name : "(bad name)");
      continue;
    }
    out_header(o, extra[i].name, extra[i].value);
  }
}

static bool status_has_body(int status)
{
  return status >= 200 && status != 204 && status != 304;
}

/* Fills ex->resp; on allocation failure points ex->out at a static 500. */
static void serialize_response(struct http_exchange *ex, int status,
                               const char *content_type, const char *body,
                               size_t body_len,
                               const struct http_header *extra,
                               size_t n_extra)
{
  if (status < 200 || status >= MAX_STATUS) {
    log_error(COMPONENT, "handler answered with status %d; sending 500",
              status);
    status = 500;
    body_len = 0;
    content_type = NULL;
  }
  if (!status_has_body(status))
    body_len = 0;
  ex->status = status;
  ex->resp_len = 0;
  struct out o = {&ex->resp, &ex->resp_len, &ex->resp_cap, false};
  char line[64];
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status,
           http_reason_phrase(status));
  out_str(&o, line);
  if (content_type && is_safe_value(content_type))
    out_header(&o, "Content-Type", content_type);
  if (status_has_body(status)) {
    snprintf(line, sizeof line, "%zu", body_len);
    out_header(&o, "Content-Length", line);
  }
  out_extra_headers(&o, extra, n_extra);
  ex->resp_head_len = ex->resp_len;
  if (body_len && !ex->head_only)
    out_put(&o, body, body_len);
  if (o.failed) {
    ex->status = 500;
    ex->out = OOM_RESPONSE;
    ex->out_len = ex->out_head_len = sizeof OOM_RESPONSE - 1;
    return;
  }
  ex->out = ex->resp;
  ex->out_len = ex->resp_len;
  ex->out_head_len = ex->resp_head_len;
}

/* ---- counters ---------------------------------------------------------- */

/* "code=\"NNN\"" without printf: this runs once per loop iteration. */
static void status_label(int code, char out[16])
{
  memcpy(out, "code=\"", 6);
  out[6] = (char)('0' + code / 100 % 10);
  out[7] = (char)('0' + code / 10 % 10);
  out[8] = (char)('0' + code % 10);
  out[9] = '"';
  out[10] = '\0';
}

static void worker_count_status(struct http_worker *w, int status)
{
  if (status < 100 || status >= MAX_STATUS)
    return;
  if (w->code_counts[status]++ == 0)
    w->counted_codes[w->n_counted_codes++] = (uint16_t)status;
}

static void worker_publish_counters(struct http_worker *w)
{
  w->flush_pending = false;
  for (size_t i = 0; i < w->n_counted_codes; i++) {
    int code = w->counted_codes[i];
    char labels[16];
    status_label(code, labels);
    metrics_add(M_REQUESTS, M_REQUESTS_HELP, labels, w->code_counts[code]);
    w->code_counts[code] = 0;
  }
  w->n_counted_codes = 0;
  if (w->handshakes) {
    metrics_add(M_HANDSHAKES, M_HANDSHAKES_HELP, NULL, (double)w->handshakes);
    w->handshakes = 0;
  }
  size_t open = 0;
  for (int i = 0; i < w->srv->n_workers; i++)
    open += atomic_load_explicit(&w->srv->workers[i].n_open,
                                 memory_order_relaxed);
  metrics_set(M_OPEN, M_OPEN_HELP, NULL, (double)open);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  worker_publish_counters(arg);
}

/* Counters are published after the current batch of events, so the
 * metrics lock is taken once per loop iteration, not once per request. */
static void worker_counters_dirty(struct http_worker *w)
{
  if (!w->flush_pending && w->flush && !w->torn_down) {
    w->flush_pending = true;
    event_active(w->flush, EV_TIMEOUT, 0);
  }
}

/* ---- connection lifetime (loop thread) -------------------------------- */

static void worker_teardown(struct http_worker *w);

static void conn_close_socket(struct conn *c)
{
  if (!net_conn_close_socket(&c->nc))
    return;
  atomic_fetch_sub_explicit(&c->w->n_open, 1, memory_order_relaxed);
  worker_counters_dirty(c->w);
}

static void conn_unlink(struct conn *c)
{
  net_conns_remove(&c->w->conns, &c->nc);
}

static void conn_free(struct conn *c)
{
  free(c->arena);
  free(c->ex.resp);
  free(c->peer_chain);
  sk_X509_pop_free(c->peer_certs, X509_free);
  free(c);
}

/* Frees c if nothing refers to it any more.  c may be gone afterwards. */
static void conn_release(struct conn *c)
{
  if (c->nc.stream || c->in_flight || c->processing)
    return;
  struct http_worker *w = c->w;
  conn_unlink(c);
  conn_free(c);
  if (w->stopping && w->conns.n == 0)
    worker_teardown(w);
}

static void conn_trim_buffers(struct conn *c)
{
  if (c->arena_cap > BUFFER_KEEP_BYTES) {
    free(c->arena);
    c->arena = NULL;
    c->arena_cap = 0;
  }
  if (c->ex.resp_cap > BUFFER_KEEP_BYTES) {
    free(c->ex.resp);
    c->ex.resp = NULL;
    c->ex.resp_cap = 0;
  }
}

/* Below the idle timeout, so that a request stopping short is answered
 * 408 by the deadline before the idle timeout closes the stream. */
static int request_deadline_s(const struct http_worker *w)
{
  int idle = w->srv->o.idle_timeout_s - 1;
  if (idle < 1)
    idle = 1;
  return idle < REQUEST_DEADLINE_S ? idle : REQUEST_DEADLINE_S;
}

/* Writes the serialized response in ex->out plus the Connection line. */
static void conn_write_response(struct conn *c, bool keep_alive)
{
  struct http_exchange *ex = &c->ex;
  static const char ka[] = "Connection: keep-alive\r\n\r\n";
  static const char cl[] = "Connection: close\r\n\r\n";
  struct evbuffer *out = stream_output(c->nc.stream);
  evbuffer_add(out, ex->out, ex->out_head_len);
  if (keep_alive)
    evbuffer_add(out, ka, sizeof ka - 1);
  else
    evbuffer_add(out, cl, sizeof cl - 1);
  evbuffer_add(out, ex->out + ex->out_head_len,
               ex->out_len - ex->out_head_len);
  worker_count_status(c->w, ex->status);
  worker_counters_dirty(c->w);
  if (!keep_alive) {
    c->closing = true;
    stream_set_reading(c->nc.stream, false);
  }
}

/* After the last response was flushed: half-close and drain, so the
 * client reads the response instead of a reset. */
static void conn_begin_linger(struct conn *c)
{
  c->closing = false;
  /* Also when stopping: closing with unread input would reset the
   * connection and destroy the answers still in the kernel's buffer. */
  c->lingering = true;
  /* The read timeout restarts with every byte; the linger must end. */
  net_conn_deadline_stop(&c->nc);
  net_conn_deadline_start(&c->nc, LINGER_S);
  stream_shutdown_write(c->nc.stream);
  struct evbuffer *in = stream_input(c->nc.stream);
  evbuffer_drain(in, evbuffer_get_length(in));
  stream_set_idle_timeout(c->nc.stream, LINGER_S);
  stream_set_reading(c->nc.stream, true);
}

/* An answer the server gives by itself (the handler never sees the
 * request); the connection is closed after it. */
static const char *reason_of_status(int status)
{
  switch (status) {
  case 413: return "PAYLOAD_TOO_LARGE";
  case 417: return "EXPECTATION_UNSUPPORTED";
  case 431: return "HEADERS_TOO_LARGE";
  case 501: return "TRANSFER_ENCODING_UNSUPPORTED";
  case 505: return "HTTP_VERSION_UNSUPPORTED";
  case 500: return "INTERNAL";
  case 408: return "REQUEST_TIMEOUT";
  default: return "MALFORMED_REQUEST";
  }
}

static void conn_fail(struct conn *c, int status)
{
  struct wire_error why = wire_error_of(reason_of_status(status));
  struct wire_error_answer a;
  wire_error_answer_init(&a, why.http_status, why.error_code, why.message,
                         NULL, 0);
  net_conn_deadline_stop(&c->nc);
  c->ex.head_only = false;
  serialize_response(&c->ex, a.http_status, WIRE_ERROR_CONTENT_TYPE, a.body,
                     a.body_len, a.headers, a.n_headers);
  wire_error_answer_clear(&a);
  log_debug(COMPONENT, "%s: answered %d before routing", c->peer_addr,
            why.http_status);
  conn_write_response(c, false);
}

/* The handshake, a request or the linger took too long. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  struct conn *c = arg;
  if (!c->nc.stream || c->in_flight || c->closing)
    return; /* nothing being received; the write timeout bounds a flush */
  if (!c->lingering && c->handshaken &&
      (c->have_head || evbuffer_get_length(stream_input(c->nc.stream)))) {
    conn_fail(c, 408); /* part of a request came: say why we close */
    return;
  }
  log_debug(COMPONENT, "%s: %s deadline passed; closing", c->peer_addr,
            c->lingering ? "linger" : c->handshaken ? "request"
                                                    : "handshake");
  conn_close_socket(c);
  conn_release(c);
}

/* ---- request intake (loop thread) ------------------------------------- */

/* A LF not preceded by CR in p[from..n): the parser refuses it (400) at
 * once instead of waiting for an empty line that a bare-LF client ends
 * with "\n\n". */
static bool has_bare_lf(const char *p, size_t from, size_t n)
{
  for (const char *lf = memchr(p + from, '\n', n - from); lf;
       lf = memchr(lf + 1, '\n', (size_t)(p + n - lf - 1))) {
    if (lf == p || lf[-1] != '\r')
      return true;
  }
  return false;
}

/* 1: c->head holds a complete head; 0: need more; < 0: minus a status. */
static int conn_find_head(struct conn *c, struct evbuffer *in, size_t avail)
{
  const struct http_parse_limits *lim = &c->w->srv->limits;
  /* One byte past the limit lets the parser say "too large". */
  size_t n = avail < lim->max_header_bytes + 1 ? avail
                                               : lim->max_header_bytes + 1;
  const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
  if (!p)
    return -500;
  /* Parse only once the empty line is there: a client dripping bytes
   * then costs O(n) in total instead of one full parse per byte. */
  size_t from = c->scan_from > 3 ? c->scan_from - 3 : 0;
  if (from >= n || (!memmem(p + from, n - from, "\r\n\r\n", 4) &&
                    !has_bare_lf(p, from, n))) {
    c->scan_from = n;
    return avail > lim->max_header_bytes ? -431 : 0;
  }
  int r = http_parse_head(p, n, lim, &c->head);
  if (r == HTTP_PARSE_NEED_MORE) { /* only empty lines so far */
    c->scan_from = n;
    return 0;
  }
  if (r < 0)
    return r;
  c->scan_from = 0;
  c->have_head = true;
  return 1;
}

static char *arena_terminate(struct conn *c, struct http_span s)
{
  c->arena[s.off + s.len] = '\0';
  return c->arena + s.off;
}

/* Moves head + body out of the input buffer into the arena and points
 * the request's strings into it (NUL written over separators). */
static int conn_build_request(struct conn *c, struct evbuffer *in,
                              size_t total)
{
  const struct http_head *h = &c->head;
  size_t need = total + 1 + h->path.len + 1;
  if (!grow(&c->arena, &c->arena_cap, need))
    return -1;
  if (evbuffer_remove(in, c->arena, total) != (int)total)
    return -1;
  c->arena[total] = '\0';
  char *path = c->arena + total + 1;
  memcpy(path, c->arena + h->path.off, h->path.len);
  path[h->path.len] = '\0';

  struct http_request *req = &c->ex.req;
  memset(req, 0, sizeof *req);
  req->path = path;
  req->query = h->has_query ? c->arena + h->query.off : "";
  for (size_t i = 0; i < h->n_headers; i++) {
    c->hdrs[i].name = arena_terminate(c, h->headers[i].name);
    c->hdrs[i].value = arena_terminate(c, h->headers[i].value);
  }
  req->method = arena_terminate(c, h->method);
  req->target = arena_terminate(c, h->target);
  req->headers = c->hdrs;
  req->n_headers = h->n_headers;
  req->body = c->arena + h->head_len;
  req->body_len = (size_t)h->content_length;
  req->peer_addr = c->peer_addr;
  c->ex.keep_alive = h->keep_alive;
  c->ex.head_only = strcmp(req->method, "HEAD") == 0;
  c->have_head = false;
  c->sent_continue = false;
  return 0;
}

static void conn_load_peer_chain(struct conn *c)
{
  c->chain_loaded = true;
  c->peer_certs = stream_peer_chain(c->nc.stream);
  c->peer_chain = peer_chain_to_pem(c->peer_certs);
}

static void conn_dispatch(struct conn *c)
{
  struct http_server *srv = c->w->srv;
  if (c->tls && !c->chain_loaded)
    conn_load_peer_chain(c);
  c->ex.req.peer_chain_pem = c->peer_chain;
  c->ex.req.peer_chain = c->peer_chain ? c->peer_certs : NULL;
  c->ex.conn = c;
  c->ex.state = EX_HANDLER;
  c->in_flight = true;
  stream_set_reading(c->nc.stream, false); /* one exchange at a time */
  srv->o.handler(&c->ex, srv->o.ud);
}

/* Serves at most one request; true when it was answered synchronously
 * and the next pipelined one may follow. */
static bool conn_step(struct conn *c)
{
  if (!c->nc.stream || c->in_flight || c->closing || c->lingering)
    return false;
  struct evbuffer *in = stream_input(c->nc.stream);
  size_t avail = evbuffer_get_length(in);
  if (avail == 0)
    return false;
  if (evbuffer_get_length(stream_output(c->nc.stream)) >
      OUTPUT_HIGH_WATER) {
    c->wait_drain = true; /* and stop reading: input stays bounded too */
    stream_set_reading(c->nc.stream, false);
    net_conn_deadline_stop(&c->nc); /* the wait is ours, not the client's */
    return false;
  }
  if (!c->have_head) {
    int r = conn_find_head(c, in, avail);
    if (r < 0)
      conn_fail(c, -r);
    if (r == 0)
      net_conn_deadline_start(&c->nc, request_deadline_s(c->w));
    if (r <= 0)
      return false;
  }
  size_t total = c->head.head_len + (size_t)c->head.content_length;
  if (avail < total) {
    net_conn_deadline_start(&c->nc, request_deadline_s(c->w));
    if (c->head.expect_continue && !c->sent_continue) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      evbuffer_add(stream_output(c->nc.stream), cont, sizeof cont - 1);
      c->sent_continue = true;
    }
    return false;
  }
  net_conn_deadline_stop(&c->nc);
  if (conn_build_request(c, in, total) < 0) {
    log_error(COMPONENT, "%s: out of memory reading a request",
              c->peer_addr);
    conn_fail(c, 500);
    return false;
  }
  conn_dispatch(c);
  return !c->in_flight;
}

/* Serves buffered requests.  c may be freed on return. */
static void conn_process(struct conn *c)
{
  if (c->processing)
    return; /* a synchronous answer inside conn_step: the loop continues */
  c->processing = true;
  int served = 0;
  while (served < MAX_PIPELINE_PER_PASS && conn_step(c))
    served++;
  c->processing = false;
  if (served == MAX_PIPELINE_PER_PASS && c->nc.stream && !c->in_flight &&
      evbuffer_get_length(stream_input(c->nc.stream)) > 0)
    stream_trigger_read(c->nc.stream);
  conn_release(c);
}

/* The handler has answered (called on the loop thread). */
static void conn_response_ready(struct conn *c)
{
  struct http_exchange *ex = &c->ex;
  c->in_flight = false;
  ex->state = EX_IDLE;
  if (!c->nc.stream) { /* the client left meanwhile */
    conn_release(c);
    return;
  }
  bool keep = ex->keep_alive && !c->w->stopping;
  conn_write_response(c, keep);
  conn_trim_buffers(c);
  if (!keep) {
    conn_release(c);
    return;
  }
  stream_set_reading(c->nc.stream, true);
  conn_process(c); /* a pipelined request may already be buffered */
}

/* ---- stream callbacks ------------------------------------------------- */

static void on_read(struct stream *s, void *arg)
{
  struct conn *c = arg;
  if (c->lingering) {
    struct evbuffer *in = stream_input(s);
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  conn_process(c);
}

static void on_drained(struct stream *s, void *arg)
{
  (void)s;
  struct conn *c = arg;
  if (c->closing) {
    conn_begin_linger(c);
    conn_release(c);
  } else if (c->wait_drain) {
    c->wait_drain = false;
    stream_set_reading(c->nc.stream, true);
    conn_process(c);
  }
}

static void on_event(struct stream *s, int what, void *arg)
{
  struct conn *c = arg;
  if (what & STREAM_CONNECTED) {
    net_conn_deadline_stop(&c->nc); /* the handshake is done */
    net_conns_handshake_end(&c->w->conns, &c->nc);
    c->handshaken = true;
    c->w->handshakes++;
    worker_counters_dirty(c->w);
    return;
  }
  if ((what & STREAM_ERROR) && c->tls && log_get_level() >= LOG_DEBUG) {
    unsigned long e = stream_tls_error(s);
    char buf[256] = "";
    if (e)
      ERR_error_string_n(e, buf, sizeof buf);
    log_debug(COMPONENT, "%s: connection error %s", c->peer_addr, buf);
  }
  conn_close_socket(c);
  conn_release(c);
}

/* ---- accepting -------------------------------------------------------- */

static void format_peer(const struct sockaddr *sa, char *out, size_t n)
{
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    port = ntohs(s4->sin_port);
    snprintf(out, n, "%s:%d", ip, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    port = ntohs(s6->sin6_port);
    snprintf(out, n, "[%s]:%d", ip, port);
  } else {
    snprintf(out, n, "unknown");
  }
}

/* A connection that may be closed to make room: handshaken, nothing
 * received, nothing being answered or sent. */
static bool conn_idle(struct conn *c)
{
  return c->nc.stream && c->handshaken && !c->in_flight && !c->closing &&
         !c->lingering && !c->have_head &&
         evbuffer_get_length(stream_input(c->nc.stream)) == 0 &&
         evbuffer_get_length(stream_output(c->nc.stream)) == 0;
}

/* At max_connections the longest-open idle keep-alive connection makes
 * room (clients reconnect, as after an idle timeout); false when none
 * can, and the new connection is refused. */
static bool make_room(struct http_worker *w, const char *peer)
{
  if (w->conns.n < w->srv->o.max_connections)
    return true;
  struct conn *oldest_idle = NULL;
  for (struct net_conn *n = w->conns.head; n; n = n->next)
    if (conn_idle((struct conn *)n))
      oldest_idle = (struct conn *)n;
  if (!oldest_idle) {
    net_conns_shed(&w->conns, "https", "max_connections", peer);
    return false;
  }
  net_conns_shed(&w->conns, "https", "idle_evicted",
                 oldest_idle->peer_addr);
  conn_close_socket(oldest_idle);
  conn_release(oldest_idle);
  return true;
}

static int handshake_deadline_s(const struct http_worker *w)
{
  int hs = w->srv->o.handshake_timeout_s, req = request_deadline_s(w);
  return hs < req ? hs : req;
}

/* A stalled handshake making room (net_conns_admit_handshake). */
static void close_stalled(struct net_conn *n)
{
  struct conn *c = (struct conn *)n;
  conn_close_socket(c);
  conn_release(c);
}

/* The TLS context this worker's new connections use: the current one
 * (SIGHUP may have replaced it), on this thread's library context. */
static SSL_CTX *worker_ssl(const struct http_worker *w)
{
  return tls_ctx_for_worker(
      atomic_load_explicit(&w->srv->ssl_now, memory_order_acquire), w->index);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *arg)
{
  (void)l;
  (void)socklen;
  struct http_worker *w = arg;
  const struct http_server_opts *o = &w->srv->o;
  char peer[INET6_ADDRSTRLEN + 8];
  format_peer(sa, peer, sizeof peer);
  if (w->stopping ||
      (o->ssl && !net_conns_admit_handshake(&w->conns, o->max_handshakes,
                                            "https", peer, close_stalled)) ||
      !make_room(w, peer)) {
    evutil_closesocket(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *c = calloc(1, sizeof *c);
  struct event *deadline = c ? evtimer_new(w->base, on_deadline, c) : NULL;
  struct stream *stream = NULL;
  if (deadline)
    stream = stream_new(w->base, fd, worker_ssl(w)); /* takes fd */
  else
    evutil_closesocket(fd);
  if (!stream || stream_start(stream, on_read, on_drained, on_event, c,
                              o->idle_timeout_s) != 0) {
    log_warn(COMPONENT, "cannot set up a connection (out of memory)");
    stream_free(stream);
    if (deadline)
      event_free(deadline);
    free(c);
    return;
  }
  c->nc.deadline = deadline;
  c->w = w;
  c->nc.stream = stream;
  c->tls = o->ssl != NULL;
  c->handshaken = !c->tls;
  snprintf(c->peer_addr, sizeof c->peer_addr, "%s", peer);
  net_conns_add(&w->conns, &c->nc);
  if (c->tls) { /* a handshake dripped byte by byte must end too */
    net_conn_deadline_start(&c->nc, handshake_deadline_s(w));
    net_conns_handshake_begin(&w->conns, &c->nc);
  }
  atomic_fetch_add_explicit(&w->n_open, 1, memory_order_relaxed);
  worker_counters_dirty(w);
  if (!net_sources_take(w->srv->sources, &c->nc, peer)) {
    net_conns_shed(&w->conns, "https", "per_source", peer);
    conn_close_socket(c);
    conn_release(c);
  }
}

/* A connection of another protocol on this worker. */
static void on_side_accept(struct evconnlistener *l, evutil_socket_t fd,
                           struct sockaddr *sa, int socklen, void *arg)
{
  (void)socklen;
  struct http_worker *w = arg;
  size_t i = 0;
  while (i < w->srv->n_protocols && w->side[i] != l)
    i++;
  const struct http_protocol *p = &w->srv->protocols[i];
  if (i == w->srv->n_protocols || w->stopping) {
    evutil_closesocket(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char peer[INET6_ADDRSTRLEN + 8];
  format_peer(sa, peer, sizeof peer);
  p->on_accept(w, fd, peer, p->ud);
}

/* Out of descriptors (or similar): every listener of the worker pauses,
 * since they all draw from the same process limit. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
  (void)l;
  struct http_worker *w = arg;
  int e = EVUTIL_SOCKET_ERROR();
  log_warn(COMPONENT, "accept failed: %s; pausing accepts for %d ms",
           evutil_socket_error_to_string(e), ACCEPT_PAUSE_MS);
  if (w->listener)
    evconnlistener_disable(w->listener);
  for (size_t i = 0; i < w->srv->n_protocols; i++)
    if (w->side[i])
      evconnlistener_disable(w->side[i]);
  struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
  evtimer_add(w->accept_pause, &tv);
}

#define HEARTBEAT_MS 1000

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  struct http_worker *w = arg;
  atomic_store_explicit(&w->last_turn_ms, (long long)time_mono_ms(),
                        memory_order_relaxed);
}

long http_server_stall_ms(const struct http_server *srv)
{
  long long now = (long long)time_mono_ms(), worst = 0;
  for (int i = 0; i < srv->n_workers; i++) {
    long long late = now - HEARTBEAT_MS -
                     atomic_load_explicit(&srv->workers[i].last_turn_ms,
                                          memory_order_relaxed);
    if (late > worst)
      worst = late;
  }
  return (long)worst;
}

static void on_accept_pause_end(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  struct http_worker *w = arg;
  if (w->stopping)
    return;
  if (w->listener)
    evconnlistener_enable(w->listener);
  for (size_t i = 0; i < w->srv->n_protocols; i++)
    if (w->side[i])
      evconnlistener_enable(w->side[i]);
}

static void worker_free_side_listeners(struct http_worker *w)
{
  for (size_t i = 0; i < MAX_PROTOCOLS; i++) {
    if (w->side[i])
      evconnlistener_free(w->side[i]);
    w->side[i] = NULL;
  }
}

static void server_orphan_done(struct http_server *srv);
static void server_hold(struct http_server *srv);
static void server_release(struct http_server *srv);

/* ---- completions and stop (loop thread) ------------------------------- */

/* Closes everything; exchanges still owned by handlers become orphans
 * that http_respond frees.  Ends the loop. */
static void worker_teardown(struct http_worker *w)
{
  if (w->torn_down)
    return;
  w->torn_down = true;
  struct http_server *srv = w->srv;
  size_t orphaned = 0;
  for (size_t i = 0; i < srv->n_protocols; i++)
    orphaned += srv->protocols[i].on_teardown(w, srv->protocols[i].ud);
  pthread_mutex_lock(&w->mu);
  w->loop_alive = false;
  struct loop_task *tasks = w->tasks_head;
  w->tasks_head = w->tasks_tail = NULL;
  for (struct conn *c = w->done_head; c; c = c->done_next) {
    c->queued = false;
    c->in_flight = false; /* answered, but we will not send it */
  }
  w->done_head = w->done_tail = NULL;
  struct conn *next;
  for (struct conn *c = (struct conn *)w->conns.head; c; c = next) {
    next = (struct conn *)c->nc.next;
    if (c->in_flight) {
      conn_unlink(c);
      conn_close_socket(c);
      orphaned++;
    }
  }
  if (orphaned) {
    pthread_mutex_lock(&srv->life_mu);
    srv->orphans += orphaned;
    pthread_mutex_unlock(&srv->life_mu);
  }
  pthread_mutex_unlock(&w->mu);
  if (orphaned)
    log_warn(COMPONENT, "worker %d: %zu requests still unanswered at stop",
             w->index, orphaned);
  struct loop_task *tnext;
  for (struct loop_task *t = tasks; t; t = tnext) {
    tnext = t->next; /* counted by on_teardown: now orphans */
    t->run(t, false);
    server_orphan_done(srv);
  }
  for (struct conn *c = (struct conn *)w->conns.head; c; c = next) {
    next = (struct conn *)c->nc.next;
    conn_close_socket(c);
    conn_free(c);
  }
  w->conns = (struct net_conns){0};
  worker_publish_counters(w);
  event_base_loopbreak(w->base);
}

static void worker_begin_stop(struct http_worker *w, int grace_ms)
{
  if (w->stopping)
    return;
  w->stopping = true;
  if (w->listener) {
    evconnlistener_free(w->listener);
    w->listener = NULL;
  }
  worker_free_side_listeners(w);
  for (size_t i = 0; i < w->srv->n_protocols; i++)
    w->srv->protocols[i].on_stop(w, w->srv->protocols[i].ud);
  struct conn *next;
  for (struct conn *c = (struct conn *)w->conns.head; c; c = next) {
    next = (struct conn *)c->nc.next;
    if (c->in_flight || c->closing)
      continue; /* an answer is coming or being flushed */
    if (c->nc.stream && evbuffer_get_length(stream_output(c->nc.stream)) > 0) {
      /* Answers given but not yet sent (one may have been written in
       * this very wake-up): flush them, then close. */
      c->closing = true;
      stream_set_reading(c->nc.stream, false);
      continue;
    }
    if (c->nc.stream && c->handshaken && !c->lingering &&
        stream_input_pending(c->nc.stream)) {
      /* A request that arrived before the stop is answered (with
       * Connection: close) within the grace period. */
      stream_set_reading(c->nc.stream, true);
      stream_trigger_read(c->nc.stream);
      continue;
    }
    conn_close_socket(c);
    conn_release(c);
  }
  if (w->conns.n == 0) {
    worker_teardown(w);
    return;
  }
  struct timeval tv = {grace_ms / 1000, (grace_ms % 1000) * 1000};
  evtimer_add(w->grace, &tv);
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  worker_teardown(arg);
}

/* Under w->mu with w->loop_alive: the fd is closed only after the loop
 * was torn down, which clears loop_alive under the same mutex. */
static void worker_wake_locked(struct http_worker *w)
{
  uint64_t one = 1;
  ssize_t r = write(w->wake_fd, &one, sizeof one);
  (void)r; /* EAGAIN: the counter is full, a wake-up is pending anyway */
}

/* A wake-up deferred to the end of the posting thread's batch.  The loop
 * may have been torn down meanwhile (its eventfd closed: look again
 * under the mutex); the hold taken when it was deferred keeps the
 * server's memory until now. */
static void worker_wake_deferred(void *worker)
{
  struct http_worker *w = worker;
  struct http_server *srv = w->srv;
  pthread_mutex_lock(&w->mu);
  if (w->loop_alive)
    worker_wake_locked(w);
  pthread_mutex_unlock(&w->mu);
  server_release(srv);
}

/* Under w->mu with w->loop_alive: a wake-up now, or once at the end of
 * the posting thread's batch when it answers many at once (the store
 * writer after a commit: util/wake_batch.h). */
static void worker_wake_soon(struct http_worker *w)
{
  switch (wake_batch_defer(worker_wake_deferred, w)) {
  case WAKE_NOW:
    worker_wake_locked(w);
    break;
  case WAKE_DEFERRED:
    server_hold(w->srv);
    break;
  case WAKE_ALREADY_DEFERRED:
    break;
  }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  struct http_worker *w = arg;
  if (what & EV_READ) { /* not a post from this loop (EV_TIMEOUT) */
    uint64_t count;
    ssize_t r = read(w->wake_fd, &count, sizeof count); /* resets it */
    (void)r;
  }
  pthread_mutex_lock(&w->mu);
  struct conn *done = w->done_head;
  w->done_head = w->done_tail = NULL;
  for (struct conn *c = done; c; c = c->done_next)
    c->queued = false;
  struct loop_task *tasks = w->tasks_head;
  w->tasks_head = w->tasks_tail = NULL;
  bool stop = w->stop_requested;
  int grace = w->grace_ms;
  pthread_mutex_unlock(&w->mu);
  struct loop_task *tnext;
  for (struct loop_task *t = tasks; t; t = tnext) {
    tnext = t->next;
    t->next = NULL;
    t->run(t, true);
  }
  struct conn *next;
  for (struct conn *c = done; c; c = next) {
    next = c->done_next;
    c->done_next = NULL;
    conn_response_ready(c);
  }
  if (stop)
    worker_begin_stop(w, grace);
}

/* ---- public exchange API ---------------------------------------------- */

const struct http_request *http_exchange_request(struct http_exchange *ex)
{
  return &ex->req;
}

const char *http_request_header(const struct http_request *req,
                                const char *name)
{
  for (size_t i = 0; i < req->n_headers; i++)
    if (strcasecmp(req->headers[i].name, name) == 0)
      return req->headers[i].value;
  return NULL;
}

int http_query_param(const struct http_request *req, const char *name,
                     char *out, size_t out_len)
{
  const char *q = req->query ? req->query : "";
  size_t name_len = strlen(name);
  while (*q) {
    const char *end = strchr(q, '&');
    size_t len = end ? (size_t)(end - q) : strlen(q);
    const char *eq = memchr(q, '=', len);
    size_t key_len = eq ? (size_t)(eq - q) : len;
    if (key_len == name_len && memcmp(q, name, name_len) == 0) {
      const char *v = eq ? eq + 1 : q + len;
      if (url_decode(v, (size_t)(q + len - v), out, out_len) != 0)
        return -2;
      return (int)strlen(out);
    }
    if (!end)
      break;
    q = end + 1;
  }
  return -1;
}

static void server_free(struct http_server *srv);

static void orphan_release(struct conn *c)
{
  struct http_server *srv = c->w->srv;
  conn_free(c);
  server_orphan_done(srv);
}

/* One of the things the stopped server still waits for (an orphan, a
 * hold: *count) has ended; after the last of all of them it is freed. */
static void server_count_down(struct http_server *srv, size_t *count)
{
  pthread_mutex_lock(&srv->life_mu);
  (*count)--;
  bool last = srv->detached && srv->orphans == 0 && srv->holds == 0;
  pthread_mutex_unlock(&srv->life_mu);
  if (last)
    server_free(srv);
}

/* One work item the stopped server was still waiting for has ended. */
static void server_orphan_done(struct http_server *srv)
{
  server_count_down(srv, &srv->orphans);
}

/* Keeps the server's memory (not its loops) until server_release. */
static void server_hold(struct http_server *srv)
{
  pthread_mutex_lock(&srv->life_mu);
  srv->holds++;
  pthread_mutex_unlock(&srv->life_mu);
}

static void server_release(struct http_server *srv)
{
  server_count_down(srv, &srv->holds);
}

struct event_base *http_worker_base(struct http_worker *w)
{
  return w->base;
}

int http_worker_index(const struct http_worker *w)
{
  return w->index;
}

void http_worker_post(struct http_worker *w, struct loop_task *t)
{
  t->next = NULL;
  pthread_mutex_lock(&w->mu);
  bool alive = w->loop_alive;
  if (alive) {
    if (w->tasks_tail) {
      w->tasks_tail->next = t;
    } else if (tl_worker == w) {
      /* Posted from this loop (an MQTT answer from memory): run it in
       * this pass, without an eventfd write and read.  EV_TIMEOUT tells
       * on_wake there is nothing to read. */
      w->tasks_head = t;
      event_active(w->wake, EV_TIMEOUT, 0);
    } else {
      w->tasks_head = t;
      worker_wake_soon(w); /* one write per batch of tasks is enough */
    }
    w->tasks_tail = t;
  }
  pthread_mutex_unlock(&w->mu);
  if (!alive) {
    t->run(t, false);
    server_orphan_done(w->srv);
  }
}

void http_respond(struct http_exchange *ex, int status,
                  const char *content_type, const char *body,
                  size_t body_len, const struct http_header *extra,
                  size_t n_extra)
{
  if (!ex || ex->state != EX_HANDLER) {
    log_error(COMPONENT, "http_respond on an exchange that is not waiting "
                         "for an answer (answered twice?)");
    return;
  }
  ex->state = EX_RESPONDED;
  serialize_response(ex, status, content_type, body, body_len, extra,
                     n_extra);
  struct conn *c = ex->conn;
  struct http_worker *w = c->w;
  if (tl_worker == w) {
    conn_response_ready(c);
    return;
  }
  pthread_mutex_lock(&w->mu);
  bool alive = w->loop_alive;
  if (alive) {
    c->queued = true;
    c->done_next = NULL;
    if (w->done_tail) {
      w->done_tail->done_next = c; /* a wake-up is already on its way */
    } else {
      w->done_head = c;
      worker_wake_soon(w);
    }
    w->done_tail = c;
  }
  pthread_mutex_unlock(&w->mu);
  if (!alive)
    orphan_release(c);
}

/* ---- server start / stop ---------------------------------------------- */

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_status = -1;

static void init_evthread(void)
{
  evthread_status = evthread_use_pthreads();
}

static void *worker_main(void *arg)
{
  struct http_worker *w = arg;
  tl_worker = w;
  char name[16]; /* shown by top -H and perf: "provd-http0" */
  snprintf(name, sizeof name, "provd-http%d", w->index);
  pthread_setname_np(pthread_self(), name);
  event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
  /* Let events activated during the last pass run out (a stream freed
   * inside a callback is destroyed when it unwinds). */
  for (int i = 0; i < 16 && event_base_get_num_events(
                                w->base, EVENT_BASE_COUNT_ACTIVE) > 0; i++)
    event_base_loop(w->base, EVLOOP_NONBLOCK);
  tl_worker = NULL;
  return NULL;
}

static void worker_free_loop(struct http_worker *w)
{
  if (w->listener)
    evconnlistener_free(w->listener);
  w->listener = NULL;
  worker_free_side_listeners(w);
  struct event **evs[] = {&w->wake, &w->grace, &w->flush, &w->accept_pause,
                          &w->heartbeat};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
    if (*evs[i])
      event_free(*evs[i]);
    *evs[i] = NULL;
  }
  if (w->base)
    event_base_free(w->base);
  w->base = NULL;
  if (w->wake_fd >= 0)
    close(w->wake_fd);
  w->wake_fd = -1;
}

static void server_free(struct http_server *srv)
{
  net_sources_free(srv->sources);
  for (int i = 0; i < srv->n_workers; i++) {
    worker_free_loop(&srv->workers[i]);
    pthread_mutex_destroy(&srv->workers[i].mu);
  }
  pthread_mutex_destroy(&srv->life_mu);
  free(srv->workers);
  free(srv);
}

static int resolve(const char *host, int port_num,
                   struct sockaddr_storage *ss, socklen_t *len,
                   struct provd_err *err)
{
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char port[8];
  snprintf(port, sizeof port, "%d", port_num);
  int r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (r != 0 || !res) {
    perr_set(err, "HTTP_BIND", "cannot resolve listen address %s: %s",
             host, gai_strerror(r));
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* SO_REUSEPORT would let us share a port with another running server
 * without a word; a plain bind first tells us if anyone listens there. */
static int probe_port_free(const struct sockaddr_storage *ss, socklen_t len,
                           const char *what, struct provd_err *err)
{
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perr_set(err, "HTTP_BIND", "socket: %s", strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int r = bind(fd, (const struct sockaddr *)ss, len);
  int e = errno;
  close(fd);
  if (r < 0) {
    perr_set(err, "HTTP_BIND", "cannot listen on %s: %s", what, strerror(e));
    return -1;
  }
  return 0;
}

/* The changelist folds the enable/disable pairs a connection makes
 * within one loop pass (TLS handshake steps, one exchange at a time)
 * into at most one epoll_ctl: without it a registration cost 16 of
 * them.  Our sockets are never dup()ed, the case the flag warns about. */
static struct event_base *new_loop(void)
{
  struct event_config *cfg = event_config_new();
  if (!cfg)
    return NULL;
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  struct event_base *base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}

/* One SO_REUSEPORT listener on w's loop.  With *port 0 it learns the
 * port the kernel chose, which every later worker then binds too. */
static struct evconnlistener *listen_on(struct http_worker *w,
                                        evconnlistener_cb cb,
                                        const char *host, int *port,
                                        struct sockaddr_storage *ss,
                                        socklen_t len, struct provd_err *err)
{
  unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                   LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC;
  struct evconnlistener *l = evconnlistener_new_bind(
      w->base, cb, w, flags, LISTEN_BACKLOG, (struct sockaddr *)ss, (int)len);
  if (!l) {
    perr_set(err, "HTTP_BIND", "cannot listen on %s:%d: %s", host, *port,
             strerror(errno));
    return NULL;
  }
  evconnlistener_set_error_cb(l, on_accept_error);
  if (*port == 0) {
    struct sockaddr_storage got;
    socklen_t got_len = sizeof got;
    evutil_socket_t fd = evconnlistener_get_fd(l);
    if (getsockname(fd, (struct sockaddr *)&got, &got_len) < 0) {
      perr_set(err, "HTTP_BIND", "getsockname: %s", strerror(errno));
      evconnlistener_free(l);
      return NULL;
    }
    *port = ntohs(got.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&got)->sin6_port
                      : ((struct sockaddr_in *)&got)->sin_port);
    set_port(ss, *port);
  }
  return l;
}

/* ss[0], lens[0]: the HTTP address; ss[1 + i]: protocols[i]'s. */
static int worker_init(struct http_server *srv, struct http_worker *w,
                       struct sockaddr_storage *ss, const socklen_t *lens,
                       struct provd_err *err)
{
  w->base = new_loop();
  if (!w->base) {
    perr_set(err, "HTTP_INIT", "event_base_new failed");
    return -1;
  }
  w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wake_fd < 0) {
    perr_set(err, "HTTP_INIT", "eventfd: %s", strerror(errno));
    return -1;
  }
  w->wake = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
  if (w->wake && event_add(w->wake, NULL) != 0) {
    perr_set(err, "HTTP_INIT", "cannot watch the wake-up eventfd");
    return -1;
  }
  w->grace = evtimer_new(w->base, on_grace_over, w);
  w->flush = event_new(w->base, -1, 0, on_flush, w);
  w->accept_pause = evtimer_new(w->base, on_accept_pause_end, w);
  w->heartbeat = event_new(w->base, -1, EV_PERSIST, on_heartbeat, w);
  if (!w->wake || !w->grace || !w->flush || !w->accept_pause ||
      !w->heartbeat) {
    perr_set(err, "HTTP_INIT", "cannot create loop events");
    return -1;
  }
  atomic_store(&w->last_turn_ms, (long long)time_mono_ms());
  struct timeval beat = {HEARTBEAT_MS / 1000, (HEARTBEAT_MS % 1000) * 1000};
  if (event_add(w->heartbeat, &beat) != 0) {
    perr_set(err, "HTTP_INIT", "cannot start the loop heartbeat");
    return -1;
  }
  w->listener = listen_on(w, on_accept, srv->host, &srv->port, &ss[0],
                          lens[0], err);
  if (!w->listener)
    return -1;
  for (size_t i = 0; i < srv->n_protocols; i++) {
    w->side[i] = listen_on(w, on_side_accept, srv->protocol_hosts[i],
                           &srv->protocol_ports[i], &ss[i + 1], lens[i + 1],
                           err);
    if (!w->side[i])
      return -1;
  }
  w->loop_alive = true;
  return 0;
}

static void apply_defaults(struct http_server_opts *o)
{
  if (!o->max_header_bytes)
    o->max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
  if (!o->max_body_bytes)
    o->max_body_bytes = DEFAULT_MAX_BODY_BYTES;
  if (o->idle_timeout_s <= 0)
    o->idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S;
  if (!o->max_connections)
    o->max_connections = DEFAULT_MAX_CONNECTIONS;
  if (!o->max_handshakes)
    o->max_handshakes = DEFAULT_MAX_HANDSHAKES;
  if (o->handshake_timeout_s <= 0)
    o->handshake_timeout_s = DEFAULT_HANDSHAKE_TIMEOUT_S;
}

static int check_opts(const struct http_server_opts *o, struct provd_err *err)
{
  if (!o->handler) {
    perr_set(err, "HTTP_CONFIG", "no request handler");
    return -1;
  }
  if (o->workers < 1 || o->workers > MAX_WORKERS) {
    perr_set(err, "HTTP_CONFIG", "workers must be 1..%d, got %d",
             MAX_WORKERS, o->workers);
    return -1;
  }
  if (o->port < 0 || o->port > 65535) {
    perr_set(err, "HTTP_CONFIG", "port %d out of range", o->port);
    return -1;
  }
  if (o->host && strlen(o->host) >= sizeof ((struct http_server *)0)->host) {
    perr_set(err, "HTTP_CONFIG", "listen host name too long");
    return -1;
  }
  if (o->n_protocols > MAX_PROTOCOLS) {
    perr_set(err, "HTTP_CONFIG", "at most %d other protocols",
             MAX_PROTOCOLS);
    return -1;
  }
  for (size_t i = 0; i < o->n_protocols; i++) {
    const struct http_protocol *p = &o->protocols[i];
    if (!p->on_accept || !p->on_stop || !p->on_teardown || p->port < 0 ||
        p->port > 65535 ||
        (p->host && strlen(p->host) >= sizeof ((struct http_server *)0)->host)) {
      perr_set(err, "HTTP_CONFIG", "protocol %zu (%s): bad listener", i,
               p->name ? p->name : "?");
      return -1;
    }
  }
  return 0;
}

/* A write to a socket the peer has closed must be an error, not a
 * process-killing SIGPIPE (libevent and OpenSSL write with plain
 * write/writev).  Only when nobody installed a handler. */
static void ignore_sigpipe(void)
{
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
}

static struct http_server *server_alloc(const struct http_server_opts *o)
{
  struct http_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return NULL;
  srv->workers = calloc((size_t)o->workers, sizeof *srv->workers);
  if (!srv->workers) {
    free(srv);
    return NULL;
  }
  srv->o = *o;
  atomic_init(&srv->ssl_now, o->ssl);
  if (o->max_connections_per_source &&
      !(srv->sources = net_sources_new(o->max_connections_per_source))) {
    free(srv->workers);
    free(srv);
    return NULL;
  }
  apply_defaults(&srv->o);
  snprintf(srv->host, sizeof srv->host, "%s", o->host ? o->host : "");
  srv->o.host = srv->host;
  srv->port = o->port;
  srv->n_workers = o->workers;
  srv->n_protocols = o->n_protocols;
  for (size_t i = 0; i < o->n_protocols; i++) {
    srv->protocols[i] = o->protocols[i];
    snprintf(srv->protocol_hosts[i], sizeof srv->protocol_hosts[i], "%s",
             o->protocols[i].host ? o->protocols[i].host : "");
    srv->protocols[i].host = srv->protocol_hosts[i];
    srv->protocol_ports[i] = o->protocols[i].port;
  }
  srv->o.protocols = NULL; /* srv->protocols is the copy */
  srv->o.n_protocols = 0;
  srv->limits.max_header_bytes = srv->o.max_header_bytes;
  srv->limits.max_body_bytes = srv->o.max_body_bytes;
  pthread_mutex_init(&srv->life_mu, NULL);
  for (int i = 0; i < srv->n_workers; i++) {
    srv->workers[i].srv = srv;
    srv->workers[i].index = i;
    pthread_mutex_init(&srv->workers[i].mu, NULL);
    srv->workers[i].wake_fd = -1;
    atomic_init(&srv->workers[i].n_open, 0);
  }
  return srv;
}

static int resolve_free(const char *host, int port,
                        struct sockaddr_storage *ss, socklen_t *len,
                        struct provd_err *err)
{
  if (resolve(host, port, ss, len, err) < 0)
    return -1;
  char what[300];
  snprintf(what, sizeof what, "%s:%d", host, port);
  return port != 0 ? probe_port_free(ss, *len, what, err) : 0;
}

static int server_bind_all(struct http_server *srv, struct provd_err *err)
{
  struct sockaddr_storage ss[1 + MAX_PROTOCOLS];
  socklen_t lens[1 + MAX_PROTOCOLS];
  if (resolve_free(srv->host, srv->port, &ss[0], &lens[0], err) < 0)
    return -1;
  for (size_t i = 0; i < srv->n_protocols; i++)
    if (resolve_free(srv->protocol_hosts[i], srv->protocol_ports[i],
                     &ss[i + 1], &lens[i + 1], err) < 0)
      return -1;
  for (int i = 0; i < srv->n_workers; i++)
    if (worker_init(srv, &srv->workers[i], ss, lens, err) < 0)
      return -1;
  return 0;
}

void http_server_set_ssl(struct http_server *srv, SSL_CTX *borrow)
{
  if (srv->o.ssl && borrow)
    atomic_store_explicit(&srv->ssl_now, borrow, memory_order_release);
}

int http_server_start(const struct http_server_opts *o,
                      struct http_server **out, struct provd_err *err)
{
  *out = NULL;
  if (check_opts(o, err) < 0)
    return -1;
  pthread_once(&evthread_once, init_evthread);
  if (evthread_status != 0) {
    perr_set(err, "HTTP_INIT", "libevent pthread support unavailable");
    return -1;
  }
  ignore_sigpipe();
  struct http_server *srv = server_alloc(o);
  if (!srv) {
    perr_set(err, "HTTP_INIT", "out of memory");
    return -1;
  }
  if (server_bind_all(srv, err) < 0) {
    server_free(srv);
    return -1;
  }
  for (int i = 0; i < srv->n_workers; i++) {
    struct http_worker *w = &srv->workers[i];
    int r = pthread_create(&w->thread, NULL, worker_main, w);
    if (r != 0) {
      perr_set(err, "HTTP_INIT", "cannot start worker thread: %s",
               strerror(r));
      http_server_stop(srv, 0);
      return -1;
    }
    w->thread_started = true;
  }
  log_info(COMPONENT, "listening on %s:%d (%s, %d workers)", srv->host,
           srv->port, srv->o.ssl ? "https" : "http", srv->n_workers);
  for (size_t i = 0; i < srv->n_protocols; i++)
    log_info(COMPONENT, "listening on %s:%d (%s, same workers)",
             srv->protocol_hosts[i], srv->protocol_ports[i],
             srv->protocols[i].name ? srv->protocols[i].name : "?");
  *out = srv;
  return 0;
}

int http_server_port(const struct http_server *srv)
{
  return srv ? srv->port : -1;
}

int http_server_protocol_port(const struct http_server *srv, size_t i)
{
  return srv && i < srv->n_protocols ? srv->protocol_ports[i] : -1;
}

void http_server_stop(struct http_server *srv, int grace_ms)
{
  if (!srv)
    return;
  if (grace_ms < 0)
    grace_ms = 0;
  for (int i = 0; i < srv->n_workers; i++) {
    struct http_worker *w = &srv->workers[i];
    pthread_mutex_lock(&w->mu);
    w->stop_requested = true;
    w->grace_ms = grace_ms;
    if (w->loop_alive && w->thread_started)
      worker_wake_locked(w);
    pthread_mutex_unlock(&w->mu);
  }
  for (int i = 0; i < srv->n_workers; i++)
    if (srv->workers[i].thread_started)
      pthread_join(srv->workers[i].thread, NULL);
  for (int i = 0; i < srv->n_workers; i++) {
    struct http_worker *w = &srv->workers[i];
    if (!w->thread_started) { /* never ran: nothing to orphan */
      pthread_mutex_lock(&w->mu);
      w->loop_alive = false;
      pthread_mutex_unlock(&w->mu);
    }
    worker_free_loop(w);
  }
  metrics_set(M_OPEN, M_OPEN_HELP, NULL, 0);
  pthread_mutex_lock(&srv->life_mu);
  bool free_now = srv->orphans == 0 && srv->holds == 0;
  if (!free_now)
    srv->detached = true;
  size_t orphans = srv->orphans;
  pthread_mutex_unlock(&srv->life_mu);
  if (free_now) {
    log_info(COMPONENT, "stopped");
    server_free(srv);
  } else if (orphans == 0) {
    log_info(COMPONENT, "stopped (a deferred wake-up frees the rest)");
  } else {
    log_warn(COMPONENT, "stopped with %zu unanswered requests; their "
                        "memory is released when they are answered",
             orphans);
  }
}
