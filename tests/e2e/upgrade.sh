#!/usr/bin/env bash
# ctest-labels: e2e
# Upgrades (docs/upgrading.md): provd started on a store written at the
# previous sqlite schema version (tests/data/upgrade/sqlite-schema-3.sql)
# migrates it forward, keeps its enrollments, registrations and journal,
# and registers a device on it.  A store newer than this provd knows is
# refused with both versions named, and left untouched.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
FIXTURE=$SOURCE_DIR/tests/data/upgrade/sqlite-schema-3.sql
CURRENT=$(sed -n 's/^#define PROVD_SQLITE_SCHEMA_VERSION \([0-9]*\).*/\1/p' \
  "$SOURCE_DIR/plugins/storage-sqlite/schema.h")
mkdir -m 0700 "$DATA_DIR"

sql() { # DB SQL...: runs statements, prints the first column of each row
  python3 - "$@" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for stmt in sys.argv[2:]:
    for row in db.execute(stmt):
        print(row[0])
db.commit()
PY
}
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).executescript(open(sys.argv[2]).read())' \
  "$DATA_DIR/provd.db" "$FIXTURE"
expect_eq "the fixture is a schema version 3 store" 3 "$(sql "$DATA_DIR/provd.db" 'PRAGMA user_version')"

write_config "$WORK/provd.yaml" "$DATA_DIR"
start_provd "$WORK/provd.yaml"
check "provd logs the migration to the current version" \
  grep -q "provd.db migrated to schema version $CURRENT" "$WORK/provd.log"

out=$(provctl registration show legacy-registered --json)
expect_eq "a registration made before the upgrade is still there" \
  hub-2.example.net "$(json_get "$out" assignedHub)"
out=$(provctl events verify) && rc=0 || rc=$?
expect_eq "the journal written before the upgrade still verifies" 0 "$rc"

key=$(printf %s legacy-device-primary-key-32byte | base64 -w0)
out=$("$PROVD_DEVICE" register --scope "$SCOPE" --registration-id legacy-device \
  --symmetric-key "$key" --url "https://localhost:$PORT" \
  --ca "$DATA_DIR/tls/ca.pem" --json) && rc=0 || rc=$?
expect_eq "a device enrolled before the upgrade registers after it" 0 "$rc"
check "... and is assigned a hub" grep -q '"assignedHub"' <<<"$out"
stop_provd TERM
expect_eq "provd exits 0 on SIGTERM" 0 "$STOP_RC"
expect_eq "the store is at schema version $CURRENT now" "$CURRENT" "$(sql "$DATA_DIR/provd.db" 'PRAGMA user_version')"

# Never backward: a store from a newer provd is refused, not rewritten.
sql "$DATA_DIR/provd.db" 'PRAGMA user_version = 99' >/dev/null
"$PROVD" -c "$WORK/provd.yaml" > /dev/null 2> "$WORK/newer.log" && rc=0 || rc=$?
check "provd refuses a store newer than it knows (exit $rc)" test "$rc" -ne 0
check "... naming the store's version and its own" \
  grep -q "schema version 99, newer than this sqlite plugin supports ($CURRENT)" "$WORK/newer.log"
expect_eq "... and leaves the store's version alone" 99 "$(sql "$DATA_DIR/provd.db" 'PRAGMA user_version')"
finish
