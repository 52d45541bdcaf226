/* Reading a non-blocking socket registered edge-triggered, without the
 * read() that only says EAGAIN.
 *
 * A read that returns fewer bytes than asked for emptied the kernel's
 * receive queue.  Until the loop reports the socket readable again (a
 * new edge: bytes, FIN or RST arrived since), another read could only
 * fail with EAGAIN, and sock_read answers that without the syscall:
 * about five fewer per MQTT registration (after the ClientHello, after
 * the client's Finished, after each request).
 *
 * A FIN already queued behind the bytes raises no new edge.  So once the
 * loop reports the peer's half-close (EV_CLOSED: EPOLLRDHUP), every read
 * goes to the kernel until it says EOF; also once our own write side is
 * shut, since the peer's FIN then comes with EPOLLHUP, which libevent
 * 2.1.12 still reports as EV_CLOSED but older versions did not.  An RST
 * queued behind the last bytes (EPOLLERR: no EV_CLOSED) is seen at the
 * next write or at the idle timeout, like a peer that stopped talking. */
#ifndef PROVD_NET_SOCK_READ_H
#define PROVD_NET_SOCK_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/bio.h>

struct sock_read {
  int fd;
  bool drained;  /* the receive queue was empty at the last read */
  bool to_eof;   /* a FIN may be queued unannounced: no shortcut */
};

/* The loop reported the socket: readable, and closed by the peer when
 * peer_closed. */
void sock_read_edge(struct sock_read *r, bool peer_closed);

/* Our write side is shut: read to EOF from now on. */
void sock_read_to_eof(struct sock_read *r);

/* read(2) on r->fd, or -1 with errno EAGAIN when the queue is known to be
 * empty. */
ssize_t sock_read(struct sock_read *r, void *buf, size_t len);

/* A BIO for OpenSSL that reads through sock_read and writes to r->fd.
 * r is borrowed and must outlive the BIO.  NULL when out of memory. */
BIO *sock_read_bio_new(struct sock_read *r);

#endif /* PROVD_NET_SOCK_READ_H */
