/* Registration rate limits (core/engine/ratelimit.c). */
#include <check.h>
#include <stdio.h>

#include "engine/ratelimit.h"

#define T0 1800000000 /* a minute boundary: 1800000000 % 60 == 0 */

START_TEST(t_per_minute_then_refused)
{
  struct rate_table *t = rate_table_new(64, 3);
  ck_assert_ptr_nonnull(t);
  for (int i = 0; i < 3; i++)
    ck_assert(rate_table_admit(t, "dev-1", T0 + i));
  ck_assert(!rate_table_admit(t, "dev-1", T0 + 10));
  ck_assert(!rate_table_admit(t, "DEV-1", T0 + 59)); /* ids fold case */
  ck_assert(rate_table_admit(t, "dev-2", T0 + 59));  /* its own count */
  ck_assert(rate_table_admit(t, "dev-1", T0 + 60));  /* a new minute */
  rate_table_free(t);
}
END_TEST

/* The minute starts at the key's first admission: a burst across a clock
 * minute does not get twice the rate. */
START_TEST(t_window_follows_the_key)
{
  struct rate_table *t = rate_table_new(64, 3);
  for (int i = 0; i < 3; i++)
    ck_assert(rate_table_admit(t, "dev-1", T0 + 50));
  ck_assert(!rate_table_admit(t, "dev-1", T0 + 65));
  ck_assert(!rate_table_admit(t, "dev-1", T0 + 109));
  ck_assert(rate_table_admit(t, "dev-1", T0 + 110));
  rate_table_free(t);
}
END_TEST

/* More keys than slots: memory stays fixed and no key is refused before
 * its own limit (an evicted key starts over: the table fails open). */
START_TEST(t_bounded_and_fails_open)
{
  struct rate_table *t = rate_table_new(16, 1);
  char key[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(key, sizeof key, "device-%d", i);
    ck_assert_msg(rate_table_admit(t, key, T0), "%s refused", key);
  }
  /* the most recent key is still remembered */
  ck_assert(!rate_table_admit(t, "device-9999", T0 + 1));
  rate_table_free(t);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("ratelimit");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_per_minute_then_refused);
  tcase_add_test(tc, t_window_follows_the_key);
  tcase_add_test(tc, t_bounded_and_fails_open);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
