/* Versioned schema migrations.  provd_schema holds the number applied;
 * each migration runs in its own transaction with the version bump, and
 * the whole run holds a session-level advisory lock, so instances that
 * start together migrate once: the others wait, re-read the version and
 * find nothing to do.  Migrations are append-only. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const char *const table_names[PG_N_TABLES] = {
  "enrollments", "enrollment_groups", "registrations", "hubs",
  "certificates", "notifier_cursors", "dead_letters"
};

const char *pg_table_name(enum provd_table t)
{
  if (t < PROVD_TABLE_ENROLLMENTS || t > PROVD_TABLE_DEAD_LETTERS)
    return NULL;
  return table_names[t - 1];
}

/* id_fold is the id ASCII-lowercased (lower() under "C"): ids compare and
 * sort case-insensitively, as the sqlite plugin's COLLATE NOCASE does. */
#define RECORD_TABLE(name)                                               \
  "CREATE TABLE " name " ("                                              \
  " id_fold text COLLATE \"C\" PRIMARY KEY,"                             \
  " id text COLLATE \"C\" NOT NULL,"                                     \
  " etag text COLLATE \"C\","                                            \
  " body text NOT NULL,"                                                 \
  " created_ms bigint NOT NULL,"                                         \
  " updated_ms bigint NOT NULL,"                                         \
  " group_id text COLLATE \"C\","                                        \
  " hub text COLLATE \"C\","                                             \
  " kind text COLLATE \"C\");"

static const char migration_1[] =
  RECORD_TABLE("enrollments")
  RECORD_TABLE("enrollment_groups")
  RECORD_TABLE("registrations")
  RECORD_TABLE("hubs")
  RECORD_TABLE("certificates")
  RECORD_TABLE("notifier_cursors")
  RECORD_TABLE("dead_letters")
  "CREATE INDEX enrollments_kind ON enrollments (lower(kind), id_fold);"
  "CREATE INDEX enrollment_groups_kind ON enrollment_groups"
  " (lower(kind), id_fold);"
  "CREATE INDEX registrations_group ON registrations"
  " (lower(group_id), id_fold);"
  "CREATE INDEX registrations_hub ON registrations (lower(hub), id_fold);"
  "CREATE TABLE outbox ("
  " seq bigint PRIMARY KEY,"
  " type text NOT NULL,"
  " time_ms bigint NOT NULL,"
  " subject text,"
  " body text NOT NULL,"
  " event_id text,"
  " prev_hash text,"
  " hash text);"
  "CREATE TABLE journal_seq (seq bigint NOT NULL);"
  "INSERT INTO journal_seq VALUES (0);"
  "CREATE TABLE challenges ("
  " reg_fold text COLLATE \"C\" PRIMARY KEY,"
  " registration_id text NOT NULL,"
  " session bytea NOT NULL,"
  " issued_ms bigint NOT NULL,"
  " expires_ms bigint NOT NULL,"
  " answered_ms bigint NOT NULL DEFAULT 0);"
  "CREATE INDEX challenges_expiry ON challenges (expires_ms);";

static const char *const migrations[] = { migration_1 };

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
                   PROVD_POSTGRES_SCHEMA_VERSION,
               "PROVD_POSTGRES_SCHEMA_VERSION must count the migrations");

static int exec_sql(struct pg_state *st, PGconn *db, const char *sql,
                    const char *what, struct provd_err *err)
{
  PGresult *r = PQexec(db, sql);
  ExecStatusType es = PQresultStatus(r);
  int ok = es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK;
  if (!ok)
    st->host->err_set(err, "STORE_SCHEMA", "postgres: %s: %s", what,
                      PQerrorMessage(db));
  PQclear(r);
  return ok ? PROVD_OK : PROVD_E_IO;
}

/* -1: no provd_schema table; else the version.  A database holding
 * tables of ours without provd_schema is refused. */
static int read_version(struct pg_state *st, PGconn *db, int64_t *version,
                        struct provd_err *err)
{
  PGresult *r = PQexec(db, "SELECT to_regclass('provd_schema') IS NOT NULL,"
                           " to_regclass('enrollments') IS NOT NULL");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    st->host->err_set(err, "STORE_SCHEMA", "postgres: reading the schema: "
                      "%s", PQerrorMessage(db));
    PQclear(r);
    return PROVD_E_IO;
  }
  int has_schema = PQgetvalue(r, 0, 0)[0] == 't';
  int has_ours = PQgetvalue(r, 0, 1)[0] == 't';
  PQclear(r);
  if (!has_schema) {
    if (has_ours) {
      st->host->err_set(err, "STORE_SCHEMA",
                        "postgres: the database has an enrollments table "
                        "but no provd_schema: not a provd database");
      return PROVD_E_CONFIG;
    }
    *version = 0;
    return exec_sql(st, db, "CREATE TABLE provd_schema (version integer "
                    "NOT NULL); INSERT INTO provd_schema VALUES (0)",
                    "creating provd_schema", err);
  }
  r = PQexec(db, "SELECT version FROM provd_schema");
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  *version = ok ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
  PQclear(r);
  if (!ok) {
    st->host->err_set(err, "STORE_SCHEMA", "postgres: provd_schema must "
                      "hold one row");
    return PROVD_E_CONFIG;
  }
  return PROVD_OK;
}

static int migrate_locked(struct pg_state *st, PGconn *db,
                          struct provd_err *err)
{
  for (;;) {
    int64_t version = 0;
    int rc = exec_sql(st, db, "BEGIN", "beginning a migration", err);
    if (rc == PROVD_OK)
      rc = read_version(st, db, &version, err);
    if (rc == PROVD_OK && version > PROVD_POSTGRES_SCHEMA_VERSION) {
      st->host->err_set(err, "STORE_SCHEMA",
                        "postgres: schema version %lld is newer than this "
                        "plugin supports (%d); upgrade provd",
                        (long long)version, PROVD_POSTGRES_SCHEMA_VERSION);
      rc = PROVD_E_UNSUPPORTED;
    }
    if (rc == PROVD_OK && version == PROVD_POSTGRES_SCHEMA_VERSION)
      return exec_sql(st, db, "COMMIT", "committing", err);
    if (rc == PROVD_OK)
      rc = exec_sql(st, db, migrations[version], "applying a migration",
                    err);
    if (rc == PROVD_OK)
      rc = exec_sql(st, db, "UPDATE provd_schema SET version = version + 1",
                    "recording the schema version", err);
    if (rc == PROVD_OK)
      rc = exec_sql(st, db, "COMMIT", "committing a migration", err);
    if (rc != PROVD_OK) {
      PQclear(PQexec(db, "ROLLBACK"));
      return rc;
    }
    st->host->log(st->inst, NULL, PROVD_LOG_INFO,
                  "postgres: migrated to schema version %lld",
                  (long long)version + 1);
  }
}

int pg_migrate(struct pg_state *st, PGconn *db, struct provd_err *err)
{
  char sql[96];
  snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%lld)",
           (long long)PG_MIGRATE_LOCK_KEY);
  int rc = exec_sql(st, db, sql, "locking for migration", err);
  if (rc != PROVD_OK)
    return rc;
  rc = migrate_locked(st, db, err);
  snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%lld)",
           (long long)PG_MIGRATE_LOCK_KEY);
  exec_sql(st, db, sql, "unlocking", NULL);
  return rc;
}
