/* provctl backup FILE: the running provd's store and data dir keys
 * (provd extension GET /backup), sealed here with the operator's
 * passphrase when one is given, so the passphrase never travels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "provctl.h"
#include "util/backup_file.h"
#include "util/file_write.h"

/* Copying a large store takes a while; the default 30 s would cut it. */
#define BACKUP_TIMEOUT_S 3600

static int report(struct ctl *c, const char *file, size_t bytes,
                  const struct backup_archive *a, int sealed)
{
  int has_store = backup_find(a, BACKUP_STORE_ENTRY) != NULL;
  if (ctl_has(c, CO_JSON)) {
    json_t *names = json_array();
    for (size_t i = 0; i < a->n; i++)
      json_array_append_new(names, json_string(a->e[i].name));
    json_t *doc = json_pack("{s:s,s:I,s:b,s:b,s:o}", "file", file, "bytes",
                            (json_int_t)bytes, "store", has_store, "sealed",
                            sealed, "entries", names);
    out_json(doc);
    json_decref(doc);
    return CTL_EXIT_OK;
  }
  printf("wrote %s (%zu bytes): %s%zu data dir files, %s\n", file, bytes,
         has_store ? "the store and " : "", a->n - (size_t)has_store,
         sealed ? "sealed with the passphrase"
                : "NOT encrypted (it holds the CA key and the owner key: "
                  "keep it like them)");
  return CTL_EXIT_OK;
}

/* The server's answer, checked whole before anything is written. */
static int fetch(struct ctl *c, struct https_response *rs,
                 struct backup_archive *a, struct provd_err *err)
{
  char path[256];
  int keys_only = ctl_has(c, CO_KEYS_ONLY);
  if (ctl_path(path, sizeof(path), "backup", NULL, NULL,
               keys_only ? "keysOnly=true" : NULL) != 0) {
    perr_set(err, "BAD_INPUT", "path too long");
    return -1;
  }
  struct https_request rq = {.method = "GET", .path = path,
                             .timeout_s = BACKUP_TIMEOUT_S,
                             .max_body = BACKUP_MAX_BYTES};
  if (ctl_request(c, &rq, rs, err) != 0) {
    if (rs->status == 501)
      perr_set(err, "BACKUP_UNSUPPORTED",
               "this provd's storage plugin has no online backup: save "
               "the database with its own tools (PostgreSQL: pg_dump, see "
               "provctl(1) BACKUP) and run 'provctl backup FILE "
               "--keys-only' for the CA and the service keys");
    return -1;
  }
  return backup_decode((const unsigned char *)rs->body, rs->body_len, a,
                       err) == PROVD_OK ? 0 : -1;
}

int cmd_backup(struct ctl *c)
{
  const char *file = c->args[0];
  struct provd_err err = {0};
  char pass[BACKUP_PASSPHRASE_MAX];
  int prc = backup_passphrase(ctl_value(c, CO_PASSPHRASE_FILE), pass,
                              sizeof(pass), &err);
  if (prc != PROVD_OK && prc != PROVD_NOT_FOUND)
    return ctl_usage_error(c, "%s", err.msg);
  struct https_response rs = {0};
  struct backup_archive a = {0};
  unsigned char *sealed = NULL;
  size_t sealed_len = 0;
  int rc = fetch(c, &rs, &a, &err);
  const unsigned char *bytes = (const unsigned char *)rs.body;
  size_t len = rs.body_len;
  if (rc == 0 && prc == PROVD_OK) {
    rc = backup_seal(bytes, len, pass, &sealed, &sealed_len, &err) ==
                 PROVD_OK ? 0 : -1;
    bytes = sealed;
    len = sealed_len;
  }
  OPENSSL_cleanse(pass, sizeof(pass));
  if (rc == 0)
    rc = file_write_atomic(file, bytes, len, 0600, ctl_has(c, CO_FORCE),
                           &err) == 0 ? 0 : -1;
  int exit_code = rc == 0 ? report(c, file, len, &a, prc == PROVD_OK)
                          : ctl_fail(&err);
  if (rs.body)
    OPENSSL_cleanse(rs.body, rs.body_len);
  https_response_clear(&rs);
  free(sealed);
  backup_archive_clear(&a);
  return exit_code;
}
