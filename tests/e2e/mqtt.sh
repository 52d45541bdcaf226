#!/usr/bin/env bash
# ctest-labels: e2e
# The DPS device API over MQTT/TLS end to end, with a raw MQTT client
# (lib/mqtt_peer.py): register and poll with symmetric keys (individual
# and group) and X.509, the same refusals and reason codes as HTTPS, and
# bad input (CONNECT refusals, truncated and oversized packets, PUBLISH
# before CONNECT, a second CONNECT, unknown topic, QoS 2) closing the
# connection without harming the server; a throttled register answered
# 429 with a retry-after.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
sed -i 's|listen: { https: "127.0.0.1:0" }|listen: { https: "127.0.0.1:0", mqtt: "127.0.0.1:0" }|' "$WORK/provd.yaml"
start_provd "$WORK/provd.yaml"
MQTT_PORT=$(sed -n 's|.*MQTT endpoint: *mqtts://localhost:\([0-9]*\).*|\1|p' "$WORK/banner")
check "the banner names the MQTT endpoint" test -n "$MQTT_PORT"

peer() { python3 "$SOURCE_DIR/tests/e2e/lib/mqtt_peer.py" "$@" --port "$MQTT_PORT" --ca "$DATA_DIR/tls/ca.pem"; }
user() { echo "$SCOPE/registrations/$1/api-version=2019-03-31&ClientVersion=e2e"; }
log_has() { grep -q "$1" "$WORK/provd.log"; }
# last_answer OUTPUT FIELD: a field of the last answer line
last_answer() { tail -n 1 <<<"$1" | python3 -c 'import json,sys
d=json.loads(sys.stdin.read()); print(eval("d" + sys.argv[1]))' "$2"; }

# --- symmetric key, individual: register, poll, assigned ---
K1=$(random_key); K2=$(random_key)
provctl enrollment add mq-1 --primary-key "$K1" --secondary-key "$K2" --device-id mq-device >/dev/null
out=$(peer register --regid mq-1 --user "$(user mq-1)" --password "$(device_token "$K1" mq-1)" \
      --payload '{"modelId":"dtmi:example:m;1"}') && rc=0 || rc=$?
expect_eq "symmetric key over MQTT ends assigned ($out)" 0 "$rc"
check "CONNACK accepted" grep -q '{"connack": 0}' <<<"$out"
check "SUBACK grants QoS 1" grep -q '"granted": \[1\]' <<<"$out"
check "register answers 202 with retry-after on the res topic" \
  grep -q '"publish": "$dps/registrations/res/202/?$rid=r2&retry-after=' <<<"$out"
expect_eq "deviceId from the enrollment" mq-device "$(last_answer "$out" '["body"]["registrationState"]["deviceId"]')"
check "logged: assigned regid=mq-1" log_has "assigned regid=mq-1 device=mq-device"

# --- QoS 0 publishes (the C SDK) work too ---
out=$(peer register --qos 0 --regid mq-1 --user "$(user mq-1)" --password "$(device_token "$K2" mq-1)") && rc=0 || rc=$?
expect_eq "QoS 0 register and poll with the secondary key" 0 "$rc"

# --- symmetric key, group ---
G=$(random_key)
provctl group add mq-fleet --primary-key "$G" --secondary-key "$(random_key)" >/dev/null
DK=$(derive_key "$G" mq-member-7)
out=$(peer register --regid mq-member-7 --user "$(user mq-member-7)" --password "$(device_token "$DK" mq-member-7)") && rc=0 || rc=$?
expect_eq "group member over MQTT ends assigned ($out)" 0 "$rc"

# --- wrong key: the engine checks the signature before CONNACK ---
out=$(peer register --regid mq-1 --user "$(user mq-1)" --password "$(device_token "$(random_key)" mq-1)") && rc=0 || rc=$?
check "wrong key fails" test "$rc" -ne 0
check "wrong key: CONNACK 4 (bad user name or password) ($out)" grep -q '{"connack": 4}' <<<"$out"
check "logged reason BAD_SIGNATURE" log_has "registration refused regid=mq-1 reason=BAD_SIGNATURE"
check "logged the CONNECT refusal with transport=mqtt" log_has "connect refused regid=mq-1 reason=BAD_SIGNATURE connack=4 peer=.* transport=mqtt"
# an unknown id gets the same CONNACK as a bad signature (no oracle)
out=$(peer register --regid mq-nobody --user "$(user mq-nobody)" --password "$(device_token "$K1" mq-nobody)") || true
check "unknown registration id: the same CONNACK 4 ($out)" grep -q '{"connack": 4}' <<<"$out"
# the enrollment disabled after CONNECT: register still answers from the engine
provctl enrollment add mq-late --primary-key "$K1" --secondary-key "$K2" >/dev/null
out=$(peer register --regid mq-late --user "$(user mq-late)" --password "$(device_token "$K1" mq-late)") && rc=0 || rc=$?
expect_eq "a good key still registers after the CONNECT check ($out)" 0 "$rc"

# --- CONNECT refusals ---
out=$(peer register --regid mq-1 --user "$(user mq-1)" --password "not a token") || true
check "a password that is no SAS token: CONNACK 4 ($out)" grep -q '{"connack": 4}' <<<"$out"
out=$(peer register --regid mq-1 --user "$(user mq-1)" --password "$(device_token "$K1" other-device)") || true
check "a token for another registration: CONNACK 4" grep -q '{"connack": 4}' <<<"$out"
out=$(peer register --regid mq-2 --user "$(user mq-1)" --password "$(device_token "$K1" mq-1)") || true
check "client id is not the username's registration id: CONNACK 2" grep -q '{"connack": 2}' <<<"$out"
out=$(peer register --regid mq-1 --user "0ne99999999/registrations/mq-1/api-version=2019-03-31" --password "$(device_token "$K1" mq-1)") || true
check "another ID scope: CONNACK 5" grep -q '{"connack": 5}' <<<"$out"
out=$(peer register --regid mq-1 --user "$(user mq-1)") || true
check "no token and no certificate (TPM): CONNACK 5" grep -q '{"connack": 5}' <<<"$out"
check "logged: TPM served over HTTPS only" log_has "TPM attestation is served over HTTPS only"
out=$(peer probe --send 101000044d5154540302003c00046d712d31 --wait 3)
check "MQTT 3.1 CONNECT: CONNACK 1 then close ($out)" grep -q '{"connack": 1}' <<<"$out"
check "MQTT 3.1 CONNECT: closed" grep -q '"connection": "closed"' <<<"$out"

# --- the same refusals seen by a stock client (mosquitto_pub) ---
command -v mosquitto_pub >/dev/null ||
  fail "mosquitto_pub is missing: run scripts/install-deps.sh (mosquitto-clients)"
mosq_pub() { # user password: mosquitto_pub's output; its exit status
  timeout 20 mosquitto_pub -V mqttv311 -h localhost -p "$MQTT_PORT" \
    --cafile "$DATA_DIR/tls/ca.pem" -i mq-1 -u "$1" -P "$2" -q 1 \
    -t '$dps/registrations/PUT/iotdps-register/?$rid=1' -m '{"registrationId":"mq-1"}' 2>&1
}
out=$(mosq_pub "$(user mq-1)" "not a token") && rc=0 || rc=$?
check "mosquitto_pub: a password that is no SAS token is refused ($out)" test "$rc" -ne 0
check "mosquitto_pub: says bad user name or password" grep -qi "bad user name or password" <<<"$out"
out=$(mosq_pub "$(user mq-1)" "$(device_token "$(random_key)" mq-1)") && rc=0 || rc=$?
check "mosquitto_pub: a token signed with the wrong key is refused at CONNECT ($out)" test "$rc" -ne 0
check "mosquitto_pub: wrong key says bad user name or password" grep -qi "bad user name or password" <<<"$out"
out=$(mosq_pub "0ne99999999/registrations/mq-1/api-version=2019-03-31" "$(device_token "$K1" mq-1)") && rc=0 || rc=$?
check "mosquitto_pub: another ID scope is refused ($out)" test "$rc" -ne 0
check "mosquitto_pub: says not authorised" grep -qi "not authori" <<<"$out"
out=$(mosq_pub "$(user mq-1)" "$(device_token "$K1" mq-1)") && rc=0 || rc=$?
expect_eq "mosquitto_pub: the right token connects and publishes a register ($out)" 0 "$rc"

# --- bad input closes the connection ---
GOOD=(--regid mq-1 --user "$(user mq-1)" --password "$(device_token "$K1" mq-1)")
probe_closed() { # description, probe args...
  local what=$1; shift
  local o
  o=$(peer probe "$@" --wait 5)
  check "$what closes the connection ($o)" grep -q '"connection": "closed"' <<<"$o"
}
probe_closed "PUBLISH before CONNECT" --send 3006000461626364
probe_closed "a second CONNECT" --connect-first "${GOOD[@]}" \
  --send 101000044d5154540402003c00046d712d31
probe_closed "an unknown topic" --connect-first "${GOOD[@]}" --send 30160012246470732f756e6b6e6f776e2f746f7069637b7d
probe_closed "a QoS 2 PUBLISH" --connect-first "${GOOD[@]}" \
  --send 3434002e246470732f726567697374726174696f6e732f5055542f696f746470732d72656769737465722f3f247269643d3100017b7d
probe_closed "a remaining length over the limit" --connect-first "${GOOD[@]}" --send 30ffffff7f
probe_closed "a malformed SUBSCRIBE" --connect-first "${GOOD[@]}" --send 8003000100
o=$(peer probe --send 101000044d51 --wait 12)
check "a truncated CONNECT is closed by the CONNECT deadline" grep -q '"connection": "closed"' <<<"$o"
o=$(peer probe --connect-first "${GOOD[@]}" --send c000 --wait 2)
check "PINGREQ answers PINGRESP and stays open" grep -q '"pingresp"' <<<"$o"
check "the pinged connection is still open" grep -q '"connection": "open"' <<<"$o"

# --- X.509 over MQTT: the TLS client certificate ---
PKI=$WORK/pki; mkdir -p "$PKI"
openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/d.key" 2>/dev/null
openssl req -x509 -new -key "$PKI/d.key" -subj "/CN=mq-x509" -days 30 -out "$PKI/d.pem" \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=clientAuth 2>/dev/null
provctl enrollment add mq-x509 --attestation x509 --cert "$PKI/d.pem" >/dev/null
out=$(peer register --regid mq-x509 --user "$(user mq-x509)" --cert "$PKI/d.pem" --key "$PKI/d.key") && rc=0 || rc=$?
expect_eq "X.509 over MQTT ends assigned ($out)" 0 "$rc"

# --- the server is still healthy; metrics carry transport="mqtt" ---
http GET /healthz ''
expect_eq "healthz after all of it" 200 "$STATUS"
curl -sS --cacert "$DATA_DIR/tls/ca.pem" "https://localhost:$PORT/metrics" > "$WORK/metrics"
check "metrics: answers by transport" grep -q 'provd_device_answers_total{transport="mqtt",code="200"}' "$WORK/metrics"
check "metrics: protocol errors counted" grep -q 'provd_mqtt_protocol_errors_total{transport="mqtt"}' "$WORK/metrics"
check "metrics: registers reused the enrollment CONNECT read" grep -Eq '^provd_enrollment_reads_reused_total [1-9]' "$WORK/metrics"

stop_provd TERM
expect_eq "provd exits 0 on SIGTERM" 0 "$STOP_RC"

# --- admission control: a throttled register is answered 429 with a
# retry-after on the res topic, as HTTPS answers it (the same store,
# restarted with one register per device a minute) ---
cat >>"$WORK/provd.yaml" <<'YAML'
limits: { register_rate_per_device: 1, retry_after_max: 1 }
YAML
start_provd "$WORK/provd.yaml"
MQTT_PORT=$(sed -n 's|.*MQTT endpoint: *mqtts://localhost:\([0-9]*\).*|\1|p' "$WORK/banner")
out=$(peer register --regid mq-1 --user "$(user mq-1)" --password "$(device_token "$K1" mq-1)") && rc=0 || rc=$?
expect_eq "the first register of the minute ends assigned ($out)" 0 "$rc"
out=$(peer register --regid mq-1 --user "$(user mq-1)" --password "$(device_token "$K1" mq-1)") && rc=0 || rc=$?
check "the second register is not assigned" test "$rc" -ne 0
check "the second register: CONNACK accepted (the limit counts registers, not connections) ($out)" \
  grep -q '{"connack": 0}' <<<"$out"
check "the second register is answered 429 with retry-after=1 ($out)" \
  grep -q '"publish": "$dps/registrations/res/429/?$rid=r2&retry-after=1"' <<<"$out"
expect_eq "the 429 carries the DPS error code" 429001 "$(last_answer "$out" '["body"]["errorCode"]')"
check "logged: reason THROTTLED for mq-1" log_has "regid=mq-1 reason=THROTTLED"
stop_provd TERM
expect_eq "provd exits 0 on SIGTERM after the throttled run" 0 "$STOP_RC"
finish
