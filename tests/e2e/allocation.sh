#!/usr/bin/env bash
# ctest-labels: e2e
# Allocation policies through the real device API: geoLatency finds the
# device's region from the address it connects from (127.0.0.1, mapped by
# client_regions), static takes the enrollment's hub, and the example
# webhook of docs/allocation.md (run as printed) allocates a custom device
# and sends its payload back.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
HOOK_PORT=$(free_port)
cat > "$WORK/provd.yaml" <<YAML
id_scope: $SCOPE
listen: { https: "127.0.0.1:0" }
data_dir: $DATA_DIR
plugin_path: [ $PLUGIN_DIR ]
workers: 2
hubs:
  - { name: hub-eu, hostname: hub-eu.example.net }
  - { name: hub-us, hostname: hub-us.example.net }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: allocation, name: hashed }
  - { kind: allocation, name: static }
  - kind: allocation
    name: geo-latency
    options:
      hub_regions: [ { hub: hub-eu, region: westeurope }, { hub: hub-us, region: eastus } ]
      latencies: [ { from: westeurope, to: eastus, ms: 80 } ]
      client_regions: [ { cidr: 127.0.0.0/8, region: eastus } ]
  - { kind: allocation, name: custom-webhook, options: { timeout: 2s } }
YAML
start_provd "$WORK/provd.yaml"

reg_path() { echo "/$SCOPE/registrations/$1/register?api-version=2019-03-31"; }
op_path() { echo "/$SCOPE/registrations/$1/operations/$2?api-version=2019-03-31"; }

# assigned REGID KEY BODY: registers, polls once; sets STATE (registrationState JSON)
assigned() {
  local tok
  tok=$(device_token "$2" "$1")
  http PUT "$(reg_path "$1")" "$3" -H "Authorization: $tok"
  local op
  op=$(json_get "$BODY_OUT" operationId)
  sleep 0.2
  http GET "$(op_path "$1" "$op")" '' -H "Authorization: $tok"
  STATE=$(printf %s "$BODY_OUT" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["registrationState"]))')
}

K=$(random_key)
provctl enrollment add geo-1 --primary-key "$K" --secondary-key "$K" --allocation geoLatency >/dev/null
assigned geo-1 "$K" '{"registrationId":"geo-1"}'
expect_eq "geoLatency: 127.0.0.1 is eastus, hub-us is nearest" hub-us.example.net "$(json_get "$STATE" assignedHub)"
assigned geo-1 "$K" '{"registrationId":"geo-1","payload":{"region":"westeurope"}}'
expect_eq "geoLatency: the payload's region wins over the address" hub-eu.example.net "$(json_get "$STATE" assignedHub)"
expect_eq "the move is reported as migration" deviceDataMigrated "$(json_get "$STATE" substatus)"
http GET "/registrations/geo-1?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
expect_eq "the service API shows the earlier hub in assignmentHistory" hub-us.example.net \
  "$(printf %s "$BODY_OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["assignmentHistory"][0]["assignedHub"])')"

provctl enrollment add st-1 --primary-key "$K" --secondary-key "$K" --allocation static --hub hub-us.example.net >/dev/null
assigned st-1 "$K" '{"registrationId":"st-1"}'
expect_eq "static: the enrollment's hub" hub-us.example.net "$(json_get "$STATE" assignedHub)"

# the example webhook of docs/allocation.md, verbatim but for the port
awk '/^```python/{f=1;next} /^```/{f=0} f' "$SOURCE_DIR/docs/allocation.md" |
  sed "s/8081/$HOOK_PORT/" > "$WORK/hook.py"
python3 "$WORK/hook.py" 2>>"$WORK/hook.log" &
HOOK_PID=$!
trap 'kill $HOOK_PID 2>/dev/null; cleanup' EXIT
check "the example webhook listens" wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HOOK_PORT"
provctl enrollment add cu-1 --primary-key "$K" --secondary-key "$K" --allocation custom \
  --webhook-url "http://127.0.0.1:$HOOK_PORT/alloc" >/dev/null
assigned cu-1 "$K" '{"registrationId":"cu-1","payload":{"kind":"hub-us"}}'
expect_eq "custom: the webhook's hub" hub-us.example.net "$(json_get "$STATE" assignedHub)"
expect_eq "custom: the webhook's payload returns to the device" hub-us.example.net "$(json_get "$STATE" payload.hub)"
out=$(provctl explain cu-1 --payload '{"kind":"hub-eu"}' --call-webhook --json)
expect_eq "explain --call-webhook asks the webhook" hub-eu "$(json_get "$out" hub)"
provctl explain cu-1 --payload '{"kind":"hub-eu"}' --json > "$WORK/explain.json"
check "explain without --call-webhook does not" grep -q 'dry run' "$WORK/explain.json"

finish
