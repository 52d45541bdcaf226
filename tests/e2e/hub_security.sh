#!/usr/bin/env bash
# ctest-labels: e2e;plugin
# The mosquitto hub connector and the broker plugin (tools/mosquitto-auth)
# against a real mosquitto: devices provd assigned connect as themselves
# with IoT Hub SAS tokens (individual and group-derived keys) and nothing
# else: not as another device, not with an expired, foreign or other-hub
# token, not on another device's topics (publish or subscribe).  Disabling
# the enrollment drops a live session and refuses the next connect;
# deleting the registration does the same; disabling a group takes its
# devices off the hub.  A dead broker makes the hub
# unhealthy (hub.unhealthy event, registrations refused) until it is back.
source "$(dirname "$0")/lib/common.bash"

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { fail "mosquitto is not installed (scripts/install-deps.sh)"; finish; }
AUTH_SO=$BUILD_DIR/mosquitto/provd_auth.so
[ -f "$AUTH_SO" ] || { fail "$AUTH_SO is not built"; finish; }

DATA_DIR=$WORK/data
IDS=$WORK/identities
HUB=hub.local
MPORT=$(free_port)
BROKER_PID=
SUB_PIDS=()
stop_all_mqtt() {
  for p in "${SUB_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
  cleanup
}
trap stop_all_mqtt EXIT

write_broker_config "$WORK/mosquitto.conf" "$MPORT" "$IDS"
start_broker() {
  start_mosquitto "$WORK/mosquitto.conf" "$WORK/mosquitto.log"
  BROKER_PID=$MOSQUITTO_PID
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MPORT" 2>/dev/null
}
start_broker || { fail "mosquitto did not start"; finish; }

write_hub_config "$WORK/provd.yaml" "$DATA_DIR" $HUB "$IDS" "$MPORT"
start_provd "$WORK/provd.yaml"

# hub_token KEY_B64 HUB DEVICE [EXPIRY]: an IoT Hub device token.
hub_token() {
  local key=$1 se=${4:-$(( $(date +%s) + 3600 ))}
  local sr
  sr=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=""))' "$2/devices/$3")
  local sig
  sig=$(printf '%s\n%s' "$sr" "$se" |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(b64_to_hex "$key")" -binary | base64 -w0)
  printf 'SharedAccessSignature sr=%s&sig=%s&se=%s' "$sr" "$(urlenc_b64 "$sig")" "$se"
}
user_of() { printf '%s/%s/?api-version=2021-04-12' "$1" "$2"; }
# pub CLIENT_ID USERNAME PASSWORD TOPIC MESSAGE: 0 when the broker took it.
pub() {
  mosquitto_pub -h 127.0.0.1 -p "$MPORT" -i "$1" -u "$2" -P "$3" -t "$4" -m "$5" -q 1 \
    2>>"$WORK/clients.log"
}
register() { # REGID KEY -> 0 when assigned
  "$PROVD_DEVICE" register --scope "$SCOPE" --registration-id "$1" --symmetric-key "$2" \
    --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" >>"$WORK/device.log" 2>&1
}
in_hub() { grep -q "^$1	" "$IDS" 2>/dev/null; }

KEY_A=$(random_key); KEY_B=$(random_key); GROUP_KEY=$(random_key)
provctl enrollment add dev-a --primary-key "$KEY_A" --secondary-key "$(random_key)" >/dev/null
provctl enrollment add dev-b --primary-key "$KEY_B" --secondary-key "$(random_key)" >/dev/null
provctl group add fleet --primary-key "$GROUP_KEY" --secondary-key "$(random_key)" >/dev/null
KEY_G=$(derive_key "$GROUP_KEY" g-dev-1)
check "dev-a registers" register dev-a "$KEY_A"
check "dev-b registers" register dev-b "$KEY_B"
check "g-dev-1 registers with its group key" register g-dev-1 "$KEY_G"
check "provd pushed all three identities to the hub" \
  wait_for 10 bash -c "grep -q '^dev-a	' '$IDS' && grep -q '^dev-b	' '$IDS' && grep -q '^g-dev-1	' '$IDS'"
expect_eq "the identities file is mode 600" 600 "$(stat -c %a "$IDS")"

# The back end sees everything devices publish.
mosquitto_sub -h 127.0.0.1 -p "$MPORT" -u backend -P backend-pw -t 'devices/#' -v \
  >"$WORK/backend.txt" 2>>"$WORK/clients.log" &
SUB_PIDS+=($!)
sleep 0.3

TOKEN_A=$(hub_token "$KEY_A" "$HUB" dev-a)
check "dev-a connects with its token and publishes on its own topic" \
  pub dev-a "$(user_of "$HUB" dev-a)" "$TOKEN_A" devices/dev-a/messages/events/ '{"n":1}'
check "g-dev-1 connects with its group-derived key" \
  pub g-dev-1 "$(user_of "$HUB" g-dev-1)" "$(hub_token "$KEY_G" "$HUB" g-dev-1)" \
  devices/g-dev-1/messages/events/ '{"n":2}'
pub dev-a "$(user_of "$HUB" dev-a)" "$TOKEN_A" devices/dev-b/messages/events/ '{"spoof":1}' || true
check "dev-a cannot connect as dev-b (its own token, dev-b's name)" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i dev-b -u '$(user_of "$HUB" dev-b)' -P '$TOKEN_A' -t devices/dev-b/messages/events/ -m x 2>/dev/null"
check "dev-a cannot connect with dev-b's client id" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i dev-b -u '$(user_of "$HUB" dev-a)' -P '$TOKEN_A' -t devices/dev-a/messages/events/ -m x 2>/dev/null"
check "an expired token is refused" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i dev-a -u '$(user_of "$HUB" dev-a)' -P '$(hub_token "$KEY_A" "$HUB" dev-a 1000)' -t devices/dev-a/messages/events/ -m x 2>/dev/null"
check "a token signed with a foreign key is refused" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i dev-a -u '$(user_of "$HUB" dev-a)' -P '$(hub_token "$(random_key)" "$HUB" dev-a)' -t devices/dev-a/messages/events/ -m x 2>/dev/null"
check "a token for another hub is refused" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i dev-a -u '$(user_of other.hub dev-a)' -P '$(hub_token "$KEY_A" other.hub dev-a)' -t devices/dev-a/messages/events/ -m x 2>/dev/null"
check "a device provd never assigned is refused" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i ghost -u '$(user_of "$HUB" ghost)' -P '$(hub_token "$KEY_A" "$HUB" ghost)' -t devices/ghost/messages/events/ -m x 2>/dev/null"

# live_session DEVICE KEY: DEVICE subscribed to its own topics in the
# background; sets LIVE to the subscriber's pid.
live_session() {
  mosquitto_sub -h 127.0.0.1 -p "$MPORT" -i "$1" -u "$(user_of "$HUB" "$1")" \
    -P "$(hub_token "$2" "$HUB" "$1")" -t "devices/$1/#" >/dev/null 2>>"$WORK/clients.log" &
  LIVE=$!
  SUB_PIDS+=($LIVE)
  sleep 0.5
}

# dev-a subscribes to dev-b's topics; dev-b publishes; dev-a gets nothing.
mosquitto_sub -h 127.0.0.1 -p "$MPORT" -i dev-a -u "$(user_of "$HUB" dev-a)" -P "$TOKEN_A" \
  -t 'devices/dev-b/#' -t 'devices/#' -C 1 -W 3 >"$WORK/snoop.txt" 2>>"$WORK/clients.log" &
SNOOP=$!
sleep 0.5
pub dev-b "$(user_of "$HUB" dev-b)" "$(hub_token "$KEY_B" "$HUB" dev-b)" \
  devices/dev-b/messages/events/ '{"secret":1}' || true
wait "$SNOOP" 2>/dev/null || true
expect_eq "dev-a's subscription to dev-b's topics receives nothing" "" "$(cat "$WORK/snoop.txt")"
sleep 0.3
check "the back end got dev-a's message" grep -qx 'devices/dev-a/messages/events/ {"n":1}' "$WORK/backend.txt"
check "the back end got g-dev-1's message" grep -qx 'devices/g-dev-1/messages/events/ {"n":2}' "$WORK/backend.txt"
check "the back end got dev-b's own message" grep -qx 'devices/dev-b/messages/events/ {"secret":1}' "$WORK/backend.txt"
check "dev-a's message on dev-b's topic never arrived" bash -c "! grep -q spoof '$WORK/backend.txt'"

# Disable: the live session goes, the next connect is refused.
live_session dev-a "$KEY_A"
check "dev-a holds a live session" kill -0 "$LIVE"
provctl enrollment disable dev-a >/dev/null
check "disabling dev-a's enrollment drops its live session within 5 s" \
  wait_for 5 bash -c "! kill -0 $LIVE 2>/dev/null"
check "dev-a is gone from the hub's identities" bash -c "! grep -q '^dev-a	' '$IDS'"
check "dev-a cannot connect any more" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i dev-a -u '$(user_of "$HUB" dev-a)' -P '$TOKEN_A' -t devices/dev-a/messages/events/ -m x 2>/dev/null"
check "the broker logged the disconnect" grep -q "device dev-a is no longer provisioned here" "$WORK/mosquitto.log"

# Delete the registration: the same for dev-b, live session included.
live_session dev-b "$KEY_B"
check "dev-b holds a live session" kill -0 "$LIVE"
provctl registration remove dev-b >/dev/null
check "deleting dev-b's registration drops its live session within 5 s" \
  wait_for 5 bash -c "! kill -0 $LIVE 2>/dev/null"
check "dev-b is gone from the hub's identities" bash -c "! grep -q '^dev-b	' '$IDS'"
check "dev-b cannot connect any more" \
  bash -c "! mosquitto_pub -h 127.0.0.1 -p $MPORT -i dev-b -u '$(user_of "$HUB" dev-b)' -P '$(hub_token "$KEY_B" "$HUB" dev-b)' -t devices/dev-b/messages/events/ -m x 2>/dev/null"
check "g-dev-1 still connects" \
  pub g-dev-1 "$(user_of "$HUB" g-dev-1)" "$(hub_token "$KEY_G" "$HUB" g-dev-1)" \
  devices/g-dev-1/messages/events/ '{"n":3}'
# Disabling the group takes its devices off the hub; enabling brings them back.
provctl group disable fleet >/dev/null
check "disabling the group removes g-dev-1 from the hub" wait_for 5 bash -c "! grep -q '^g-dev-1	' '$IDS'"
provctl group enable fleet >/dev/null
check "enabling it again restores g-dev-1" wait_for 5 in_hub g-dev-1

# Health: a dead broker takes the hub out of allocation, with an event.
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true; BROKER_PID=
unhealthy_event() { provctl events list --json | grep '"hub.unhealthy"' >/dev/null; }
check "a dead broker gives a hub.unhealthy event within 6 s" wait_for 6 unhealthy_event
KEY_C=$(random_key)
provctl enrollment add dev-c --primary-key "$KEY_C" --secondary-key "$(random_key)" >/dev/null
if register dev-c "$KEY_C"; then fail "a registration succeeded while the hub was down"
else pass "while the hub is down a registration is refused"; fi
check "the refusal names the unhealthy hub" grep -q "regid=dev-c reason=NO_HUB_AVAILABLE.*unhealthy" "$WORK/provd.log"
start_broker || fail "mosquitto did not restart"
check "once the broker is back the hub takes devices again" wait_for 8 register dev-c "$KEY_C"
check "and dev-c may connect" wait_for 5 in_hub dev-c

stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
