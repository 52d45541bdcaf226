/* The one JSON body reader: application/json object, bounded size,
 * duplicate keys refused (for the device API and the service API alike). */
#include <check.h>
#include <string.h>

#include "api/json_body.h"

#define CT "application/json"
#define MAX 1024

static json_t *read_text(const char *ct, const char *text,
                         enum json_body_flags flags,
                         enum json_body_status *why)
{
  return json_body_read(ct, text, strlen(text), MAX, flags, why);
}

START_TEST(t_object_is_read)
{
  enum json_body_status why = JSON_BODY_NOT_JSON;
  json_t *doc = read_text(CT, "{\"registrationId\":\"dev-1\",\"payload\":{}}",
                          JSON_BODY_REQUIRED, &why);
  ck_assert_ptr_nonnull(doc);
  ck_assert_int_eq(why, JSON_BODY_OK);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "registrationId")),
                   "dev-1");
  json_decref(doc);
}
END_TEST

START_TEST(t_duplicate_keys_are_refused)
{
  enum json_body_status why;
  ck_assert_ptr_null(read_text(CT, "{\"a\":1,\"a\":2}", JSON_BODY_REQUIRED,
                               &why));
  ck_assert_int_eq(why, JSON_BODY_DUPLICATE_KEY);
  /* nested objects too: a second reader must never see another value */
  ck_assert_ptr_null(read_text(CT, "{\"p\":{\"k\":1,\"k\":1}}",
                               JSON_BODY_OPTIONAL, &why));
  ck_assert_int_eq(why, JSON_BODY_DUPLICATE_KEY);
  ck_assert_str_eq(json_body_problem(why),
                   "The request body repeats a key within one JSON object.");
}
END_TEST

/* Each refusal names its own problem. */
START_TEST(t_too_deep_is_named)
{
  char deep[2 * 4000 + 16];
  size_t n = 0;
  deep[n++] = '{';
  memcpy(deep + n, "\"a\":", 4);
  n += 4;
  for (int i = 0; i < 4000; i++)
    deep[n++] = '[';
  for (int i = 0; i < 4000; i++)
    deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = '\0';
  enum json_body_status why;
  ck_assert_ptr_null(json_body_read(CT, deep, n, sizeof deep,
                                    JSON_BODY_REQUIRED, &why));
  ck_assert_int_eq(why, JSON_BODY_TOO_DEEP);
  ck_assert_str_eq(json_body_problem(why), "The request body nests JSON "
                                           "objects or arrays too deeply.");
  ck_assert_str_eq(json_body_problem(JSON_BODY_NOT_JSON),
                   "The request body is not valid JSON.");
  ck_assert_str_eq(json_body_problem(JSON_BODY_NOT_OBJECT),
                   "The request body must be a JSON object.");
  ck_assert_str_eq(json_body_problem(JSON_BODY_OK), "");
}
END_TEST

START_TEST(t_non_object_is_refused)
{
  static const char *const bodies[] = {"[]", "\"text\"", "42", "null",
                                       "true"};
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    enum json_body_status why;
    ck_assert_ptr_null(read_text(CT, bodies[i], JSON_BODY_REQUIRED, &why));
    ck_assert_int_eq(why, JSON_BODY_NOT_OBJECT);
  }
}
END_TEST

START_TEST(t_malformed_is_refused)
{
  enum json_body_status why;
  ck_assert_ptr_null(read_text(CT, "{\"a\":", JSON_BODY_REQUIRED, &why));
  ck_assert_int_eq(why, JSON_BODY_NOT_JSON);
  ck_assert_ptr_null(read_text(CT, "{} {}", JSON_BODY_REQUIRED, &why));
  ck_assert_int_eq(why, JSON_BODY_NOT_JSON);
}
END_TEST

START_TEST(t_size_limit)
{
  char big[MAX + 2];
  memset(big, ' ', sizeof(big) - 1);
  big[0] = '{';
  big[MAX - 1] = '}';
  big[MAX] = '\0';
  enum json_body_status why;
  json_t *doc = json_body_read(CT, big, MAX, MAX, JSON_BODY_REQUIRED, &why);
  ck_assert_ptr_nonnull(doc); /* exactly the limit */
  json_decref(doc);
  big[MAX] = ' ';
  big[MAX + 1] = '\0';
  ck_assert_ptr_null(json_body_read(CT, big, MAX + 1, MAX,
                                    JSON_BODY_REQUIRED, &why));
  ck_assert_int_eq(why, JSON_BODY_TOO_LARGE);
}
END_TEST

START_TEST(t_content_type)
{
  enum json_body_status why;
  json_t *doc = read_text(" Application/JSON; charset=utf-8", "{}",
                          JSON_BODY_REQUIRED, &why);
  ck_assert_ptr_nonnull(doc);
  json_decref(doc);
  static const char *const wrong[] = {NULL, "text/plain",
                                      "application/jsonx", ""};
  for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
    ck_assert_ptr_null(read_text(wrong[i], "{}", JSON_BODY_REQUIRED, &why));
    ck_assert_int_eq(why, JSON_BODY_MEDIA_TYPE);
  }
}
END_TEST

START_TEST(t_empty_body)
{
  enum json_body_status why;
  ck_assert_ptr_null(read_text(CT, "", JSON_BODY_REQUIRED, &why));
  ck_assert_int_eq(why, JSON_BODY_EMPTY);
  /* an optional body may be absent, whatever the content type */
  ck_assert_ptr_null(read_text(NULL, "", JSON_BODY_OPTIONAL, &why));
  ck_assert_int_eq(why, JSON_BODY_OK);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("json_body");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_object_is_read);
  tcase_add_test(tc, t_duplicate_keys_are_refused);
  tcase_add_test(tc, t_too_deep_is_named);
  tcase_add_test(tc, t_non_object_is_refused);
  tcase_add_test(tc, t_malformed_is_refused);
  tcase_add_test(tc, t_size_limit);
  tcase_add_test(tc, t_content_type);
  tcase_add_test(tc, t_empty_body);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
