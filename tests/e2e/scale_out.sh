#!/usr/bin/env bash
# ctest-labels: postgres
# Three provd instances on one PostgreSQL database (docs/scale-out.md):
# the poll path, TPM-free registrations and admin calls work on any
# instance; the same device registering on two instances at once gets one
# registration; concurrent If-Match updates: one wins, the other gets 412;
# a disabled or deleted enrollment is refused on the other instances at
# once; one journal (one sequence, one hash chain) across instances; a
# killed instance loses no acknowledged write; each event reaches a
# webhook once, and a killed lease holder's events are delivered by
# another instance; the database going away answers 503 + Retry-After
# and /healthz says so, and service resumes when it is back.
source "$(dirname "$0")/lib/common.bash"
source "$(dirname "$0")/lib/multi.bash"

pg_start
RPORT=$(free_port)
SECRET=s3cret-$(random_key)
HOOKLOG=$WORK/requests.jsonl
: > "$HOOKLOG"
start_receiver "$RPORT" "$HOOKLOG" "$SECRET"
HOOK="plugins:
  - kind: notifier
    name: webhook
    id: crm
    events: [ enrollment.created ]
    options: { url: \"http://127.0.0.1:$RPORT/ok\", secret: \"$SECRET\", timeout: 2s }
events: { poll: 20ms, retry_initial: 100ms, retry_max: 300ms }"
# The notifier goes under the plugins list of write_multi_config.
HOOK_ITEM=$(printf '%s\n' "$HOOK" | sed -n '2,6p')
HOOK_EVENTS=$(printf '%s\n' "$HOOK" | sed -n '7p')

for n in 1 2 3; do start_instance "$n" "$HOOK_ITEM" "$HOOK_EVENTS"; done
check "instances 2 and 3 found the schema instance 1 migrated" \
  bash -c "! grep -q 'migrated to schema' '$WORK/provd-2.log' '$WORK/provd-3.log'"
expect_eq "the schema is at version 1" 1 "$(psql_q 'SELECT version FROM provd_schema')"

V='?api-version=2021-10-01'
OWNER="Authorization: $(service_token)"

# --- enroll on 1, register on 2, poll on 3 ---
on 1
K=$(random_key)
http PUT "/enrollments/dev-1$V" "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$K\",\"secondaryKey\":\"$(random_key)\"}}}" -H "$OWNER"
expect_eq "enrollment created on instance 1" 200 "$STATUS"
on 2
http PUT "$(reg_path dev-1)" '{"registrationId":"dev-1"}' -H "Authorization: $(device_token "$K" dev-1)"
expect_eq "instance 2 registers the device" 202 "$STATUS"
OPID=$(json_get "$BODY_OUT" operationId)
on 3
http GET "$(op_path dev-1 "$OPID")" '' -H "Authorization: $(device_token "$K" dev-1)"
expect_eq "instance 3 answers the poll of an operation started on 2" 200 "$STATUS"
expect_eq "and sees it assigned" assigned "$(json_get "$BODY_OUT" status)"

# bg CMD...: runs CMD in the background; wait_jobs waits for those only
# (the instances and the receiver are background jobs too).
BG=()
bg() { "$@" & BG+=($!); }
wait_jobs() { for j in "${BG[@]}"; do wait "$j" || true; done; BG=(); }

# --- the same device on two instances at once: one registration ---
# twin_round R: PAIRS devices twin-R-*, each registering on instances 1
# and 2 at once; adds to CONCURRENT (pairs that overlapped: both
# operations answer) and AGREE (those that answer with one record).
PAIRS=12
CONCURRENT=0; AGREE=0
twin_round() {
  local r=$1 i tok side op
  for i in $(seq 1 $PAIRS); do
    on 1
    KEYS[$i]=$(random_key)
    http PUT "/enrollments/twin-$r-$i$V" "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"${KEYS[$i]}\",\"secondaryKey\":\"$(random_key)\"}}}" -H "$OWNER"
  done
  for i in $(seq 1 $PAIRS); do
    tok=$(device_token "${KEYS[$i]}" "twin-$r-$i")
    # both requests held back by their last byte, then released together
    bg python3 "$SOURCE_DIR/tests/e2e/lib/twin_put.py" --ca "$DATA_DIR/tls/ca.pem" \
      --path "$(reg_path "twin-$r-$i")" --body "{\"registrationId\":\"twin-$r-$i\"}" \
      --auth "$tok" "${INST_PORT[1]}:$WORK/twin-$r-$i-a" "${INST_PORT[2]}:$WORK/twin-$r-$i-b"
  done
  wait_jobs
  for i in $(seq 1 $PAIRS); do
    tok=$(device_token "${KEYS[$i]}" "twin-$r-$i")
    etags=()
    for side in a b; do
      op=$(json_get "$(cat "$WORK/twin-$r-$i-$side")" operationId)
      curl_to "${INST_PORT[3]}" "$WORK/poll-$r-$i-$side" GET "$(op_path "twin-$r-$i" "$op")" '' -H "Authorization: $tok"
      [ "$(cat "$WORK/poll-$r-$i-$side.status")" = 200 ] &&
        etags+=("$(json_get "$(cat "$WORK/poll-$r-$i-$side")" registrationState.etag)")
    done
    # Both operations answer 200 with one record when the two requests
    # overlapped; when they did not, the later is a re-registration and
    # the earlier operation is gone (404), as on one instance.
    if [ "${#etags[@]}" -eq 2 ]; then
      CONCURRENT=$((CONCURRENT + 1))
      [ "${etags[0]}" = "${etags[1]}" ] && AGREE=$((AGREE + 1))
    fi
  done
}
# Released together, the two requests of a pair still race through two
# processes and a database: up to four rounds until some overlapped.
rounds=0
while [ "$rounds" -lt 4 ] && [ "$CONCURRENT" -eq 0 ]; do
  rounds=$((rounds + 1))
  twin_round "$rounds"
done
expect_eq "overlapping registrations of one device answer with one record" "$CONCURRENT" "$AGREE"
check "at least one pair overlapped ($CONCURRENT of $((rounds * PAIRS)) in $rounds rounds)" test "$CONCURRENT" -gt 0
expect_eq "one registration row per device" "$((rounds * PAIRS))" "$(psql_q "SELECT count(*) FROM registrations WHERE id LIKE 'twin-%'")"
check "an instance logged the adoption" bash -c "cat '$WORK'/provd-*.log | grep -q 'concurrent registration regid=twin-'"

# --- If-Match: two updates with the same etag on two instances, one wins ---
on 1
http GET "/enrollments/dev-1$V" '' -H "$OWNER"
ETAG=$(json_get "$BODY_OUT" etag)
wins=0; lost=0
for round in 1 2 3 4 5; do
  on 1; http GET "/enrollments/dev-1$V" '' -H "$OWNER"; ETAG=$(json_get "$BODY_OUT" etag)
  DOC=$BODY_OUT
  for n in 1 2; do
    body=$(printf %s "$DOC" | python3 -c "import json,sys; d=json.load(sys.stdin); d['initialTwin']={'tags':{'by':'$n-$round'}}; print(json.dumps(d))")
    bg curl_to "${INST_PORT[$n]}" "$WORK/im-$round-$n" PUT "/enrollments/dev-1$V" "$body" -H "$OWNER" -H "If-Match: $ETAG"
  done
  wait_jobs
  st=$(printf '%s\n%s\n' "$(cat "$WORK/im-$round-1.status")" "$(cat "$WORK/im-$round-2.status")" | sort | tr '\n' ' ')
  [ "$st" = "200 412 " ] && wins=$((wins + 1)) || echo "# round $round: $st"
done
expect_eq "every round: exactly one 200 and one 412" 5 "$wins"

# --- disabled on 1: refused on 2 and 3 at once; deleted: unknown ---
on 1
http GET "/enrollments/dev-1$V" '' -H "$OWNER"
DIS=$(printf %s "$BODY_OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["provisioningStatus"]="disabled"; print(json.dumps(d))')
http PUT "/enrollments/dev-1$V" "$DIS" -H "$OWNER"
expect_eq "disabled on instance 1" 200 "$STATUS"
for n in 2 3; do
  on $n
  http PUT "$(reg_path dev-1)" '{"registrationId":"dev-1"}' -H "Authorization: $(device_token "$K" dev-1)"
  if [ "$STATUS" = 202 ]; then
    http GET "$(op_path dev-1 "$(json_get "$BODY_OUT" operationId)")" '' -H "Authorization: $(device_token "$K" dev-1)"
    expect_eq "instance $n records the registration as disabled" disabled "$(json_get "$BODY_OUT" status)"
  else
    check "instance $n refuses the disabled enrollment ($STATUS)" test "$STATUS" -ge 400
  fi
done
on 1
http DELETE "/enrollments/dev-1$V" '' -H "$OWNER"
check "deleted on instance 1 ($STATUS)" test "$STATUS" -lt 300
on 3
http PUT "$(reg_path dev-1)" '{"registrationId":"dev-1"}' -H "Authorization: $(device_token "$K" dev-1)"
expect_eq "instance 3 no longer knows the device" 401 "$STATUS"

# --- one journal: registrations on all three at once, one chain ---
for i in $(seq 1 30); do
  on 1
  PK[$i]=$(random_key)
  http PUT "/enrollments/many-$i$V" "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"${PK[$i]}\",\"secondaryKey\":\"$(random_key)\"}}}" -H "$OWNER"
done
for i in $(seq 1 30); do
  n=$(( i % 3 + 1 ))
  bg curl_to "${INST_PORT[$n]}" "$WORK/many-$i" PUT "$(reg_path "many-$i")" "{\"registrationId\":\"many-$i\"}" -H "Authorization: $(device_token "${PK[$i]}" "many-$i")"
done
wait_jobs
ok=0; for i in $(seq 1 30); do [ "$(cat "$WORK/many-$i.status")" = 202 ] && ok=$((ok + 1)); done
expect_eq "30 registrations spread over three instances are acknowledged" 30 "$ok"
out=$(provctl events verify 2>&1) && rc=0 || rc=$?
expect_eq "provctl events verify: one hash chain across instances ($out)" 0 "$rc"
expect_eq "event seq numbers have no gap" \
  "$(psql_q 'SELECT max(seq) - min(seq) + 1 FROM outbox')" "$(psql_q 'SELECT count(*) FROM outbox')"

# --- every enrollment.created event reaches the webhook exactly once ---
created=$(psql_q "SELECT count(*) FROM outbox WHERE type = 'enrollment.created'")
delivered() { python3 -c 'import json,sys; print(len({json.loads(l)["id"] for l in open(sys.argv[1]) if json.loads(l)["status"] == 200}))' "$HOOKLOG"; }
requests() { python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["status"] == 200))' "$HOOKLOG"; }
check "all $created enrollment.created events delivered" wait_for 20 bash -c "[ \"\$(python3 -c 'import json,sys; print(len({json.loads(l)[\"id\"] for l in open(sys.argv[1])}))' '$HOOKLOG')\" -ge $created ]"
sleep 1
expect_eq "each delivered once although three instances run the notifier" "$(delivered)" "$(requests)"

# --- kill the lease holder: another instance delivers what comes next ---
holder=$(psql_q "SELECT body::json->>'owner' FROM notifier_cursors WHERE id = 'crm'")
hpid=${holder#pid}; hpid=${hpid%%-*}
victim=
for n in 1 2 3; do [ "${INST_PID[$n]}" = "$hpid" ] && victim=$n; done
check "one instance holds the notifier lease ($holder)" test -n "$victim"
survivor=$(( victim % 3 + 1 ))
on "$survivor"
bg curl_to "${INST_PORT[$survivor]}" "$WORK/late-1" PUT "/enrollments/late-1$V" '{"attestation":{"type":"symmetricKey"}}' -H "$OWNER"
sleep 0.05
kill_instance "$victim"
wait_jobs
http PUT "/enrollments/late-2$V" '{"attestation":{"type":"symmetricKey"}}' -H "$OWNER"
expect_eq "writes go on while an instance is dead" 200 "$STATUS"
want=$((created + 2))
check "events after the kill are delivered by another instance" wait_for 20 bash -c "[ \"\$(python3 -c 'import json,sys; print(len({json.loads(l)[\"id\"] for l in open(sys.argv[1])}))' '$HOOKLOG')\" -ge $want ]"
check "the lease moved to a live instance" bash -c "cat '$WORK'/provd-*.log | grep -q 'holds the lease'"

# --- acknowledged writes survive the kill ---
expect_eq "every acknowledged registration is stored" 30 "$(psql_q "SELECT count(*) FROM registrations WHERE id LIKE 'many-%'")"
start_instance "$victim" "$HOOK_ITEM" "$HOOK_EVENTS"
on "$victim"
http GET "/enrollments/late-2$V" '' -H "$OWNER"
expect_eq "the restarted instance serves what others wrote meanwhile" 200 "$STATUS"

# --- the database goes away: 503 + Retry-After, /healthz; then back ---
pg_pause
on 2
http PUT "$(reg_path many-1)" '{"registrationId":"many-1"}' -H "Authorization: $(device_token "${PK[1]}" many-1)" -D "$WORK/head503"
expect_eq "a registration without the database answers 503" 503 "$STATUS"
check "with Retry-After" grep -qi '^Retry-After:' "$WORK/head503"
http GET /healthz ''
http GET /healthz ''
expect_eq "/healthz answers 503 while the database is unreachable" 503 "$STATUS"
check "and says why" bash -c "grep -q 'database is unreachable' <<<'$BODY_OUT'"
pg_resume
healthy() { http GET /healthz ''; [ "$STATUS" = 200 ]; }
check "/healthz recovers once the database is back" wait_for 15 healthy
http PUT "$(reg_path many-1)" '{"registrationId":"many-1"}' -H "Authorization: $(device_token "${PK[1]}" many-1)"
expect_eq "registrations work again after the reconnect" 202 "$STATUS"

finish
