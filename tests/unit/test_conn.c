/* The handshake queue's admission (net/conn.h): below the limit a new
 * TLS connection is admitted; at it, a stalled oldest handshake makes
 * room, a young one means the newcomer is refused. */
#include <check.h>
#include <stdlib.h>

#include "net/conn.h"
#include "util/timefmt.h"

#define MAX 4

static struct net_conns conns;
static struct net_conn queued[MAX];
static struct net_conn *stalled;

static void fill_queue(void)
{
  conns = (struct net_conns){0};
  for (int i = 0; i < MAX; i++) {
    queued[i] = (struct net_conn){0};
    net_conns_handshake_begin(&conns, &queued[i]);
  }
}

START_TEST(t_admits_below_the_limit)
{
  fill_queue();
  net_conns_handshake_end(&conns, &queued[2]);
  ck_assert_int_eq(net_conns_handshake_admission(&conns, MAX, &stalled),
                   NET_HANDSHAKE_ADMIT);
  ck_assert_int_eq(net_conns_handshake_admission(&conns, MAX + 1, &stalled),
                   NET_HANDSHAKE_ADMIT);
}
END_TEST

/* A worker that is merely behind keeps the handshakes it has begun (their
 * expensive half may be done) and turns the newcomer away. */
START_TEST(t_refuses_the_newcomer_while_the_oldest_is_young)
{
  fill_queue();
  ck_assert_int_eq(net_conns_handshake_admission(&conns, MAX, &stalled),
                   NET_HANDSHAKE_REFUSE);
}
END_TEST

/* A flood's half-open connections age: a stalled one makes room (these
 * have no stream, so no ClientHello was ever taken in). */
START_TEST(t_evicts_a_stalled_oldest)
{
  fill_queue();
  ck_assert_ptr_eq(conns.hs_oldest, &queued[0]);
  queued[0].hs_since_ns = time_mono_ns() - 2000000000ULL;
  ck_assert_int_eq(net_conns_handshake_admission(&conns, MAX, &stalled),
                   NET_HANDSHAKE_EVICT_STALLED);
  ck_assert_ptr_eq(stalled, &queued[0]);
  /* once it is gone, the next oldest is young again */
  net_conns_handshake_end(&conns, &queued[0]);
  net_conns_handshake_begin(&conns, &queued[0]);
  ck_assert_int_eq(net_conns_handshake_admission(&conns, MAX, &stalled),
                   NET_HANDSHAKE_REFUSE);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("conn");
  TCase *tc = tcase_create("handshake admission");
  tcase_add_test(tc, t_admits_below_the_limit);
  tcase_add_test(tc, t_refuses_the_newcomer_while_the_oldest_is_young);
  tcase_add_test(tc, t_evicts_a_stalled_oldest);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
