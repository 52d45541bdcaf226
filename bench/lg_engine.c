/* The load generator's connection engine: non-blocking sockets and
 * OpenSSL client sessions multiplexed on one edge-triggered epoll set.
 *
 * Every new connection does a full TLS handshake: the client context has
 * no session cache and no tickets, each connection gets a fresh SSL and
 * nothing ever calls SSL_set_session.  stats.resumed counts handshakes that
 * resumed anyway, so a report can prove it stayed 0. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "loadgen.h"

enum conn_state { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_WRITING, ST_READING };

enum step { STEP_AGAIN, STEP_WAIT, STEP_STOP };

#define MAX_EVENTS 256
#define MAX_STEPS_PER_EVENT 1000
#define SWEEP_INTERVAL_US 100000

int64_t lg_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int lg_conn_printf(struct lg_conn *c, const char *fmt, ...)
{
  va_list ap;
  int n;
  size_t room = sizeof c->out - c->out_len;
  va_start(ap, fmt);
  n = vsnprintf(c->out + c->out_len, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room)
    return -1;
  c->out_len += (size_t)n;
  return 0;
}

/* ---- set-up ---- */

static int resolve_target(struct lg_target *t, const char *host, int port,
                          char *err, size_t err_len)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_NUMERICSERV };
  struct addrinfo *res = NULL;
  char port_text[16];
  unsigned char probe[sizeof(struct in6_addr)];
  int rc;

  if (strlen(host) >= sizeof t->host) {
    snprintf(err, err_len, "host name too long");
    return -1;
  }
  snprintf(t->host, sizeof t->host, "%s", host);
  t->port = port;
  t->host_is_ip = inet_pton(AF_INET, host, probe) == 1 ||
                  inet_pton(AF_INET6, host, probe) == 1;
  snprintf(port_text, sizeof port_text, "%d", port);
  rc = getaddrinfo(host, port_text, &hints, &res);
  if (rc != 0 || !res) {
    snprintf(err, err_len, "cannot resolve %s: %s", host, gai_strerror(rc));
    return -1;
  }
  memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
  t->addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static SSL_CTX *client_ctx_new(const char *ca_file, char *err,
                               size_t err_len)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    snprintf(err, err_len, "SSL_CTX_new failed");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
    snprintf(err, err_len, "cannot load CA file %s", ca_file);
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* A booting fleet has nothing to resume: force full handshakes. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

/* Each connection needs a descriptor; raise the soft limit if needed. */
static int ensure_fd_limit(size_t concurrency, char *err, size_t err_len)
{
  struct rlimit rl;
  rlim_t want = (rlim_t)concurrency + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 0;
  if (rl.rlim_cur >= want)
    return 0;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
    snprintf(err, err_len, "concurrency %zu needs %lu descriptors, hard "
             "limit is %lu", concurrency, (unsigned long)want,
             (unsigned long)rl.rlim_max);
    return -1;
  }
  rl.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    snprintf(err, err_len, "setrlimit(NOFILE, %lu): %s",
             (unsigned long)want, strerror(errno));
    return -1;
  }
  return 0;
}

int lg_engine_init(struct lg_engine *e, const char *host, int port,
                   const char *ca_file, size_t concurrency, char *err,
                   size_t err_len)
{
  lg_stats_init(&e->stats);
  e->epfd = -1;
  if (concurrency == 0) {
    snprintf(err, err_len, "concurrency must be at least 1");
    return -1;
  }
  if (ensure_fd_limit(concurrency, err, err_len) != 0 ||
      resolve_target(&e->target, host, port, err, err_len) != 0)
    return -1;
  e->ssl_ctx = client_ctx_new(ca_file, err, err_len);
  if (!e->ssl_ctx)
    return -1;
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (e->epfd < 0) {
    snprintf(err, err_len, "epoll_create1: %s", strerror(errno));
    return -1;
  }
  e->conns = calloc(concurrency, sizeof *e->conns);
  if (!e->conns) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  e->n_conns = concurrency;
  for (size_t i = 0; i < concurrency; i++) {
    struct lg_conn *c = &e->conns[i];
    c->fd = -1;
    c->unit = -1;
    c->in = malloc(LG_IN_CAP + 1);
    if (!c->in) {
      snprintf(err, err_len, "out of memory");
      return -1;
    }
  }
  return 0;
}

/* ---- connection life cycle ---- */

static void close_conn(struct lg_conn *c, bool clean)
{
  if (c->ssl) {
    if (clean)
      SSL_shutdown(c->ssl); /* sends close_notify; no wait for the reply */
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
  }
  c->gen++; /* events still queued for the old descriptor are stale */
  c->units_on_conn = 0;
  c->state = ST_IDLE;
}

static void record_error(struct lg_engine *e, enum lg_err_kind kind,
                         int status, const char *detail)
{
  struct lg_shared *sh = e->shared;
  uint64_t n = atomic_fetch_add(&sh->errors, 1) + 1;
  lg_stats_error(&e->stats, kind, status, detail);
  if (sh->max_errors && n >= sh->max_errors)
    atomic_store(&sh->abort, true);
}

static void record_ok(struct lg_engine *e, int64_t latency_us)
{
  atomic_fetch_add(&e->shared->ok, 1);
  lg_stats_ok(&e->stats, latency_us);
}

static void report_progress(const struct lg_engine *e, uint64_t finished)
{
  const struct lg_shared *sh = e->shared;
  double secs = (double)(lg_now_us() - sh->start_us) / 1e6;
  fprintf(stderr, "progress: %llu/%ld %s (%.0f%%) ok=%llu errors=%llu "
          "%.1f s %.0f %s/s\n", (unsigned long long)finished, sh->total_count,
          e->mode->unit, 100.0 * (double)finished / (double)sh->total_count,
          (unsigned long long)atomic_load(&sh->ok),
          (unsigned long long)atomic_load(&sh->errors), secs,
          secs > 0 ? (double)finished / secs : 0.0, e->mode->unit);
}

/* Count runs print a line every progress_step units; whichever thread
 * crosses the mark prints it. */
static void count_finished(struct lg_engine *e)
{
  struct lg_shared *sh = e->shared;
  uint64_t n = atomic_fetch_add(&sh->finished, 1) + 1;
  uint64_t mark = atomic_load(&sh->next_progress);
  if (sh->progress_step && n >= mark &&
      atomic_compare_exchange_strong(&sh->next_progress, &mark,
                                     mark + sh->progress_step))
    report_progress(e, n);
}

/* The unit failed: count it and drop the connection (its state is
 * unknown).  The slot is refilled by the main loop. */
static enum step fail_unit(struct lg_engine *e, struct lg_conn *c,
                           enum lg_err_kind kind, int status,
                           const char *detail)
{
  record_error(e, kind, status, detail);
  count_finished(e);
  close_conn(c, false);
  c->unit = -1;
  c->in_use = false;
  return STEP_STOP;
}

static bool units_left(const struct lg_engine *e)
{
  const struct lg_shared *sh = e->shared;
  if (atomic_load(&sh->abort) || (e->count > 0 && e->next_unit >= e->count))
    return false;
  return sh->duration_s <= 0 ||
         lg_now_us() - sh->start_us < (int64_t)(sh->duration_s * 1e6);
}

/* Engines interleave global unit numbers: thread t of n runs t, t+n, ... */
static bool claim_unit(struct lg_engine *e, long *unit)
{
  if (!units_left(e))
    return false;
  *unit = e->next_unit++ * (long)e->n_threads + (long)e->thread_index;
  return true;
}

static int watch_fd(struct lg_engine *e, struct lg_conn *c)
{
  struct epoll_event ev = {
    .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
    .data.u64 = ((uint64_t)c->gen << 32) | (uint64_t)(c - e->conns),
  };
  return epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Opens the TCP connection; the handshake starts once it is writable. */
static enum step open_conn(struct lg_engine *e, struct lg_conn *c)
{
  int one = 1;
  int rc;
  char detail[128];
  c->fd = socket(e->target.addr.ss_family,
                 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    snprintf(detail, sizeof detail, "socket: %s", strerror(errno));
    return fail_unit(e, c, LG_ERR_CONNECT, 0, detail);
  }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  rc = connect(c->fd, (const struct sockaddr *)&e->target.addr,
               e->target.addr_len);
  if (rc != 0 && errno != EINPROGRESS) {
    snprintf(detail, sizeof detail, "%s", strerror(errno));
    return fail_unit(e, c, LG_ERR_CONNECT, 0, detail);
  }
  if (watch_fd(e, c) != 0) {
    snprintf(detail, sizeof detail, "epoll_ctl: %s", strerror(errno));
    return fail_unit(e, c, LG_ERR_CONNECT, 0, detail);
  }
  c->state = rc == 0 ? ST_HANDSHAKE : ST_CONNECTING;
  return rc == 0 ? STEP_AGAIN : STEP_WAIT;
}

/* Starts unit `unit` on c: reuses c's connection when it has one. */
static enum step start_unit(struct lg_engine *e, struct lg_conn *c,
                            long unit)
{
  struct lg_verdict v = { 0 };
  c->in_use = true;
  c->unit = unit;
  c->unit_start_us = lg_now_us();
  c->unit_deadline_us = c->unit_start_us + e->unit_timeout_us;
  c->polls = 0;
  c->op_id[0] = '\0';
  c->out_len = c->out_off = 0;
  if (e->mode->first_request(e, c, &v) != 0)
    return fail_unit(e, c, v.kind, v.status, v.detail);
  if (c->fd >= 0) {
    c->state = ST_WRITING;
    return STEP_AGAIN;
  }
  return open_conn(e, c);
}

/* The unit succeeded or failed at the HTTP level: the connection is still
 * sound and may carry the next unit in keep-alive modes. */
static enum step finish_unit(struct lg_engine *e, struct lg_conn *c,
                             bool reusable)
{
  long unit;
  count_finished(e);
  c->unit = -1;
  c->units_on_conn++;
  if (reusable && e->mode->keep_alive &&
      c->units_on_conn < e->max_units_per_conn && claim_unit(e, &unit))
    return start_unit(e, c, unit);
  close_conn(c, true);
  c->in_use = false;
  return STEP_STOP;
}

/* ---- steps ---- */

static void tls_error_text(SSL *ssl, int ssl_err, char *out, size_t cap)
{
  long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  unsigned long e = ERR_peek_error();
  if (verify != X509_V_OK)
    snprintf(out, cap, "certificate: %s",
             X509_verify_cert_error_string(verify));
  else if (e)
    ERR_error_string_n(e, out, cap);
  else if (ssl_err == SSL_ERROR_SYSCALL)
    snprintf(out, cap, "%s", errno ? strerror(errno) : "unexpected EOF");
  else
    snprintf(out, cap, "SSL error %d", ssl_err);
  ERR_clear_error();
}

static enum step step_connect(struct lg_engine *e, struct lg_conn *c,
                              uint32_t events)
{
  int so_error = 0;
  socklen_t len = sizeof so_error;
  char detail[128];
  if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
    return STEP_WAIT;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
    so_error = errno;
  if (so_error != 0) {
    snprintf(detail, sizeof detail, "%s", strerror(so_error));
    return fail_unit(e, c, LG_ERR_CONNECT, 0, detail);
  }
  c->state = ST_HANDSHAKE;
  return STEP_AGAIN;
}

static int new_ssl(struct lg_engine *e, struct lg_conn *c)
{
  c->ssl = SSL_new(e->ssl_ctx);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
    return -1;
  if (e->target.host_is_ip) {
    /* No SNI for an address (as the Node SDK); check the IP SAN. */
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl),
                                      e->target.host) != 1)
      return -1;
  } else if (SSL_set_tlsext_host_name(c->ssl, e->target.host) != 1 ||
             SSL_set1_host(c->ssl, e->target.host) != 1) {
    return -1;
  }
  if (c->identity && (SSL_use_certificate(c->ssl, c->identity->cert) != 1 ||
                      SSL_use_PrivateKey(c->ssl, c->identity->key) != 1))
    return -1;
  SSL_set_connect_state(c->ssl);
  return 0;
}

static enum step step_handshake(struct lg_engine *e, struct lg_conn *c)
{
  int rc, ssl_err;
  char detail[160];
  if (!c->ssl && new_ssl(e, c) != 0) {
    tls_error_text(c->ssl, SSL_ERROR_SSL, detail, sizeof detail);
    return fail_unit(e, c, LG_ERR_TLS, 0, detail);
  }
  ERR_clear_error();
  errno = 0;
  rc = SSL_do_handshake(c->ssl);
  if (rc == 1) {
    e->stats.handshakes++;
    if (SSL_session_reused(c->ssl))
      e->stats.resumed++;
    c->state = ST_WRITING;
    return STEP_AGAIN;
  }
  ssl_err = SSL_get_error(c->ssl, rc);
  if (ssl_err == SSL_ERROR_WANT_READ || ssl_err == SSL_ERROR_WANT_WRITE)
    return STEP_WAIT;
  tls_error_text(c->ssl, ssl_err, detail, sizeof detail);
  return fail_unit(e, c, LG_ERR_TLS, 0, detail);
}

static enum step step_write(struct lg_engine *e, struct lg_conn *c)
{
  char detail[160];
  while (c->out_off < c->out_len) {
    int rc, ssl_err;
    ERR_clear_error();
    errno = 0;
    rc = SSL_write(c->ssl, c->out + c->out_off,
                   (int)(c->out_len - c->out_off));
    if (rc > 0) {
      c->out_off += (size_t)rc;
      continue;
    }
    ssl_err = SSL_get_error(c->ssl, rc);
    if (ssl_err == SSL_ERROR_WANT_READ || ssl_err == SSL_ERROR_WANT_WRITE)
      return STEP_WAIT;
    tls_error_text(c->ssl, ssl_err, detail, sizeof detail);
    return fail_unit(e, c, LG_ERR_CLOSED, 0, detail);
  }
  e->stats.requests++;
  c->in_len = 0;
  c->state = ST_READING;
  return STEP_AGAIN;
}

static enum step handle_response(struct lg_engine *e, struct lg_conn *c,
                                 const struct lg_resp *r, bool at_eof)
{
  struct lg_verdict v = { 0 };
  bool reusable = !r->conn_close && !at_eof && !r->until_close;
  c->in[c->in_len] = '\0'; /* bodies are text; the buffer has room */
  if ((r->status == 429 || r->status == 503) && !r->retry_after)
    e->stats.refused_no_hint++;
  e->mode->on_response(e, c, c->in, r, &v);
  switch (v.action) {
  case LG_SEND:
    if (!reusable)
      return fail_unit(e, c, LG_ERR_CLOSED, 0,
                       "server closed the connection between requests");
    c->out_off = 0;
    c->state = ST_WRITING;
    return STEP_AGAIN;
  case LG_UNIT_OK:
    record_ok(e, lg_now_us() - c->unit_start_us);
    return finish_unit(e, c, reusable);
  case LG_UNIT_ERROR:
  default:
    if (v.kind != LG_ERR_HTTP)
      return fail_unit(e, c, v.kind, v.status, v.detail);
    record_error(e, v.kind, v.status, v.detail);
    return finish_unit(e, c, reusable);
  }
}

static int parse_response(const struct lg_engine *e, const struct lg_conn *c,
                          bool at_eof, struct lg_resp *r)
{
  return (e->mode->parse ? e->mode->parse : lg_http_parse)(c->in, c->in_len,
                                                           at_eof, r);
}

static enum step read_eof(struct lg_engine *e, struct lg_conn *c)
{
  struct lg_resp r;
  if (c->in_len > 0 && parse_response(e, c, true, &r) == 1)
    return handle_response(e, c, &r, true);
  return fail_unit(e, c, LG_ERR_CLOSED, 0,
                   c->in_len ? "connection closed mid-response"
                             : "connection closed before a response");
}

static enum step step_read(struct lg_engine *e, struct lg_conn *c)
{
  char detail[160];
  for (;;) {
    struct lg_resp r;
    size_t room = LG_IN_CAP - c->in_len;
    int rc, ssl_err, parsed;
    if (room == 0)
      return fail_unit(e, c, LG_ERR_PROTOCOL, 0, "response too large");
    ERR_clear_error();
    errno = 0;
    rc = SSL_read(c->ssl, c->in + c->in_len, (int)room);
    if (rc > 0) {
      c->in_len += (size_t)rc;
      parsed = parse_response(e, c, false, &r);
      if (parsed == 1)
        return handle_response(e, c, &r, false);
      if (parsed < 0)
        return fail_unit(e, c, LG_ERR_PROTOCOL, 0, "malformed response");
      continue;
    }
    ssl_err = SSL_get_error(c->ssl, rc);
    if (ssl_err == SSL_ERROR_WANT_READ || ssl_err == SSL_ERROR_WANT_WRITE)
      return STEP_WAIT;
    if (ssl_err == SSL_ERROR_ZERO_RETURN ||
        (ssl_err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0))
      return read_eof(e, c);
    if (ssl_err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) ==
                                        SSL_R_UNEXPECTED_EOF_WHILE_READING)
      return read_eof(e, c);
    tls_error_text(c->ssl, ssl_err, detail, sizeof detail);
    return fail_unit(e, c, LG_ERR_CLOSED, 0, detail);
  }
}

/* Advances c until it waits for I/O.  Edge-triggered epoll: returning
 * before WANT_READ/WANT_WRITE would lose the wake-up, hence the loop. */
static void drive(struct lg_engine *e, struct lg_conn *c, uint32_t events)
{
  for (int i = 0; i < MAX_STEPS_PER_EVENT; i++) {
    enum step s;
    switch (c->state) {
    case ST_CONNECTING: s = step_connect(e, c, events); break;
    case ST_HANDSHAKE: s = step_handshake(e, c); break;
    case ST_WRITING: s = step_write(e, c); break;
    case ST_READING: s = step_read(e, c); break;
    default: return;
    }
    if (s != STEP_AGAIN)
      return;
    events = 0; /* a fresh connection waits for its own writability */
  }
  fail_unit(e, c, LG_ERR_PROTOCOL, 0, "connection made no progress");
}

/* ---- the run ---- */

/* Open loop (--rate): how many arrivals are due now.  Arrivals that find
 * no free slot are counted as missed and not made up later, so the
 * offered load stays what --rate says whatever the server does. */
static long arrivals_due(struct lg_engine *e)
{
  if (e->rate <= 0)
    return LONG_MAX;
  double secs = (double)(lg_now_us() - e->shared->start_us) / 1e6;
  long due = (long)(secs * e->rate) - e->arrivals;
  return due > 0 ? due : 0;
}

static size_t refill(struct lg_engine *e)
{
  size_t busy = 0;
  long due = arrivals_due(e), started = 0;
  for (size_t i = 0; i < e->n_conns; i++) {
    struct lg_conn *c = &e->conns[i];
    long unit;
    if (!c->in_use && started < due && claim_unit(e, &unit)) {
      started++;
      if (start_unit(e, c, unit) == STEP_AGAIN)
        drive(e, c, 0);
    }
    if (c->in_use)
      busy++;
  }
  if (e->rate > 0) {
    if (due > started && units_left(e))
      e->stats.missed += (uint64_t)(due - started);
    e->arrivals += due;
  }
  return busy;
}

static void sweep_timeouts(struct lg_engine *e, int64_t now)
{
  for (size_t i = 0; i < e->n_conns; i++) {
    struct lg_conn *c = &e->conns[i];
    if (c->in_use && c->unit >= 0 && now > c->unit_deadline_us) {
      static const char *const where[] = {
        [ST_IDLE] = "idle", [ST_CONNECTING] = "connecting",
        [ST_HANDSHAKE] = "in the TLS handshake",
        [ST_WRITING] = "writing", [ST_READING] = "waiting for a response",
      };
      fail_unit(e, c, LG_ERR_TIMEOUT, 0, where[c->state]);
    }
  }
}

static void cancel_in_flight(struct lg_engine *e)
{
  for (size_t i = 0; i < e->n_conns; i++) {
    struct lg_conn *c = &e->conns[i];
    if (c->in_use && c->unit >= 0)
      e->stats.cancelled++;
    close_conn(c, false);
    c->in_use = false;
    c->unit = -1;
  }
}

/* Duration runs: thread 0 prints a line every 10 % of the time. */
static void duration_progress(const struct lg_engine *e, int64_t now,
                              int64_t *next_at)
{
  const struct lg_shared *sh = e->shared;
  double secs = (double)(now - sh->start_us) / 1e6;
  uint64_t ok = atomic_load(&sh->ok);
  if (e->thread_index != 0 || sh->duration_s <= 0 || now < *next_at)
    return;
  fprintf(stderr, "progress: %.1f/%.0f s ok=%llu errors=%llu %.0f/s\n",
          secs, sh->duration_s, (unsigned long long)ok,
          (unsigned long long)atomic_load(&sh->errors),
          secs > 0 ? (double)ok / secs : 0.0);
  *next_at += (int64_t)(sh->duration_s * 1e5);
}

void lg_engine_run(struct lg_engine *e)
{
  const struct lg_shared *sh = e->shared;
  struct epoll_event events[MAX_EVENTS];
  int64_t end_at = sh->duration_s > 0
                       ? sh->start_us + (int64_t)(sh->duration_s * 1e6)
                       : INT64_MAX;
  int64_t last_sweep = sh->start_us;
  int64_t next_report = sh->start_us + (int64_t)(sh->duration_s * 1e5);
  for (;;) {
    int64_t now = lg_now_us();
    int wait_ms = 50, n;
    if (now >= end_at || atomic_load(&sh->abort))
      break;
    /* Nothing in flight and nothing left to start: done.  (Slots that
     * failed synchronously are retried on the next turn.) */
    if (refill(e) == 0 && !units_left(e))
      break;
    if (e->rate > 0)
      wait_ms = 1; /* the next arrival is due within milliseconds */
    if (end_at != INT64_MAX && (end_at - now) / 1000 < wait_ms)
      wait_ms = (int)((end_at - now) / 1000) + 1;
    n = epoll_wait(e->epfd, events, MAX_EVENTS, wait_ms);
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      struct lg_conn *c = &e->conns[(uint32_t)tag];
      if (c->in_use && c->fd >= 0 && (uint32_t)(tag >> 32) == c->gen)
        drive(e, c, events[i].events);
    }
    now = lg_now_us();
    if (now - last_sweep >= SWEEP_INTERVAL_US) {
      sweep_timeouts(e, now);
      last_sweep = now;
    }
    duration_progress(e, now, &next_report);
  }
  e->end_us = lg_now_us();
  if (e->end_us > end_at)
    e->end_us = end_at; /* rate over the nominal window */
  cancel_in_flight(e);
}

void lg_engine_free(struct lg_engine *e)
{
  if (e->conns) {
    for (size_t i = 0; i < e->n_conns; i++) {
      close_conn(&e->conns[i], false);
      free(e->conns[i].in);
    }
    free(e->conns);
    e->conns = NULL;
  }
  if (e->epfd >= 0)
    close(e->epfd);
  e->epfd = -1;
  SSL_CTX_free(e->ssl_ctx);
  e->ssl_ctx = NULL;
  lg_stats_free(&e->stats);
}
