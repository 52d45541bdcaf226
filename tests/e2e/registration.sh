#!/usr/bin/env bash
# ctest-labels: e2e
# Symmetric-key registration end to end: provctl enrolls over the service
# API, devices register with raw HTTPS (curl) and provd-device, failures
# carry the right errorCode / HTTP status / logged reason, bad input changes
# nothing, and a restart keeps every registration.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
start_provd "$WORK/provd.yaml"

reg_path() { echo "/$SCOPE/registrations/$1/register?api-version=2019-03-31"; }
op_path() { echo "/$SCOPE/registrations/$1/operations/$2?api-version=2019-03-31"; }

register() { # REGID TOKEN -> STATUS, BODY_OUT, OPID
  http PUT "$(reg_path "$1")" "{\"registrationId\":\"$1\"}" -H "Authorization: $2"
  OPID=$(json_get "$BODY_OUT" operationId 2>/dev/null || true)
}

poll() { # REGID OPID TOKEN
  http GET "$(op_path "$1" "$2")" '' -H "Authorization: $3" \
    -H 'Content-Type: application/json; charset=utf-8' --data-binary '{}' -X GET
}

log_has() { grep -q "$1" "$WORK/provd.log"; }

K1=$(random_key); K2=$(random_key)
out=$(provctl enrollment add dev-1 --primary-key "$K1" --secondary-key "$K2" --device-id device-one 2>&1) && rc=0 || rc=$?
expect_eq "provctl enrollment add exits 0" 0 "$rc"

# --- a device registers with the primary key ---
register dev-1 "$(device_token "$K1" dev-1)"
expect_eq "register answers 202" 202 "$STATUS"
expect_eq "register says assigning" assigning "$(json_get "$BODY_OUT" status)"
check "register returns an operationId" test -n "$OPID"
poll dev-1 "$OPID" "$(device_token "$K1" dev-1)"
expect_eq "the first poll answers 200" 200 "$STATUS"
expect_eq "status is assigned" assigned "$(json_get "$BODY_OUT" status)"
hub=$(json_get "$BODY_OUT" registrationState.assignedHub)
check "assignedHub is a configured hub ($hub)" bash -c "[[ '$hub' == hub-1.example.net || '$hub' == hub-2.example.net ]]"
expect_eq "deviceId comes from the enrollment" device-one "$(json_get "$BODY_OUT" registrationState.deviceId)"
expect_eq "substatus is initialAssignment" initialAssignment "$(json_get "$BODY_OUT" registrationState.substatus)"
check "registrationState.etag is base64" bash -c "base64 -d <<<'$(json_get "$BODY_OUT" registrationState.etag)' >/dev/null"
check "createdDateTimeUtc has 7 fractional digits" bash -c \
  "[[ '$(json_get "$BODY_OUT" registrationState.createdDateTimeUtc)' =~ ^[0-9-]{10}T[0-9:]{8}\.[0-9]{7}Z$ ]]"
check "logged: assigned regid=dev-1" log_has "assigned regid=dev-1 device=device-one hub="

# --- the secondary key works, the poll with a wrong operation id does not ---
register dev-1 "$(device_token "$K2" dev-1)"
expect_eq "secondary key is accepted" 202 "$STATUS"
poll dev-1 "5.0000000000000000.00000000-0000-4000-8000-000000000000" "$(device_token "$K2" dev-1)"
expect_eq "unknown operation id answers 404" 404 "$STATUS"

# --- failures: wire shape and logged reason ---
register dev-1 "$(device_token "$(random_key)" dev-1)"
expect_eq "wrong key answers 401" 401 "$STATUS"
expect_eq "wrong key errorCode 401002" 401002 "$(json_get "$BODY_OUT" errorCode)"
check "logged reason BAD_SIGNATURE" log_has "regid=dev-1 reason=BAD_SIGNATURE"
http PUT "$(reg_path dev-1)" '{"registrationId":"dev-1"}' -D "$WORK/head" \
  -H "Authorization: $(device_token "$(random_key)" dev-1)"
expect_eq "a refusal says only Unauthorized" Unauthorized "$(json_get "$BODY_OUT" message)"
check "a refusal carries a trackingId" test -n "$(json_get "$BODY_OUT" trackingId)"
check "a refusal carries x-ms-error-code: 401002" grep -qi '^x-ms-error-code: 401002' "$WORK/head"

register dev-1 "$(device_token "$K1" dev-1 $(( $(date +%s) - 3600 )))"
expect_eq "expired token answers 401" 401 "$STATUS"
expect_eq "expired token errorCode 401002" 401002 "$(json_get "$BODY_OUT" errorCode)"
check "logged reason TOKEN_EXPIRED" log_has "regid=dev-1 reason=TOKEN_EXPIRED"

register nobody-1 "$(device_token "$K1" nobody-1)"
expect_eq "unknown registration id answers 401" 401 "$STATUS"
check "logged reason ENROLLMENT_NOT_FOUND" log_has "regid=nobody-1 reason=ENROLLMENT_NOT_FOUND"

K3=$(random_key)
provctl enrollment add dev-2 --primary-key "$K3" --secondary-key "$(random_key)" >/dev/null
provctl enrollment disable dev-2 >/dev/null && rc=0 || rc=$?
expect_eq "provctl enrollment disable exits 0" 0 "$rc"
register dev-2 "$(device_token "$K3" dev-2)"
expect_eq "disabled enrollment: register answers 202" 202 "$STATUS"
poll dev-2 "$OPID" "$(device_token "$K3" dev-2)"
expect_eq "disabled enrollment: poll answers 200" 200 "$STATUS"
expect_eq "disabled enrollment: status disabled" disabled "$(json_get "$BODY_OUT" status)"
check "disabled enrollment: no hub is handed out" test -z "$(json_get "$BODY_OUT" registrationState.assignedHub)"
check "logged reason ENROLLMENT_DISABLED" log_has "regid=dev-2 reason=ENROLLMENT_DISABLED"
register dev-2 "$(device_token "$(random_key)" dev-2)"
expect_eq "disabled + wrong key still answers 401 (no information leak)" 401 "$STATUS"

# --- group enrollment ---
G=$(random_key)
provctl group add grp-1 --primary-key "$G" --secondary-key "$(random_key)" >/dev/null && rc=0 || rc=$?
expect_eq "provctl group add exits 0" 0 "$rc"
register grp-dev-1 "$(device_token "$(derive_key "$G" grp-dev-1)" grp-dev-1)"
expect_eq "group device registers" 202 "$STATUS"
poll grp-dev-1 "$OPID" "$(device_token "$(derive_key "$G" grp-dev-1)" grp-dev-1)"
expect_eq "group device is assigned" assigned "$(json_get "$BODY_OUT" status)"
expect_eq "group device id is the registration id" grp-dev-1 "$(json_get "$BODY_OUT" registrationState.deviceId)"
expect_eq "group id is reported" grp-1 "$(json_get "$BODY_OUT" registrationState.symmetricKey.enrollmentGroupId)"
expect_eq "provctl derive-key matches the device key" "$(derive_key "$G" grp-dev-9)" \
  "$(provctl derive-key grp-1 grp-dev-9 2>/dev/null | tail -n1 | awk '{print $NF}')"

# --- provd-device, the project's own device client ---
K4=$(random_key)
provctl enrollment add dev-3 --primary-key "$K4" --secondary-key "$(random_key)" >/dev/null
out=$("$PROVD_DEVICE" register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" \
      --scope "$SCOPE" --registration-id dev-3 --symmetric-key "$K4" 2>&1) && rc=0 || rc=$?
expect_eq "provd-device register exits 0" 0 "$rc"
check "provd-device prints the hub" grep -Eq "assigned hub=hub-[12].example.net device_id=dev-3" <<<"$out"

# --- explain: the operator's dry run names the hub or the reason ---
out=$(provctl explain dev-1 --json)
expect_eq "explain: dev-1 would be assigned" assigned "$(json_get "$out" outcome)"
expect_eq "explain: to the hub it has" "$hub" "$(json_get "$out" assignedHub)"
out=$(provctl explain dev-2 --json)
expect_eq "explain: dev-2 is disabled" ENROLLMENT_DISABLED "$(json_get "$out" reason)"
out=$(provctl explain nobody-2 --json)
expect_eq "explain: unknown id is refused" ENROLLMENT_NOT_FOUND "$(json_get "$out" reason)"
out=$(provctl explain dev-1 --scope "$SCOPE" --symmetric-key "$(random_key)" --json)
expect_eq "explain with a wrong device key says why" BAD_SIGNATURE "$(json_get "$out" reason)"
http GET "/registrations/nobody-2?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
expect_eq "explain wrote no registration" 404 "$STATUS"

# --- bad input: clear errors, nothing stored ---
# fresh-1 is enrolled and holds a valid token but has never registered: a
# guard that let one of these requests through would create its record.
K5=$(random_key)
provctl enrollment add fresh-1 --primary-key "$K5" --secondary-key "$(random_key)" >/dev/null
registration_absent() { # REGID
  http GET "/registrations/$1?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
  [ "$STATUS" = 404 ]
}
check "fresh-1 has no registration yet" registration_absent fresh-1
count_before=$(provctl registration list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
tok=$(device_token "$K5" fresh-1)
{ printf '{"registrationId":"fresh-1","payload":"'; head -c 200000 /dev/zero | tr '\0' 'a'; printf '"}'; } > "$WORK/big.json"
http PUT "$(reg_path fresh-1)" "@$WORK/big.json" -H "Authorization: $tok"
expect_eq "oversized body answers 413" 413 "$STATUS"
http PUT "$(reg_path fresh-1)" '{"registrationId":' -H "Authorization: $tok"
expect_eq "invalid JSON answers 400" 400 "$STATUS"
http PUT "$(reg_path fresh-1)" '["fresh-1"]' -H "Authorization: $tok"
expect_eq "a non-object body answers 400" 400 "$STATUS"
CONTENT_TYPE=text/plain http PUT "$(reg_path fresh-1)" '{"registrationId":"fresh-1"}' -H "Authorization: $tok"
expect_eq "wrong content type answers 415" 415 "$STATUS"
http PUT "$(reg_path fresh-1)" '{"registrationId":"someone-else"}' -H "Authorization: $tok"
expect_eq "body id that differs from the path answers 400" 400 "$STATUS"
http PUT "/0ne99999999/registrations/fresh-1/register?api-version=2019-03-31" '{"registrationId":"fresh-1"}' -H "Authorization: $tok"
expect_eq "unknown ID scope answers 404" 404 "$STATUS"
http PUT "/$SCOPE/registrations/fresh-1/register" '{"registrationId":"fresh-1"}' -H "Authorization: $tok"
expect_eq "missing api-version answers 400" 400 "$STATUS"
for bad in 'bad%21id' '-leading' 'trailing.' "$(head -c 129 /dev/zero | tr '\0' 'x')" 'sp%20ace'; do
  http PUT "/$SCOPE/registrations/$bad/register?api-version=2019-03-31" "{}" -H "Authorization: $tok"
  expect_eq "registration id '$bad' breaks the naming rules: 400" 400 "$STATUS"
done
long_id=$(head -c 600 /dev/zero | tr '\0' 'x')
http PUT "/$SCOPE/registrations/$long_id/register?api-version=2019-03-31" "{}" -H "Authorization: $tok"
expect_eq "a 600-character id is refused like a 129-character one: 400" 400 "$STATUS"
check "the answer names the id rules" grep -q "Invalid registration id" <<<"$BODY_OUT"
http PUT "/$(head -c 600 /dev/zero | tr '\0' 's')/registrations/fresh-1/register?api-version=2019-03-31" "{}" -H "Authorization: $tok"
expect_eq "an over-long ID scope is an unknown scope: 404" 404 "$STATUS"
expect_eq "... with errorCode 404001" 404001 "$(json_get "$BODY_OUT" errorCode)"
http PUT "$(reg_path fresh-1)" '{"registrationId":"fresh-1","registrationId":"fresh-1"}' -H "Authorization: $tok"
expect_eq "a body that repeats a key: 400" 400 "$STATUS"
check "the answer says the key repeats" grep -q "repeats a key" <<<"$BODY_OUT"
http PUT "$(reg_path fresh-1)" '{"registrationId":"fresh-1"}' -H "Authorization: SharedAccessSignature garbage"
expect_eq "malformed token answers 401" 401 "$STATUS"
check "logged reason MALFORMED_TOKEN" log_has "regid=fresh-1 reason=MALFORMED_TOKEN"
check "bad input created no registration for fresh-1" registration_absent fresh-1
count_after=$(provctl registration list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect_eq "bad input stored nothing" "$count_before" "$count_after"
register fresh-1 "$tok"
expect_eq "the same token and a good request register fresh-1" 202 "$STATUS"
check "provd is still healthy" bash -c "curl -sSf --cacert '$DATA_DIR/tls/ca.pem' https://localhost:$PORT/healthz >/dev/null"

# --- /metrics is no enumeration oracle: an unknown id and a wrong key for
# an enrolled one move the same failure series ---
failure_series() { curl -sS --cacert "$DATA_DIR/tls/ca.pem" "https://localhost:$PORT/metrics" |
  grep '^provd_registration_failures_total' | sort; }
m0=$(failure_series)
register nobody-enrolled "$(device_token "$(random_key)" nobody-enrolled)"
expect_eq "unknown id answers 401" 401 "$STATUS"
m1=$(failure_series)
register dev-1 "$(device_token "$(random_key)" dev-1)"
expect_eq "wrong key for an enrolled id answers 401" 401 "$STATUS"
m2=$(failure_series)
delta() { diff <(echo "$1") <(echo "$2") | grep '^>' | sed 's/ [0-9.e+]*$//'; }
expect_eq "both failures move the same series" "$(delta "$m0" "$m1")" "$(delta "$m1" "$m2")"
check "the series is the folded UNAUTHORIZED" grep -q 'reason="UNAUTHORIZED"' <<<"$m2"
check "no per-reason series for pre-authentication failures" \
  bash -c "! grep -qE 'reason=\"(BAD_SIGNATURE|ENROLLMENT_NOT_FOUND)\"' <<<'$m2'"
check "the log keeps the real reasons" log_has "regid=nobody-enrolled reason=\(ENROLLMENT_NOT_FOUND\|BAD_SIGNATURE\)"
check "the log keeps BAD_SIGNATURE" log_has "regid=dev-1 reason=BAD_SIGNATURE"

# --- the back end's device -> hub map, and restart durability ---
out=$(provctl registration show dev-1 --json)
expect_eq "registration show gives the hub" "$hub" "$(json_get "$out" assignedHub)"
on_hub=$(provctl registration list --hub "$hub" --json | python3 -c 'import json,sys; print(" ".join(r["registrationId"] for r in json.load(sys.stdin)))')
check "registration list --hub lists dev-1" grep -qw dev-1 <<<"$on_hub"

stop_provd; expect_eq "SIGTERM exits 0" 0 "$STOP_RC"
start_provd "$WORK/provd.yaml"
out=$(provctl registration show dev-1 --json)
expect_eq "after restart dev-1 is still on $hub" "$hub" "$(json_get "$out" assignedHub)"
register dev-1 "$(device_token "$K1" dev-1)"
poll dev-1 "$OPID" "$(device_token "$K1" dev-1)"
expect_eq "after restart the same device gets the same hub" "$hub" "$(json_get "$BODY_OUT" registrationState.assignedHub)"
stop_provd; expect_eq "SIGTERM exits 0 again" 0 "$STOP_RC"

finish
