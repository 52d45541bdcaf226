/* One accepted connection, TLS or plain, on one libevent loop.
 *
 * Why not bufferevent_openssl: it re-arms epoll on every handshake step
 * and every enable/disable, and reads each TLS record with two read()s
 * (it cannot use OpenSSL's read-ahead without stalling on bytes buffered
 * inside the SSL).  A stream registers its socket once, edge-triggered,
 * for its whole life, and reads with read-ahead until the kernel has no
 * more, without the read() that would only say EAGAIN (net/sock_read.h):
 * an HTTPS registration costs about 4 reads (the eventfd's included) and 2
 * epoll_ctl instead of 15 and 16.
 *
 * Callbacks run only from the loop, never from inside a stream_* call,
 * and a callback may free the stream it was called for. */
#ifndef PROVD_NET_STREAM_H
#define PROVD_NET_STREAM_H

#include <stdbool.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

struct stream;

enum stream_what {
  STREAM_CONNECTED = 1, /* TLS handshake done */
  STREAM_EOF = 2,       /* the peer closed (close_notify or not) */
  STREAM_ERROR = 4,     /* socket or TLS error; see stream_tls_error */
  STREAM_TIMEOUT = 8,   /* idle while reading or flushing */
};

/* on_read: new input (or stream_trigger_read); on_drained: the output
 * was written out completely; on_event: a stream_what. */
typedef void (*stream_fn)(struct stream *s, void *arg);
typedef void (*stream_event_fn)(struct stream *s, int what, void *arg);

/* Takes fd (closed by stream_free, also when this fails).  ctx NULL:
 * plain TCP; else a TLS server connection.  NULL when out of memory. */
struct stream *stream_new(struct event_base *base, int fd, SSL_CTX *ctx);

/* Sets the callbacks and starts: reading on, idle timeout (seconds). */
int stream_start(struct stream *s, stream_fn on_read, stream_fn on_drained,
                 stream_event_fn on_event, void *arg, int idle_timeout_s);

/* Borrowed buffers.  Bytes added to the output are written by the loop
 * in the same pass. */
struct evbuffer *stream_input(struct stream *s);
struct evbuffer *stream_output(struct stream *s);

/* Reading off leaves later bytes in the kernel (and the client waiting);
 * on again reads what arrived meanwhile. */
void stream_set_reading(struct stream *s, bool on);
void stream_set_idle_timeout(struct stream *s, int seconds);

/* Calls on_read in the next loop pass, whether or not bytes arrived. */
void stream_trigger_read(struct stream *s);

/* Whether bytes from the peer wait anywhere: unprocessed input, a
 * decrypted TLS record, or the socket's receive queue. */
bool stream_input_pending(struct stream *s);

/* Sends close_notify (TLS) and shuts the write side; reading goes on. */
void stream_shutdown_write(struct stream *s);

SSL *stream_ssl(struct stream *s); /* borrowed; NULL when plain */
/* Whether the client's whole ClientHello arrived and was taken in (the
 * server's costly half of the handshake is done); true when plain.  A
 * connection that sent half a ClientHello and stopped never gets here. */
bool stream_hello_received(const struct stream *s);
/* The client's certificate chain, leaf first, as the handshake parsed it
 * (each certificate up-referenced: free with sk_X509_pop_free), or NULL
 * (plain, no certificate, or out of memory). */
STACK_OF(X509) *stream_peer_chain(struct stream *s);
/* That chain as PEM, leaf first, or NULL.  Caller frees. */
char *peer_chain_to_pem(STACK_OF(X509) *chain);
/* The OpenSSL error that ended the stream, or 0. */
unsigned long stream_tls_error(const struct stream *s);

/* Closes the socket.  No callback runs after it returns. */
void stream_free(struct stream *s);

#endif /* PROVD_NET_STREAM_H */
