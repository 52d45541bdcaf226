/* The one connection-string parser (provd, provctl, the load generator). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "util/connstr.h"

#define KEY "c2VjcmV0LWtleS1ieXRlcw=="

static void parses(const char *text)
{
  struct connstr cs;
  struct provd_err err = {0};
  ck_assert_msg(connstr_parse(text, &cs, &err) == 0, "%s: %s", text,
                err.msg);
  ck_assert_str_eq(cs.host, "dps.example.net");
  ck_assert_str_eq(cs.key_name, "provisioningserviceowner");
  ck_assert_str_eq(cs.key, KEY);
}

static void refused(const char *text, const char *msg_part)
{
  struct connstr cs;
  struct provd_err err = {0};
  ck_assert_msg(connstr_parse(text, &cs, &err) == -1, "accepted: %s", text);
  ck_assert_str_eq(err.code, "BAD_CONNECTION_STRING");
  ck_assert_msg(strstr(err.msg, msg_part) != NULL, "%s: message %s lacks %s",
                text, err.msg, msg_part);
  ck_assert_ptr_null(strstr(err.msg, KEY)); /* never the secret */
  ck_assert_str_eq(cs.key, "");             /* nothing half-filled */
}

START_TEST(t_any_order)
{
  parses("HostName=dps.example.net;SharedAccessKeyName=provisioningservice"
         "owner;SharedAccessKey=" KEY);
  parses("SharedAccessKey=" KEY ";HostName=dps.example.net;"
         "SharedAccessKeyName=provisioningserviceowner");
  parses("SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=" KEY
         ";HostName=dps.example.net");
}
END_TEST

START_TEST(t_names_are_case_insensitive)
{
  parses("hostname=dps.example.net;SHAREDACCESSKEYNAME=provisioningservice"
         "owner;sharedAccessKey=" KEY);
}
END_TEST

START_TEST(t_whitespace_is_ignored)
{
  parses("  HostName = dps.example.net ;\tSharedAccessKeyName="
         "provisioningserviceowner ; SharedAccessKey=" KEY " \r\n");
}
END_TEST

START_TEST(t_unknown_and_empty_parts_are_ignored)
{
  parses("HostName=dps.example.net;;DeviceId=d1;SharedAccessKeyName="
         "provisioningserviceowner;GatewayHostName=gw;SharedAccessKey=" KEY
         ";");
}
END_TEST

START_TEST(t_value_keeps_equals_signs)
{
  struct connstr cs;
  struct provd_err err = {0};
  ck_assert_int_eq(connstr_parse("HostName=h;SharedAccessKeyName=n;"
                                 "SharedAccessKey=YQ==",
                                 &cs, &err),
                   0);
  ck_assert_str_eq(cs.key, "YQ==");
}
END_TEST

START_TEST(t_missing_fields)
{
  refused("HostName=h;SharedAccessKeyName=n", "SharedAccessKey");
  refused("HostName=h;SharedAccessKey=" KEY, "SharedAccessKeyName");
  refused("SharedAccessKeyName=n;SharedAccessKey=" KEY, "HostName");
  refused("", "HostName");
  refused(NULL, "HostName");
}
END_TEST

START_TEST(t_bad_parts)
{
  refused("HostName=h;SharedAccessKeyName=n;SharedAccessKey", "'='");
  refused("HostName=;SharedAccessKeyName=n;SharedAccessKey=" KEY,
          "HostName is empty");
  refused("HostName=a;HostName=b;SharedAccessKeyName=n;SharedAccessKey=" KEY,
          "twice");
  refused("hostname=a;HostName=a;SharedAccessKeyName=n;SharedAccessKey=" KEY,
          "twice");
}
END_TEST

START_TEST(t_sizes_are_bounded)
{
  struct connstr cs;
  char text[2048];
  char long_key[sizeof(cs.key) + 1];
  memset(long_key, 'A', sizeof(long_key) - 1);
  long_key[sizeof(long_key) - 1] = '\0';
  snprintf(text, sizeof(text),
           "HostName=h;SharedAccessKeyName=n;SharedAccessKey=%s", long_key);
  refused(text, "SharedAccessKey is too long");
  /* the longest key that fits */
  long_key[sizeof(long_key) - 2] = '\0';
  snprintf(text, sizeof(text),
           "HostName=h;SharedAccessKeyName=n;SharedAccessKey=%s", long_key);
  struct provd_err err = {0};
  ck_assert_int_eq(connstr_parse(text, &cs, &err), 0);
  ck_assert_uint_eq(strlen(cs.key), sizeof(cs.key) - 1);
  /* a bound on the number of parts */
  size_t n = 0;
  for (int i = 0; i < 40; i++)
    n += (size_t)snprintf(text + n, sizeof(text) - n, "X%d=1;", i);
  refused(text, "parts");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("connstr");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_any_order);
  tcase_add_test(tc, t_names_are_case_insensitive);
  tcase_add_test(tc, t_whitespace_is_ignored);
  tcase_add_test(tc, t_unknown_and_empty_parts_are_ignored);
  tcase_add_test(tc, t_value_keeps_equals_signs);
  tcase_add_test(tc, t_missing_fields);
  tcase_add_test(tc, t_bad_parts);
  tcase_add_test(tc, t_sizes_are_bounded);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
