#!/usr/bin/env bash
# ctest-labels: e2e
# Linked hubs at run time: provctl adds, drains, sets and removes hubs while
# provd runs; devices registering between the steps see each change, the
# service API shows it, the config seeds the hubs on first start only, and
# SIGHUP reloads them from the store without a restart.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
cat > "$WORK/provd.yaml" <<YAML
id_scope: $SCOPE
listen: { https: "127.0.0.1:0" }
data_dir: $DATA_DIR
plugin_path: [ $PLUGIN_DIR ]
workers: 2
hubs:
  - { name: hub-1, hostname: hub-1.example.net }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: allocation, name: hashed }
YAML
start_provd "$WORK/provd.yaml"

# register REGID: enrolls it if needed, registers with provd-device; sets HUB
register() {
  local key
  key=$(random_key)
  provctl enrollment add "$1" --primary-key "$key" --secondary-key "$key" --force >/dev/null
  HUB=$("$PROVD_DEVICE" register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" \
        --scope "$SCOPE" --registration-id "$1" --symmetric-key "$key" 2>&1 |
        sed -n 's/^assigned hub=\([^ ]*\).*/\1/p')
}
# hub_field NAME FIELD: from the service API's GET /hubs
hub_field() {
  http GET "/hubs?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
  printf %s "$BODY_OUT" | python3 -c '
import json, sys
hubs = {h["name"]: h for h in json.load(sys.stdin)}
print(json.dumps(hubs.get(sys.argv[1], {}).get(sys.argv[2])))' "$1" "$2"
}

register d-1
expect_eq "the config seeds hub-1" hub-1.example.net "$HUB"

out=$(provctl hub add hub-2 --hostname hub-2.example.net --weight 5 --region westeurope --json)
expect_eq "hub add answers the stored hub" westeurope "$(json_get "$out" region)"
provctl hub drain hub-1 >/dev/null
expect_eq "drain sets weight 0" 0 "$(hub_field hub-1 weight)"
for i in 2 3 4 5 6; do
  register "d-$i"
  expect_eq "d-$i: a drained hub gets no new device, the added one does" hub-2.example.net "$HUB"
done

check "registration list --hub takes an added hub's host name" bash -c "'$PROVCTL' --url https://localhost:$PORT --data-dir '$DATA_DIR' registration list --hub hub-2.example.net | grep -qw d-4"
provctl hub set hub-1 --weight 1 >/dev/null
provctl hub set hub-2 --apply-allocation-policy false >/dev/null
register d-7
expect_eq "set: hub-1 is back, hub-2 takes no new devices" hub-1.example.net "$HUB"
check "hub list shows hub-2 as no-policy" bash -c "'$PROVCTL' --url https://localhost:$PORT --data-dir '$DATA_DIR' hub list | grep -Eq '^hub-2 .*no-policy'"

provctl hub remove hub-2 >/dev/null
expect_eq "a removed hub is still listed, as removed" true "$(hub_field hub-2 removed)"
expect_eq "its devices are still counted" 5 "$(hub_field hub-2 devices)"
http GET "/registrations/d-2?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
expect_eq "the registration view keeps the hub" hub-2.example.net "$(json_get "$BODY_OUT" assignedHub)"
expect_eq "and says it was removed" True "$(json_get "$BODY_OUT" assignedHubRemoved)"
check "provctl registration show says so" bash -c "'$PROVCTL' --url https://localhost:$PORT --data-dir '$DATA_DIR' registration show d-2 | grep -q 'removed from the linked hubs'"
provctl enrollment add d-8 --primary-key "$(random_key)" --secondary-key "$(random_key)" --hub hub-2.example.net >/dev/null
out=$(provctl explain d-8 --json)
expect_eq "an enrollment naming only the removed hub is refused" NO_HUB_AVAILABLE "$(json_get "$out" reason)"

# --- bad input and permissions ---
http PUT "/hubs/hub-9?api-version=2021-10-01" '{"weight":3}' -H "Authorization: $(service_token)" -H "Content-Type: application/json"
expect_eq "a new hub without hostname is refused" 400 "$STATUS"
http PUT "/hubs/hub-9?api-version=2021-10-01" '{"hostname":"h9","weight":1001}' -H "Authorization: $(service_token)" -H "Content-Type: application/json"
expect_eq "weight above 1000 is refused" 400 "$STATUS"
http PUT "/hubs/hub-9?api-version=2021-10-01" '{"hostname":"h9","color":"red"}' -H "Authorization: $(service_token)" -H "Content-Type: application/json"
expect_eq "an unknown field is refused" 400 "$STATUS"
expect_eq "nothing was stored" null "$(hub_field hub-9 name)"
http DELETE "/hubs/nope?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
expect_eq "removing an unknown hub is 404" 404 "$STATUS"

# --- restart: the store, not the config, is the truth; SIGHUP reloads ---
stop_provd
start_provd "$WORK/provd.yaml"
expect_eq "after a restart hub-1 keeps its runtime weight" 1 "$(hub_field hub-1 weight)"
expect_eq "and hub-2 stays removed (the config does not re-seed)" true "$(hub_field hub-2 removed)"
# SIGHUP: the new log_level applies, the hubs reload, connections stay
check "no debug lines before SIGHUP" bash -c "! grep -q ' debug ' '$WORK/provd.log'"
printf 'log_level: debug\n' >> "$WORK/provd.yaml"
kill -HUP "$PROVD_PID"
sleep 0.3
check "provd survives SIGHUP" kill -0 "$PROVD_PID"
check "SIGHUP is logged" grep -q "SIGHUP: linked hubs reloaded" "$WORK/provd.log"
register d-9
expect_eq "still serving after SIGHUP" hub-1.example.net "$HUB"
check "the reloaded log_level applies" grep -q ' debug ' "$WORK/provd.log"

finish
