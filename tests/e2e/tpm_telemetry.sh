#!/usr/bin/env bash
# ctest-labels: e2e;plugin
# A TPM device on its hub, with real parts: a swtpm, provd with the tpm
# attestation and the mosquitto hub connector, mosquitto (TLS) with the
# provd broker plugin.  The device registers with its TPM; provd pushes
# the key the TPM imported to the hub (and shows it nowhere else);
# `provd-device send` signs its hub token inside the TPM and a back-end
# subscriber receives the messages.  The credentials file keeps the key
# only as the TPM imported it: another TPM cannot use it, a TPM device
# cannot pass as another, and after a reboot of the TPM the device sends
# without registering again.  Registering again replaces the key.
source "$(dirname "$0")/lib/common.bash"
export TSS2_LOG=all+none
source "$(dirname "$0")/lib/swtpm.bash"

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { fail "mosquitto is not installed (scripts/install-deps.sh)"; finish; }
[ -f "$BUILD_DIR/mosquitto/provd_auth.so" ] || { fail "provd_auth.so is not built"; finish; }

DATA_DIR=$WORK/data
IDS=$WORK/identities
MPORT=$(free_port)
BROKER_PID= SUB_PID= OTHER_PID=
stop_all() {
  [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null || true
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
  [ -n "$OTHER_PID" ] && kill "$OTHER_PID" 2>/dev/null || true
  stop_swtpm
  cleanup
}
trap stop_all EXIT

start_swtpm "$WORK/tpm-a"
TCTI_A=$TCTI
write_hub_config "$WORK/provd.yaml" "$DATA_DIR" localhost "$IDS" "$MPORT"
sed -i 's/^  - { kind: attestation, name: x509 }$/&\n  - { kind: attestation, name: tpm }/' "$WORK/provd.yaml"
start_provd "$WORK/provd.yaml"

write_broker_config "$WORK/mosquitto.conf" "$MPORT" "$IDS" "$DATA_DIR/tls"
start_mosquitto "$WORK/mosquitto.conf" "$WORK/mosquitto.log"
BROKER_PID=$MOSQUITTO_PID
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check "mosquitto listens" wait_for 20 port_up "$MPORT"

CA=$DATA_DIR/tls/ca.pem
mosquitto_sub -h localhost -p "$MPORT" --cafile "$CA" -u backend -P backend-pw \
  -t 'devices/#' -v >"$WORK/backend.txt" 2>>"$WORK/clients.log" &
SUB_PID=$!

# enroll TCTI: tpm-info, then a TPM enrollment; sets REGID
enroll() {
  local info
  info=$("$PROVD_DEVICE" tpm-info --tpm "$1" --json)
  REGID=$(json_get "$info" registrationId)
  provctl enrollment add --attestation tpm --endorsement-key "$(json_get "$info" endorsementKey)" >/dev/null
}
register() { # TCTI CREDENTIALS [--force]
  "$PROVD_DEVICE" register --scope "$SCOPE" --tpm "$1" --credentials "$2" ${3:-} \
    --url "https://localhost:$PORT" --ca "$CA" >>"$WORK/device.log" 2>&1
}
send() { # CREDENTIALS MESSAGE [options]: stderr to $WORK/send.err
  local cred=$1 msg=$2
  shift 2
  "$PROVD_DEVICE" send --credentials "$cred" --message "$msg" --interval 0 \
    --hub-port "$MPORT" --hub-ca "$CA" "$@" >>"$WORK/device.log" 2>"$WORK/send.err"
}
hub_key_of() { awk -F'\t' -v id="$1" '$1 == id {print $4}' "$IDS"; }
received() { grep -qx "devices/$1/messages/events/ $2" "$WORK/backend.txt"; }

# --- register: the hub gets the key the TPM imported ---
enroll "$TCTI_A"
DEV_A=$REGID
CRED=$WORK/dev-a.json
check "the TPM device registers and keeps its credentials" register "$TCTI_A" "$CRED"
check "provd pushed the TPM device to the hub" wait_for 10 bash -c "grep -q '^$DEV_A	' '$IDS'"
KEY_A=$(hub_key_of "$DEV_A")
expect_eq "with a 32-byte key (IoT Hub symmetric primary key)" 32 "$(printf %s "$KEY_A" | base64 -d 2>/dev/null | wc -c)"
expect_eq "the credentials file is mode 600" 600 "$(stat -c %a "$CRED")"
check "it keeps the TPM's imported object and its TCTI" \
  python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tpm"]; sys.exit(not (t["keyPrivate"] and t["keyPublic"] and t["tcti"] == sys.argv[2]))' "$CRED" "$TCTI_A"
check "and not the key itself" \
  python3 -c 'import json,sys; t=open(sys.argv[1]).read(); sys.exit(sys.argv[2] in t or json.loads(t).get("symmetricKey") is not None)' "$CRED" "$KEY_A"

# --- the key stays inside provd ---
http GET "/registrations/$DEV_A?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
expect_eq "the service API shows the registration" 200 "$STATUS"
check "without the hub key" bash -c "! grep -qF '$KEY_A' <<<'$BODY_OUT' && ! grep -q provdHubKey <<<'$BODY_OUT'"
http GET "/enrollments/$DEV_A?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
check "the enrollment's registrationState neither" bash -c "grep -q registrationState <<<'$BODY_OUT' && ! grep -qF '$KEY_A' <<<'$BODY_OUT'"
http GET "/registrations?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
check "nor the registration list" bash -c "grep -q '$DEV_A' <<<'$BODY_OUT' && ! grep -qF '$KEY_A' <<<'$BODY_OUT'"
check "nor the log" bash -c "! grep -qF '$KEY_A' '$WORK/provd.log'"

# --- telemetry signed by the TPM ---
check "provd-device send delivers 3 messages with the TPM-signed token" \
  send "$CRED" '{"t":21.5}' --count 3
check "the hub authenticated the device by its SAS token" \
  grep -q "provd_auth: device $DEV_A connected (SAS token)" "$WORK/mosquitto.log"
check "the subscriber got them on devices/{id}/messages/events/" \
  wait_for 5 bash -c "[ \$(grep -cx 'devices/$DEV_A/messages/events/ {\"t\":21.5}' '$WORK/backend.txt') -eq 3 ]"

# --- another TPM cannot use the file ---
SAVE_PID=$SWTPM_PID
start_swtpm "$WORK/tpm-b"
OTHER_PID=$SWTPM_PID TCTI_B=$TCTI
SWTPM_PID=$SAVE_PID
if send "$CRED" '{"from":"tpm-b"}' --tpm "$TCTI_B"; then
  fail "another TPM sent with the device's credentials"
else
  pass "another TPM cannot sign with the device's kept key"
fi
check "it says the TPM could not load the key" grep -q "Load" "$WORK/send.err"

# --- a TPM device cannot pass as another ---
enroll "$TCTI_B"
DEV_B=$REGID
CRED_B=$WORK/dev-b.json
check "a second TPM device registers" register "$TCTI_B" "$CRED_B"
check "and lands on the hub" wait_for 10 bash -c "grep -q '^$DEV_B	' '$IDS'"
check "it sends as itself" send "$CRED_B" '{"from":"b"}'
python3 - "$CRED_B" "$WORK/b-as-a.json" "$DEV_A" <<'PY'
import json, os, sys
doc = json.load(open(sys.argv[1]))
doc["deviceId"] = doc["registrationId"] = sys.argv[3]
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, json.dumps(doc).encode()); os.close(fd)
PY
if send "$WORK/b-as-a.json" '{"spoof":"b-as-a"}'; then
  fail "a TPM device connected as another device"
else
  pass "a TPM device cannot connect as another (its key signs only its own)"
fi
check "the hub refused it" grep -qi "not authori" "$WORK/send.err"
sleep 0.3
check "the subscriber got B's own message" received "$DEV_B" '{"from":"b"}'
check "and nothing from the impostors" bash -c "! grep -q 'tpm-b\|spoof' '$WORK/backend.txt'"

# --- a reboot: the TPM comes back (new port), the device sends again ---
kill "$OTHER_PID" 2>/dev/null; wait "$OTHER_PID" 2>/dev/null || true; OTHER_PID=
stop_swtpm
start_swtpm "$WORK/tpm-a"
REGS_BEFORE=$(grep -c "assigned regid=$DEV_A" "$WORK/provd.log" || true)
check "after a reboot register --credentials does not register again" register "$TCTI" "$CRED"
check "and send works with the TPM's new TCTI" send "$CRED" '{"after":"reboot"}' --tpm "$TCTI"
expect_eq "without a new registration" "$REGS_BEFORE" "$(grep -c "assigned regid=$DEV_A" "$WORK/provd.log" || true)"
check "the subscriber got it" wait_for 5 received "$DEV_A" '{"after":"reboot"}'

# --- registering again gives a new key; the old one stops working ---
cp -p "$CRED" "$WORK/dev-a-old.json"
check "registering again (--force) succeeds" register "$TCTI" "$CRED" --force
check "the hub got the new key" wait_for 10 bash -c "[ \"\$(awk -F'\t' '\$1 == \"$DEV_A\" {print \$4}' '$IDS')\" != '$KEY_A' ]"
check "the new credentials send" send "$CRED" '{"key":"new"}'
if send "$WORK/dev-a-old.json" '{"key":"old"}' --tpm "$TCTI"; then
  fail "the replaced key still connects"
else
  pass "the replaced key no longer connects"
fi

stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
