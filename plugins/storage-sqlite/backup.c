/* Online backup (storage.h backup, ABI 1.8) with SQLite's backup API.
 *
 * sqlite3_backup_step(-1) copies every page inside one read transaction
 * of the session's connection.  The database is in WAL mode, so that read
 * transaction is a snapshot: the copy holds each committed transaction
 * or none of it, and the writer goes on committing meanwhile (the WAL
 * only grows until the copy ends). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* A busy source (a checkpoint restarting the WAL) is retried for up to
 * the configured busy timeout, BACKUP_RETRY_MS at a time. */
#define BACKUP_RETRY_MS 20

/* Creates dest_path (0600) so that it cannot already exist: the copy
 * never overwrites a file, not even an older backup. */
static int create_new_file(const struct sq_state *st, const char *dest_path,
                           struct provd_err *err)
{
  int fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    close(fd);
    return PROVD_OK;
  }
  int exists = errno == EEXIST;
  st->host->err_set(err, exists ? "STORE_BACKUP_EXISTS" : "STORE_IO",
                    "sqlite: backup to %s: %s", dest_path, strerror(errno));
  return exists ? PROVD_EXISTS : PROVD_E_IO;
}

static void sleep_ms(long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

/* Copies every page of s's database into dest in one step. */
static int copy_pages(struct sq_session *s, sqlite3 *dest,
                      struct provd_err *err)
{
  sqlite3_backup *b = sqlite3_backup_init(dest, "main", s->db, "main");
  if (!b)
    return sq_db_fail(s->st, dest, sqlite3_errcode(dest),
                      "starting the backup", err);
  int rc;
  int64_t waited_ms = 0;
  while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY ||
         rc == SQLITE_LOCKED) {
    if (waited_ms >= s->st->busy_timeout_ms)
      break;
    sleep_ms(BACKUP_RETRY_MS);
    waited_ms += BACKUP_RETRY_MS;
  }
  int finish_rc = sqlite3_backup_finish(b);
  if (rc == SQLITE_DONE)
    rc = finish_rc;
  if (rc != SQLITE_OK)
    return sq_db_fail(s->st, NULL, rc, "copying the database", err);
  return PROVD_OK;
}

int sq_backup(void *session, const char *dest_path, struct provd_err *err)
{
  struct sq_session *s = session;
  const struct sq_state *st = s->st;
  if (s->depth > 0) {
    st->host->err_set(err, "STORE_INVALID",
                      "sqlite: backup inside a transaction");
    return PROVD_E_INVAL;
  }
  int status = create_new_file(st, dest_path, err);
  if (status != PROVD_OK)
    return status;
  sqlite3 *dest = NULL;
  int rc = sqlite3_open_v2(dest_path, &dest, SQLITE_OPEN_READWRITE, NULL);
  if (rc == SQLITE_OK)
    status = copy_pages(s, dest, err);
  else
    status = sq_db_fail(st, dest, rc, "opening the backup file", err);
  rc = sqlite3_close(dest);
  if (status == PROVD_OK && rc != SQLITE_OK)
    status = sq_db_fail(st, NULL, rc, "closing the backup file", err);
  if (status != PROVD_OK)
    unlink(dest_path);
  return status;
}
