#!/usr/bin/env bash
# ctest-labels: e2e
# DPS's five access policy permissions end to end (docs/service-api.md
# #permissions): each policy reaches exactly what its permissions allow and
# gets 403 403001 naming the missing permission elsewhere; symmetric keys
# (individual and group) reach only policies with EnrollmentWrite; a
# token that lives longer than limits.max_service_token_lifetime is
# refused with a 401 that says so; SIGHUP applies changed permissions.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
RO_KEY=$(random_key); EW_KEY=$(random_key); SR_KEY=$(random_key)
SW_KEY=$(random_key); SC_KEY=$(random_key)
config() { # STATUS_PERMISSIONS [EXTRA_YAML]
  write_config "$WORK/provd.yaml" "$DATA_DIR"
  cat >> "$WORK/provd.yaml" <<YAML
service_policies:
  - { name: reader, key: "$RO_KEY", access: read }
  - { name: enrollments-rw, key: "$EW_KEY", permissions: [ EnrollmentRead, EnrollmentWrite ] }
  - { name: status, key: "$SR_KEY", permissions: $1 }
  - { name: status-rw, key: "$SW_KEY", permissions: "RegistrationStatusRead, RegistrationStatusWrite" }
  - { name: config, key: "$SC_KEY", permissions: [ ServiceConfig ] }
${2:-}
YAML
}
config "[ RegistrationStatusRead ]"
start_provd "$WORK/provd.yaml"

V='?api-version=2021-10-01'
OWNER="Authorization: $(service_token)"
READER="Authorization: $(service_token reader "$RO_KEY")"
ENROLL_RW="Authorization: $(service_token enrollments-rw "$EW_KEY")"
STATUS_RO="Authorization: $(service_token status "$SR_KEY")"
STATUS_RW="Authorization: $(service_token status-rw "$SW_KEY")"
CONFIG="Authorization: $(service_token config "$SC_KEY")"
SYM='{"attestation":{"type":"symmetricKey"}}'

# answers AS METHOD PATH [BODY]: the status of one request
answers() { http "$2" "$3$V" "${4-}" -H "$1"; echo "$STATUS"; }
# refused DESCRIPTION AS METHOD PATH BODY PERMISSION: 403 403001 naming it
refused() {
  http "$3" "$4$V" "$5" -H "$2"
  if [ "$STATUS" = 403 ] && [ "$(json_get "$BODY_OUT" errorCode)" = 403001 ] &&
     grep -qF "needs: $6" "$WORK/resp"; then
    pass "403 403001 naming $6: $1"
  else
    fail "$1: expected 403 naming $6, got $STATUS $BODY_OUT"
  fi
}
no_keys() { # DESCRIPTION: the last answer holds no key
  check "$1" bash -c "! grep -q -e '$KEY1' -e '$KEY2' -e '$GKEY' -e primaryKey -e secondaryKey '$WORK/resp'"
}

http PUT "/enrollments/dev-1$V" "$SYM" -H "$OWNER"
KEY1=$(json_get "$BODY_OUT" attestation.symmetricKey.primaryKey)
KEY2=$(json_get "$BODY_OUT" attestation.symmetricKey.secondaryKey)
http PUT "/enrollmentGroups/grp-1$V" "$SYM" -H "$OWNER"
GKEY=$(json_get "$BODY_OUT" attestation.symmetricKey.primaryKey)
check "the owner created an enrollment and a group with keys" test -n "$KEY1" -a -n "$GKEY"
http PUT "/$SCOPE/registrations/dev-1/register?api-version=2019-03-31" '{"registrationId":"dev-1"}' \
  -H "Authorization: $(device_token "$KEY1" dev-1)"
wait_for 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --cacert '$DATA_DIR/tls/ca.pem' -H '$OWNER' 'https://localhost:$PORT/registrations/dev-1$V')\" = 200 ]" ||
  fail "dev-1 did not register"

# --- reading without EnrollmentWrite: no key, individual or group ---
http GET "/enrollments/dev-1$V" '' -H "$READER"
expect_eq "the reader reads the enrollment" 200 "$STATUS"
expect_eq "... and its attestation type" symmetricKey "$(json_get "$BODY_OUT" attestation.type)"
no_keys "... but not its keys"
http GET "/enrollmentGroups/grp-1$V" '' -H "$READER"
expect_eq "the reader reads the group" 200 "$STATUS"
no_keys "... but not the group key (it would derive every device key)"
http POST "/enrollments/dev-1/attestationmechanism$V" '' -H "$READER"
expect_eq "the reader's attestationmechanism answers 200" 200 "$STATUS"
no_keys "... without keys"
http POST "/enrollmentGroups/grp-1/attestationmechanism$V" '' -H "$READER"
no_keys "the group's attestationmechanism holds no key for the reader"
http POST "/enrollments/query$V" '' -H "$READER"
no_keys "the reader's query holds no key"
http GET "/policy$V" '' -H "$READER"
expect_eq "GET /policy: read = EnrollmentRead + RegistrationStatusRead" \
  "['EnrollmentRead', 'RegistrationStatusRead']" "$(json_get "$BODY_OUT" permissions)"
expect_eq "GET /policy: the reader cannot write enrollments" False "$(json_get "$BODY_OUT" canWrite)"
expect_eq "GET /policy: the token lifetime bound" 3600 "$(json_get "$BODY_OUT" maxTokenLifetimeSeconds)"
refused "reader PUT" "$READER" PUT /enrollments/dev-1 "$SYM" EnrollmentWrite
refused "reader registration DELETE" "$READER" DELETE /registrations/dev-1 '' RegistrationStatusWrite
refused "reader hub PUT" "$READER" PUT /hubs/hub-9 '{"hostname":"hub-9.example.net"}' ServiceConfig
refused "reader event retry" "$READER" POST /events/1/retry '' ServiceConfig
expect_eq "the reader reads the hubs" 200 "$(answers "$READER" GET /hubs)"
expect_eq "the reader reads the journal" 200 "$(answers "$READER" GET /events)"
expect_eq "the reader may explain" 200 "$(answers "$READER" POST /explain/dev-1)"

# --- EnrollmentWrite: the keys, and nothing of registrations ---
http GET "/enrollments/dev-1$V" '' -H "$ENROLL_RW"
expect_eq "EnrollmentWrite sees the primary key" "$KEY1" "$(json_get "$BODY_OUT" attestation.symmetricKey.primaryKey)"
http POST "/enrollmentGroups/grp-1/attestationmechanism$V" '' -H "$ENROLL_RW"
expect_eq "EnrollmentWrite gets the group key" "$GKEY" "$(json_get "$BODY_OUT" symmetricKey.primaryKey)"
http POST "/enrollments/query$V" '' -H "$ENROLL_RW"
check "a query never lists keys, whoever asks" bash -c "! grep -q -e '$KEY1' -e primaryKey '$WORK/resp'"
expect_eq "EnrollmentWrite creates an enrollment" 200 "$(answers "$ENROLL_RW" PUT /enrollments/dev-2 "$SYM")"
refused "EnrollmentWrite lists registrations" "$ENROLL_RW" GET /registrations '' RegistrationStatusRead
refused "EnrollmentWrite reads a registration" "$ENROLL_RW" GET /registrations/dev-1 '' RegistrationStatusRead
refused "EnrollmentWrite deletes a registration" "$ENROLL_RW" DELETE /registrations/dev-1 '' RegistrationStatusWrite
refused "EnrollmentWrite links a hub" "$ENROLL_RW" PUT /hubs/hub-9 '{"hostname":"hub-9.example.net"}' ServiceConfig

# --- RegistrationStatusRead: registrations only ---
refused "RegistrationStatusRead queries enrollments" "$STATUS_RO" POST /enrollments/query '' EnrollmentRead
refused "RegistrationStatusRead lists groups" "$STATUS_RO" POST /enrollmentGroups/query '' EnrollmentRead
refused "RegistrationStatusRead reads an enrollment" "$STATUS_RO" GET /enrollments/dev-1 '' EnrollmentRead
refused "RegistrationStatusRead asks for attestation keys" "$STATUS_RO" POST /enrollments/dev-1/attestationmechanism '' EnrollmentRead
refused "RegistrationStatusRead reads the journal" "$STATUS_RO" GET /events '' "(EnrollmentRead, RegistrationStatusRead) or ServiceConfig"
http GET "/registrations$V" '' -H "$STATUS_RO"
expect_eq "RegistrationStatusRead lists registrations" 200 "$STATUS"
check "... dev-1 among them" grep -q '"registrationId":"dev-1"' "$WORK/resp"
expect_eq "RegistrationStatusRead reads a registration" 200 "$(answers "$STATUS_RO" GET /registrations/dev-1)"
expect_eq "RegistrationStatusRead reads the hubs" 200 "$(answers "$STATUS_RO" GET /hubs)"
refused "RegistrationStatusRead deletes a registration" "$STATUS_RO" DELETE /registrations/dev-1 '' RegistrationStatusWrite

# --- ServiceConfig: hubs and CAs, not enrollments ---
expect_eq "ServiceConfig links a hub" 200 "$(answers "$CONFIG" PUT /hubs/hub-9 '{"hostname":"hub-9.example.net"}')"
expect_eq "ServiceConfig lists the CAs" 200 "$(answers "$CONFIG" GET /certificates)"
expect_eq "ServiceConfig reads the journal" 200 "$(answers "$CONFIG" GET /events)"
refused "ServiceConfig queries enrollments" "$CONFIG" POST /enrollments/query '' EnrollmentRead
refused "ServiceConfig writes an enrollment" "$CONFIG" PUT /enrollments/dev-3 "$SYM" EnrollmentWrite
refused "ServiceConfig reads a registration" "$CONFIG" GET /registrations/dev-1 '' RegistrationStatusRead

# --- RegistrationStatusWrite deletes ---
expect_eq "RegistrationStatusWrite deletes a registration" 204 "$(answers "$STATUS_RW" DELETE /registrations/dev-1)"
expect_eq "... and it is gone" 404 "$(answers "$OWNER" GET /registrations/dev-1)"

# --- the token lifetime ---
# token POLICY KEY SE: a service token with the expiry chosen by the test
token() {
  local sig
  sig=$(printf '%s\n%s' localhost "$3" |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(b64_to_hex "$2")" -binary | base64 -w0)
  printf 'SharedAccessSignature sr=localhost&sig=%s&se=%s&skn=%s' "$(urlenc_b64 "$sig")" "$3" "$1"
}
NOW=$(date +%s)
http GET "/enrollments/dev-1$V" '' -H "Authorization: $(token reader "$RO_KEY" $((NOW + 3600 + 240)))"
expect_eq "a one-hour token from a clock 4 min ahead is accepted" 200 "$STATUS"
http GET "/enrollments/dev-1$V" '' -H "Authorization: $(token reader "$RO_KEY" $((NOW + 86400)))"
expect_eq "a one-day token is refused" 401 "$STATUS"
expect_eq "... with 401002" 401002 "$(json_get "$BODY_OUT" errorCode)"
check "... saying why ($(json_get "$BODY_OUT" message))" grep -q "at most 3600 s (limits.max_service_token_lifetime)" "$WORK/resp"
http GET "/enrollments/dev-1$V" '' -H "Authorization: $(token reader "$(random_key)" $((NOW + 86400)))"
expect_eq "a long token with a wrong key is a plain Unauthorized" Unauthorized "$(json_get "$BODY_OUT" message)"
check "the refusal is logged" grep -q "401 GET /enrollments/dev-1.*token lifetime beyond limits.max_service_token_lifetime" "$WORK/provd.log"

# --- SIGHUP applies changed permissions ---
config "[ RegistrationStatusRead, EnrollmentRead ]"
kill -HUP "$PROVD_PID"
wait_for 10 grep -q "SIGHUP: config reloaded" "$WORK/provd.log" || fail "SIGHUP was not logged"
http POST "/enrollments/query$V" '' -H "$STATUS_RO"
expect_eq "after SIGHUP the status policy may query enrollments" 200 "$STATUS"
no_keys "... still without keys"
http GET "/policy$V" '' -H "$STATUS_RO"
expect_eq "GET /policy says the new permissions" "['EnrollmentRead', 'RegistrationStatusRead']" "$(json_get "$BODY_OUT" permissions)"

# --- a longer bound, after a restart ---
stop_provd
config "[ RegistrationStatusRead ]" "limits: { max_service_token_lifetime: 24h }"
start_provd "$WORK/provd.yaml"
http GET "/enrollments/dev-1$V" '' -H "Authorization: $(token reader "$RO_KEY" $((NOW + 86400)))"
expect_eq "with max_service_token_lifetime: 24h a one-day token is accepted" 200 "$STATUS"
http GET "/enrollments/dev-1$V" '' -H "Authorization: $(token reader "$RO_KEY" $((NOW + 2 * 86400)))"
expect_eq "... a two-day token is not" 401 "$STATUS"
check "no key reached the log" bash -c "! grep -q -e '$KEY1' -e '$KEY2' -e '$GKEY' '$WORK/provd.log'"
stop_provd
expect_eq "provd exits 0" 0 "$STOP_RC"
finish
