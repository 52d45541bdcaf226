#!/usr/bin/env bash
# ctest-labels: e2e;plugin
# The webhook notifier against a real HTTP server on loopback
# (tests/e2e/lib/notify_peer.py): a signed CloudEvent arrives; 500 then
# 200 is delivered once; 400 is a dead letter at once (and `provctl
# events retry` sends it again); "503 + Retry-After: 2" waits 2 s even
# though the configured backoff is shorter.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
RPORT=$(free_port)
SECRET=s3cret-$(random_key)
LOG=$WORK/requests.jsonl
: > "$LOG"
start_receiver "$RPORT" "$LOG" "$SECRET"

write_config "$WORK/provd.yaml" "$DATA_DIR"
for hook in ok flaky bad retry-after; do
  cat >> "$WORK/provd.yaml" <<YAML
  - kind: notifier
    name: webhook
    id: hook-$hook
    events: [ enrollment.created ]
    options: { url: "http://127.0.0.1:$RPORT/$hook", secret: "$SECRET", timeout: 2s }
YAML
done
echo "events: { retry_initial: 100ms, retry_max: 300ms, poll: 20ms }" >> "$WORK/provd.yaml"
start_provd "$WORK/provd.yaml"

provctl enrollment add dev-1 >/dev/null
SEQ=$(provctl events list --json | python3 -c 'import json,sys; print([e["seq"] for e in json.load(sys.stdin) if e["type"]=="enrollment.created"][0])')
EVENT_ID=$(provctl events show "$SEQ" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

requests() { # PATH [STATUS]: how many requests the receiver logged
  python3 - "$LOG" "$1" "${2:-}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(sum(1 for r in rows if r["path"] == sys.argv[2] and
          (not sys.argv[3] or str(r["status"]) == sys.argv[3])))
PY
}
has_requests() { [ "$(requests "$1" "${3:-}")" -ge "$2" ]; }

check "the event reaches /ok" wait_for 10 has_requests /ok 1
python3 - "$LOG" "$EVENT_ID" "$SEQ" <<'PY' && pass "a signed CloudEvents 1.0 document with the journal's id, sequence and data" || fail "the /ok request is not the expected CloudEvent"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"/ok"' in l][0]
assert r["sig_ok"], "signature"
assert r["specversion"] == "1.0" and r["type"] == "enrollment.created"
assert r["id"] == sys.argv[2] and r["sequence"] == sys.argv[3], r
assert r["subject"] == "dev-1" and r["data"]["id"] == "dev-1", r
assert r["content_type"].startswith("application/cloudevents+json"), r
PY

check "500 then 200: /flaky is answered 200" wait_for 10 has_requests /flaky 1 200
sleep 0.5
expect_eq "500 then 200: two requests, so delivered once" 2 "$(requests /flaky)"
expect_eq "the same event id both times" 1 "$(grep '"/flaky"' "$LOG" | python3 -c 'import json,sys; print(len({json.loads(l)["id"] for l in sys.stdin}))')"

check "400: /bad was asked once" wait_for 10 has_requests /bad 1
show_dead() { provctl events show "$SEQ" | grep -q "^hook-bad: *dead (WEBHOOK_REJECTED)"; }
check "400: a dead letter at once (events show)" wait_for 5 show_dead
sleep 0.5
expect_eq "400 is not retried" 1 "$(requests /bad)"
out=$(provctl events retry "$SEQ") && rc=0 || rc=$?
expect_eq "events retry exits 0" 0 "$rc"
check "events retry names the instance" grep -q "retrying for hook-bad" <<<"$out"
check "after events retry /bad is asked again" wait_for 5 has_requests /bad 2
check "and it is a dead letter again" wait_for 5 show_dead

check "Retry-After: /retry-after is answered 200 in the end" wait_for 10 has_requests /retry-after 1 200
GAP=$(python3 - "$LOG" <<'PY'
import json, sys
t = [json.loads(l)["t"] for l in open(sys.argv[1]) if '"/retry-after"' in l]
print(f"{t[1] - t[0]:.2f}")
PY
)
check "Retry-After: 2 is honoured over the 300 ms backoff (waited ${GAP}s)" python3 -c "import sys; sys.exit(0 if $GAP >= 1.95 else 1)"

METRICS=$(curl -sS --cacert "$DATA_DIR/tls/ca.pem" "https://localhost:$PORT/metrics")
check "/metrics: delivered per instance" grep -q '^provd_notifier_delivered_total{instance="hook-flaky"} 1' <<<"$METRICS"
check "/metrics: retried per instance" grep -q '^provd_notifier_retried_total{instance="hook-flaky"} 1' <<<"$METRICS"
check "/metrics: dead per instance" grep -q '^provd_notifier_dead_total{instance="hook-bad"} 2' <<<"$METRICS"
check "/metrics: queued per instance" grep -q '^provd_notifier_queued{instance="hook-ok"} 0' <<<"$METRICS"
check "/metrics: oldest undelivered age per instance" grep -q '^provd_notifier_oldest_undelivered_age_seconds{instance="hook-ok"} 0' <<<"$METRICS"
check "the secret is in no log line" bash -c "! grep -q '$SECRET' '$WORK/provd.log'"
stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
