/* The recent-operations cache answers a poll only for the same operation,
 * registration id and byte-identical credential (here a token), before
 * the attestation plugin's reuse limit. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/opcache.h"

#define NOW_MS 1800000000000LL /* 2027-01-15 */
#define NOW_S (NOW_MS / 1000)
#define TOKEN "SharedAccessSignature sr=s/registrations/dev-1&sig=abc&se=1"

static struct opcache *cache;

static void setup(void)
{
  cache = opcache_new(64, 60000);
  ck_assert_ptr_nonnull(cache);
  opcache_put(cache, "5.aa.op-1", "dev-1", TOKEN, NOW_S + 3600,
              "{\"status\":\"assigned\"}", NOW_MS);
}

static void teardown(void) { opcache_free(cache); }

START_TEST(t_hit_returns_a_copy)
{
  char *a = opcache_get(cache, "5.aa.op-1", "dev-1", TOKEN, NOW_MS + 10);
  ck_assert_str_eq(a, "{\"status\":\"assigned\"}");
  char *b = opcache_get(cache, "5.aa.op-1", "DEV-1", TOKEN, NOW_MS + 10);
  ck_assert_ptr_nonnull(b); /* registration ids are case-insensitive */
  ck_assert_ptr_ne(a, b);
  free(a);
  free(b);
}
END_TEST

START_TEST(t_other_token_misses)
{
  ck_assert_ptr_null(opcache_get(cache, "5.aa.op-1", "dev-1",
                                 TOKEN "x", NOW_MS));
  ck_assert_ptr_null(opcache_get(cache, "5.aa.op-1", "dev-1", NULL, NOW_MS));
}
END_TEST

START_TEST(t_other_operation_or_device_misses)
{
  ck_assert_ptr_null(opcache_get(cache, "5.aa.op-2", "dev-1", TOKEN, NOW_MS));
  ck_assert_ptr_null(opcache_get(cache, "5.aa.op-1", "dev-2", TOKEN, NOW_MS));
}
END_TEST

START_TEST(t_past_reuse_limit_misses)
{
  opcache_put(cache, "5.bb.op-3", "dev-3", TOKEN, NOW_S - 1, "{}", NOW_MS);
  ck_assert_ptr_null(opcache_get(cache, "5.bb.op-3", "dev-3", TOKEN, NOW_MS));
}
END_TEST

START_TEST(t_entry_ttl)
{
  char *a = opcache_get(cache, "5.aa.op-1", "dev-1", TOKEN, NOW_MS + 60000);
  ck_assert_ptr_nonnull(a);
  free(a);
  ck_assert_ptr_null(opcache_get(cache, "5.aa.op-1", "dev-1", TOKEN,
                                 NOW_MS + 60001));
}
END_TEST

/* Bounded: far more operations than slots keeps memory fixed and the
 * newest answers reachable. */
START_TEST(t_bounded_newest_wins)
{
  char op[64], body[64];
  for (int i = 0; i < 10000; i++) {
    snprintf(op, sizeof(op), "5.cc.op-%d", i);
    snprintf(body, sizeof(body), "{\"n\":%d}", i);
    opcache_put(cache, op, "dev-9", TOKEN, NOW_S + 60, body, NOW_MS);
  }
  char *last = opcache_get(cache, "5.cc.op-9999", "dev-9", TOKEN, NOW_MS);
  ck_assert_str_eq(last, "{\"n\":9999}");
  free(last);
  int hits = 0;
  for (int i = 0; i < 10000; i++) {
    snprintf(op, sizeof(op), "5.cc.op-%d", i);
    char *a = opcache_get(cache, op, "dev-9", TOKEN, NOW_MS);
    hits += a != NULL;
    free(a);
  }
  ck_assert_int_le(hits, 64);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("opcache");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t_hit_returns_a_copy);
  tcase_add_test(tc, t_other_token_misses);
  tcase_add_test(tc, t_other_operation_or_device_misses);
  tcase_add_test(tc, t_past_reuse_limit_misses);
  tcase_add_test(tc, t_entry_ttl);
  tcase_add_test(tc, t_bounded_newest_wins);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
