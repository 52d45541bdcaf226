/* net/sock_read: no read() once the receive queue is known empty, until
 * the loop reports a new edge; a reported half-close, or our own, reads
 * to EOF; the stream built on it still sees bytes and a FIN that arrive
 * together. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "net/sock_read.h"
#include "net/stream.h"

static int pair[2];

static void open_pair(void)
{
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair),
                   0);
}

static void close_pair(void)
{
  close(pair[0]);
  close(pair[1]);
}

static void send_text(const char *text)
{
  ck_assert_int_eq(write(pair[1], text, strlen(text)), (ssize_t)strlen(text));
}

START_TEST(t_short_read_then_known_empty)
{
  open_pair();
  struct sock_read r = {.fd = pair[0]};
  char buf[64];
  send_text("abc");
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), 3);
  /* Bytes wait in the kernel, but no edge was reported since the short
   * read: the answer comes without asking the kernel. */
  send_text("def");
  errno = 0;
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), -1);
  ck_assert_int_eq(errno, EAGAIN);
  sock_read_edge(&r, false);
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), 3);
  ck_assert_int_eq(memcmp(buf, "def", 3), 0);
  close_pair();
}
END_TEST

START_TEST(t_full_read_keeps_asking)
{
  open_pair();
  struct sock_read r = {.fd = pair[0]};
  char buf[4];
  send_text("abcd");
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), 4);
  /* A full read says nothing about what is left. */
  send_text("ef");
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), 2);
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), -1);
  close_pair();
}
END_TEST

START_TEST(t_eagain_marks_empty)
{
  open_pair();
  struct sock_read r = {.fd = pair[0]};
  char buf[8];
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), -1);
  ck_assert_int_eq(errno, EAGAIN);
  send_text("x");
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), -1);
  sock_read_edge(&r, false);
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), 1);
  close_pair();
}
END_TEST

START_TEST(t_half_close_reads_to_eof)
{
  open_pair();
  struct sock_read r = {.fd = pair[0]};
  char buf[64];
  send_text("bye");
  shutdown(pair[1], SHUT_WR);
  sock_read_edge(&r, true);
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), 3);
  ck_assert_int_eq(sock_read(&r, buf, sizeof buf), 0);
  close_pair();
}
END_TEST

START_TEST(t_bio_retry_eof_and_write)
{
  open_pair();
  struct sock_read r = {.fd = pair[0]};
  BIO *b = sock_read_bio_new(&r);
  ck_assert_ptr_nonnull(b);
  char buf[16];
  ck_assert_int_eq(BIO_read(b, buf, sizeof buf), -1);
  ck_assert(BIO_should_retry(b) && BIO_should_read(b));
  ck_assert(!BIO_eof(b));
  ck_assert_int_eq(BIO_write(b, "pong", 4), 4);
  ck_assert_int_eq(read(pair[1], buf, sizeof buf), 4);
  int fd = -1;
  ck_assert_int_eq(BIO_get_fd(b, &fd), pair[0]);
  ck_assert_int_eq(fd, pair[0]);
  shutdown(pair[1], SHUT_WR);
  sock_read_edge(&r, true);
  ck_assert_int_eq(BIO_read(b, buf, sizeof buf), 0);
  ck_assert(!BIO_should_retry(b));
  ck_assert(BIO_eof(b));
  BIO_free(b);
  close_pair();
}
END_TEST

/* ---------- a plain stream on a real loop ---------- */

struct seen {
  char data[64];
  size_t len;
  int eof;
  struct event_base *base;
};

static void on_read(struct stream *s, void *arg)
{
  struct seen *seen = arg;
  struct evbuffer *in = stream_input(s);
  size_t n = evbuffer_get_length(in);
  if (n > sizeof(seen->data) - seen->len)
    n = sizeof(seen->data) - seen->len;
  seen->len += (size_t)evbuffer_remove(in, seen->data + seen->len, n);
}

static void on_event(struct stream *s, int what, void *arg)
{
  (void)s;
  struct seen *seen = arg;
  if (what & STREAM_EOF)
    seen->eof = 1;
  event_base_loopbreak(seen->base);
}

static void tcp_pair(int *client, int *server)
{
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(l, 1), 0);
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
  *client = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_eq(connect(*client, (struct sockaddr *)&a, sizeof a), 0);
  *server = accept4(l, NULL, NULL, SOCK_NONBLOCK);
  ck_assert_int_ge(*server, 0);
  close(l);
}

static struct stream *start_stream(struct seen *seen, int server)
{
  seen->base = event_base_new();
  struct stream *s = stream_new(seen->base, server, NULL);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(stream_start(s, on_read, NULL, on_event, seen, 5), 0);
  return s;
}

/* Runs the loop until an event of the stream or ms milliseconds. */
static void run_loop(struct seen *seen, int ms)
{
  struct timeval limit = {ms / 1000, (ms % 1000) * 1000};
  event_base_loopexit(seen->base, &limit);
  event_base_dispatch(seen->base);
}

static void end_stream(struct stream *s, struct seen *seen, int client)
{
  stream_free(s);
  event_base_free(seen->base);
  close(client);
}

/* Bytes and FIN queued before the loop first looks: one edge for both.
 * The stream must not take the short read for "nothing more" and wait
 * for an edge that never comes. */
START_TEST(t_stream_sees_bytes_and_fin_together)
{
  int client, server;
  tcp_pair(&client, &server);
  ck_assert_int_eq(write(client, "last words", 10), 10);
  shutdown(client, SHUT_WR);
  usleep(20000); /* both queued on the server side */
  struct seen seen = {0};
  struct stream *s = start_stream(&seen, server);
  run_loop(&seen, 2000);
  ck_assert_uint_eq(seen.len, 10);
  ck_assert_int_eq(memcmp(seen.data, "last words", 10), 0);
  ck_assert_int_eq(seen.eof, 1);
  end_stream(s, &seen, client);
}
END_TEST

/* After our own shutdown(SHUT_WR), the peer's FIN comes with EPOLLHUP:
 * the stream must still read to EOF (libevent 2.1.12 reports EV_CLOSED
 * there; stream_shutdown_write does not count on it). */
START_TEST(t_stream_after_own_shutdown_sees_fin)
{
  int client, server;
  tcp_pair(&client, &server);
  struct seen seen = {0};
  struct stream *s = start_stream(&seen, server);
  run_loop(&seen, 50); /* the first edge: nothing to read */
  stream_shutdown_write(s);
  char c;
  ck_assert_int_eq(read(client, &c, 1), 0); /* our FIN arrived */
  ck_assert_int_eq(write(client, "reply", 5), 5);
  shutdown(client, SHUT_WR);
  usleep(20000);
  run_loop(&seen, 2000);
  ck_assert_uint_eq(seen.len, 5);
  ck_assert_int_eq(seen.eof, 1);
  end_stream(s, &seen, client);
}
END_TEST

/* Bytes in several flights, each read short: every new flight raises an
 * edge and is read. */
START_TEST(t_stream_reads_each_flight)
{
  int client, server;
  tcp_pair(&client, &server);
  struct seen seen = {0};
  struct stream *s = start_stream(&seen, server);
  const char *flights[] = {"one ", "two ", "three"};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(write(client, flights[i], strlen(flights[i])),
                     (ssize_t)strlen(flights[i]));
    run_loop(&seen, 100);
  }
  ck_assert_uint_eq(seen.len, 13);
  ck_assert_int_eq(memcmp(seen.data, "one two three", 13), 0);
  ck_assert_int_eq(seen.eof, 0);
  shutdown(client, SHUT_WR);
  run_loop(&seen, 2000);
  ck_assert_int_eq(seen.eof, 1);
  end_stream(s, &seen, client);
}
END_TEST

int main(void)
{
  Suite *suite = suite_create("sock_read");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_short_read_then_known_empty);
  tcase_add_test(tc, t_full_read_keeps_asking);
  tcase_add_test(tc, t_eagain_marks_empty);
  tcase_add_test(tc, t_half_close_reads_to_eof);
  tcase_add_test(tc, t_bio_retry_eof_and_write);
  tcase_add_test(tc, t_stream_sees_bytes_and_fin_together);
  tcase_add_test(tc, t_stream_reads_each_flight);
  tcase_add_test(tc, t_stream_after_own_shutdown_sees_fin);
  suite_add_tcase(suite, tc);
  SRunner *sr = srunner_create(suite);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
