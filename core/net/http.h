/* HTTPS/1.1 server: one libevent loop per worker thread, each with its own
 * SO_REUSEPORT listener, TLS through net/stream.h.  Handlers run on
 * the loop thread and must not block; they answer with http_respond(),
 * exactly once, from any thread (work handed to other threads posts its
 * answer back to the connection's loop). */
#ifndef CORE_NET_HTTP_H
#define CORE_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "util/err.h"

struct http_header {
  const char *name;
  const char *value;
};

/* A parsed request.  All strings are NUL-terminated and live as long as
 * the exchange. */
struct http_request {
  const char *method;  /* "GET", "PUT", ... */
  const char *target;  /* raw request target: path + "?" + query */
  const char *path;    /* raw (still percent-encoded) path, no query */
  const char *query;   /* raw query without "?", or "" */
  const struct http_header *headers;
  size_t n_headers;
  const char *body;    /* NUL-terminated, body_len bytes */
  size_t body_len;
  const char *peer_chain_pem; /* client certificate chain, leaf first, or
                                 NULL when the client sent none */
  STACK_OF(X509) *peer_chain; /* the same chain as the handshake parsed it
                                 (borrowed; X509_chain_up_ref to keep) */
  const char *peer_addr;      /* "127.0.0.1:54321" */
};

struct http_exchange;

const struct http_request *http_exchange_request(struct http_exchange *ex);
/* Case-insensitive lookup; NULL if absent. */
const char *http_request_header(const struct http_request *req,
                                const char *name);
/* Percent-decodes query parameter `name` into out; returns its length,
 * -1 if absent, -2 if malformed or longer than out_len - 1. */
int http_query_param(const struct http_request *req, const char *name,
                     char *out, size_t out_len);

/* Sends the response and releases the exchange.  extra headers are
 * copied.  Safe from any thread; exactly once per exchange. */
void http_respond(struct http_exchange *ex, int status,
                  const char *content_type, const char *body,
                  size_t body_len, const struct http_header *extra,
                  size_t n_extra);

typedef void (*http_handler_fn)(struct http_exchange *ex, void *ud);

/* ---- other protocols on the same workers (MQTT) ----
 * The server owns the worker threads, their loops, accepting and the
 * wake-up by which other threads hand work back to a loop.  Another
 * protocol gets its own listening socket on every worker's loop and owns
 * its connections; answers computed on other threads come back through
 * http_worker_post. */
struct http_worker;

struct loop_task {
  struct loop_task *next; /* the server's, while queued */
  /* alive: on the worker's loop.  Not alive: the loop is gone (stop);
   * runs on the posting thread and must only release memory. */
  void (*run)(struct loop_task *t, bool alive);
};

struct http_protocol {
  const char *name; /* for logs: "mqtt" */
  const char *host;
  int port;         /* 0: any free port (the same on every worker) */
  /* On the worker's loop: a new connection; takes fd. */
  void (*on_accept)(struct http_worker *w, int fd, const char *peer_addr,
                    void *ud);
  /* On the worker's loop when the server begins to stop. */
  void (*on_stop)(struct http_worker *w, void *ud);
  /* On the worker's loop when it ends: close every connection and say
   * how many posted tasks are still to come (each then runs with alive
   * false on the thread that posts it). */
  size_t (*on_teardown)(struct http_worker *w, void *ud);
  void *ud;
};

struct event_base *http_worker_base(struct http_worker *w);
int http_worker_index(const struct http_worker *w);
/* Queues t to run on w's loop; safe from any thread. */
void http_worker_post(struct http_worker *w, struct loop_task *t);

struct http_server_opts {
  const char *host;         /* bind address */
  int port;                 /* 0: any free port */
  int workers;              /* event loops, >= 1 */
  SSL_CTX *ssl;             /* NULL: plain HTTP (tests and benchmarks) */
  size_t max_header_bytes;  /* default 16 KiB */
  size_t max_body_bytes;    /* default 96 KiB; larger -> 413 */
  int idle_timeout_s;       /* default 30 */
  size_t max_connections;   /* per worker, default 4096; at the limit the
                               longest-open idle connection is closed */
  size_t max_handshakes;    /* per worker, TLS connections without a
                               finished handshake, default 1024; beyond it
                               the oldest is closed */
  int handshake_timeout_s;  /* default 5 */
  size_t max_connections_per_source; /* open connections from one IP
                                        address, all workers; 0: no limit */
  http_handler_fn handler;
  void *ud;
  const struct http_protocol *protocols; /* borrowed until stop */
  size_t n_protocols;
};

struct http_server;
/* Binding a fixed port that is already in use fails (SO_REUSEPORT alone
 * would silently share it).  Ignores SIGPIPE unless the process installed
 * a handler: libevent and OpenSSL write with plain write(). */
int http_server_start(const struct http_server_opts *o,
                      struct http_server **out, struct provd_err *err);
/* The bound port (useful with port 0). */
int http_server_port(const struct http_server *srv);
/* The bound port of opts.protocols[i]. */
int http_server_protocol_port(const struct http_server *srv, size_t i);
/* New connections handshake with ctx from now on (certificate rotation);
 * connections already open keep theirs.  ctx must outlive the server.
 * Nothing changes on a plain-HTTP server.  Any thread. */
void http_server_set_ssl(struct http_server *srv, SSL_CTX *borrow);
/* How long the worker loop that turned least recently is overdue, in
 * ms: each loop notes the time on a 1 s timer, so 0 while every loop
 * serves and the time a handler or a deadlock has held one beyond that.
 * The service manager's watchdog asks this before provd says it is
 * alive.  Any thread. */
long http_server_stall_ms(const struct http_server *srv);
/* Stops accepting, lets in-flight exchanges finish (at most grace_ms),
 * closes every connection and joins the worker threads.  Once per
 * server; an exchange answered after the grace period is just freed. */
void http_server_stop(struct http_server *srv, int grace_ms);

#endif
