/* util/log: one line per event; inside a batch, info lines wait for the
 * end while warnings leave at once, after the lines before them. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

static int out[2];
static int saved_stderr;

static void capture(void)
{
  ck_assert_int_eq(pipe2(out, O_NONBLOCK), 0);
  fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
  saved_stderr = dup(STDERR_FILENO);
  dup2(out[1], STDERR_FILENO);
}

static void release(void)
{
  dup2(saved_stderr, STDERR_FILENO);
  close(saved_stderr);
  close(out[0]);
  close(out[1]);
}

/* What was written so far (NUL-terminated into buf). */
static size_t drain(char *buf, size_t cap)
{
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(out[0], buf + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  buf[len] = '\0';
  return len;
}

/* Both texts were written, first before second. */
static void assert_in_order(const char *buf, const char *first,
                            const char *second)
{
  const char *a = strstr(buf, first), *b = strstr(buf, second);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert(a < b);
}

START_TEST(t_line_leaves_at_once)
{
  capture();
  char buf[4096];
  log_info("test", "alone regid=%s", "dev-1");
  drain(buf, sizeof buf);
  ck_assert_ptr_nonnull(strstr(buf, "info  test: alone regid=dev-1\n"));
  release();
}
END_TEST

START_TEST(t_batch_waits_for_its_end)
{
  capture();
  char buf[4096];
  log_batch_begin();
  log_info("test", "first");
  log_debug("test", "hidden at info level");
  log_info("test", "second");
  ck_assert_uint_eq(drain(buf, sizeof buf), 0);
  log_batch_end();
  drain(buf, sizeof buf);
  assert_in_order(buf, "test: first\n", "test: second\n");
  ck_assert_ptr_null(strstr(buf, "hidden"));
  /* After the end, lines leave at once again. */
  log_info("test", "third");
  drain(buf, sizeof buf);
  ck_assert_ptr_nonnull(strstr(buf, "test: third\n"));
  release();
}
END_TEST

START_TEST(t_warning_keeps_its_place)
{
  capture();
  char buf[4096];
  log_batch_begin();
  log_info("test", "before");
  log_warn("test", "trouble");
  drain(buf, sizeof buf);
  assert_in_order(buf, "test: before\n", "test: trouble\n");
  log_info("test", "after");
  ck_assert_uint_eq(drain(buf, sizeof buf), 0);
  log_batch_end();
  drain(buf, sizeof buf);
  ck_assert_ptr_nonnull(strstr(buf, "test: after\n"));
  release();
}
END_TEST

START_TEST(t_full_batch_leaves_whole_lines)
{
  capture();
  static char buf[1 << 16];
  log_batch_begin();
  for (int i = 0; i < 400; i++)
    log_info("test", "line %03d of a batch longer than its buffer", i);
  size_t early = drain(buf, sizeof buf);
  ck_assert_uint_gt(early, 0); /* the buffer filled: some left already */
  ck_assert_int_eq(buf[early - 1], '\n');
  log_batch_end();
  drain(buf + early, sizeof buf - early);
  int lines = 0;
  for (char *p = buf; (p = strstr(p, "of a batch")); p++)
    lines++;
  ck_assert_int_eq(lines, 400);
  assert_in_order(buf, "line 000 of", "line 399 of");
  assert_in_order(buf, "line 398 of", "line 399 of");
  release();
}
END_TEST

START_TEST(t_newlines_cannot_forge_lines)
{
  capture();
  char buf[4096];
  log_info("test", "regid=%s", "evil\n2026-01-01T00:00:00.000Z error forged");
  drain(buf, sizeof buf);
  ck_assert_int_eq((int)(strchr(buf, '\n') - buf), (int)strlen(buf) - 1);
  release();
}
END_TEST

int main(void)
{
  log_set_level(LOG_INFO);
  Suite *suite = suite_create("log");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_line_leaves_at_once);
  tcase_add_test(tc, t_batch_waits_for_its_end);
  tcase_add_test(tc, t_warning_keeps_its_place);
  tcase_add_test(tc, t_full_batch_leaves_whole_lines);
  tcase_add_test(tc, t_newlines_cannot_forge_lines);
  suite_add_tcase(suite, tc);
  SRunner *sr = srunner_create(suite);
  srunner_set_fork_status(sr, CK_NOFORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
