#!/usr/bin/env bash
# ctest-labels: e2e;slow
# The crash ledger: enrollment writes and device registrations (over
# HTTPS and over DPS MQTT) run while
# provd is killed -9 at random moments (CRASHES, default 10) and
# restarted.  A ledger kept by the load generator
# (tests/e2e/lib/ledger_load.py) lists every write provd acknowledged;
# afterwards each one is in the store, each has its event in the journal,
# every journal event reached the webhook receiver (by event id), and the
# journal's hash chain verifies.
#
# STORE=postgres runs the same ledger on the postgres storage plugin (a
# throwaway cluster of scripts/pg-test-cluster.sh): a killed provd's
# transactions die with its connections, and each restart is a new
# process that must wait out the dead one's notifier lease before it
# delivers.
# ctest-variant: postgres STORE=postgres postgres;slow
source "$(dirname "$0")/lib/common.bash"

CRASHES=${CRASHES:-10}
STORE=${STORE:-sqlite}
DATA_DIR=$WORK/data
case "$STORE" in
sqlite) ;;
postgres) source "$(dirname "$0")/lib/multi.bash"; pg_start ;;
*) fail "STORE must be sqlite or postgres, not $STORE"; exit 1 ;;
esac
RPORT=$(free_port)
FIXED_PORT=$(free_port)
FIXED_MQTT_PORT=$(free_port)
while [ "$FIXED_MQTT_PORT" = "$FIXED_PORT" ]; do FIXED_MQTT_PORT=$(free_port); done
SECRET=ledger-$(random_key)
LOG=$WORK/requests.jsonl
LEDGER=$WORK/ledger
: > "$LOG"; : > "$LEDGER"

write_config "$WORK/provd.yaml" "$DATA_DIR"
sed -i "s|listen: { https: \"127.0.0.1:0\" }|listen: { https: \"127.0.0.1:$FIXED_PORT\", mqtt: \"127.0.0.1:$FIXED_MQTT_PORT\" }|" "$WORK/provd.yaml"
cat >> "$WORK/provd.yaml" <<YAML
  - kind: notifier
    name: webhook
    id: back-end
    options: { url: "http://127.0.0.1:$RPORT/ok", secret: "$SECRET", timeout: 2s }
events: { retry_initial: 50ms, retry_max: 300ms, poll: 20ms }
YAML
if [ "$STORE" = postgres ]; then
  cat >> "$WORK/provd.yaml" <<YAML
storage:
  plugin: postgres
  options: { conninfo: "$CONNINFO", pool_size: 4, reconnect_max: 1s }
YAML
fi
start_receiver "$RPORT" "$LOG" "$SECRET"
start_provd "$WORK/provd.yaml"

python3 "$SOURCE_DIR/tests/e2e/lib/ledger_load.py" --port "$FIXED_PORT" \
  --ca "$DATA_DIR/tls/ca.pem" --scope "$SCOPE" \
  --conn-string "$DATA_DIR/service-connection-string" --ledger "$LEDGER" \
  --mqtt-port "$FIXED_MQTT_PORT" \
  --stop-file "$WORK/stop" --seconds 300 2>>"$WORK/load.err" &
LOAD=$!

for i in $(seq 1 "$CRASHES"); do
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.4, 1.6), 2))')"
  kill -KILL "$PROVD_PID"
  wait "$PROVD_PID" 2>/dev/null || true
  PROVD_PID=
  start_provd "$WORK/provd.yaml"
done
sleep 1
touch "$WORK/stop"
wait "$LOAD" || true
check "the load generator ran without errors" test ! -s "$WORK/load.err"

ENROLLS=$(grep -c '^enroll ' "$LEDGER" || true)
REGS=$(grep -c '^register ' "$LEDGER" || true)
MQTT_REGS=$(grep -c '^register-mqtt ' "$LEDGER" || true)
echo "# ledger ($STORE): $ENROLLS enrollments, $REGS registrations over HTTPS and $MQTT_REGS over MQTT, $(grep -c '^disable ' "$LEDGER" || true) disables acknowledged across $CRASHES crashes"
check "enough writes were acknowledged to mean something" test "$ENROLLS" -ge 50 -a "$REGS" -ge 50 -a "$MQTT_REGS" -ge 20

# Every acknowledged write is in the store, with its event in the journal,
# and every journal event was delivered.
verify() {
  python3 - "$LEDGER" "$LOG" "$PORT" "$DATA_DIR/tls/ca.pem" "$(service_token)" <<'PY'
import http.client, json, ssl, sys
ledger, log, port, ca, token = sys.argv[1:6]
conn = http.client.HTTPSConnection("localhost", int(port), context=ssl.create_default_context(cafile=ca))
H = {"Authorization": token}
def get(path):
    conn.request("GET", path, headers=H)
    r = conn.getresponse()
    return r.status, r.read()
problems = []
for line in open(ledger):
    what, rid = line.split()
    if what in ("enroll", "disable"):
        st, body = get(f"/enrollments/{rid}?api-version=2021-10-01")
        if st != 200:
            problems.append(f"acknowledged enrollment {rid} is missing ({st})")
        elif what == "disable" and json.loads(body).get("provisioningStatus") != "disabled":
            problems.append(f"acknowledged disable of {rid} is lost")
    elif what in ("register", "register-mqtt"):
        st, _ = get(f"/registrations/{rid}?api-version=2021-10-01")
        if st != 200:
            problems.append(f"acknowledged registration {rid} is missing ({st})")
events, after = [], 0
while True:
    st, body = get(f"/events?after={after}&limit=1000&api-version=2021-10-01")
    page = json.loads(body)
    if st != 200 or not page:
        break
    events += page
    after = page[-1]["seq"]
by_subject = {}
for e in events:
    by_subject.setdefault(e["subject"], set()).add(e["type"])
want = {"enroll": {"enrollment.created"}, "disable": {"enrollment.updated"},
        # a write provd applied but could not acknowledge (killed before
        # the answer left) is not in the ledger: a device may then register
        # against an enrollment disabled behind the ledger's back
        "register": {"device.assigned", "device.reprovisioned",
                     "registration.failed"}}
want["register-mqtt"] = want["register"]
for line in open(ledger):
    what, rid = line.split()
    if not want[what] & by_subject.get(rid, set()):
        problems.append(f"{what} {rid} has no {'/'.join(sorted(want[what]))} event"
                        f" (its events: {sorted(by_subject.get(rid, set()))},"
                        f" listed {len(events)} up to seq {after})")
delivered = {}
for l in open(log):
    r = json.loads(l)
    if r["status"] == 200 and r["sig_ok"]:
        delivered[r["id"]] = delivered.get(r["id"], 0) + 1
ids = {e["id"] for e in events}
missing = ids - set(delivered)
phantom = set(delivered) - ids
twice = sum(1 for n in delivered.values() if n > 1)
if missing:
    problems.append(f"{len(missing)} journal events never delivered")
if phantom:
    problems.append(f"{len(phantom)} delivered events are not in the journal")
print(f"events={len(events)} delivered={len(delivered)} delivered_twice={twice}")
for p in problems[:20]:
    print("PROBLEM", p)
sys.exit(1 if problems else 0)
PY
}
check "every event is delivered within 60 s" wait_for 60 bash -c "verify() { :; }; [ \$(wc -l < '$LOG') -gt 0 ]"
sleep 2
for _ in $(seq 1 30); do out=$(verify) && break; sleep 1; done
echo "# $(head -n 1 <<<"$out")"
check "the ledger holds against the store, the journal and the receiver ($(grep -c PROBLEM <<<"$out") problems)" \
  bash -c "! grep -q PROBLEM <<<'$out'"
grep PROBLEM <<<"$out" | head -5 | sed 's/^/# /' || true
out=$(provctl events verify) && rc=0 || rc=$?
expect_eq "the journal's hash chain verifies after $CRASHES crashes" 0 "$rc"
stop_provd TERM
expect_eq "provd exits 0 on SIGTERM" 0 "$STOP_RC"
finish
