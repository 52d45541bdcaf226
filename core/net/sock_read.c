#include "net/sock_read.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

void sock_read_edge(struct sock_read *r, bool peer_closed)
{
  r->drained = false;
  if (peer_closed)
    r->to_eof = true;
}

void sock_read_to_eof(struct sock_read *r)
{
  r->drained = false;
  r->to_eof = true;
}

ssize_t sock_read(struct sock_read *r, void *buf, size_t len)
{
  if (r->drained) {
    errno = EAGAIN;
    return -1;
  }
  ssize_t n = read(r->fd, buf, len);
  if (n > 0 && (size_t)n < len && !r->to_eof)
    r->drained = true;
  else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    r->drained = true;
  return n;
}

/* ---------- the BIO: OpenSSL's socket BIO, reading through sock_read ---------- */

static int bio_read(BIO *b, char *buf, int len)
{
  struct sock_read *r = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  ssize_t n = sock_read(r, buf, (size_t)len);
  if (n == 0)
    BIO_set_flags(b, BIO_FLAGS_IN_EOF);
  else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                     errno == EINTR))
    BIO_set_retry_read(b);
  return (int)n;
}

static int bio_write(BIO *b, const char *buf, int len)
{
  struct sock_read *r = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  ssize_t n = write(r->fd, buf, (size_t)len);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write(b);
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
  (void)num;
  struct sock_read *r = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF:
    return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
  case BIO_C_GET_FD:
    if (ptr)
      *(int *)ptr = r->fd;
    return r->fd;
  default:
    return 0;
  }
}

static int bio_create(BIO *b)
{
  BIO_set_init(b, 0);
  BIO_set_data(b, NULL);
  return 1;
}

static BIO_METHOD *method;

static void method_init(void)
{
  BIO_METHOD *m = BIO_meth_new(
      BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
      "provd socket");
  if (m && (!BIO_meth_set_read(m, bio_read) ||
            !BIO_meth_set_write(m, bio_write) ||
            !BIO_meth_set_ctrl(m, bio_ctrl) ||
            !BIO_meth_set_create(m, bio_create))) {
    BIO_meth_free(m);
    m = NULL;
  }
  method = m; /* process lifetime, like OpenSSL's own BIO methods */
}

BIO *sock_read_bio_new(struct sock_read *r)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, method_init);
  BIO *b = method ? BIO_new(method) : NULL;
  if (b) {
    BIO_set_data(b, r);
    BIO_set_init(b, 1);
  }
  return b;
}
