/* The registration id a TPM device gets when it names none, checked
 * against a registration the unmodified Azure Node SDK made (EK from an
 * swtpm, id derived by the SDK). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/b64.h"
#include "util/ids.h"

static const char sdk_ek[] =
    "AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgA"
    "AAAAAAEAvzq9AFEyhOwhc0Hxx98q1cKntwFpR7uA3e3e+4gBbfHi2ognEWC6EGWasIQkGqUq"
    "nxiyQPY+huslqaJdFahwJR/mcDQpK3MTxwCU9re15C57Q8Xes1X3nnuH1blA4dSfDjlkkrZr"
    "+9JMHqdcFzIdQ66sordAFC3UVxsKAdVE65jdLtYVWJbcqtADJ0fsGY0USGK28S7PZNCxaiW9"
    "+4g9e6mbIbgUaKT/Vw/grjjXKJw0TU2Hl0x25EnG3/Tww0mUI5xDs9tTbLk2b1rj4EhC+TPQ"
    "HLsOYuy46eJT2efuo78rcy35dMFRnGjF84RPGnMmw7G7SGAz+C3uXXMjmB4bQw==";

START_TEST(t_sdk_derivation)
{
  unsigned char ek[512];
  size_t len = 0;
  ck_assert_int_eq(b64_decode(sdk_ek, ek, sizeof(ek), &len), 0);
  ck_assert_uint_eq(len, 316);
  char id[IDS_TPM_REGID_LEN + 1];
  ids_tpm_registration_id(ek, len, id);
  ck_assert_str_eq(id, "gimq4bkiek7ttg4qsopunvn6siwepwxcflp3uhelyeshs3imm2jq");
  ck_assert(ids_registration_id_valid(id));
  ek[len - 1] ^= 1;
  ids_tpm_registration_id(ek, len, id);
  ck_assert_str_ne(id, "gimq4bkiek7ttg4qsopunvn6siwepwxcflp3uhelyeshs3imm2jq");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("ids_tpm");
  TCase *tc = tcase_create("derive");
  tcase_add_test(tc, t_sdk_derivation);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
