#!/usr/bin/env bash
# ctest-labels: postgres
# Backup with the postgres store (docs/backup.md#postgresql): `provctl
# backup` refuses and names pg_dump, `--keys-only` saves the data dir's CA
# and keys; the documented steps (pg_dump while provd serves, pg_restore,
# provd restore of the keys) bring back the same server with its devices.
source "$(dirname "$0")/lib/common.bash"
source "$(dirname "$0")/lib/multi.bash"

pg_start
start_instance 1
on 1
K=$(random_key)
provctl enrollment add before-dump --primary-key "$K" --secondary-key "$(random_key)" >/dev/null
http PUT "$(reg_path before-dump)" '{"registrationId":"before-dump"}' \
  -H "Authorization: $(device_token "$K" before-dump)"
expect_eq "a device registers before the backup" 202 "$STATUS"

provctl backup "$WORK/all.bak" 2>"$WORK/err" && rc=0 || rc=$?
expect_eq "provctl backup refuses a postgres store" 1 "$rc"
check "... pointing to pg_dump and --keys-only" \
  bash -c "grep -q pg_dump '$WORK/err' && grep -q -- --keys-only '$WORK/err'"
check "... and writes nothing" test ! -e "$WORK/all.bak"
printf 'pg pass\n' > "$WORK/pw"
out=$(provctl backup "$WORK/keys.bak" --keys-only --passphrase-file "$WORK/pw" --json)
check "--keys-only saves the keys without the store" \
  bash -c "grep -q '\"store\":false' <<<'$out' && grep -q 'tls/ca.key' <<<'$out'"
pg_dump --format=custom --file="$WORK/db.dump" "$CONNINFO" 2>"$WORK/err" && rc=0 || rc=$?
expect_eq "pg_dump saves the database while provd serves" 0 "$rc"
provctl enrollment add after-dump --primary-key "$(random_key)" --secondary-key "$(random_key)" >/dev/null
kill_instance 1 TERM

pg_restore --clean --if-exists --dbname="$CONNINFO" "$WORK/db.dump" 2>"$WORK/err" && rc=0 || rc=$?
expect_eq "pg_restore puts the dump back" 0 "$rc"
ORIGINAL_CA=$DATA_DIR/tls/ca.pem
DATA_DIR=$WORK/restored
"$PROVD" restore "$WORK/keys.bak" --data-dir "$DATA_DIR" --passphrase-file "$WORK/pw" > "$WORK/out"
check "provd restore says the store comes from elsewhere" grep -q "holds no store" "$WORK/out"
start_instance 2
on 2
HTTP_CA=$ORIGINAL_CA http GET "/registrations/before-dump?api-version=2021-10-01" "" -H "Authorization: $(service_token)"
expect_eq "the restored server, trusted through the original CA and owner key, has the registration" 200 "$STATUS"
http GET "/enrollments/after-dump?api-version=2021-10-01" "" -H "Authorization: $(service_token)"
expect_eq "what came after the dump is not there" 404 "$STATUS"
kill_instance 2 TERM
finish
