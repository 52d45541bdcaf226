#!/usr/bin/env bash
# ctest-labels: postgres
# A TPM challenge round across two provd instances on one PostgreSQL: the
# challenge issued by instance 1 is answered on instance 2 (the round
# lives in the database, not in a process), the poll is answered by
# instance 1, and the same answer replayed on instance 1 is refused.
source "$(dirname "$0")/lib/common.bash"
source "$(dirname "$0")/lib/multi.bash"
source "$(dirname "$0")/lib/swtpm.bash"
TPM_STEP=${PROVD_TPM_STEP:-$BUILD_DIR/tests/tpm_step}
export TSS2_LOG=all+none

start_swtpm
trap 'stop_swtpm; multi_cleanup' EXIT
pg_start
TPM_ITEM='  - { kind: attestation, name: tpm }'
start_instance 1 "$TPM_ITEM"
start_instance 2 "$TPM_ITEM"

on 1
info=$("$PROVD_DEVICE" tpm-info --tpm "$TCTI" --json)
REGID=$(json_get "$info" registrationId)
EK=$(json_get "$info" endorsementKey)
SRK=$(json_get "$info" storageRootKey)
provctl enrollment add --attestation tpm --endorsement-key "$EK" >/dev/null
body="{\"registrationId\":\"$REGID\",\"tpm\":{\"endorsementKey\":\"$EK\",\"storageRootKey\":\"$SRK\"}}"

http PUT "$(reg_path "$REGID")" "$body"
expect_eq "instance 1 issues the challenge (401)" 401 "$STATUS"
BLOB=$(json_get "$BODY_OUT" authenticationKey)
check "the TPM activates and imports it" "$TPM_STEP" "$TCTI" activate "$BLOB"
TOKEN=$("$TPM_STEP" "$TCTI" token "$SCOPE" "$REGID" $(( $(date +%s) + 3600 )))

on 2
http PUT "$(reg_path "$REGID")" "$body" -H "Authorization: $TOKEN"
expect_eq "instance 2 accepts the answer (202)" 202 "$STATUS"
OPID=$(json_get "$BODY_OUT" operationId)
on 1
http GET "$(op_path "$REGID" "$OPID")" '{}' -H "Authorization: $TOKEN"
expect_eq "instance 1 answers the poll" 200 "$STATUS"
expect_eq "assigned" assigned "$(json_get "$BODY_OUT" status)"
http PUT "$(reg_path "$REGID")" "$body" -H "Authorization: $TOKEN"
expect_eq "the answer replayed on instance 1 is refused" 401 "$STATUS"
check "logged reason TPM_CHALLENGE_REPLAYED" grep -q "regid=$REGID reason=TPM_CHALLENGE_REPLAYED" "$WORK/provd-1.log"

stop_swtpm
finish
