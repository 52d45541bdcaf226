#!/usr/bin/env bash
# ctest-labels: e2e;slow
# Delivery survives outages and crashes (webhook against a loopback
# receiver, tests/e2e/lib/notify_peer.py):
#  outage: receiver down, 1,000 events produced (500 enrollments created
#          and then disabled), receiver up -> all 1,000 delivered, none
#          twice by event id, created before updated for every subject;
#  crash:  receiver down, enrollments written while provd is killed -9
#          (events committed, none delivered); restart with the receiver
#          up -> every event delivered, and a ledger of acknowledged
#          writes shows no change without its event and no event
#          without its change.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
RPORT=$(free_port)
SECRET=outage-$(random_key)
LOG=$WORK/requests.jsonl
LEDGER=$WORK/ledger
: > "$LOG"; : > "$LEDGER"

write_config "$WORK/provd.yaml" "$DATA_DIR"
cat >> "$WORK/provd.yaml" <<YAML
  - kind: notifier
    name: webhook
    id: crm
    events: [ enrollment.created, enrollment.updated ]
    options: { url: "http://127.0.0.1:$RPORT/ok", secret: "$SECRET", timeout: 2s }
events: { retry_initial: 50ms, retry_max: 300ms, poll: 20ms }
YAML
start_provd "$WORK/provd.yaml"

produce() { # PREFIX N [--update]
  python3 "$SOURCE_DIR/tests/e2e/lib/notify_peer.py" produce --port "$PORT" \
    --ca "$DATA_DIR/tls/ca.pem" --token "$(service_token)" --ledger "$LEDGER" \
    --prefix "$1" --create "$2" "${@:3}"
}
delivered_ok() { python3 -c 'import json,sys; print(len({json.loads(l)["id"] for l in open(sys.argv[1]) if json.loads(l)["status"] == 200}))' "$LOG"; }
at_least() { [ "$(delivered_ok)" -ge "$1" ]; }

# --- outage ---
produce out 500 --update
expect_eq "1,000 changes acknowledged" 1000 "$(wc -l < "$LEDGER")"
expect_eq "nothing delivered while the receiver is down" 0 "$(wc -l < "$LOG")"
start_receiver "$RPORT" "$LOG" "$SECRET"
check "all 1,000 events arrive once the receiver is up" wait_for 60 at_least 1000
sleep 1
if python3 - "$LOG" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 1000, f"{len(rows)} requests for 1000 events"
assert len({r["id"] for r in rows}) == 1000, "an event came twice"
assert all(r["sig_ok"] for r in rows), "a bad signature"
by_subject = {}
for r in rows:
    by_subject.setdefault(r["subject"], []).append((r["type"], int(r["sequence"])))
assert len(by_subject) == 500
for s, evs in by_subject.items():
    assert [t for t, _ in evs] == ["enrollment.created", "enrollment.updated"], (s, evs)
    assert evs[0][1] < evs[1][1], (s, evs)
PY
then pass "outage: 1,000 requests, 1,000 distinct ids, each subject in order, all signed"
else fail "outage: deliveries are wrong"; fi

# --- crash ---
stop_receiver
: > "$LOG"; : > "$LEDGER"
produce crash 400 &
PRODUCER=$!
wait_for 30 bash -c "[ \$(wc -l < '$LEDGER') -ge 150 ]" || fail "the producer is too slow"
kill -KILL "$PROVD_PID"
wait "$PROVD_PID" 2>/dev/null || true
PROVD_PID=
wait "$PRODUCER" || true
ACKED=$(wc -l < "$LEDGER")
check "provd was killed in the middle of the writes ($ACKED of 400 acknowledged)" test "$ACKED" -lt 400
expect_eq "nothing was delivered before the crash" 0 "$(wc -l < "$LOG")"
start_receiver "$RPORT" "$LOG" "$SECRET"
start_provd "$WORK/provd.yaml"
OWNER="Authorization: $(service_token)"
# Every crash-* enrollment the store has, after the crash.
STORED=$WORK/stored
: > "$STORED"
for i in $(seq 0 399); do printf 'crash-%04d\n' "$i"; done | while read -r id; do
  http GET "/enrollments/$id?api-version=2021-10-01" '' -H "$OWNER"
  [ "$STATUS" = 200 ] && echo "$id" >> "$STORED"
  true
done
N_STORED=$(wc -l < "$STORED")
check "the store kept every acknowledged write ($N_STORED >= $ACKED)" test "$N_STORED" -ge "$ACKED"
check "every stored change's event is delivered after the restart" wait_for 30 at_least "$N_STORED"
sleep 1
if python3 - "$LOG" "$LEDGER" "$STORED" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["status"] == 200]
delivered = {r["subject"] for r in rows if r["type"] == "enrollment.created"}
acked = {l.split()[1] for l in open(sys.argv[2])}
stored = {l.strip() for l in open(sys.argv[3])}
assert acked <= stored, f"acknowledged but lost: {sorted(acked - stored)[:5]}"
assert delivered == stored, f"change without event: {sorted(stored - delivered)[:5]}, event without change: {sorted(delivered - stored)[:5]}"
PY
then pass "crash: delivered events = stored changes, and every acknowledged change is stored"
else fail "crash: ledger, store and deliveries disagree"; fi
out=$(provctl events verify) && rc=0 || rc=$?
expect_eq "the journal verifies after kill -9" 0 "$rc"
stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
