#!/usr/bin/env bash
# ctest-labels: e2e
# TPM attestation end to end against a private swtpm: provd-device reads
# the EK, provctl enrolls it (registration id derived as the SDKs do),
# provd-device registers with the challenge round; then the two PUTs are
# done step by step with a provd restart between them, the answer is
# replayed, and a wrong EK is refused.
source "$(dirname "$0")/lib/common.bash"
TPM_STEP=${PROVD_TPM_STEP:-$BUILD_DIR/tests/tpm_step}
export TSS2_LOG=all+none

source "$(dirname "$0")/lib/swtpm.bash"
start_swtpm
trap 'stop_swtpm; cleanup' EXIT

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
printf '  - { kind: attestation, name: tpm }\n' >> "$WORK/provd.yaml"
start_provd "$WORK/provd.yaml"
log_has() { grep -q "$1" "$WORK/provd.log"; }

# --- tpm-info and enrollment ---
info=$("$PROVD_DEVICE" tpm-info --tpm "$TCTI" --json)
REGID=$(json_get "$info" registrationId)
EK=$(json_get "$info" endorsementKey)
SRK=$(json_get "$info" storageRootKey)
expect_eq "derived registration id has 52 characters" 52 "${#REGID}"
out=$(provctl --json enrollment add --attestation tpm --endorsement-key "$EK" 2>&1) && rc=0 || rc=$?
expect_eq "provctl enrollment add --attestation tpm exits 0" 0 "$rc"
expect_eq "provctl derived the same registration id" "$REGID" "$(json_get "$out" registrationId)"
expect_eq "the enrollment shows the EK" "$EK" "$(json_get "$out" attestation.tpm.endorsementKey)"

# --- provd-device does the whole flow ---
out=$("$PROVD_DEVICE" register --scope "$SCOPE" --tpm "$TCTI" \
      --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" 2>&1) && rc=0 || rc=$?
expect_eq "provd-device register --tpm exits 0 ($out)" 0 "$rc"
check "it printed the hub and the derived id" grep -q "assigned hub=hub-.*registration_id=$REGID" <<<"$out"
check "logged: challenge issued" log_has "challenge issued regid=$REGID mechanism=tpm"
check "logged: assigned" log_has "assigned regid=$REGID"

# --- step by step, provd restarted between the two PUTs ---
body="{\"registrationId\":\"$REGID\",\"tpm\":{\"endorsementKey\":\"$EK\",\"storageRootKey\":\"$SRK\"}}"
reg_path="/$SCOPE/registrations/$REGID/register?api-version=2019-03-31"
http PUT "$reg_path" "$body"
expect_eq "first PUT answers 401" 401 "$STATUS"
expect_eq "keyName is registration" registration "$(json_get "$BODY_OUT" keyName)"
BLOB=$(json_get "$BODY_OUT" authenticationKey)
check "authenticationKey is 798 bytes" bash -c "[ \$(base64 -d <<<'$BLOB' | wc -c) -eq 798 ]"
stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
start_provd "$WORK/provd.yaml"
check "the TPM activates and imports the challenge" "$TPM_STEP" "$TCTI" activate "$BLOB"
TOKEN=$("$TPM_STEP" "$TCTI" token "$SCOPE" "$REGID" $(( $(date +%s) + 3600 )))
http PUT "$reg_path" "$body" -H "Authorization: $TOKEN"
expect_eq "second PUT after the restart answers 202" 202 "$STATUS"
OPID=$(json_get "$BODY_OUT" operationId)
http GET "/$SCOPE/registrations/$REGID/operations/$OPID?api-version=2019-03-31" '{}' -H "Authorization: $TOKEN"
expect_eq "poll answers 200" 200 "$STATUS"
expect_eq "status assigned" assigned "$(json_get "$BODY_OUT" status)"
FINAL=$(json_get "$BODY_OUT" registrationState.tpm.authenticationKey)
check "the answer carries registrationState.tpm.authenticationKey" test -n "$FINAL"
check "the TPM imports it too" "$TPM_STEP" "$TCTI" activate "$FINAL"

# --- the same answer again is a replay ---
http PUT "$reg_path" "$body" -H "Authorization: $TOKEN"
expect_eq "replayed answer answers 401" 401 "$STATUS"
expect_eq "replayed answer errorCode 401002" 401002 "$(json_get "$BODY_OUT" errorCode)"
check "logged reason TPM_CHALLENGE_REPLAYED" log_has "regid=$REGID reason=TPM_CHALLENGE_REPLAYED"

# --- an EK that is not the enrolled one gets no challenge ---
OTHER=$(printf %s "$EK" | base64 -d | python3 -c 'import sys; b=bytearray(sys.stdin.buffer.read()); b[-1]^=2; sys.stdout.buffer.write(b)' | base64 -w0)
http PUT "$reg_path" "{\"registrationId\":\"$REGID\",\"tpm\":{\"endorsementKey\":\"$OTHER\",\"storageRootKey\":\"$SRK\"}}"
expect_eq "wrong EK answers 401" 401 "$STATUS"
check "wrong EK gets no authenticationKey" bash -c "! grep -q authenticationKey <<<'$BODY_OUT'"
check "logged reason TPM_EK_MISMATCH" log_has "regid=$REGID reason=TPM_EK_MISMATCH"

stop_provd TERM
stop_swtpm
finish
