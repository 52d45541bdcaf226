/* util/wake_batch: each target woken once per batch, in order, and only
 * on the batching thread. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include "util/wake_batch.h"

static int woken[WAKE_BATCH_MAX + 2];
static int order[WAKE_BATCH_MAX + 2], n_order;

static void wake(void *target)
{
  int i = (int)(intptr_t)target;
  woken[i]++;
  order[n_order++] = i;
}

static void reset(void)
{
  for (int i = 0; i < WAKE_BATCH_MAX + 2; i++)
    woken[i] = 0;
  n_order = 0;
}

START_TEST(t_once_per_target_in_order)
{
  reset();
  ck_assert_int_eq(wake_batch_defer(wake, (void *)1), WAKE_NOW);
  wake_batch_begin();
  ck_assert_int_eq(wake_batch_defer(wake, (void *)2), WAKE_DEFERRED);
  ck_assert_int_eq(wake_batch_defer(wake, (void *)1), WAKE_DEFERRED);
  ck_assert_int_eq(wake_batch_defer(wake, (void *)2), WAKE_ALREADY_DEFERRED);
  ck_assert_int_eq(wake_batch_defer(wake, (void *)1), WAKE_ALREADY_DEFERRED);
  ck_assert_int_eq(woken[1] + woken[2], 0); /* nothing before the end */
  wake_batch_end();
  ck_assert_int_eq(woken[1], 1);
  ck_assert_int_eq(woken[2], 1);
  ck_assert_int_eq(n_order, 2);
  ck_assert_int_eq(order[0], 2);
  ck_assert_int_eq(order[1], 1);
  /* After the end, nothing is deferred any more. */
  ck_assert_int_eq(wake_batch_defer(wake, (void *)1), WAKE_NOW);
  wake_batch_end(); /* an end without a batch wakes nothing */
  ck_assert_int_eq(woken[1], 1);
}
END_TEST

START_TEST(t_full_batch_wakes_at_once)
{
  reset();
  wake_batch_begin();
  for (int i = 0; i < WAKE_BATCH_MAX; i++)
    ck_assert_int_eq(wake_batch_defer(wake, (void *)(intptr_t)i),
                     WAKE_DEFERRED);
  ck_assert_int_eq(wake_batch_defer(wake, (void *)(intptr_t)WAKE_BATCH_MAX),
                   WAKE_NOW);
  ck_assert_int_eq(wake_batch_defer(wake, (void *)0), WAKE_ALREADY_DEFERRED);
  wake_batch_end();
  for (int i = 0; i < WAKE_BATCH_MAX; i++)
    ck_assert_int_eq(woken[i], 1);
}
END_TEST

static void *defer_elsewhere(void *arg)
{
  (void)arg;
  return (void *)(intptr_t)wake_batch_defer(wake, (void *)1);
}

START_TEST(t_other_threads_not_batched)
{
  reset();
  wake_batch_begin();
  pthread_t t;
  void *deferred = NULL;
  ck_assert_int_eq(pthread_create(&t, NULL, defer_elsewhere, NULL), 0);
  ck_assert_int_eq(pthread_join(t, &deferred), 0);
  ck_assert_ptr_null(deferred);
  wake_batch_end();
  ck_assert_int_eq(woken[1], 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("wake_batch");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_once_per_target_in_order);
  tcase_add_test(tc, t_full_batch_wakes_at_once);
  tcase_add_test(tc, t_other_threads_not_batched);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
