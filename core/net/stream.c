#include "net/stream.h"

#include "net/sock_read.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define MAX_PEER_CHAIN_CERTS 16
/* Bytes read in one pass before other connections get their turn. */
#define READ_PASS_BYTES (64 * 1024)
#define READ_CHUNK 16384
/* One TLS record at most per write. */
#define WRITE_CHUNK 16384

struct stream {
  struct sock_read sock; /* the socket (sock.fd), read also through the
                            SSL's BIO */
  SSL *ssl;        /* NULL: plain TCP */
  struct event *io; /* EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED */
  struct event *kick; /* our own wake-ups: no kernel edge behind them */
  struct event *idle;
  struct evbuffer *in, *out;
  stream_fn on_read, on_drained;
  stream_event_fn on_event;
  void *arg;
  int idle_timeout_s;
  unsigned long tls_error;
  int busy;           /* on_io frames on the stack */
  bool dead;          /* freed inside a callback: destroy on unwind */
  bool handshaken;    /* TLS done, or plain */
  bool reading;       /* the owner wants input */
  bool read_triggered;
  bool read_blocked;  /* SSL_read needs the socket writable */
  bool write_blocked; /* SSL_write needs the socket readable */
  bool closed;        /* EOF or error reported: no more I/O */
};

static void destroy(struct stream *s)
{
  if (s->io)
    event_free(s->io);
  if (s->kick)
    event_free(s->kick);
  if (s->idle)
    event_free(s->idle);
  if (s->ssl)
    SSL_free(s->ssl);
  if (s->sock.fd >= 0)
    close(s->sock.fd);
  if (s->in)
    evbuffer_free(s->in);
  if (s->out)
    evbuffer_free(s->out);
  free(s);
}

static bool idle_wanted(const struct stream *s)
{
  return !s->closed &&
         (s->reading || !s->handshaken || evbuffer_get_length(s->out) > 0);
}

/* The idle timeout counts from the last progress while the stream waits
 * for the peer (reading, handshaking or flushing). */
static void idle_rearm(struct stream *s)
{
  if (!idle_wanted(s) || s->idle_timeout_s <= 0) {
    event_del(s->idle);
    return;
  }
  struct timeval tv = {s->idle_timeout_s, 0};
  event_add(s->idle, &tv);
}

/* Takes the OpenSSL error of a failed call; the queue is per thread and
 * must be empty for the next connection's SSL_get_error. */
static void note_tls_error(struct stream *s)
{
  unsigned long e = ERR_peek_last_error();
  if (e && !s->tls_error)
    s->tls_error = e;
  ERR_clear_error();
}

enum io_result { IO_PROGRESS, IO_WOULD_BLOCK, IO_EOF, IO_ERROR };

/* Classifies a failed SSL call (ret <= 0). */
static enum io_result tls_result(struct stream *s, int ret, bool reading)
{
  int e = SSL_get_error(s->ssl, ret);
  switch (e) {
  case SSL_ERROR_WANT_READ:
    if (!reading)
      s->write_blocked = true;
    return IO_WOULD_BLOCK;
  case SSL_ERROR_WANT_WRITE:
    if (reading)
      s->read_blocked = true;
    return IO_WOULD_BLOCK;
  case SSL_ERROR_ZERO_RETURN:
    return IO_EOF;
  case SSL_ERROR_SYSCALL:
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return IO_WOULD_BLOCK;
    note_tls_error(s);
    return ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET)
               ? IO_EOF
               : IO_ERROR;
  default:
    note_tls_error(s);
    return IO_ERROR;
  }
}

static enum io_result sock_result(ssize_t n)
{
  if (n == 0)
    return IO_EOF;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    return IO_WOULD_BLOCK;
  return errno == ECONNRESET ? IO_EOF : IO_ERROR;
}

static enum io_result handshake(struct stream *s)
{
  int r = SSL_do_handshake(s->ssl);
  if (r == 1) {
    s->handshaken = true;
    return IO_PROGRESS;
  }
  return tls_result(s, r, true);
}

/* Moves what the socket has into the input, up to one pass's budget.
 * *got: bytes read.  Reads land on the stack and only what arrived is
 * added: space reserved in the evbuffer would be a 32 KiB chain (libevent
 * rounds 16 KiB plus its header up to a power of two) that an idle
 * connection kept, empty, until its next packet. */
static enum io_result fill_input(struct stream *s, size_t *got)
{
  unsigned char chunk[READ_CHUNK];
  *got = 0;
  s->read_blocked = false;
  while (*got < READ_PASS_BYTES) {
    ssize_t n = s->ssl ? SSL_read(s->ssl, chunk, (int)sizeof chunk)
                       : sock_read(&s->sock, chunk, sizeof chunk);
    if (n <= 0)
      return s->ssl ? tls_result(s, (int)n, true) : sock_result(n);
    if (evbuffer_add(s->in, chunk, (size_t)n) != 0)
      return IO_ERROR;
    *got += (size_t)n;
  }
  return IO_PROGRESS; /* budget spent: more may be waiting */
}

/* Writes the output until it is empty or the socket is full. */
static enum io_result flush_output(struct stream *s, bool *drained)
{
  *drained = false;
  s->write_blocked = false;
  size_t len;
  while ((len = evbuffer_get_length(s->out)) > 0) {
    size_t n = len < WRITE_CHUNK ? len : WRITE_CHUNK;
    unsigned char *p = evbuffer_pullup(s->out, (ev_ssize_t)n);
    if (!p)
      return IO_ERROR;
    ssize_t w = s->ssl ? SSL_write(s->ssl, p, (int)n) : write(s->sock.fd, p, n);
    if (w <= 0)
      return s->ssl ? tls_result(s, (int)w, false) : sock_result(w);
    evbuffer_drain(s->out, (size_t)w);
    if (evbuffer_get_length(s->out) == 0)
      *drained = true;
  }
  return IO_PROGRESS;
}

static void report(struct stream *s, int what)
{
  if (!s->dead && s->on_event)
    s->on_event(s, what, s->arg);
}

/* Ends the stream's I/O after EOF or an error; the owner frees it. */
static void finish(struct stream *s, enum io_result r)
{
  s->closed = true;
  event_del(s->idle);
  report(s, r == IO_EOF ? STREAM_EOF : STREAM_ERROR);
}

static bool do_handshake_step(struct stream *s)
{
  enum io_result r = handshake(s);
  if (r == IO_WOULD_BLOCK)
    return false;
  if (r != IO_PROGRESS) {
    finish(s, r == IO_EOF ? IO_EOF : IO_ERROR);
    return false;
  }
  idle_rearm(s);
  report(s, STREAM_CONNECTED);
  return !s->dead && !s->closed;
}

static void do_write(struct stream *s)
{
  bool drained;
  enum io_result r = flush_output(s, &drained);
  if (r == IO_EOF || r == IO_ERROR) {
    finish(s, r);
    return;
  }
  if (drained) {
    idle_rearm(s);
    if (s->on_drained)
      s->on_drained(s, s->arg);
  }
}

static void do_read(struct stream *s)
{
  size_t got = 0;
  enum io_result r = fill_input(s, &got);
  bool triggered = s->read_triggered;
  s->read_triggered = false;
  if (r == IO_PROGRESS) /* budget spent: continue in the next pass */
    event_active(s->kick, EV_READ, 0);
  if (got)
    idle_rearm(s);
  if ((got || triggered) && evbuffer_get_length(s->in) > 0 && s->on_read)
    s->on_read(s, s->arg);
  if (!s->dead && !s->closed && (r == IO_EOF || r == IO_ERROR))
    finish(s, r);
}

static void step(struct stream *s, short what)
{
  s->busy++;
  if (!s->closed && !s->handshaken) {
    if (!do_handshake_step(s))
      goto out;
    /* Read-ahead may hold the request that came with the last flight. */
    what |= EV_READ;
  }
  if (!s->closed && !s->dead &&
      ((what & EV_WRITE) || (s->write_blocked && (what & EV_READ))))
    do_write(s);
  if (!s->closed && !s->dead && s->reading &&
      ((what & EV_READ) || s->read_triggered ||
       (s->read_blocked && (what & EV_WRITE))))
    do_read(s);
out:
  if (--s->busy == 0 && s->dead)
    destroy(s);
}

/* The kernel reported the socket. */
static void on_io(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  struct stream *s = arg;
  if (what & (EV_READ | EV_CLOSED))
    sock_read_edge(&s->sock, (what & EV_CLOSED) != 0);
  step(s, what);
}

/* One of our own wake-ups (what: the EV_READ or EV_WRITE it asked for). */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  step(arg, what);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  struct stream *s = arg;
  if (!idle_wanted(s))
    return;
  s->busy++;
  s->closed = true;
  report(s, STREAM_TIMEOUT);
  if (--s->busy == 0 && s->dead)
    destroy(s);
}

/* Output added: write it in this loop pass, after the caller has added
 * everything it is adding now. */
static void on_output_added(struct evbuffer *b,
                            const struct evbuffer_cb_info *info, void *arg)
{
  (void)b;
  struct stream *s = arg;
  if (info->n_added > 0 && !s->closed && !s->dead)
    event_active(s->kick, EV_WRITE, 0);
}

struct stream *stream_new(struct event_base *base, int fd, SSL_CTX *ctx)
{
  struct stream *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return NULL;
  }
  s->sock.fd = fd;
  s->handshaken = ctx == NULL;
  s->in = evbuffer_new();
  s->out = evbuffer_new();
  s->io = event_new(base, fd,
                    EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED, on_io,
                    s);
  s->kick = event_new(base, -1, 0, on_kick, s);
  s->idle = evtimer_new(base, on_idle, s);
  if (ctx && (s->ssl = SSL_new(ctx)) != NULL) {
    /* RELEASE_BUFFERS: an idle connection (a keep-alive HTTPS client, an
     * MQTT device between packets) holds no record buffers: about 10 KiB
     * less per idle connection (mqtt_idle.sh measured 26 KiB against 36). */
    SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
    /* A client that closes without close_notify has still said all. */
    SSL_set_options(s->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_set_read_ahead(s->ssl, 1);
    SSL_set_accept_state(s->ssl);
  }
  BIO *bio = s->ssl ? sock_read_bio_new(&s->sock) : NULL;
  if (bio)
    SSL_set_bio(s->ssl, bio, bio); /* the SSL owns it */
  if (!s->in || !s->out || !s->io || !s->kick || !s->idle ||
      (ctx && !s->ssl) || (s->ssl && !bio) ||
      !evbuffer_add_cb(s->out, on_output_added, s)) {
    destroy(s);
    return NULL;
  }
  return s;
}

int stream_start(struct stream *s, stream_fn on_read, stream_fn on_drained,
                 stream_event_fn on_event, void *arg, int idle_timeout_s)
{
  s->on_read = on_read;
  s->on_drained = on_drained;
  s->on_event = on_event;
  s->arg = arg;
  s->reading = true;
  s->idle_timeout_s = idle_timeout_s;
  idle_rearm(s);
  return event_add(s->io, NULL);
}

struct evbuffer *stream_input(struct stream *s) { return s->in; }
struct evbuffer *stream_output(struct stream *s) { return s->out; }
bool stream_hello_received(const struct stream *s)
{
  return !s->ssl || SSL_get_state(s->ssl) != TLS_ST_BEFORE;
}

SSL *stream_ssl(struct stream *s) { return s->ssl; }
unsigned long stream_tls_error(const struct stream *s) { return s->tls_error; }

void stream_set_reading(struct stream *s, bool on)
{
  if (s->reading == on)
    return;
  s->reading = on;
  /* Edge-triggered: bytes that arrived while off raise no new edge. */
  if (on && !s->closed)
    event_active(s->kick, EV_READ, 0);
  if (!s->closed)
    idle_rearm(s);
}

void stream_set_idle_timeout(struct stream *s, int seconds)
{
  s->idle_timeout_s = seconds;
  idle_rearm(s);
}

void stream_trigger_read(struct stream *s)
{
  if (s->closed)
    return;
  s->read_triggered = true;
  event_active(s->kick, EV_READ, 0);
}

bool stream_input_pending(struct stream *s)
{
  if (s->closed)
    return false;
  int kernel = 0;
  return evbuffer_get_length(s->in) > 0 ||
         (s->ssl && SSL_pending(s->ssl) > 0) ||
         (ioctl(s->sock.fd, FIONREAD, &kernel) == 0 && kernel > 0);
}

void stream_shutdown_write(struct stream *s)
{
  if (s->ssl && s->handshaken) {
    if (SSL_shutdown(s->ssl) < 0)
      ERR_clear_error(); /* best effort; the peer may be gone */
  }
  shutdown(s->sock.fd, SHUT_WR);
  sock_read_to_eof(&s->sock);
}

void stream_free(struct stream *s)
{
  if (!s)
    return;
  /* No callback after this returns: stop the events now, free later if
   * one of our callbacks is on the stack. */
  event_del(s->io);
  event_del(s->kick);
  event_del(s->idle);
  evbuffer_remove_cb(s->out, on_output_added, s);
  s->closed = true;
  if (s->busy > 0) {
    s->dead = true;
    return;
  }
  destroy(s);
}

STACK_OF(X509) *stream_peer_chain(struct stream *s)
{
  X509 *leaf = s->ssl ? SSL_get1_peer_certificate(s->ssl) : NULL;
  if (!leaf)
    return NULL;
  STACK_OF(X509) *out = sk_X509_new_null();
  if (!out || !sk_X509_push(out, leaf)) {
    X509_free(leaf);
    sk_X509_free(out);
    return NULL;
  }
  /* Server side: the chain does not include the leaf (skip it anyway
   * should a resumed session report it). */
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(s->ssl);
  int n = chain ? sk_X509_num(chain) : 0;
  for (int i = 0; i < n && i < MAX_PEER_CHAIN_CERTS; i++) {
    X509 *x = sk_X509_value(chain, i);
    if (X509_cmp(x, leaf) == 0)
      continue;
    if (!X509_up_ref(x)) {
      sk_X509_pop_free(out, X509_free);
      return NULL;
    }
    if (!sk_X509_push(out, x)) {
      X509_free(x); /* the reference just taken */
      sk_X509_pop_free(out, X509_free);
      return NULL;
    }
  }
  return out;
}

char *peer_chain_to_pem(STACK_OF(X509) *chain)
{
  char *pem = NULL;
  BIO *mem = chain && sk_X509_num(chain) > 0 ? BIO_new(BIO_s_mem()) : NULL;
  int ok = mem != NULL;
  for (int i = 0; ok && i < sk_X509_num(chain); i++)
    ok = PEM_write_bio_X509(mem, sk_X509_value(chain, i));
  char *data = NULL;
  long len = ok ? BIO_get_mem_data(mem, &data) : 0;
  if (len > 0 && (pem = malloc((size_t)len + 1))) {
    memcpy(pem, data, (size_t)len);
    pem[len] = '\0';
  }
  BIO_free(mem);
  return pem;
}
