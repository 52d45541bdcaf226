#!/usr/bin/env bash
# ctest-labels: e2e
# Backup and restore: `provctl backup` while enrollments and registrations
# keep coming (tests/e2e/lib/ledger_load.py keeps a ledger of every write
# provd acknowledged), `provd restore` into a new data dir, and provd
# started on it is the same server (same CA, same owner key) holding every
# write acknowledged before the backup began.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
RESTORED=$WORK/restored
FIXED_PORT=$(free_port)
LEDGER=$WORK/ledger
OPS_KEY=$(random_key)
: > "$LEDGER"

write_config "$WORK/provd.yaml" "$DATA_DIR"
sed -i "s|listen: { https: \"127.0.0.1:0\" }|listen: { https: \"127.0.0.1:$FIXED_PORT\" }|" "$WORK/provd.yaml"
cat >> "$WORK/provd.yaml" <<YAML
service_policies:
  - { name: ops, key: "$OPS_KEY", access: read-write }
YAML
start_provd "$WORK/provd.yaml"

# Only the owner may take the keys away.
http GET "/backup?api-version=2021-10-01" "" -H "Authorization: $(service_token ops "$OPS_KEY")"
expect_eq "a read-write policy that is not the owner gets 403" 403 "$STATUS"
http GET "/backup?api-version=2021-10-01&keysOnly=maybe" "" -H "Authorization: $(service_token)"
expect_eq "keysOnly takes true or false" 400 "$STATUS"

python3 "$SOURCE_DIR/tests/e2e/lib/ledger_load.py" --port "$FIXED_PORT" \
  --ca "$DATA_DIR/tls/ca.pem" --scope "$SCOPE" \
  --conn-string "$DATA_DIR/service-connection-string" --ledger "$LEDGER" \
  --stop-file "$WORK/stop" --seconds 120 2>>"$WORK/load.err" &
LOAD=$!
wait_for 30 bash -c "[ \$(grep -c '^register ' '$LEDGER') -ge 100 ]" || true

# Everything in the ledger now was acknowledged before the backup began.
cp "$LEDGER" "$WORK/ledger.before"
printf 'correct horse battery staple\n' > "$WORK/passphrase"
out=$(provctl backup "$WORK/backup.bin" --passphrase-file "$WORK/passphrase" --json) && rc=0 || rc=$?
expect_eq "provctl backup succeeds while devices register" 0 "$rc"
check "the backup holds the store and the keys" \
  bash -c "grep -q '\"store\":true' <<<'$out' && grep -q 'tls/ca.key' <<<'$out' && grep -q 'service-connection-string' <<<'$out'"
check "the backup file is private (0600)" test "$(stat -c %a "$WORK/backup.bin")" = 600
check "the passphrase sealed it: no PEM key in clear" bash -c "! grep -qa 'PRIVATE KEY' '$WORK/backup.bin'"
before_count=$(wc -l < "$WORK/ledger.before")
wait_for 10 bash -c "[ \$(wc -l < '$LEDGER') -gt $before_count ]" || true
touch "$WORK/stop"
wait "$LOAD" || true
check "the load generator ran without errors" test ! -s "$WORK/load.err"
check "writes went on during and after the backup" test "$(wc -l < "$LEDGER")" -gt "$before_count"
echo "# ledger before the backup: $(grep -c '^enroll ' "$WORK/ledger.before") enrollments, $(grep -c '^register ' "$WORK/ledger.before") registrations"

provctl backup "$WORK/backup.bin" --passphrase-file "$WORK/passphrase" >/dev/null 2>"$WORK/err" && rc=0 || rc=$?
expect_eq "an existing backup file is not replaced" 1 "$rc"
out=$(provctl backup "$WORK/keys.bin" --keys-only --json)
check "--keys-only leaves the store out" grep -q '"store":false' <<<"$out"
stop_provd TERM
expect_eq "provd exits 0 on SIGTERM" 0 "$STOP_RC"

printf 'wrong\n' > "$WORK/wrong"
"$PROVD" restore "$WORK/backup.bin" --data-dir "$RESTORED" --passphrase-file "$WORK/wrong" 2>"$WORK/err" && rc=0 || rc=$?
expect_eq "a wrong passphrase is refused" 1 "$rc"
check "... saying so" grep -q "wrong passphrase" "$WORK/err"
check "... before anything is written" test ! -e "$RESTORED"
"$PROVD" restore "$WORK/backup.bin" --data-dir "$RESTORED" 2>"$WORK/err" && rc=0 || rc=$?
expect_eq "a sealed backup without a passphrase is refused" 1 "$rc"
check "... naming where the passphrase goes" grep -q "passphrase-file" "$WORK/err"
"$PROVD" restore "$WORK/backup.bin" --data-dir "$DATA_DIR" --passphrase-file "$WORK/passphrase" 2>"$WORK/err" && rc=0 || rc=$?
expect_eq "a non-empty data dir is refused without --force" 1 "$rc"
PROVD_BACKUP_PASSPHRASE='correct horse battery staple' \
  "$PROVD" restore "$WORK/backup.bin" --data-dir "$RESTORED" > "$WORK/out" && rc=0 || rc=$?
expect_eq "provd restore (passphrase from the environment) succeeds" 0 "$rc"
check "the restored data dir is 0700" test "$(stat -c %a "$RESTORED")" = 700
check "the restored CA key is 0600" test "$(stat -c %a "$RESTORED/tls/ca.key")" = 600
check "the CA comes back" cmp -s "$DATA_DIR/tls/ca.pem" "$RESTORED/tls/ca.pem"
check "the owner key comes back" cmp -s "$DATA_DIR/service-connection-string" "$RESTORED/service-connection-string"
"$PROVD" restore "$WORK/keys.bin" --data-dir "$WORK/keys-only" > "$WORK/out"
check "a keys-only restore says the store must come from elsewhere" grep -q "holds no store" "$WORK/out"

# The restored server: devices and operators that trusted the old CA and
# key reach it unchanged, and every acknowledged write is there.
ORIGINAL_CA=$DATA_DIR/tls/ca.pem
DATA_DIR=$RESTORED
write_config "$WORK/restored.yaml" "$RESTORED"
start_provd "$WORK/restored.yaml"
HTTP_CA=$ORIGINAL_CA http GET /healthz
expect_eq "the restored server is trusted through the original CA" 200 "$STATUS"
out=$(python3 - "$WORK/ledger.before" "$PORT" "$ORIGINAL_CA" "$(service_token)" <<'PY'
import http.client, json, ssl, sys
ledger, port, ca, token = sys.argv[1:5]
conn = http.client.HTTPSConnection("localhost", int(port), context=ssl.create_default_context(cafile=ca))
def get(path):
    conn.request("GET", path + "?api-version=2021-10-01", headers={"Authorization": token})
    r = conn.getresponse()
    return r.status, r.read()
problems, seen = [], 0
for line in open(ledger).read().split("\n")[:-1]:   # whole lines only
    what, rid = line.split()
    seen += 1
    path = "/registrations/" if what == "register" else "/enrollments/"
    st, body = get(path + rid)
    if st != 200:
        problems.append(f"acknowledged {what} {rid} is missing ({st})")
    elif what == "disable" and json.loads(body).get("provisioningStatus") != "disabled":
        problems.append(f"acknowledged disable of {rid} is lost")
print(f"checked={seen}")
for p in problems[:10]:
    print("PROBLEM", p)
PY
)
echo "# $(head -n 1 <<<"$out")"
check "every write acknowledged before the backup is in the restored store ($(grep -c PROBLEM <<<"$out" || true) problems)" \
  bash -c "! grep -q PROBLEM <<<'$out'"
grep PROBLEM <<<"$out" | head -5 | sed 's/^/# /' || true

# A new device registers on the restored server.
rid=after-restore
key=$(random_key)
provctl enrollment add "$rid" --primary-key "$key" --secondary-key "$(random_key)" >/dev/null
HTTP_CA=$ORIGINAL_CA http PUT "/$SCOPE/registrations/$rid/register?api-version=2021-06-01" \
  "{\"registrationId\":\"$rid\"}" -H "Authorization: $(device_token "$key" "$rid")"
expect_eq "a device registers on the restored server" 202 "$STATUS"
out=$(provctl events verify) && rc=0 || rc=$?
expect_eq "the restored journal's hash chain verifies" 0 "$rc"
stop_provd TERM
finish
