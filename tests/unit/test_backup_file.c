/* The backup file (core/util/backup_file.c): a round trip keeps every
 * entry; sealing hides the contents and a wrong passphrase, a flipped
 * byte or a truncation is refused; names that would leave the data dir
 * are refused; files are never replaced unless asked. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/backup_file.h"
#include "util/file_write.h"

static char dir[64];

static void setup(void)
{
  snprintf(dir, sizeof(dir), "/tmp/provd-test-backup-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static void write_text(const char *name, const char *text, mode_t mode)
{
  char path[128];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  chmod(path, mode);
}

/* An archive of two files, encoded. */
static void sample(unsigned char **bytes, size_t *len)
{
  struct backup_archive a = {0};
  struct provd_err err = {0};
  char path[128];
  write_text("db", "SQLite format 3", 0600);
  write_text("key", "-----BEGIN PRIVATE KEY-----", 0600);
  snprintf(path, sizeof(path), "%s/db", dir);
  ck_assert_int_eq(backup_add_file(&a, "provd.db", path, &err), PROVD_OK);
  snprintf(path, sizeof(path), "%s/key", dir);
  ck_assert_int_eq(backup_add_file(&a, "tls/ca.key", path, &err), PROVD_OK);
  snprintf(path, sizeof(path), "%s/missing", dir);
  ck_assert_int_eq(backup_add_file(&a, "tls/server.pem", path, &err),
                   PROVD_NOT_FOUND);
  ck_assert_int_eq(backup_encode(&a, bytes, len, &err), PROVD_OK);
  backup_archive_clear(&a);
}

START_TEST(test_round_trip)
{
  unsigned char *bytes;
  size_t len;
  struct backup_archive a;
  struct provd_err err = {0};
  sample(&bytes, &len);
  ck_assert_int_eq(backup_decode(bytes, len, &a, &err), PROVD_OK);
  ck_assert_uint_eq(a.n, 2);
  const struct backup_entry *key = backup_find(&a, "tls/ca.key");
  ck_assert_ptr_nonnull(key);
  ck_assert_uint_eq(key->mode, 0600);
  ck_assert_mem_eq(key->data, "-----BEGIN PRIVATE KEY-----", key->len);
  ck_assert_ptr_null(backup_find(&a, "tls/server.pem"));
  backup_archive_clear(&a);
  /* Any damage is noticed: one flipped bit, a missing tail. */
  bytes[len / 2] ^= 1;
  ck_assert_int_eq(backup_decode(bytes, len, &a, &err), PROVD_E_INVAL);
  ck_assert_str_eq(err.code, "BACKUP_DAMAGED");
  bytes[len / 2] ^= 1;
  ck_assert_int_eq(backup_decode(bytes, len - 1, &a, &err), PROVD_E_INVAL);
  free(bytes);
}
END_TEST

START_TEST(test_seal_and_open)
{
  unsigned char *plain, *sealed, *opened;
  size_t plain_len, sealed_len, opened_len;
  struct provd_err err = {0};
  sample(&plain, &plain_len);
  ck_assert_int_eq(backup_seal(plain, plain_len, "", &sealed, &sealed_len,
                               &err), PROVD_E_INVAL);
  ck_assert_int_eq(backup_seal(plain, plain_len, "s3cret", &sealed,
                               &sealed_len, &err), PROVD_OK);
  ck_assert(backup_is_sealed(sealed, sealed_len));
  ck_assert(!backup_is_sealed(plain, plain_len));
  ck_assert_ptr_null(memmem(sealed, sealed_len, "PRIVATE KEY", 11));
  ck_assert_int_eq(backup_open_sealed(sealed, sealed_len, "s3cret!", &opened,
                                      &opened_len, &err), PROVD_DENIED);
  ck_assert_str_eq(err.code, "BACKUP_BAD_PASSPHRASE");
  ck_assert_int_eq(backup_open_sealed(sealed, sealed_len, "s3cret", &opened,
                                      &opened_len, &err), PROVD_OK);
  ck_assert_uint_eq(opened_len, plain_len);
  ck_assert_mem_eq(opened, plain, plain_len);
  free(opened);
  /* A header asking for an absurd scrypt cost is refused, not run. */
  unsigned char p = sealed[15];
  sealed[15] = 200;
  ck_assert_int_eq(backup_open_sealed(sealed, sealed_len, "s3cret", &opened,
                                      &opened_len, &err), PROVD_E_INVAL);
  ck_assert_str_eq(err.code, "BACKUP_DAMAGED");
  sealed[15] = p;
  /* The header (salt, nonce) is authenticated too. */
  sealed[20] ^= 1;
  ck_assert_int_ne(backup_open_sealed(sealed, sealed_len, "s3cret", &opened,
                                      &opened_len, &err), PROVD_OK);
  free(sealed);
  free(plain);
}
END_TEST

/* Hand-made archive with one entry named `name`. */
static int decode_named(const char *name)
{
  struct backup_archive a = {0};
  struct provd_err err = {0};
  unsigned char *bytes;
  size_t len;
  ck_assert_int_eq(backup_add_file(&a, "x", "/dev/null", &err), PROVD_OK);
  /* Encoding does not check names (they come from provd); rename. */
  snprintf(a.e[0].name, sizeof(a.e[0].name), "%s", name);
  ck_assert_int_eq(backup_encode(&a, &bytes, &len, &err), PROVD_OK);
  backup_archive_clear(&a);
  int rc = backup_decode(bytes, len, &a, &err);
  backup_archive_clear(&a);
  free(bytes);
  return rc;
}

START_TEST(test_names_stay_inside)
{
  ck_assert_int_eq(decode_named("tls/ca.key"), PROVD_OK);
  ck_assert_int_eq(decode_named("service-connection-string"), PROVD_OK);
  ck_assert_int_eq(decode_named("../etc/passwd"), PROVD_E_INVAL);
  ck_assert_int_eq(decode_named("tls/../../x"), PROVD_E_INVAL);
  ck_assert_int_eq(decode_named("/etc/passwd"), PROVD_E_INVAL);
  ck_assert_int_eq(decode_named("tls//x"), PROVD_E_INVAL);
  ck_assert_int_eq(decode_named("a b"), PROVD_E_INVAL);
  ck_assert_int_eq(decode_named("tls/"), PROVD_E_INVAL);
}
END_TEST

START_TEST(test_write_file_never_replaces_unasked)
{
  struct provd_err err = {0};
  char path[128];
  snprintf(path, sizeof(path), "%s/out", dir);
  ck_assert_int_eq(file_write_atomic(path, "one", 3, 0600, 0, &err), 0);
  ck_assert_int_eq(file_write_atomic(path, "two", 3, 0600, 0, &err), 1);
  ck_assert_str_eq(err.code, "FILE_EXISTS");
  ck_assert_int_eq(file_write_atomic(path, "two", 3, 0640, 1, &err), 0);
  unsigned char *data;
  size_t len;
  ck_assert_int_eq(backup_read_file(path, &data, &len, &err), PROVD_OK);
  ck_assert_mem_eq(data, "two", 3);
  free(data);
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0640);
  /* No temporary file stays behind. */
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "test $(ls '%s' | wc -l) -eq 1", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_passphrase_sources)
{
  struct provd_err err = {0};
  char pass[BACKUP_PASSPHRASE_MAX];
  char path[128];
  unsetenv(BACKUP_PASSPHRASE_ENV);
  ck_assert_int_eq(backup_passphrase(NULL, pass, sizeof(pass), &err),
                   PROVD_NOT_FOUND);
  setenv(BACKUP_PASSPHRASE_ENV, "from env", 1);
  ck_assert_int_eq(backup_passphrase(NULL, pass, sizeof(pass), &err),
                   PROVD_OK);
  ck_assert_str_eq(pass, "from env");
  write_text("pw", "from file\nsecond line\n", 0600);
  snprintf(path, sizeof(path), "%s/pw", dir);
  ck_assert_int_eq(backup_passphrase(path, pass, sizeof(pass), &err),
                   PROVD_OK);
  ck_assert_str_eq(pass, "from file");
  write_text("empty", "\n", 0600);
  snprintf(path, sizeof(path), "%s/empty", dir);
  ck_assert_int_eq(backup_passphrase(path, pass, sizeof(pass), &err),
                   PROVD_E_INVAL);
  unsetenv(BACKUP_PASSPHRASE_ENV);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("backup_file");
  TCase *tc = tcase_create("backup_file");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_seal_and_open);
  tcase_add_test(tc, test_names_stay_inside);
  tcase_add_test(tc, test_write_file_never_replaces_unasked);
  tcase_add_test(tc, test_passphrase_sources);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
