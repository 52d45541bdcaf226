/* Versioned schema migrations.  PRAGMA user_version holds the number of
 * migrations applied; each migration runs in its own IMMEDIATE transaction
 * together with the user_version bump, so a crash leaves the database at
 * a whole version.  Migrations are append-only: never edit a shipped one.
 * They use plain CREATE (no IF NOT EXISTS) so that running one twice
 * fails loudly instead of hiding a version mix-up. */
#include <stdio.h>

#include "internal.h"

static const char *const table_names[SQ_N_TABLES] = {
  "enrollments", "enrollment_groups", "registrations", "hubs",
  "certificates", "notifier_cursors", "dead_letters"
};

const char *sq_table_name(enum provd_table t)
{
  if (t < PROVD_TABLE_ENROLLMENTS || t > PROVD_TABLE_DEAD_LETTERS)
    return NULL;
  return table_names[t - 1];
}

/* Every record table has the same columns so the statements are uniform;
 * group_id/hub/kind are NULL where storage.h says they do not apply. */
#define RECORD_TABLE(name)                                               \
  "CREATE TABLE " name " ("                                              \
  " id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL,"                        \
  " etag TEXT,"                                                          \
  " body TEXT NOT NULL,"                                                 \
  " created_ms INTEGER NOT NULL,"                                        \
  " updated_ms INTEGER NOT NULL,"                                        \
  " group_id TEXT COLLATE NOCASE,"                                       \
  " hub TEXT COLLATE NOCASE,"                                            \
  " kind TEXT COLLATE NOCASE);"

static const char migration_1[] =
  "PRAGMA application_id = 1347573316;" /* PROVD_SQLITE_APPLICATION_ID */
  RECORD_TABLE("enrollments")
  RECORD_TABLE("enrollment_groups")
  RECORD_TABLE("registrations")
  RECORD_TABLE("hubs")
  /* (filter, id) indexes serve filtered lists in id order. */
  "CREATE INDEX enrollments_kind ON enrollments(kind, id);"
  "CREATE INDEX enrollment_groups_kind ON enrollment_groups(kind, id);"
  "CREATE INDEX registrations_group ON registrations(group_id, id);"
  "CREATE INDEX registrations_hub ON registrations(hub, id);"
  "CREATE TABLE outbox ("
  " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
  " type TEXT NOT NULL,"
  " time_ms INTEGER NOT NULL,"
  " subject TEXT,"
  " body TEXT NOT NULL);";

/* Registered X.509 CAs (PROVD_TABLE_CERTIFICATES). */
static const char migration_2[] = RECORD_TABLE("certificates");

/* The journal: event id and hash chain on every event (older rows keep
 * NULL and are reported as unchained), and the dispatcher's durable
 * state (per-instance cursors, dead letters). */
static const char migration_3[] =
  "ALTER TABLE outbox ADD COLUMN event_id TEXT;"
  "ALTER TABLE outbox ADD COLUMN prev_hash TEXT;"
  "ALTER TABLE outbox ADD COLUMN hash TEXT;"
  RECORD_TABLE("notifier_cursors")
  RECORD_TABLE("dead_letters");

/* Open attestation challenge rounds (storage.h challenge_*): one per
 * registration, bounded in time by expires_ms. */
static const char migration_4[] =
  "CREATE TABLE challenges ("
  " registration_id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL,"
  " session BLOB NOT NULL,"
  " issued_ms INTEGER NOT NULL,"
  " expires_ms INTEGER NOT NULL,"
  " answered_ms INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX challenges_expiry ON challenges(expires_ms);";

static const char *const migrations[] = { migration_1, migration_2,
                                          migration_3, migration_4 };

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
                   PROVD_SQLITE_SCHEMA_VERSION,
               "PROVD_SQLITE_SCHEMA_VERSION must count the migrations");
_Static_assert(PROVD_SQLITE_APPLICATION_ID == 1347573316,
               "migration_1 spells the application id in decimal");

/* Reads one integer PRAGMA (user_version, application_id). */
static int pragma_int(const struct sq_state *st, sqlite3 *db,
                      const char *sql, int64_t *out, struct provd_err *err)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    return sq_db_fail(st, db, rc, sql, err);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(stmt, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(stmt);
  return rc == SQLITE_OK ? PROVD_OK : sq_db_fail(st, db, rc, sql, err);
}

static int exec_sql(const struct sq_state *st, sqlite3 *db, const char *sql,
                    const char *what, struct provd_err *err)
{
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? PROVD_OK : sq_db_fail(st, db, rc, what, err);
}

/* Inside the migration transaction: refuses a database that is newer
 * than this plugin or belongs to another application. */
static int check_database(const struct sq_state *st, sqlite3 *db,
                          int64_t version, struct provd_err *err)
{
  int64_t app_id = 0, objects = 0;
  int rc = pragma_int(st, db, "PRAGMA application_id", &app_id, err);
  if (rc == PROVD_OK && version == 0 && app_id == 0)
    rc = pragma_int(st, db, "SELECT count(*) FROM sqlite_master", &objects,
                    err);
  if (rc != PROVD_OK)
    return rc;
  if ((app_id != 0 && app_id != PROVD_SQLITE_APPLICATION_ID) ||
      (app_id == 0 && (version != 0 || objects != 0))) {
    st->host->err_set(err, "STORE_SCHEMA",
                      "%s is not a provd database (application_id %lld, "
                      "user_version %lld)",
                      st->path, (long long)app_id, (long long)version);
    return PROVD_E_CONFIG;
  }
  if (version > PROVD_SQLITE_SCHEMA_VERSION) {
    st->host->err_set(err, "STORE_SCHEMA",
                      "%s has schema version %lld, newer than this sqlite "
                      "plugin supports (%d); upgrade provd or use a "
                      "matching database",
                      st->path, (long long)version,
                      PROVD_SQLITE_SCHEMA_VERSION);
    return PROVD_E_UNSUPPORTED;
  }
  return PROVD_OK;
}

/* One step: lock, re-read the version (another process may have
 * migrated meanwhile), apply the next migration.  *done is set when the
 * database is current. */
static int migrate_step(struct sq_state *st, sqlite3 *db, int *done,
                        struct provd_err *err)
{
  int64_t version = 0;
  int rc = exec_sql(st, db, "BEGIN IMMEDIATE", "locking for migration", err);
  if (rc != PROVD_OK)
    return rc;
  rc = pragma_int(st, db, "PRAGMA user_version", &version, err);
  if (rc == PROVD_OK)
    rc = check_database(st, db, version, err);
  if (rc == PROVD_OK && version == PROVD_SQLITE_SCHEMA_VERSION) {
    *done = 1;
  } else if (rc == PROVD_OK) {
    char bump[64];
    snprintf(bump, sizeof(bump), "PRAGMA user_version = %lld",
             (long long)version + 1);
    rc = exec_sql(st, db, migrations[version], "applying migration", err);
    if (rc == PROVD_OK)
      rc = exec_sql(st, db, bump, "recording schema version", err);
  }
  if (rc != PROVD_OK) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
  rc = exec_sql(st, db, "COMMIT", "committing migration", err);
  if (rc == PROVD_OK && !*done)
    st->host->log(st->inst, NULL, PROVD_LOG_INFO,
                  "%s migrated to schema version %lld", st->path,
                  (long long)version + 1);
  return rc;
}

int sq_migrate(struct sq_state *st, sqlite3 *db, struct provd_err *err)
{
  /* One step per migration plus the final check. */
  for (int i = 0; i <= PROVD_SQLITE_SCHEMA_VERSION; i++) {
    int done = 0;
    int rc = migrate_step(st, db, &done, err);
    if (rc != PROVD_OK || done)
      return rc;
  }
  st->host->err_set(err, "STORE_SCHEMA",
                    "%s: schema version did not converge", st->path);
  return PROVD_E_INTERNAL;
}
