/* Schema version of the sqlite storage plugin.  Tests include this to
 * check what start() recorded in the database header. */
#ifndef STORAGE_SQLITE_SCHEMA_H
#define STORAGE_SQLITE_SCHEMA_H

/* Number of migrations in schema.c; PRAGMA user_version after start(). */
#define PROVD_SQLITE_SCHEMA_VERSION 4
/* PRAGMA application_id of a provd database: "PRVD" in ASCII. */
#define PROVD_SQLITE_APPLICATION_ID 0x50525644

#endif
