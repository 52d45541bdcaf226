/* GET /backup (provd extension): a backup file (util/backup_file.h) of
 * the running server, for `provctl backup`.
 *
 * The store is copied by the storage plugin's online backup on a store
 * reader thread (never on the event loop), so registrations go on while
 * it runs; the data dir's keys are read next to it.  The answer carries
 * the CA key and the owner's key, so only the owner policy (the data
 * dir's connection string) may ask.  The file leaves provd unsealed,
 * inside TLS: provctl seals it with the operator's passphrase, which
 * never reaches the server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "api/respond.h"
#include "api/service_internal.h"
#include "util/backup_file.h"
#include "util/log.h"

#define OP_NAME "backup"

/* The data dir's files that make provd come back as the same server
 * (pki_init_data_dir); absent ones (an operator's certificate) are
 * skipped. */
static const char *const data_dir_files[] = {
    "tls/ca.pem", "tls/ca.key", "tls/server.pem", "tls/server.key",
    "service-connection-string", NULL};

struct backup_job {
  struct api_ctx *ctx;        /* borrowed */
  struct http_exchange *ex;   /* answered exactly once */
  int keys_only;              /* ?keysOnly=true: leave the store out */
  char policy[64];
};

static int is_owner(const struct api_ctx *ctx,
                    const struct service_policy *policy)
{
  const struct policy_table *t = atomic_load(&ctx->policies);
  return t && t->n > 0 && policy->permissions == PERM_ALL &&
         strcmp(policy->name, t->p[0].name) == 0;
}

/* Copies the store into a private directory of the data dir, adds the
 * copy as BACKUP_STORE_ENTRY and removes it again. */
static int add_store_copy(struct store_session *s, const char *data_dir,
                          struct backup_archive *a, struct provd_err *err)
{
  char dir[4096], db[4200];
  if (snprintf(dir, sizeof(dir), "%s/.backup-XXXXXX", data_dir) >=
          (int)sizeof(dir) ||
      !mkdtemp(dir)) {
    perr_set(err, "BACKUP_IO", "cannot make a directory in %s: %s", data_dir,
             strerror(errno));
    return PROVD_E_IO;
  }
  snprintf(db, sizeof(db), "%s/%s", dir, BACKUP_STORE_ENTRY);
  int rc = store_backup(s, db, err);
  if (rc == PROVD_OK) {
    rc = backup_add_file(a, BACKUP_STORE_ENTRY, db, err);
    if (rc == PROVD_NOT_FOUND)
      rc = PROVD_E_IO;
  }
  unlink(db);
  rmdir(dir);
  return rc;
}

static int add_keys(const char *data_dir, struct backup_archive *a,
                    struct provd_err *err)
{
  for (const char *const *f = data_dir_files; *f; f++) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", data_dir, *f);
    int rc = backup_add_file(a, *f, path, err);
    if (rc != PROVD_OK && rc != PROVD_NOT_FOUND)
      return rc;
  }
  return PROVD_OK;
}

static void respond_failure(struct backup_job *job, int rc,
                            const struct provd_err *err)
{
  if (rc == PROVD_E_UNSUPPORTED) {
    svc_reject(job->ex, OP_NAME, 501, SVC_E_NOT_IMPLEMENTED,
               "The storage plugin has no online backup: save the "
               "database with its own tools (pg_dump for postgres) and ask "
               "with keysOnly=true for the CA and the service keys");
    return;
  }
  log_error(SVC_LOG_COMP, "backup for policy=%s failed: %s (%s)",
            job->policy, err->msg, err->code);
  svc_reject(job->ex, OP_NAME, 500, SVC_E_INTERNAL, "The backup failed");
}

/* On a store reader thread. */
static void backup_on_store(struct store_session *s, void *ud)
{
  struct backup_job *job = ud;
  const char *data_dir = job->ctx->cfg->data_dir;
  struct backup_archive a = {0};
  struct provd_err err = {0};
  unsigned char *bytes = NULL;
  size_t len = 0;
  int rc = job->keys_only ? PROVD_OK : add_store_copy(s, data_dir, &a, &err);
  if (rc == PROVD_OK)
    rc = add_keys(data_dir, &a, &err);
  if (rc == PROVD_OK)
    rc = backup_encode(&a, &bytes, &len, &err);
  backup_archive_clear(&a);
  if (rc != PROVD_OK) {
    respond_failure(job, rc, &err);
  } else {
    struct http_header what = {"X-Provd-Backup-Store",
                               job->keys_only ? "excluded" : "included"};
    log_info(SVC_LOG_COMP, "backup policy=%s store=%s bytes=%zu",
             job->policy, what.value, len);
    svc_count_request(OP_NAME, 200);
    http_respond(job->ex, 200, "application/octet-stream", (char *)bytes,
                 len, &what, 1);
    OPENSSL_cleanse(bytes, len);
    free(bytes);
  }
  free(job);
}

void svc_backup_handle(struct api_ctx *ctx, struct http_exchange *ex,
                       const struct http_request *req,
                       const struct service_policy *policy)
{
  if (!is_owner(ctx, policy)) {
    svc_reject(ex, OP_NAME, 403, SVC_E_FORBIDDEN,
               "Only the owner policy may take a backup");
    return;
  }
  char keys_only[8] = "";
  int n = http_query_param(req, "keysOnly", keys_only, sizeof(keys_only));
  if (n == -2 || (n >= 0 && strcmp(keys_only, "true") != 0 &&
                  strcmp(keys_only, "false") != 0)) {
    svc_reject(ex, OP_NAME, 400, SVC_E_BAD_REQUEST,
               "keysOnly must be true or false");
    return;
  }
  struct backup_job *job = calloc(1, sizeof(*job));
  if (!job) {
    svc_reject(ex, OP_NAME, 500, SVC_E_INTERNAL, "Out of memory");
    return;
  }
  job->ctx = ctx;
  job->ex = ex;
  job->keys_only = strcmp(keys_only, "true") == 0;
  snprintf(job->policy, sizeof(job->policy), "%s", policy->name);
  if (store_submit_read(ctx->store, backup_on_store, job) != PROVD_OK) {
    free(job);
    struct http_header retry = {"Retry-After", "1"};
    svc_count_request(OP_NAME, 503);
    api_respond_error_with(ex, 503, SVC_E_UNAVAILABLE, "The store is busy",
                           &retry, 1);
  }
}
