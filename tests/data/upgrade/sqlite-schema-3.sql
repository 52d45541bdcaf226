-- A provd store at sqlite schema version 3 (migrations 1-3 of
-- plugins/storage-sqlite/schema.c: the schema provd shipped before the TPM
-- challenge rounds added migration 4), for tests/e2e/upgrade.sh.
-- Two symmetric-key enrollments (legacy-device has never registered,
-- legacy-registered was assigned to hub-2), the two seeded hubs and a
-- journal of three hash-chained events.  Load it with
--   python3 -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).executescript(open(sys.argv[2]).read())' DB FILE
-- or `sqlite3 DB < FILE`.
PRAGMA application_id = 1347573316;
PRAGMA user_version = 3;
BEGIN TRANSACTION;
CREATE TABLE certificates ( id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, etag TEXT, body TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, group_id TEXT COLLATE NOCASE, hub TEXT COLLATE NOCASE, kind TEXT COLLATE NOCASE);
CREATE TABLE dead_letters ( id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, etag TEXT, body TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, group_id TEXT COLLATE NOCASE, hub TEXT COLLATE NOCASE, kind TEXT COLLATE NOCASE);
CREATE TABLE enrollment_groups ( id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, etag TEXT, body TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, group_id TEXT COLLATE NOCASE, hub TEXT COLLATE NOCASE, kind TEXT COLLATE NOCASE);
CREATE TABLE enrollments ( id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, etag TEXT, body TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, group_id TEXT COLLATE NOCASE, hub TEXT COLLATE NOCASE, kind TEXT COLLATE NOCASE);
INSERT INTO "enrollments" VALUES('legacy-device','"580937cd-afd7-49d1-8b30-76379a8a0ad8"','{"registrationId":"legacy-device","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"bGVnYWN5LWRldmljZS1wcmltYXJ5LWtleS0zMmJ5dGU=","secondaryKey":"c2Vjb25kYXJ5LWtleS1vZi0zMi1ieXRlcy1sb25nISE="}},"provisioningStatus":"enabled","reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true},"capabilities":{"iotEdge":false},"createdDateTimeUtc":"2026-12-03T18:25:57.3150000Z","lastUpdatedDateTimeUtc":"2026-12-03T18:25:57.3150000Z","etag":"\"580937cd-afd7-49d1-8b30-76379a8a0ad8\""}',1796322357315,1796322357315,NULL,NULL,'symmetricKey');
INSERT INTO "enrollments" VALUES('legacy-registered','"c3390367-9064-4edf-9174-6f6631e3415c"','{"registrationId":"legacy-registered","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"bGVnYWN5LXJlZ2lzdGVyZWQta2V5LTMyLWJ5dGVzISE=","secondaryKey":"c2Vjb25kYXJ5LWtleS1vZi0zMi1ieXRlcy1sb25nISE="}},"provisioningStatus":"enabled","reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true},"capabilities":{"iotEdge":false},"createdDateTimeUtc":"2026-12-03T18:25:57.3290000Z","lastUpdatedDateTimeUtc":"2026-12-03T18:25:57.3290000Z","etag":"\"c3390367-9064-4edf-9174-6f6631e3415c\""}',1796322357329,1796322357329,NULL,NULL,'symmetricKey');
CREATE TABLE hubs ( id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, etag TEXT, body TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, group_id TEXT COLLATE NOCASE, hub TEXT COLLATE NOCASE, kind TEXT COLLATE NOCASE);
INSERT INTO "hubs" VALUES('hub-1','"d2e2af3b-4e3f-4168-9692-c8bc4eb19088"','{"name":"hub-1","hostname":"hub-1.example.net","weight":1,"applyAllocationPolicy":true,"removed":false}',1796322355823,1796322355823,NULL,NULL,NULL);
INSERT INTO "hubs" VALUES('hub-2','"c3af958f-9c8a-4d2c-b62a-392bd6e9122e"','{"name":"hub-2","hostname":"hub-2.example.net","weight":1,"applyAllocationPolicy":true,"removed":false}',1796322355823,1796322355823,NULL,NULL,NULL);
CREATE TABLE notifier_cursors ( id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, etag TEXT, body TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, group_id TEXT COLLATE NOCASE, hub TEXT COLLATE NOCASE, kind TEXT COLLATE NOCASE);
CREATE TABLE outbox ( seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, time_ms INTEGER NOT NULL, subject TEXT, body TEXT NOT NULL, event_id TEXT, prev_hash TEXT, hash TEXT);
INSERT INTO "outbox" VALUES(1,'enrollment.created',1796322357316,'legacy-device','{"id":"legacy-device","etag":"\"580937cd-afd7-49d1-8b30-76379a8a0ad8\""}','70f81565-ad45-8bca-8000-000000000000','0000000000000000000000000000000000000000000000000000000000000000','0806b984264bec40f555e472d46100c895245d6625d9923390c590cec4cca183');
INSERT INTO "outbox" VALUES(2,'enrollment.created',1796322357330,'legacy-registered','{"id":"legacy-registered","etag":"\"c3390367-9064-4edf-9174-6f6631e3415c\""}','70f81565-ad45-8bca-8000-000000000001','0806b984264bec40f555e472d46100c895245d6625d9923390c590cec4cca183','ede10f9478f8b5abf93ebec66f4697d9351883d2c922ee42f0994963bb1de2e4');
INSERT INTO "outbox" VALUES(3,'device.assigned',1796322359943,'legacy-registered','{"registrationId":"legacy-registered","deviceId":"legacy-registered","assignedHub":"hub-2.example.net","status":"assigned","hub":"hub-2","reason":null}','70f81565-ad45-8bca-8000-000000000002','ede10f9478f8b5abf93ebec66f4697d9351883d2c922ee42f0994963bb1de2e4','22ef87b539476f24dd983972f637381780d64babd59cee4d048183a8b45fbf8a');
CREATE TABLE registrations ( id TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, etag TEXT, body TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, group_id TEXT COLLATE NOCASE, hub TEXT COLLATE NOCASE, kind TEXT COLLATE NOCASE);
INSERT INTO "registrations" VALUES('legacy-registered','"a8054589-e144-46ca-b688-120dbcb0b167"','{"registrationId":"legacy-registered","createdDateTimeUtc":"2026-12-03T18:25:59.9430000Z","lastUpdatedDateTimeUtc":"2026-12-03T18:25:59.9430000Z","assignedHub":"hub-2.example.net","deviceId":"legacy-registered","status":"assigned","substatus":"initialAssignment","etag":"\"a8054589-e144-46ca-b688-120dbcb0b167\""}',1796322359943,1796322359943,NULL,'hub-2',NULL);
CREATE INDEX enrollments_kind ON enrollments(kind, id);
CREATE INDEX enrollment_groups_kind ON enrollment_groups(kind, id);
CREATE INDEX registrations_group ON registrations(group_id, id);
CREATE INDEX registrations_hub ON registrations(hub, id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('outbox',3);
COMMIT;
