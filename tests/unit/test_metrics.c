/* Counters keep one series per (name, labels), however many there are
 * and in whatever order they are bumped; beyond the table's bound new
 * series are dropped and counted.  Each test runs in its own process
 * (Check forks), so each starts with an empty table. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/metrics.h"

#define TABLE_MAX 512 /* METRICS_MAX in core/util/metrics.c */

/* The value line of name{labels} in the exposition, or NULL. */
static const char *find_line(const char *text, const char *series)
{
  size_t n = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
    if (strncmp(p, series, n) == 0 && p[n] == ' ')
      return p + n + 1;
  return NULL;
}

static double value_of(const char *text, const char *series)
{
  const char *v = find_line(text, series);
  ck_assert_msg(v != NULL, "no series %s", series);
  return strtod(v, NULL);
}

START_TEST(t_many_series_accumulate_separately)
{
  char labels[32], series[96];
  /* Interleaved, three rounds, so lookups of existing series are mixed
   * with insertions of new ones. */
  for (int round = 0; round < 3; round++)
    for (int code = 0; code < 300; code++) {
      snprintf(labels, sizeof labels, "code=\"%d\"", code);
      metrics_add("t_requests_total", "Requests.", labels, code + 1);
    }
  metrics_add("t_requests_total", "Requests.", NULL, 7);
  metrics_set("t_open", "Open.", NULL, 5);
  metrics_set("t_open", "Open.", NULL, 2);
  char *text = metrics_render();
  ck_assert_ptr_nonnull(text);
  for (int code = 0; code < 300; code++) {
    snprintf(series, sizeof series, "t_requests_total{code=\"%d\"}", code);
    ck_assert_double_eq(value_of(text, series), 3.0 * (code + 1));
  }
  ck_assert_double_eq(value_of(text, "t_requests_total"), 7);
  ck_assert_double_eq(value_of(text, "t_open"), 2);
  /* One HELP/TYPE block per name. */
  const char *help = strstr(text, "# HELP t_requests_total ");
  ck_assert_ptr_nonnull(help);
  ck_assert_ptr_null(strstr(help + 1, "# HELP t_requests_total "));
  ck_assert_double_eq(value_of(text, "provd_metrics_dropped_total"), 0);
  free(text);
}
END_TEST

START_TEST(t_full_table_drops_and_counts)
{
  char labels[32];
  for (int i = 0; i < TABLE_MAX + 10; i++) {
    snprintf(labels, sizeof labels, "n=\"%d\"", i);
    metrics_add("t_series_total", "Series.", labels, 1);
  }
  metrics_add("t_series_total", "Series.", "n=\"0\"", 1); /* still found */
  char *text = metrics_render();
  ck_assert_double_eq(value_of(text, "t_series_total{n=\"0\"}"), 2);
  ck_assert_double_eq(value_of(text, "t_series_total{n=\"511\"}"), 1);
  ck_assert_ptr_null(find_line(text, "t_series_total{n=\"512\"}"));
  ck_assert_double_eq(value_of(text, "provd_metrics_dropped_total"), 10);
  free(text);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_many_series_accumulate_separately);
  tcase_add_test(tc, t_full_table_drops_and_counts);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
