/* HTTP parser cases and a live HTTPS server on 127.0.0.1 (port 0, two
 * workers, a PKI generated in a temp dir) driven by a real OpenSSL client
 * that verifies the server against the generated ca.pem. */
#include <check.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/http.h"
#include "net/http_parse.h"
#include "tls/pki.h"
#include "tls/server_ctx.h"
#include "util/metrics.h"
#include "util/wake_batch.h"

/* ---- parser ------------------------------------------------------------ */

static const struct http_parse_limits LIM = {16 * 1024, 96 * 1024};

static int parse(const char *s, struct http_head *h)
{
  return http_parse_head(s, strlen(s), &LIM, h);
}

static int span_eq(const char *buf, struct http_span s, const char *lit)
{
  return s.len == strlen(lit) && memcmp(buf + s.off, lit, s.len) == 0;
}

static const char *find_value(const char *buf, const struct http_head *h,
                              const char *name, char *out, size_t n)
{
  for (size_t i = 0; i < h->n_headers; i++) {
    struct http_span s = h->headers[i].name;
    if (s.len == strlen(name) && strncasecmp(buf + s.off, name, s.len) == 0) {
      struct http_span v = h->headers[i].value;
      snprintf(out, n, "%.*s", (int)v.len, buf + v.off);
      return out;
    }
  }
  return NULL;
}

START_TEST(t_parse_get)
{
  const char *req = "GET /0ne/registrations/dev-1/operations/4.a?api-version="
                    "2019-03-31&x=%2F HTTP/1.1\r\nHost: localhost\r\n"
                    "Accept: application/json\r\nUser-Agent:  ua 1.0  \r\n\r\n";
  struct http_head h;
  int r = parse(req, &h);
  ck_assert_int_eq(r, (int)strlen(req));
  ck_assert(span_eq(req, h.method, "GET"));
  ck_assert(span_eq(req, h.path, "/0ne/registrations/dev-1/operations/4.a"));
  ck_assert(span_eq(req, h.query, "api-version=2019-03-31&x=%2F"));
  ck_assert(h.has_query);
  ck_assert_int_eq(h.minor, 1);
  ck_assert(h.keep_alive);
  ck_assert_uint_eq(h.n_headers, 3);
  char v[64];
  ck_assert_str_eq(find_value(req, &h, "user-agent", v, sizeof v), "ua 1.0");
  ck_assert_uint_eq(h.content_length, 0);
}
END_TEST

START_TEST(t_parse_put_body)
{
  const char *req = "PUT /s/registrations/r/register?api-version=2021-06-01 "
                    "HTTP/1.1\r\nContent-Type: application/json\r\n"
                    "Content-Length: 22\r\nHost: x\r\n\r\n"
                    "{\"registrationId\":\"r\"}";
  struct http_head h;
  int r = parse(req, &h);
  ck_assert_int_gt(r, 0);
  ck_assert_uint_eq(h.content_length, 22);
  ck_assert_uint_eq((size_t)r + h.content_length, strlen(req));
  ck_assert(span_eq(req, h.method, "PUT"));
}
END_TEST

/* The Azure Node SDK polls with GET + "{}" + Content-Length: 2. */
START_TEST(t_parse_get_with_body)
{
  const char *req = "GET /s/registrations/r/operations/o HTTP/1.1\r\n"
                    "Content-Type: application/json; charset=utf-8\r\n"
                    "Content-Length: 2\r\nHost: localhost\r\n"
                    "Connection: keep-alive\r\n\r\n{}";
  struct http_head h;
  int r = parse(req, &h);
  ck_assert_int_gt(r, 0);
  ck_assert_uint_eq(h.content_length, 2);
  ck_assert_str_eq(req + r, "{}");
  ck_assert(h.keep_alive);
}
END_TEST

START_TEST(t_parse_pipelined)
{
  const char *req = "GET /{}-body HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                    "\r\n{}POST /second HTTP/1.1\r\nHost: a\r\n"
                    "Content-Length: 3\r\n\r\nabc";
  struct http_head h;
  int r1 = parse(req, &h);
  ck_assert_int_gt(r1, 0);
  ck_assert(span_eq(req, h.path, "/{}-body"));
  const char *next = req + r1 + h.content_length;
  int r2 = parse(next, &h);
  ck_assert_int_gt(r2, 0);
  ck_assert(span_eq(next, h.method, "POST"));
  ck_assert(span_eq(next, h.path, "/second"));
  ck_assert_str_eq(next + r2, "abc");
}
END_TEST

/* Every prefix of a head needs more; the whole head is done. */
START_TEST(t_parse_split)
{
  const char *req = "DELETE /enrollments/x?api-version=1 HTTP/1.1\r\n"
                    "Host: localhost\r\nIf-Match: \"*\"\r\n\r\n";
  size_t n = strlen(req);
  struct http_head h;
  for (size_t k = 0; k < n; k++)
    ck_assert_msg(http_parse_head(req, k, &LIM, &h) == HTTP_PARSE_NEED_MORE,
                  "prefix %zu", k);
  ck_assert_int_eq(http_parse_head(req, n, &LIM, &h), (int)n);
}
END_TEST

START_TEST(t_parse_oversize_head)
{
  struct http_parse_limits small = {256, 1024};
  char buf[2048];
  int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ");
  memset(buf + n, 'p', 300);
  memcpy(buf + n + 300, "\r\n\r\n", 5);
  struct http_head h;
  /* Complete but too large, and incomplete past the limit: both 431. */
  ck_assert_int_eq(http_parse_head(buf, strlen(buf), &small, &h), -431);
  ck_assert_int_eq(http_parse_head(buf, 300, &small, &h), -431);
  ck_assert_int_eq(http_parse_head(buf, 200, &small, &h), HTTP_PARSE_NEED_MORE);
}
END_TEST

START_TEST(t_parse_too_many_headers)
{
  char buf[8192];
  size_t o = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\n");
  for (int i = 0; i < HTTP_MAX_HEADERS; i++)
    o += (size_t)snprintf(buf + o, sizeof buf - o, "X-%d: v\r\n", i);
  snprintf(buf + o, sizeof buf - o, "\r\n");
  struct http_head h;
  ck_assert_int_eq(parse(buf, &h), -431);
}
END_TEST

START_TEST(t_parse_oversize_body)
{
  struct http_head h;
  ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 98305"
                         "\r\n\r\n", &h), -413);
  ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                         "99999999999999999999999999\r\n\r\n", &h), -413);
  ck_assert_int_gt(parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 98304"
                         "\r\n\r\n", &h), 0);
}
END_TEST

START_TEST(t_parse_bad_request_line)
{
  static const char *bad[] = {
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\nHost: a\r\n\r\n",
      "GET / HTTP/1.x\r\nHost: a\r\n\r\n",
      "GET x HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
  };
  struct http_head h;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(parse(bad[i], &h) == -400, "case %zu", i);
}
END_TEST

START_TEST(t_parse_bad_fields)
{
  static const char *bad[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", /* obs-fold */
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",         /* space before colon */
      "GET / HTTP/1.1\r\nHost: a\rX-Evil: 1\r\n\r\n", /* bare CR */
      "GET / HTTP/1.1\r\nHost: a\nX-Evil: 1\r\n\r\n", /* bare LF */
      "GET / HTTP/1.1\r\n: nameless\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\n\tHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: a\x01z\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",                      /* 1.1 without Host */
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      ("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3"
       "\r\n\r\n"),
      "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\n",
      "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\n",
      "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
  };
  struct http_head h;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(parse(bad[i], &h) == -400, "case %zu", i);
  /* Embedded NUL: the length says where the head ends, not strlen. */
  static const char nul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
  ck_assert_int_eq(http_parse_head(nul, sizeof nul - 1, &LIM, &h), -400);
}
END_TEST

START_TEST(t_parse_same_length_twice)
{
  struct http_head h;
  const char *req = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                    "content-length: 2\r\n\r\n{}";
  ck_assert_int_gt(parse(req, &h), 0);
  ck_assert_uint_eq(h.content_length, 2);
}
END_TEST

START_TEST(t_parse_transfer_encoding)
{
  struct http_head h;
  ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                         "chunked\r\n\r\n", &h), -501);
  ck_assert_int_eq(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n", &h), -501);
}
END_TEST

START_TEST(t_parse_versions)
{
  struct http_head h;
  ck_assert_int_gt(parse("GET / HTTP/1.0\r\n\r\n", &h), 0);
  ck_assert_int_eq(h.minor, 0);
  ck_assert(!h.keep_alive);
  ck_assert_int_gt(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                         &h), 0);
  ck_assert(h.keep_alive);
  ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, "
                         "close\r\n\r\n", &h), 0);
  ck_assert(!h.keep_alive);
  ck_assert_int_eq(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &h), -505);
  ck_assert_int_eq(parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n", &h), -505);
  /* Empty lines before the request line are skipped (RFC 9112 2.2). */
  const char *lead = "\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  ck_assert_int_eq(parse(lead, &h), (int)strlen(lead));
  ck_assert(span_eq(lead, h.path, "/a"));
}
END_TEST

START_TEST(t_parse_expect)
{
  struct http_head h;
  ck_assert_int_gt(parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         "Expect: 100-continue\r\n\r\n", &h), 0);
  ck_assert(h.expect_continue);
  ck_assert_int_eq(parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         "Expect: teapot\r\n\r\n", &h), -417);
}
END_TEST

START_TEST(t_query_and_headers)
{
  struct http_header hdrs[] = {{"Content-Type", "application/json"},
                               {"Authorization", "SharedAccessSignature x"}};
  struct http_request req = {0};
  req.query = "api-version=2021-06-01&sig=a%2Fb%3D&plus=a+b&empty=&bad=%zz"
              "&nul=%00&flag";
  req.headers = hdrs;
  req.n_headers = 2;
  char out[64];
  ck_assert_int_eq(http_query_param(&req, "api-version", out, sizeof out), 10);
  ck_assert_str_eq(out, "2021-06-01");
  ck_assert_int_eq(http_query_param(&req, "sig", out, sizeof out), 4);
  ck_assert_str_eq(out, "a/b=");
  ck_assert_int_ge(http_query_param(&req, "plus", out, sizeof out), 0);
  ck_assert_str_eq(out, "a+b");
  ck_assert_int_eq(http_query_param(&req, "empty", out, sizeof out), 0);
  ck_assert_str_eq(out, "");
  ck_assert_int_eq(http_query_param(&req, "flag", out, sizeof out), 0);
  ck_assert_int_eq(http_query_param(&req, "missing", out, sizeof out), -1);
  ck_assert_int_eq(http_query_param(&req, "api", out, sizeof out), -1);
  ck_assert_int_eq(http_query_param(&req, "bad", out, sizeof out), -2);
  ck_assert_int_eq(http_query_param(&req, "nul", out, sizeof out), -2);
  ck_assert_int_eq(http_query_param(&req, "api-version", out, 5), -2);
  ck_assert_str_eq(http_request_header(&req, "content-type"),
                   "application/json");
  ck_assert_ptr_null(http_request_header(&req, "Host"));
}
END_TEST

/* ---- live server ------------------------------------------------------- */

static char g_dir[256];
static struct pki_paths g_paths;
static struct http_server *g_srv;
static SSL_CTX *g_server_ctx;
static atomic_int g_handler_calls;

#define MAX_DELAYED 32
static pthread_mutex_t g_delayed_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t g_delayed[MAX_DELAYED];
static int g_n_delayed;

struct delayed {
  struct http_exchange *ex;
  int ms;
};

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void *delayed_main(void *arg)
{
  struct delayed *d = arg;
  sleep_ms(d->ms);
  http_respond(d->ex, 200, "text/plain", "late", 4, NULL, 0);
  free(d);
  return NULL;
}

static void answer_later(struct http_exchange *ex, int ms)
{
  struct delayed *d = malloc(sizeof *d);
  ck_assert_ptr_nonnull(d);
  d->ex = ex;
  d->ms = ms;
  pthread_mutex_lock(&g_delayed_mu);
  ck_assert_int_lt(g_n_delayed, MAX_DELAYED);
  ck_assert_int_eq(pthread_create(&g_delayed[g_n_delayed++], NULL,
                                  delayed_main, d), 0);
  pthread_mutex_unlock(&g_delayed_mu);
}

static void join_delayed(void)
{
  pthread_mutex_lock(&g_delayed_mu);
  for (int i = 0; i < g_n_delayed; i++)
    pthread_join(g_delayed[i], NULL);
  g_n_delayed = 0;
  pthread_mutex_unlock(&g_delayed_mu);
}

/* /hold: the exchange waits here for the test to answer it. */
static struct http_exchange *_Atomic g_held;

static void handler(struct http_exchange *ex, void *ud)
{
  (void)ud;
  const struct http_request *req = http_exchange_request(ex);
  char out[16384];
  if (strcmp(req->path, "/hold") == 0) {
    atomic_store(&g_held, ex);
    atomic_fetch_add(&g_handler_calls, 1);
    return;
  }
  atomic_fetch_add(&g_handler_calls, 1);
  if (strcmp(req->path, "/delay") == 0) {
    char ms[16];
    answer_later(ex, http_query_param(req, "ms", ms, sizeof ms) > 0
                         ? (int)strtol(ms, NULL, 10) : 100);
    return;
  }
  if (strcmp(req->path, "/block") == 0) { /* holds the loop thread */
    char ms[16];
    sleep_ms(http_query_param(req, "ms", ms, sizeof ms) > 0
                 ? (int)strtol(ms, NULL, 10) : 500);
  }
  if (strcmp(req->path, "/big") == 0) {
    memset(out, 'b', 8192);
    snprintf(out + 8192, sizeof out - 8192, "%s", req->query);
  } else if (strcmp(req->path, "/cert") == 0) {
    snprintf(out, sizeof out, "%s",
             req->peer_chain_pem ? req->peer_chain_pem : "none");
  } else {
    snprintf(out, sizeof out, "%s %s q=%s len=%zu body=%s peer=%s",
             req->method, req->path, req->query, req->body_len, req->body,
             strncmp(req->peer_addr, "127.0.0.1:", 10) == 0 ? "ok" : "bad");
  }
  struct http_header extra[] = {{"X-Test", "yes"},
                                {"X-Evil", "a\r\nSet-Cookie: x=1"}};
  http_respond(ex, 200, "text/plain", out, strlen(out), extra, 2);
}

static void start_server(int workers)
{
  struct provd_err err = {0};
  g_server_ctx = tls_server_ctx_new(g_paths.cert, g_paths.key, NULL, &err);
  ck_assert_msg(g_server_ctx != NULL, "%s", err.msg);
  struct http_server_opts o = {0};
  o.host = "127.0.0.1";
  o.port = 0;
  o.workers = workers;
  o.ssl = g_server_ctx;
  o.max_body_bytes = 1024;
  o.idle_timeout_s = 5;
  o.handler = handler;
  ck_assert_msg(http_server_start(&o, &g_srv, &err) == 0, "%s", err.msg);
  ck_assert_int_gt(http_server_port(g_srv), 0);
}

static void setup_server(void)
{
  atomic_store(&g_handler_calls, 0);
  start_server(2);
}

static void teardown_server(void)
{
  if (g_srv)
    http_server_stop(g_srv, 2000);
  g_srv = NULL;
  join_delayed();
  SSL_CTX_free(g_server_ctx);
  g_server_ctx = NULL;
}

/* Clients connect to this port instead of g_srv's when set. */
static int g_port_override;

/* A blocking TLS client that verifies the server like the SDKs do. */
struct client {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
  char buf[65536];
  size_t len;
};

static int tcp_connect(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void client_open_with(struct client *c, const char *cert,
                             const char *key)
{
  memset(c, 0, sizeof *c);
  c->ctx = SSL_CTX_new(TLS_client_method());
  ck_assert_ptr_nonnull(c->ctx);
  ck_assert_int_eq(SSL_CTX_load_verify_locations(c->ctx, g_paths.ca, NULL), 1);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
  if (cert) {
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(c->ctx, cert), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(c->ctx, key,
                                                 SSL_FILETYPE_PEM), 1);
  }
  c->fd = tcp_connect(g_port_override ? g_port_override
                                      : http_server_port(g_srv));
  ck_assert_int_ge(c->fd, 0);
  c->ssl = SSL_new(c->ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_tlsext_host_name(c->ssl, "localhost");
  ck_assert_int_eq(SSL_set1_host(c->ssl, "localhost"), 1);
  int r = SSL_connect(c->ssl);
  ck_assert_msg(r == 1, "TLS handshake failed: %s",
                ERR_error_string(ERR_get_error(), NULL));
  ck_assert_int_eq(SSL_get_verify_result(c->ssl), X509_V_OK);
}

static void client_open(struct client *c)
{
  client_open_with(c, NULL, NULL);
}

static void client_close(struct client *c)
{
  if (c->ssl) {
    SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
  }
  if (c->fd >= 0)
    close(c->fd);
  SSL_CTX_free(c->ctx);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

static void client_send(struct client *c, const char *data)
{
  size_t n = strlen(data);
  ck_assert_int_eq(SSL_write(c->ssl, data, (int)n), (int)n);
}

struct response {
  int status;
  char head[4096];
  char body[16384];
  size_t body_len;
};

/* Reads one response; 0 on success, -1 on EOF/error before it. */
static int client_read(struct client *c, struct response *r)
{
  memset(r, 0, sizeof *r);
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end) {
      size_t head_len = (size_t)(end - c->buf) + 4;
      ck_assert_uint_lt(head_len, sizeof r->head);
      memcpy(r->head, c->buf, head_len);
      const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
      size_t body_len = cl ? strtoul(cl + 18, NULL, 10) : 0;
      if (c->len >= head_len + body_len) {
        ck_assert_uint_lt(body_len, sizeof r->body);
        memcpy(r->body, c->buf + head_len, body_len);
        r->body_len = body_len;
        r->status = (int)strtol(r->head + 9, NULL, 10);
        memmove(c->buf, c->buf + head_len + body_len,
                c->len - head_len - body_len);
        c->len -= head_len + body_len;
        return 0;
      }
    }
    ck_assert_uint_lt(c->len, sizeof c->buf);
    int n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len));
    if (n <= 0)
      return -1;
    c->len += (size_t)n;
  }
}

START_TEST(t_tls_get)
{
  struct client c;
  client_open(&c);
  client_send(&c, "GET /x?a=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "GET /x q=a=1 len=0 body= peer=ok");
  ck_assert_ptr_nonnull(strstr(r.head, "\r\nX-Test: yes\r\n"));
  ck_assert_ptr_null(strstr(r.head, "X-Evil"));
  ck_assert_ptr_null(strstr(r.head, "Set-Cookie"));
  ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: text/plain\r\n"));
  ck_assert_ptr_nonnull(strstr(r.head, "Connection: keep-alive\r\n"));
  client_close(&c);
}
END_TEST

/* The Node SDK's exchange: PUT, then GET with a "{}" body, one socket. */
START_TEST(t_tls_keep_alive)
{
  struct client c;
  client_open(&c);
  struct response r;
  client_send(&c, "PUT /s/registrations/d/register HTTP/1.1\r\nHost: l\r\n"
                  "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "PUT /s/registrations/d/register q= len=5 "
                           "body=hello peer=ok");
  client_send(&c, "GET /s/op HTTP/1.1\r\nHost: l\r\nContent-Length: 2\r\n"
                  "Content-Type: application/json; charset=utf-8\r\n\r\n{}");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "GET /s/op q= len=2 body={} peer=ok");
  /* The body was consumed: a third request on the socket still parses. */
  client_send(&c, "GET /third HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "GET /third q= len=0 body= peer=ok");
  ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
  ck_assert_int_eq(client_read(&c, &r), -1); /* server closed */
  client_close(&c);
}
END_TEST

START_TEST(t_tls_pipelined_and_split)
{
  struct client c;
  client_open(&c);
  client_send(&c, "GET /one HTTP/1.1\r\nHost: l\r\nContent-Length: 2\r\n\r\n{}"
                  "GET /delay?ms=50 HTTP/1.1\r\nHost: l\r\n\r\n"
                  "GET /three HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "GET /one q= len=2 body={} peer=ok");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "late"); /* order kept across an async answer */
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "GET /three q= len=0 body= peer=ok");
  /* Head and body split over several TLS records. */
  client_send(&c, "PUT /split HTTP/1.1\r\nHo");
  sleep_ms(30);
  client_send(&c, "st: l\r\nContent-Length: 6\r\n\r");
  sleep_ms(30);
  client_send(&c, "\nabc");
  sleep_ms(30);
  client_send(&c, "def");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "PUT /split q= len=6 body=abcdef peer=ok");
  client_close(&c);
}
END_TEST

/* More pipelined requests than one pass serves, with responses large
 * enough to fill the socket: all answered, in order. */
START_TEST(t_tls_pipeline_burst)
{
  struct client c;
  client_open(&c);
  enum { N = 100 };
  static char burst[N * 64];
  size_t o = 0;
  for (int i = 0; i < N; i++)
    o += (size_t)snprintf(burst + o, sizeof burst - o,
                          "GET /big?%d HTTP/1.1\r\nHost: l\r\n\r\n", i);
  client_send(&c, burst);
  for (int i = 0; i < N; i++) {
    struct response r;
    ck_assert_int_eq(client_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char want[16];
    snprintf(want, sizeof want, "%d", i);
    ck_assert_uint_eq(r.body_len, 8192 + strlen(want));
    ck_assert_str_eq(r.body + 8192, want);
  }
  client_close(&c);
  ck_assert_int_eq(atomic_load(&g_handler_calls), N);
}
END_TEST

START_TEST(t_tls_answer_from_other_thread)
{
  struct client c;
  client_open(&c);
  double t0 = now_ms();
  client_send(&c, "GET /delay?ms=200 HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "late");
  ck_assert_double_ge(now_ms() - t0, 190.0);
  client_send(&c, "GET /after HTTP/1.1\r\nHost: l\r\n\r\n");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "GET /after q= len=0 body= peer=ok");
  client_close(&c);
}
END_TEST

/* A request that arrives while the previous one is with its handler
 * raises its socket edge while the connection is not reading: it must
 * still be served once the first answer is out (the stream registers
 * its socket edge-triggered, so resuming has to read by itself). */
START_TEST(t_tls_request_arriving_while_busy)
{
  struct client c;
  client_open(&c);
  client_send(&c, "GET /delay?ms=150 HTTP/1.1\r\nHost: l\r\n\r\n");
  sleep_ms(50); /* the first is in flight now */
  client_send(&c, "GET /second HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "late");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "GET /second q= len=0 body= peer=ok");
  client_close(&c);
}
END_TEST

START_TEST(t_tls_client_leaves_before_answer)
{
  for (int i = 0; i < 4; i++) {
    struct client c;
    client_open(&c);
    client_send(&c, "GET /delay?ms=150 HTTP/1.1\r\nHost: l\r\n\r\n");
    client_close(&c);
  }
  sleep_ms(400); /* the answers arrive for connections that are gone */
  join_delayed();
  struct client c;
  client_open(&c);
  client_send(&c, "GET /alive HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "GET /alive q= len=0 body= peer=ok");
  client_close(&c);
  ck_assert_int_eq(atomic_load(&g_handler_calls), 5);
}
END_TEST

START_TEST(t_tls_server_errors)
{
  static const struct {
    const char *req;
    int status;
  } cases[] = {
      {"PUT / HTTP/1.1\r\nHost: l\r\nContent-Length: 1025\r\n\r\n", 413},
      {"GET / HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"GET / HTTP/3.0\r\nHost: l\r\n\r\n", 505},
      {"GET /\x01 HTTP/1.1\r\nHost: l\r\n\r\n", 400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct client c;
    client_open(&c);
    client_send(&c, cases[i].req);
    struct response r;
    ck_assert_int_eq(client_read(&c, &r), 0);
    ck_assert_int_eq(r.status, cases[i].status);
    char want[64];
    snprintf(want, sizeof want, "{\"errorCode\":%d,", cases[i].status * 1000);
    ck_assert_msg(strncmp(r.body, want, strlen(want)) == 0, "%s", r.body);
    /* the DPS error answer every other error uses (net/wire_error.h) */
    ck_assert_ptr_nonnull(strstr(r.body, "\"trackingId\":\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"timestampUtc\":\""));
    snprintf(want, sizeof want, "x-ms-error-code: %d\r\n",
             cases[i].status * 1000);
    ck_assert_msg(strstr(r.head, want) != NULL, "%s", r.head);
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: application/json; "
                                         "charset=utf-8\r\n"));
    ck_assert_int_eq(client_read(&c, &r), -1);
    client_close(&c);
  }
  ck_assert_int_eq(atomic_load(&g_handler_calls), 0);
}
END_TEST

/* Oversized head: 431 without waiting for the rest. */
START_TEST(t_tls_header_too_large)
{
  struct client c;
  client_open(&c);
  char big[20000];
  int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: l\r\nX-Big: ");
  memset(big + n, 'b', sizeof big - (size_t)n - 1);
  big[sizeof big - 1] = '\0';
  client_send(&c, big);
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_int_eq(r.status, 431);
  client_close(&c);
}
END_TEST

static void make_client_cert(const char *cert_path, const char *key_path)
{
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"device-7", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_set_pubkey(x, key);
  ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
  FILE *f = fopen(cert_path, "w");
  PEM_write_X509(f, x);
  fclose(f);
  f = fopen(key_path, "w");
  PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

START_TEST(t_tls_client_certificate)
{
  char cert[300], key[300];
  snprintf(cert, sizeof cert, "%s/dev.pem", g_dir);
  snprintf(key, sizeof key, "%s/dev.key", g_dir);
  make_client_cert(cert, key);
  struct client c;
  client_open_with(&c, cert, key);
  client_send(&c, "GET /cert HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_int_eq(r.status, 200);
  /* The PEM we got back is the certificate we sent. */
  BIO *b = BIO_new_mem_buf(r.body, (int)r.body_len);
  X509 *got = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  ck_assert_ptr_nonnull(got);
  FILE *f = fopen(cert, "r");
  X509 *sent = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  ck_assert_int_eq(X509_cmp(got, sent), 0);
  X509_free(got);
  X509_free(sent);
  client_close(&c);

  client_open(&c); /* and no certificate: none */
  client_send(&c, "GET /cert HTTP/1.1\r\nHost: l\r\n\r\n");
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_str_eq(r.body, "none");
  client_close(&c);
}
END_TEST

struct stop_client {
  int status;
  int keep_alive;
};

static void *stop_client_main(void *arg)
{
  struct stop_client *sc = arg;
  struct client c;
  client_open(&c);
  client_send(&c, "GET /delay?ms=400 HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  sc->status = client_read(&c, &r) == 0 ? r.status : -1;
  sc->keep_alive = strstr(r.head, "keep-alive") != NULL;
  client_close(&c);
  return NULL;
}

START_TEST(t_stop_waits_for_in_flight)
{
  struct stop_client sc = {0};
  pthread_t t;
  int port = http_server_port(g_srv);
  ck_assert_int_eq(pthread_create(&t, NULL, stop_client_main, &sc), 0);
  for (int i = 0; i < 500 && atomic_load(&g_handler_calls) == 0; i++)
    sleep_ms(5);
  ck_assert_int_eq(atomic_load(&g_handler_calls), 1);
  double t0 = now_ms();
  http_server_stop(g_srv, 5000);
  double waited = now_ms() - t0;
  g_srv = NULL;
  pthread_join(t, NULL);
  ck_assert_int_eq(sc.status, 200);
  ck_assert_int_eq(sc.keep_alive, 0); /* stopping: Connection: close */
  ck_assert_double_ge(waited, 250.0);
  ck_assert_double_lt(waited, 4000.0);
  ck_assert_int_lt(tcp_connect(port), 0); /* no longer listening */
}
END_TEST

struct stopper {
  struct http_server *srv;
  double took_ms;
};

static void *stopper_main(void *arg)
{
  struct stopper *st = arg;
  double t0 = now_ms();
  http_server_stop(st->srv, 3000);
  st->took_ms = now_ms() - t0;
  return NULL;
}

/* Requests that arrived before the stop but were not read yet (the loop
 * was busy) are answered, with Connection: close, not dropped. */
START_TEST(t_stop_answers_requests_already_sent)
{
  enum { N = 20 };
  http_server_stop(g_srv, 1000); /* one worker, so one loop can be held */
  SSL_CTX_free(g_server_ctx);
  start_server(1);
  static struct client cs[N], blocker;
  struct response r;
  for (int i = 0; i < N; i++) { /* handshaken, idle keep-alive */
    client_open(&cs[i]);
    client_send(&cs[i], "GET /warm HTTP/1.1\r\nHost: l\r\n\r\n");
    ck_assert_int_eq(client_read(&cs[i], &r), 0);
  }
  client_open(&blocker);
  client_send(&blocker, "GET /block HTTP/1.1\r\nHost: l\r\n\r\n");
  sleep_ms(100); /* the loop sleeps in the handler */
  struct stopper st = {.srv = g_srv};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, stopper_main, &st), 0);
  sleep_ms(50); /* the stop is queued before the requests come */
  for (int i = 0; i < N; i++)
    client_send(&cs[i], "GET /late HTTP/1.1\r\nHost: l\r\n\r\n");
  int answered = 0;
  for (int i = 0; i < N; i++) {
    if (client_read(&cs[i], &r) == 0 && r.status == 200 &&
        strstr(r.head, "Connection: close\r\n"))
      answered++;
    client_close(&cs[i]);
  }
  ck_assert_int_eq(client_read(&blocker, &r), 0);
  client_close(&blocker);
  pthread_join(t, NULL);
  g_srv = NULL;
  ck_assert_int_eq(answered, N);
  ck_assert_double_lt(st.took_ms, 2500.0);
}
END_TEST

/* A loop held by a handler shows in http_server_stall_ms (what the
 * service manager's watchdog asks); once it turns again it is 0. */
START_TEST(t_stall_measured)
{
  sleep_ms(1200); /* every loop's heartbeat has run */
  ck_assert_int_lt(http_server_stall_ms(g_srv), 200);
  struct client blocker;
  struct response r;
  client_open(&blocker);
  client_send(&blocker, "GET /block?ms=2500 HTTP/1.1\r\nHost: l\r\n\r\n");
  sleep_ms(2200);
  long stalled = http_server_stall_ms(g_srv);
  ck_assert_msg(stalled >= 500, "stall %ld ms", stalled);
  ck_assert_int_eq(client_read(&blocker, &r), 0);
  client_close(&blocker);
  sleep_ms(1200);
  ck_assert_int_lt(http_server_stall_ms(g_srv), 200);
}
END_TEST

struct drain_reader {
  struct client *c;
  int complete; /* whole responses read before EOF */
  size_t leftover; /* bytes of a cut-off response */
};

static void *drain_reader_main(void *arg)
{
  struct drain_reader *d = arg;
  sleep_ms(500); /* stop has begun with our responses still unsent */
  struct response r;
  while (client_read(d->c, &r) == 0 && r.status == 200)
    d->complete++;
  d->leftover = d->c->len;
  return NULL;
}

/* Answers already given but not yet flushed when stop begins (a client
 * reading slowly, or an answer that arrives in the same wake-up as the
 * stop) are delivered, not cut off. */
START_TEST(t_stop_flushes_answered)
{
  struct client c;
  memset(&c, 0, sizeof c);
  c.ctx = SSL_CTX_new(TLS_client_method());
  ck_assert_ptr_nonnull(c.ctx);
  c.fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 8192; /* so our answers back up in the server */
  setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct timeval tv = {10, 0};
  setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)http_server_port(g_srv));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(c.fd, (struct sockaddr *)&sa, sizeof sa), 0);
  c.ssl = SSL_new(c.ctx);
  SSL_set_fd(c.ssl, c.fd);
  ck_assert_int_eq(SSL_connect(c.ssl), 1);
  enum { N = 1000 };
  static char burst[N * 64];
  size_t o = 0;
  for (int i = 0; i < N; i++)
    o += (size_t)snprintf(burst + o, sizeof burst - o,
                          "GET /big?%d HTTP/1.1\r\nHost: l\r\n\r\n", i);
  client_send(&c, burst);
  int calls = -1;
  for (int i = 0; i < 100 && atomic_load(&g_handler_calls) != calls; i++) {
    calls = atomic_load(&g_handler_calls);
    sleep_ms(100); /* until the server stops answering: output backed up */
  }
  ck_assert_int_gt(calls, 0);
  ck_assert_int_lt(calls, N);
  struct drain_reader d = {&c, 0, 0};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, drain_reader_main, &d), 0);
  http_server_stop(g_srv, 5000);
  g_srv = NULL;
  pthread_join(t, NULL);
  int answered = atomic_load(&g_handler_calls);
  ck_assert_int_eq(d.complete, answered);
  ck_assert_uint_eq(d.leftover, 0);
  client_close(&c);
}
END_TEST

/* Grace runs out: stop returns, the late answer frees the orphan. */
START_TEST(t_stop_grace_expires)
{
  struct client c;
  client_open(&c);
  client_send(&c, "GET /delay?ms=600 HTTP/1.1\r\nHost: l\r\n\r\n");
  for (int i = 0; i < 500 && atomic_load(&g_handler_calls) == 0; i++)
    sleep_ms(5);
  double t0 = now_ms();
  http_server_stop(g_srv, 100);
  double waited = now_ms() - t0;
  g_srv = NULL;
  ck_assert_double_lt(waited, 500.0);
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), -1); /* closed without an answer */
  client_close(&c);
  join_delayed(); /* http_respond after stop: must not crash or leak */
}
END_TEST

/* An answer given inside a wake batch (as the store writer answers a
 * commit's registrations) defers its loop's wake-up to the batch's end.
 * The server stopping in between must neither be woken through a
 * closed eventfd nor have its memory freed under the deferred wake-up,
 * which frees it instead (ASan and LSan in the sanitizer build). */
START_TEST(t_deferred_wake_outlives_stop)
{
  atomic_store(&g_held, NULL);
  struct client c;
  client_open(&c);
  client_send(&c, "GET /hold HTTP/1.1\r\nHost: l\r\n\r\n");
  for (int i = 0; i < 1000 && !atomic_load(&g_held); i++)
    sleep_ms(5);
  struct http_exchange *ex = atomic_load(&g_held);
  ck_assert_ptr_nonnull(ex);
  wake_batch_begin();
  http_respond(ex, 200, "text/plain", "held", 4, NULL, 0);
  http_server_stop(g_srv, 0);
  g_srv = NULL;
  wake_batch_end();
  client_close(&c);
}
END_TEST

START_TEST(t_metrics_counted)
{
  struct client c;
  client_open(&c);
  client_send(&c, "GET /m HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  client_close(&c);
  int found = 0;
  for (int i = 0; i < 100 && !found; i++) {
    char *text = metrics_render();
    found = text && strstr(text, "provd_http_requests_total{code=\"200\"}") &&
            strstr(text, "provd_tls_handshakes_total");
    free(text);
    if (!found)
      sleep_ms(10);
  }
  ck_assert(found);
}
END_TEST

START_TEST(t_start_rejects_busy_port)
{
  struct http_server_opts o = {0};
  o.host = "127.0.0.1";
  o.port = http_server_port(g_srv);
  o.workers = 1;
  o.handler = handler;
  struct http_server *other = NULL;
  struct provd_err err = {0};
  ck_assert_int_eq(http_server_start(&o, &other, &err), -1);
  ck_assert_ptr_null(other);
  ck_assert_str_eq(err.code, "HTTP_BIND");
}
END_TEST

/* ---- deadlines: a client dripping bytes must not hold a connection ----- */

/* A second server with a short idle timeout (the request deadline is the
 * shorter of it minus 1 s and 10 s); ssl NULL for plain HTTP. */
static struct http_server *start_short_server(SSL_CTX *ssl, int idle_s)
{
  struct http_server_opts o = {0};
  o.host = "127.0.0.1";
  o.workers = 1;
  o.ssl = ssl;
  o.idle_timeout_s = idle_s;
  o.handler = handler;
  struct provd_err err = {0};
  struct http_server *srv = NULL;
  ck_assert_msg(http_server_start(&o, &srv, &err) == 0, "%s", err.msg);
  return srv;
}

/* 1 once the server has closed its side (EOF or reset), else 0. */
static int peer_closed(int fd)
{
  char b[512];
  for (;;) {
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (n > 0)
      continue;
    if (n == 0)
      return 1;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
  }
}

/* Sends prefix, then one byte every 200 ms (always well inside the idle
 * timeout) until the server closes; the ms that took, or -1 if the
 * connection is still open after max_ms. */
static double drip_until_closed(int port, const char *prefix, size_t len,
                                int max_ms)
{
  int fd = tcp_connect(port);
  ck_assert_int_ge(fd, 0);
  double t0 = now_ms(), took = -1;
  ck_assert_int_eq(send(fd, prefix, len, MSG_NOSIGNAL), (ssize_t)len);
  while (now_ms() - t0 < max_ms) {
    sleep_ms(200);
    if (peer_closed(fd) || send(fd, "a", 1, MSG_NOSIGNAL) != 1) {
      took = now_ms() - t0;
      break;
    }
  }
  close(fd);
  return took;
}

START_TEST(t_slow_request_deadline)
{
  struct http_server *srv = start_short_server(NULL, 3);
  int port = http_server_port(srv);
  static const char *prefixes[] = {
      "GET / HTTP/1.1\r\nHost: l\r\nX-Drip: ",             /* head */
      "PUT / HTTP/1.1\r\nHost: l\r\nContent-Length: 900\r\n\r\n", /* body */
  };
  for (size_t i = 0; i < 2; i++) {
    double took = drip_until_closed(port, prefixes[i], strlen(prefixes[i]),
                                    9000);
    ck_assert_msg(took >= 1500 && took < 5000, "case %zu: %.0f ms", i, took);
  }
  /* A request that arrives in time is still served. */
  int fd = tcp_connect(port);
  static const char req[] = "GET /ok HTTP/1.1\r\nHost: l\r\n"
                            "Connection: close\r\n\r\n";
  ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL),
                   (ssize_t)sizeof req - 1);
  char buf[512];
  ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  ck_assert_int_gt(n, 12);
  ck_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0);
  close(fd);
  http_server_stop(srv, 1000);
}
END_TEST

/* Reads what the server sends until it closes (at most max_ms); the
 * status of the first response, or -1 without one. */
static int status_before_close(int fd, int max_ms)
{
  struct timeval tv = {.tv_sec = max_ms / 1000,
                       .tv_usec = (max_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[1024];
  size_t got = 0;
  ssize_t n;
  while (got < sizeof buf - 1 &&
         (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
    got += (size_t)n;
  buf[got] = '\0';
  int status = -1;
  return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : -1;
}

/* A request that began but stopped short (body under its Content-Length,
 * an unfinished head) is answered 408 when the deadline passes, not
 * dropped without a word. */
START_TEST(t_incomplete_request_answered_408)
{
  struct http_server *srv = start_short_server(NULL, 3);
  static const char *partial[] = {
      "PUT / HTTP/1.1\r\nHost: l\r\nContent-Length: 10\r\n\r\nabc",
      "GET / HTTP/1.1\r\nHost: l\r\n",
  };
  for (size_t i = 0; i < 2; i++) {
    int fd = tcp_connect(http_server_port(srv));
    ck_assert_int_eq(send(fd, partial[i], strlen(partial[i]), MSG_NOSIGNAL),
                     (ssize_t)strlen(partial[i]));
    double t0 = now_ms();
    ck_assert_int_eq(status_before_close(fd, 6000), 408);
    double took = now_ms() - t0;
    ck_assert_msg(took >= 1500 && took < 5000, "case %zu: %.0f ms", i, took);
    close(fd);
  }
  /* A connection that sent nothing is closed without an answer. */
  int fd = tcp_connect(http_server_port(srv));
  ck_assert_int_eq(status_before_close(fd, 6000), -1);
  close(fd);
  http_server_stop(srv, 1000);
  ck_assert_int_eq(atomic_load(&g_handler_calls), 0);
}
END_TEST

/* Bare LF line ends are refused at once (400), not after the deadline. */
START_TEST(t_bare_lf_refused_at_once)
{
  struct http_server *srv = start_short_server(NULL, 30);
  static const char *bare[] = {
      "GET / HTTP/1.1\nHost: l\n\n",
      "GET / HTTP/1.1\r\nHost: l\n\r\n",
  };
  for (size_t i = 0; i < 2; i++) {
    int fd = tcp_connect(http_server_port(srv));
    ck_assert_int_eq(send(fd, bare[i], strlen(bare[i]), MSG_NOSIGNAL),
                     (ssize_t)strlen(bare[i]));
    double t0 = now_ms();
    ck_assert_int_eq(status_before_close(fd, 5000), 400);
    ck_assert_msg(now_ms() - t0 < 1000, "case %zu: %.0f ms", i,
                  now_ms() - t0);
    close(fd);
  }
  http_server_stop(srv, 1000);
  ck_assert_int_eq(atomic_load(&g_handler_calls), 0);
}
END_TEST

/* ---- limits: floods keep the listener usable ---------------------------- */

/* A TLS server of its own (g_server_ctx) that clients reach through
 * g_port_override; stop_limited_server undoes both. */
static struct http_server *start_limited_server(int workers,
                                                size_t max_conns,
                                                size_t max_handshakes,
                                                size_t per_source)
{
  struct provd_err err = {0};
  g_server_ctx = tls_server_ctx_new(g_paths.cert, g_paths.key, NULL, &err);
  ck_assert_msg(g_server_ctx != NULL, "%s", err.msg);
  struct http_server_opts o = {0};
  o.host = "127.0.0.1";
  o.workers = workers;
  o.ssl = g_server_ctx;
  o.idle_timeout_s = 30;
  o.max_connections = max_conns;
  o.max_handshakes = max_handshakes;
  o.max_connections_per_source = per_source;
  o.handler = handler;
  struct http_server *srv = NULL;
  ck_assert_msg(http_server_start(&o, &srv, &err) == 0, "%s", err.msg);
  g_port_override = http_server_port(srv);
  return srv;
}

static void stop_limited_server(struct http_server *srv)
{
  g_port_override = 0;
  http_server_stop(srv, 1000);
  SSL_CTX_free(g_server_ctx);
  g_server_ctx = NULL;
}

static int count_closed(const int *fds, int n)
{
  int closed = 0;
  for (int i = 0; i < n; i++)
    closed += peer_closed(fds[i]);
  return closed;
}

/* Connections that never finish their handshake: at max_handshakes a
 * newcomer is refused while those under way are young; once they have
 * stalled (no whole ClientHello within a second) the oldest makes room,
 * and a real client still gets served. */
START_TEST(t_handshake_backlog_evicts_stalled)
{
  struct http_server *srv = start_limited_server(1, 0, 4, 0);
  enum { FLOOD = 10 };
  int fds[FLOOD];
  static const char partial_hello[] = "\x16\x03\x01\x00\xf4\x01\x00";
  for (int i = 0; i < FLOOD; i++) {
    fds[i] = tcp_connect(g_port_override);
    ck_assert_int_ge(fds[i], 0);
    send(fds[i], partial_hello, sizeof partial_hello - 1, MSG_NOSIGNAL);
    sleep_ms(20); /* accepted in this order */
  }
  sleep_ms(200);
  ck_assert_int_eq(count_closed(fds, 4), 0);                  /* under way */
  ck_assert_int_eq(count_closed(fds + 4, FLOOD - 4), FLOOD - 4); /* refused */
  sleep_ms(1000); /* the four under way have stalled */
  struct client c;
  client_open(&c); /* the oldest stalled one makes room */
  client_send(&c, "GET /ok HTTP/1.1\r\nHost: l\r\n\r\n");
  struct response r;
  ck_assert_int_eq(client_read(&c, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(count_closed(fds, 1), 1);
  ck_assert_int_eq(count_closed(fds + 1, 3), 0);
  client_close(&c);
  for (int i = 0; i < FLOOD; i++)
    close(fds[i]);
  stop_limited_server(srv);
}
END_TEST

/* At max_connections the longest-open idle keep-alive connection makes
 * room; connections in the middle of a request are never chosen. */
START_TEST(t_max_connections_evicts_idle)
{
  struct http_server *srv = start_limited_server(1, 4, 0, 0);
  static struct client cs[5];
  struct response r;
  client_open(&cs[0]); /* idle after one request: the victim */
  client_send(&cs[0], "GET /ok HTTP/1.1\r\nHost: l\r\n\r\n");
  ck_assert_int_eq(client_read(&cs[0], &r), 0);
  for (int i = 1; i < 4; i++) { /* busy: half a request each */
    client_open(&cs[i]);
    client_send(&cs[i], "GET /ok HTTP/1.1\r\nHost: l\r\n");
  }
  sleep_ms(100);
  client_open(&cs[4]);
  client_send(&cs[4], "GET /ok HTTP/1.1\r\nHost: l\r\n\r\n");
  ck_assert_int_eq(client_read(&cs[4], &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(client_read(&cs[0], &r), -1); /* closed to make room */
  for (int i = 1; i < 4; i++) { /* the busy ones finish their requests */
    client_send(&cs[i], "\r\n");
    ck_assert_int_eq(client_read(&cs[i], &r), 0);
    ck_assert_int_eq(r.status, 200);
  }
  for (int i = 0; i < 5; i++)
    client_close(&cs[i]);
  stop_limited_server(srv);
}
END_TEST

/* One address may hold at most max_connections_per_source connections;
 * a closed one frees its place. */
START_TEST(t_per_source_limit)
{
  struct http_server *srv = start_limited_server(2, 0, 0, 3);
  static struct client cs[3];
  struct response r;
  for (int i = 0; i < 3; i++) {
    client_open(&cs[i]);
    client_send(&cs[i], "GET /ok HTTP/1.1\r\nHost: l\r\n\r\n");
    ck_assert_int_eq(client_read(&cs[i], &r), 0);
  }
  int fd = tcp_connect(g_port_override); /* the fourth: closed at once */
  ck_assert_int_ge(fd, 0);
  sleep_ms(200);
  ck_assert_int_eq(peer_closed(fd), 1);
  close(fd);
  client_close(&cs[0]);
  sleep_ms(200);
  client_open(&cs[0]); /* its place is free again */
  client_send(&cs[0], "GET /ok HTTP/1.1\r\nHost: l\r\n\r\n");
  ck_assert_int_eq(client_read(&cs[0], &r), 0);
  ck_assert_int_eq(r.status, 200);
  for (int i = 0; i < 3; i++)
    client_close(&cs[i]);
  stop_limited_server(srv);
}
END_TEST

/* A TLS record header, then its payload one byte at a time: OpenSSL waits
 * for the whole record, the handshake never ends. */
START_TEST(t_slow_handshake_deadline)
{
  struct provd_err err = {0};
  SSL_CTX *ctx = tls_server_ctx_new(g_paths.cert, g_paths.key, NULL, &err);
  ck_assert_msg(ctx != NULL, "%s", err.msg);
  struct http_server *srv = start_short_server(ctx, 3);
  static const char record[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc";
  double took = drip_until_closed(http_server_port(srv), record,
                                  sizeof record - 1, 9000);
  ck_assert_msg(took >= 1500 && took < 5000, "%.0f ms", took);
  http_server_stop(srv, 1000);
  SSL_CTX_free(ctx);
}
END_TEST

/* After an error answer the server lingers, reading and discarding; a
 * client that keeps sending must not keep it lingering forever. */
START_TEST(t_linger_ends)
{
  struct http_server *srv = start_short_server(NULL, 30);
  int fd = tcp_connect(http_server_port(srv));
  static const char bad[] = "GET / HTTP/1.1\r\nHost : l\r\n\r\n";
  ck_assert_int_eq(send(fd, bad, sizeof bad - 1, MSG_NOSIGNAL),
                   (ssize_t)sizeof bad - 1);
  char buf[1024];
  size_t got = 0;
  ssize_t n;
  while ((n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
    got += (size_t)n;
  ck_assert_int_eq(n, 0); /* the server shut its write side */
  buf[got] = '\0';
  ck_assert(strncmp(buf, "HTTP/1.1 400", 12) == 0);
  double t0 = now_ms(), took = -1;
  while (now_ms() - t0 < 9000) {
    sleep_ms(200);
    if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) { /* reset: fully closed */
      took = now_ms() - t0;
      break;
    }
  }
  close(fd);
  ck_assert_msg(took >= 0 && took < 5000, "%.0f ms", took);
  http_server_stop(srv, 1000);
}
END_TEST

static void make_pki(void)
{
  snprintf(g_dir, sizeof g_dir, "/tmp/provd-test-http-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_dir));
  char data[300];
  snprintf(data, sizeof data, "%s/data", g_dir);
  struct provd_err err = {0};
  ck_assert_msg(pki_init_data_dir(data, NULL, NULL, &g_paths, &err) == 0,
                "%s", err.msg);
}

static void remove_pki(void)
{
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_dir);
}

static Suite *http_suite(void)
{
  Suite *s = suite_create("http");
  TCase *p = tcase_create("parser");
  tcase_add_test(p, t_parse_get);
  tcase_add_test(p, t_parse_put_body);
  tcase_add_test(p, t_parse_get_with_body);
  tcase_add_test(p, t_parse_pipelined);
  tcase_add_test(p, t_parse_split);
  tcase_add_test(p, t_parse_oversize_head);
  tcase_add_test(p, t_parse_too_many_headers);
  tcase_add_test(p, t_parse_oversize_body);
  tcase_add_test(p, t_parse_bad_request_line);
  tcase_add_test(p, t_parse_bad_fields);
  tcase_add_test(p, t_parse_same_length_twice);
  tcase_add_test(p, t_parse_transfer_encoding);
  tcase_add_test(p, t_parse_versions);
  tcase_add_test(p, t_parse_expect);
  tcase_add_test(p, t_query_and_headers);
  suite_add_tcase(s, p);

  TCase *l = tcase_create("live");
  tcase_add_unchecked_fixture(l, make_pki, remove_pki);
  tcase_add_checked_fixture(l, setup_server, teardown_server);
  tcase_set_timeout(l, 30);
  tcase_add_test(l, t_tls_get);
  tcase_add_test(l, t_tls_keep_alive);
  tcase_add_test(l, t_tls_pipelined_and_split);
  tcase_add_test(l, t_tls_pipeline_burst);
  tcase_add_test(l, t_tls_answer_from_other_thread);
  tcase_add_test(l, t_tls_request_arriving_while_busy);
  tcase_add_test(l, t_tls_client_leaves_before_answer);
  tcase_add_test(l, t_tls_server_errors);
  tcase_add_test(l, t_tls_header_too_large);
  tcase_add_test(l, t_tls_client_certificate);
  tcase_add_test(l, t_stop_waits_for_in_flight);
  tcase_add_test(l, t_stop_grace_expires);
  tcase_add_test(l, t_deferred_wake_outlives_stop);
  tcase_add_test(l, t_stop_flushes_answered);
  tcase_add_test(l, t_stop_answers_requests_already_sent);
  tcase_add_test(l, t_metrics_counted);
  tcase_add_test(l, t_stall_measured);
  tcase_add_test(l, t_start_rejects_busy_port);
  suite_add_tcase(s, l);

  TCase *d = tcase_create("deadlines");
  tcase_add_unchecked_fixture(d, make_pki, remove_pki);
  tcase_set_timeout(d, 60);
  tcase_add_test(d, t_slow_request_deadline);
  tcase_add_test(d, t_incomplete_request_answered_408);
  tcase_add_test(d, t_bare_lf_refused_at_once);
  tcase_add_test(d, t_handshake_backlog_evicts_stalled);
  tcase_add_test(d, t_max_connections_evicts_idle);
  tcase_add_test(d, t_per_source_limit);
  tcase_add_test(d, t_slow_handshake_deadline);
  tcase_add_test(d, t_linger_ends);
  suite_add_tcase(s, d);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(http_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
