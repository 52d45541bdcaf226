/* Which of DPS's five access policy permissions each service API request
 * needs (core/api/service_access.c; the table in docs/service-api.md),
 * and that attestation keys go to EnrollmentWrite only. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "api/service_internal.h"

#define ER PERM_ENROLLMENT_READ
#define EW PERM_ENROLLMENT_WRITE
#define RR PERM_REGISTRATION_READ
#define RW PERM_REGISTRATION_WRITE
#define SC PERM_SERVICE_CONFIG

enum { ENR = PROVD_TABLE_ENROLLMENTS, GRP = PROVD_TABLE_ENROLLMENT_GROUPS,
       REG = PROVD_TABLE_REGISTRATIONS, CA = PROVD_TABLE_CERTIFICATES,
       HUB = PROVD_TABLE_HUBS };

/* The policies a deployment typically has. */
static const unsigned HOLDERS[] = {PERM_ALL, PERM_ACCESS_READ, ER, EW, RR,
                                   RW, SC, 0};
#define N_HOLDERS (sizeof(HOLDERS) / sizeof(HOLDERS[0]))

static const struct {
  enum svc_op op;
  int table;
  /* allowed to: all, read, ER, EW, RR, RW, SC, none */
  int allowed[N_HOLDERS];
  const char *needs;
} ROWS[] = {
    {SVC_OP_GET, ENR, {1, 1, 1, 0, 0, 0, 0, 0}, "EnrollmentRead"},
    {SVC_OP_GET, GRP, {1, 1, 1, 0, 0, 0, 0, 0}, "EnrollmentRead"},
    {SVC_OP_QUERY, ENR, {1, 1, 1, 0, 0, 0, 0, 0}, "EnrollmentRead"},
    {SVC_OP_ATTESTATION, GRP, {1, 1, 1, 0, 0, 0, 0, 0}, "EnrollmentRead"},
    {SVC_OP_PUT, ENR, {1, 0, 0, 1, 0, 0, 0, 0}, "EnrollmentWrite"},
    {SVC_OP_DELETE, GRP, {1, 0, 0, 1, 0, 0, 0, 0}, "EnrollmentWrite"},
    {SVC_OP_BULK, ENR, {1, 0, 0, 1, 0, 0, 0, 0}, "EnrollmentWrite"},
    {SVC_OP_REG_GET, REG, {1, 1, 0, 0, 1, 0, 0, 0}, "RegistrationStatusRead"},
    {SVC_OP_REG_QUERY, REG, {1, 1, 0, 0, 1, 0, 0, 0},
     "RegistrationStatusRead"},
    {SVC_OP_REG_LIST, REG, {1, 1, 0, 0, 1, 0, 0, 0},
     "RegistrationStatusRead"},
    {SVC_OP_REG_DELETE, REG, {1, 0, 0, 0, 0, 1, 0, 0},
     "RegistrationStatusWrite"},
    {SVC_OP_HUBS, HUB, {1, 1, 1, 0, 1, 0, 1, 0},
     "EnrollmentRead or RegistrationStatusRead or ServiceConfig"},
    {SVC_OP_HUB_PUT, HUB, {1, 0, 0, 0, 0, 0, 1, 0}, "ServiceConfig"},
    {SVC_OP_HUB_DELETE, HUB, {1, 0, 0, 0, 0, 0, 1, 0}, "ServiceConfig"},
    {SVC_OP_CA_LIST, CA, {1, 1, 1, 0, 0, 0, 1, 0},
     "EnrollmentRead or ServiceConfig"},
    {SVC_OP_GET, CA, {1, 1, 1, 0, 0, 0, 1, 0},
     "EnrollmentRead or ServiceConfig"},
    {SVC_OP_PUT, CA, {1, 0, 0, 0, 0, 0, 1, 0}, "ServiceConfig"},
    {SVC_OP_DELETE, CA, {1, 0, 0, 0, 0, 0, 1, 0}, "ServiceConfig"},
    {SVC_OP_CA_CODE, CA, {1, 0, 0, 0, 0, 0, 1, 0}, "ServiceConfig"},
    {SVC_OP_CA_VERIFY, CA, {1, 0, 0, 0, 0, 0, 1, 0}, "ServiceConfig"},
    {SVC_OP_EVENTS, ENR, {1, 1, 0, 0, 0, 0, 1, 0},
     "(EnrollmentRead, RegistrationStatusRead) or ServiceConfig"},
    {SVC_OP_EVENT_GET, ENR, {1, 1, 0, 0, 0, 0, 1, 0},
     "(EnrollmentRead, RegistrationStatusRead) or ServiceConfig"},
    {SVC_OP_EVENTS_VERIFY, ENR, {1, 1, 0, 0, 0, 0, 1, 0},
     "(EnrollmentRead, RegistrationStatusRead) or ServiceConfig"},
    {SVC_OP_EVENT_RETRY, ENR, {1, 0, 0, 0, 0, 0, 1, 0}, "ServiceConfig"},
    {SVC_OP_EXPLAIN, ENR, {1, 1, 0, 0, 0, 0, 0, 0},
     "(EnrollmentRead, RegistrationStatusRead)"},
    {SVC_OP_POLICY, ENR, {1, 1, 1, 1, 1, 1, 1, 1}, "none"},
    {SVC_OP_BACKUP, ENR, {1, 0, 0, 0, 0, 0, 0, 0},
     "(ServiceConfig, EnrollmentRead, EnrollmentWrite, RegistrationStatusRead, "
     "RegistrationStatusWrite)"},
};
#define N_ROWS (sizeof(ROWS) / sizeof(ROWS[0]))

START_TEST(t_each_request_needs_its_permission)
{
  for (size_t h = 0; h < N_HOLDERS; h++) {
    ck_assert_msg(svc_access_allowed(ROWS[_i].op, ROWS[_i].table,
                                     HOLDERS[h]) == ROWS[_i].allowed[h],
                  "row %d (op %d, table %d), holder 0x%x: expected %s", _i,
                  ROWS[_i].op, ROWS[_i].table, HOLDERS[h],
                  ROWS[_i].allowed[h] ? "allowed" : "refused");
  }
  char needs[160];
  ck_assert_str_eq(svc_access_needs_text(ROWS[_i].op, ROWS[_i].table, needs,
                                         sizeof(needs)),
                   ROWS[_i].needs);
}
END_TEST

/* Every op of the service API has a row above, so a new route cannot
 * arrive without a decision about its permission. */
START_TEST(t_every_op_is_in_the_table)
{
  for (int op = SVC_OP_GET; op <= SVC_OP_BACKUP; op++) {
    int found = 0;
    for (size_t i = 0; i < N_ROWS && !found; i++)
      found = (int)ROWS[i].op == op;
    ck_assert_msg(found, "op %d has no row in this test's table", op);
  }
}
END_TEST

/* A group key derives every device key of the group: keys are for the
 * policies that may write enrollments, not for readers. */
START_TEST(t_keys_only_with_enrollment_write)
{
  ck_assert_int_eq(svc_access_shows_keys(PERM_ALL), 1);
  ck_assert_int_eq(svc_access_shows_keys(EW), 1);
  ck_assert_int_eq(svc_access_shows_keys(ER | EW), 1);
  ck_assert_int_eq(svc_access_shows_keys(PERM_ACCESS_READ), 0);
  ck_assert_int_eq(svc_access_shows_keys(ER | RR | RW | SC), 0);
  ck_assert_int_eq(svc_access_shows_keys(0), 0);
}
END_TEST

/* A short buffer keeps a terminated string. */
START_TEST(t_needs_text_truncates)
{
  char small[12];
  svc_access_needs_text(SVC_OP_HUBS, PROVD_TABLE_HUBS, small, sizeof(small));
  ck_assert_uint_lt(strlen(small), sizeof(small));
}
END_TEST

int main(void)
{
  Suite *s = suite_create("service_access");
  TCase *tc = tcase_create("table");
  tcase_add_loop_test(tc, t_each_request_needs_its_permission, 0,
                      (int)N_ROWS);
  tcase_add_test(tc, t_every_op_is_in_the_table);
  tcase_add_test(tc, t_keys_only_with_enrollment_write);
  tcase_add_test(tc, t_needs_text_truncates);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
