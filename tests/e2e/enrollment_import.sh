#!/usr/bin/env bash
# ctest-labels: e2e
# provctl enrollment import FILE.csv: rows go through the bulk operation in
# batches; refused rows are named with their reason (an invalid id, an id
# that exists, bad tags) while the rest are created; the printed CSV's
# keys register; a progress line goes to stderr.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
start_provd "$WORK/provd.yaml"

provctl enrollment add taken-1 >/dev/null
{
  echo "registrationId,deviceId,iotHubs,tags"
  for i in $(seq 1 23); do echo "imp-$i,device-$i,,customer=acme;site=$i"; done
  echo "bad id!,,,"
  echo "taken-1,,,"
  echo "imp-tags,,,notapair"
  echo "imp-24,,hub-1.example.net,"
} > "$WORK/fleet.csv"

rc=0
provctl enrollment import "$WORK/fleet.csv" > "$WORK/created.csv" 2> "$WORK/import.err" || rc=$?
expect_eq "a refused row makes the exit code 1" 1 "$rc"
expect_eq "24 rows created (header + 24 lines)" 25 "$(wc -l < "$WORK/created.csv")"
check "progress line" grep -q 'import: 27 of 27 rows' "$WORK/import.err"
check "the invalid id is named with the reason" grep -q '^line 25 bad id!: refused: .*not a valid id' "$WORK/import.err"
check "the existing id is refused as such" grep -q '^line 26 taken-1: refused: already exists' "$WORK/import.err"
check "bad tags are refused" grep -q "^line 27 imp-tags: refused: tags must be" "$WORK/import.err"
check "summary" grep -q 'import: 24 created, 3 refused' "$WORK/import.err"

out=$(provctl enrollment show imp-7 --json)
expect_eq "deviceId from the CSV" device-7 "$(json_get "$out" deviceId)"
expect_eq "tags into initialTwin.tags" 7 "$(json_get "$out" initialTwin.tags.site)"
out=$(provctl enrollment show imp-24 --json)
check "iotHubs from the CSV" grep -q '"iotHubs":\["hub-1.example.net"\]' <<<"$out"

key=$(awk -F, '$1 == "imp-24" { print $2 }' "$WORK/created.csv")
reg=$("$PROVD_DEVICE" register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" \
      --scope "$SCOPE" --registration-id imp-24 --symmetric-key "$key" 2>&1)
check "the printed key registers the device" grep -q '^assigned hub=hub-1.example.net' <<<"$reg"

provctl enrollment import "$WORK/fleet.csv" --json > "$WORK/again.json" 2>/dev/null || true
check "--json: every row refused the second time, with reasons" python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 27 and not any(r["created"] for r in rows), rows
assert all(r["reason"] for r in rows)' "$WORK/again.json"

# The bulk create refuses an id that exists in another case, and the
# refused row writes nothing: neither the record nor an event.
before=$(json_get "$(provctl enrollment show imp-7 --json)" etag)
printf 'registrationId,deviceId,iotHubs,tags\nIMP-7,other,,\nimp-new,,,\n' > "$WORK/case.csv"
provctl enrollment import "$WORK/case.csv" > /dev/null 2> "$WORK/case.err" || true
check "an id that exists in another case is refused" grep -q '^line 2 IMP-7: refused: already exists' "$WORK/case.err"
check "the row after it is created" grep -q 'import: 1 created, 1 refused' "$WORK/case.err"
expect_eq "the refused row left the record alone" "$before" "$(json_get "$(provctl enrollment show imp-7 --json)" etag)"
http GET "/events?limit=1000&api-version=2021-10-01" '' -H "Authorization: $(service_token)"
expect_eq "one enrollment event for imp-7, none for the refused row" 1 "$(python3 -c '
import json, sys
print(sum(1 for e in json.loads(sys.argv[1]) if e["subject"].lower() == "imp-7"))' "$BODY_OUT")"

finish
