/* The one path splitter: raw segments, empty ones kept for the caller to
 * judge, bounded count and length. */
#include <check.h>
#include <string.h>

#include "api/path.h"

START_TEST(t_plain_path)
{
  struct path_parts p;
  ck_assert_int_eq(path_split("/scope/registrations/dev-1/register", &p),
                   PATH_OK);
  ck_assert_uint_eq(p.n, 4);
  ck_assert_str_eq(p.seg[0], "scope");
  ck_assert_str_eq(p.seg[1], "registrations");
  ck_assert_str_eq(p.seg[2], "dev-1");
  ck_assert_str_eq(p.seg[3], "register");
}
END_TEST

START_TEST(t_segments_stay_encoded)
{
  struct path_parts p;
  ck_assert_int_eq(path_split("/enrollments/a%2Fb", &p), PATH_OK);
  ck_assert_uint_eq(p.n, 2);
  ck_assert_str_eq(p.seg[1], "a%2Fb"); /* an escaped slash never splits */
}
END_TEST

START_TEST(t_empty_segments_are_kept)
{
  struct path_parts p;
  ck_assert_int_eq(path_split("/a//b", &p), PATH_OK);
  ck_assert_uint_eq(p.n, 3);
  ck_assert_str_eq(p.seg[0], "a");
  ck_assert_str_eq(p.seg[1], "");
  ck_assert_str_eq(p.seg[2], "b");
  ck_assert_int_eq(path_split("/", &p), PATH_OK);
  ck_assert_uint_eq(p.n, 1);
  ck_assert_str_eq(p.seg[0], "");
}
END_TEST

START_TEST(t_trailing_slash_is_an_empty_last_segment)
{
  struct path_parts p;
  ck_assert_int_eq(path_split("/enrollments/", &p), PATH_OK);
  ck_assert_uint_eq(p.n, 2);
  ck_assert_str_eq(p.seg[0], "enrollments");
  ck_assert_str_eq(p.seg[1], "");
}
END_TEST

START_TEST(t_not_absolute)
{
  struct path_parts p;
  ck_assert_int_eq(path_split("scope/registrations", &p), PATH_NOT_ABSOLUTE);
  ck_assert_uint_eq(p.n, 0);
  ck_assert_int_eq(path_split("", &p), PATH_NOT_ABSOLUTE);
  ck_assert_int_eq(path_split(NULL, &p), PATH_NOT_ABSOLUTE);
}
END_TEST

START_TEST(t_too_many_segments_keeps_the_first)
{
  struct path_parts p;
  ck_assert_int_eq(path_split("/1/2/3/4/5/6", &p), PATH_OK);
  ck_assert_uint_eq(p.n, PATH_SEGMENTS_MAX);
  ck_assert_int_eq(path_split("/s/registrations/3/4/5/6/7", &p),
                   PATH_TOO_MANY_SEGMENTS);
  ck_assert_uint_eq(p.n, PATH_SEGMENTS_MAX);
  ck_assert_str_eq(p.seg[1], "registrations");
  ck_assert_int_eq(path_split("/1/2/3/4/5/6/", &p), PATH_TOO_MANY_SEGMENTS);
}
END_TEST

START_TEST(t_overlong_segment)
{
  char path[2 * PATH_SEGMENT_MAX + 16];
  struct path_parts p;
  /* the longest segment that fits */
  strcpy(path, "/s/");
  memset(path + 3, 'x', PATH_SEGMENT_MAX - 1);
  path[3 + PATH_SEGMENT_MAX - 1] = '\0';
  ck_assert_int_eq(path_split(path, &p), PATH_OK);
  ck_assert_uint_eq(strlen(p.seg[1]), PATH_SEGMENT_MAX - 1);
  /* one byte more */
  memset(path + 3, 'x', PATH_SEGMENT_MAX);
  strcpy(path + 3 + PATH_SEGMENT_MAX, "/tail");
  ck_assert_int_eq(path_split(path, &p), PATH_SEGMENT_TOO_LONG);
  ck_assert_uint_eq(p.n, 1);
  ck_assert_str_eq(p.seg[0], "s");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("path");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_plain_path);
  tcase_add_test(tc, t_segments_stay_encoded);
  tcase_add_test(tc, t_empty_segments_are_kept);
  tcase_add_test(tc, t_trailing_slash_is_an_empty_last_segment);
  tcase_add_test(tc, t_not_absolute);
  tcase_add_test(tc, t_too_many_segments_keeps_the_first);
  tcase_add_test(tc, t_overlong_segment);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
