#!/usr/bin/env bash
# ctest-labels: e2e;plugin
# The journal and its dispatcher end to end, with the example notifier of
# docs/writing-a-plugin.md built from tests/data/example-plugin: events
# reach it once each, filtered by `events:`, in order per subject; a receiver that is
# away (its directory missing) gets them when it is back; a restart
# delivers nothing twice; `provctl events verify|show|retry` work, and
# flipping one byte of an event row in the database file is named by its
# sequence number.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
OUT_DIR=$WORK/receiver        # missing at first: the receiver is away
EVENTS_FILE=$OUT_DIR/events.jsonl

cc -shared -fPIC -Wall -Wextra -Werror -I"$SOURCE_DIR/include" -fvisibility=hidden \
   -Wl,--no-undefined -o "$WORK/example.so" "$SOURCE_DIR/tests/data/example-plugin/example.c"

write_config "$WORK/provd.yaml" "$DATA_DIR"
cat >> "$WORK/provd.yaml" <<YAML
  - kind: notifier
    name: example
    path: $WORK/example.so
    events: [ enrollment.created, device.assigned ]
    options: { file: $EVENTS_FILE }
events: { retry_initial: 50ms, retry_max: 200ms, poll: 20ms }
YAML
start_provd "$WORK/provd.yaml"
OWNER="Authorization: $(service_token)"

lines() { [ -f "$EVENTS_FILE" ] && wc -l < "$EVENTS_FILE" || echo 0; }
wait_lines() { # N: up to 10 s
  for _ in $(seq 1 100); do [ "$(lines)" -ge "$1" ] && return 0; sleep 0.1; done
  return 1
}

K1=$(random_key)
for id in dev-a dev-b tamper-me; do
  provctl enrollment add "$id" --primary-key "$K1" --secondary-key "$(random_key)" >/dev/null
done
provctl enrollment disable dev-b >/dev/null          # enrollment.updated: filtered out
http PUT "/$SCOPE/registrations/dev-a/register?api-version=2019-03-31" \
  '{"registrationId":"dev-a"}' -H "Authorization: $(device_token "$K1" dev-a)"
expect_eq "dev-a registers" 202 "$STATUS"

sleep 0.5
expect_eq "nothing is delivered while the receiver is away" 0 "$(lines)"
check "the failure is logged with the instance and the reason" \
  grep -q "notifier example: event [0-9]* enrollment.created subject=dev-a not delivered (FILE_UNAVAILABLE" "$WORK/provd.log"
mkdir -p "$OUT_DIR"
check "every wanted event arrives once the receiver is back" wait_lines 4
sleep 0.3
expect_eq "exactly the four wanted events (3 created, 1 assigned)" 4 "$(lines)"

# The journal as a consumer reads it: ids, hashes, and the events the
# filter left out.
http GET "/events?api-version=2021-10-01&limit=1000" '' -H "$OWNER"
JOURNAL=$BODY_OUT
printf %s "$JOURNAL" > "$WORK/journal.json"
if python3 - "$EVENTS_FILE" "$WORK/journal.json" <<'PY'
import json, sys
journal = json.load(open(sys.argv[2]))
got = [json.loads(l) for l in open(sys.argv[1])]
wanted = [e for e in journal if e["type"] in ("enrollment.created", "device.assigned")]
assert sorted(g["id"] for g in got) == [e["seq"] for e in wanted], (got, wanted)
subject = {e["seq"]: e["subject"] for e in journal}
for s in set(subject.values()):  # in journal order per subject
    seqs = [g["id"] for g in got if subject[g["id"]] == s]
    assert seqs == sorted(seqs), (s, seqs)
assert all(len(e["hash"]) == 64 and len(e["prevHash"]) == 64 and len(e["id"]) == 36 for e in journal)
for a, b in zip(journal, journal[1:]):
    assert b["prevHash"] == a["hash"], "chain link"
assert any(e["type"] == "enrollment.updated" for e in journal)
PY
then pass "delivered events are the journal's wanted ones, in order per subject, and the journal is chained"
else fail "delivered events do not match the journal"; fi

# The consumer-side check docs/notifiers.md shows, run as written.
sed -n '/^def event_hash/,/^    return None/p' "$SOURCE_DIR/docs/notifiers.md" > "$WORK/chain.py"
cat >> "$WORK/chain.py" <<'PY'
import sys
journal = json.load(open(sys.argv[1]))
assert chain_ok(journal, "0" * 64) is None
journal[2]["body"]["id"] = "changed"
assert chain_ok(journal, "0" * 64) == journal[2]["seq"]
PY
if python3 -c 'import hashlib, json; exec(open("'"$WORK/chain.py"'").read())' "$WORK/journal.json"; then
  pass "the documented Python chain check accepts the journal and names a changed event"
else fail "the documented Python chain check disagrees with provd"; fi

UPDATED_SEQ=$(printf %s "$JOURNAL" | python3 -c 'import json,sys; print([e["seq"] for e in json.load(sys.stdin) if e["type"]=="enrollment.updated"][0])')
FIRST_SEQ=$(printf %s "$JOURNAL" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["seq"])')
out=$(provctl events show "$FIRST_SEQ")
check "events show says delivered" grep -q "^example: *delivered" <<<"$out"
out=$(provctl events show "$UPDATED_SEQ")
check "events show says filtered for a type the instance does not take" grep -q "^example: *filtered" <<<"$out"
provctl events retry "$FIRST_SEQ" >/dev/null 2>&1 && rc=0 || rc=$?
expect_eq "events retry of an event without a dead letter exits 1" 1 "$rc"
out=$(provctl events verify) && rc=0 || rc=$?
expect_eq "events verify passes on a real journal" 0 "$rc"
check "events verify reports the events" grep -q "^journal ok: 5 events" <<<"$out"
check "/metrics counts the deliveries" bash -c "curl -sS --cacert '$DATA_DIR/tls/ca.pem' https://localhost:$PORT/metrics | grep -q '^provd_notifier_delivered_total{instance=\"example\"} 4'"

# A restart delivers nothing twice: the cursor was saved.
stop_provd TERM
start_provd "$WORK/provd.yaml"
sleep 0.5
expect_eq "a restart delivers nothing again" 4 "$(lines)"

# Tamper with the database file: one byte of tamper-me's event body.
TAMPER_SEQ=$(printf %s "$JOURNAL" | python3 -c 'import json,sys; print([e["seq"] for e in json.load(sys.stdin) if e["subject"]=="tamper-me"][0])')
stop_provd TERM
DB=$DATA_DIR/provd.db
check "the database was checkpointed on stop" test ! -s "$DB-wal"
python3 - "$DB" <<'PY' || fail "event row not found in the database file"
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
needle = b'{"id":"tamper-me"'
i = data.find(needle)
assert i >= 0 and data.find(needle, i + 1) < 0
data[i + 7] ^= 0x20   # "tamper-me" -> "Tamper-me"
open(path, "wb").write(bytes(data))
PY
start_provd "$WORK/provd.yaml"
out=$(provctl events verify 2>&1) && rc=0 || rc=$?
expect_eq "events verify fails after one flipped byte" 1 "$rc"
check "events verify names the modified event ($TAMPER_SEQ)" \
  grep -q "journal broken at event $TAMPER_SEQ: the event's bytes do not match its hash" <<<"$out"
stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
