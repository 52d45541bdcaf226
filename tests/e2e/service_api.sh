#!/usr/bin/env bash
# ctest-labels: e2e
# The service API's guards end to end: every authentication failure is the
# same 401 and changes nothing, a read-only policy cannot write through any
# write path, If-Match answers 412 / 404 as documented, keys are generated
# and handed out by single-record reads only (never by a query, an event or
# a log line), and hostile input is refused without harm.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
RO_KEY=$(random_key)
cat >> "$WORK/provd.yaml" <<YAML
service_policies:
  - { name: reader, key: "$RO_KEY", access: read }
YAML
start_provd "$WORK/provd.yaml"

V='?api-version=2021-10-01'
CS=$(cat "$DATA_DIR/service-connection-string")
OWNER_KEY=$(sed -n 's/.*SharedAccessKey=\([^;]*\).*/\1/p' <<<"$CS")

# token SR SE SKN KEY: a service token with every part chosen by the test
token() {
  local sig
  sig=$(printf '%s\n%s' "$1" "$2" |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(b64_to_hex "$4")" -binary | base64 -w0)
  printf 'SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s' "$1" "$(urlenc_b64 "$sig")" "$2" "$3"
}
NOW=$(date +%s)
OWNER="Authorization: $(service_token)"
READER="Authorization: $(token localhost $((NOW + 3600)) reader "$RO_KEY")"
SYM='{"attestation":{"type":"symmetricKey"}}'

event_count() {
  http GET "/events$V&limit=1000" '' -H "$OWNER"
  printf %s "$BODY_OUT" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
etag_of() { http GET "$1$V" '' -H "$OWNER"; json_get "$BODY_OUT" etag; }

http PUT "/enrollments/dev-1$V" "$SYM" -H "$OWNER"
expect_eq "owner PUT creates the enrollment" 200 "$STATUS"
KEY1=$(json_get "$BODY_OUT" attestation.symmetricKey.primaryKey)
KEY2=$(json_get "$BODY_OUT" attestation.symmetricKey.secondaryKey)
CREATED=$(json_get "$BODY_OUT" createdDateTimeUtc)
expect_eq "a missing primaryKey is generated (64 bytes)" 64 "$(printf %s "$KEY1" | base64 -d | wc -c)"
expect_eq "a missing secondaryKey is generated (64 bytes)" 64 "$(printf %s "$KEY2" | base64 -d | wc -c)"
check "the two generated keys differ" test "$KEY1" != "$KEY2"
EVENTS=$(event_count)
ETAG=$(etag_of /enrollments/dev-1)

# --- authentication: one answer for every failure, nothing reaches the store ---
unauthorized() { # description, curl args...
  local what=$1; shift
  http PUT "/enrollments/intruder$V" "$SYM" "$@"
  if [ "$STATUS" = 401 ] && [ "$(json_get "$BODY_OUT" errorCode)" = 401002 ] &&
     [ "$(json_get "$BODY_OUT" message)" = Unauthorized ]; then
    pass "401 401002 Unauthorized: $what"
  else
    fail "$what: got $STATUS $BODY_OUT"
  fi
}
unauthorized "no Authorization header"
unauthorized "not a SAS token" -H "Authorization: Bearer abc"
unauthorized "token without skn" -H "Authorization: $(token localhost $((NOW + 60)) '' "$OWNER_KEY" | sed 's/&skn=$//')"
unauthorized "unknown policy" -H "Authorization: $(token localhost $((NOW + 60)) nobody "$OWNER_KEY")"
unauthorized "wrong key" -H "Authorization: $(token localhost $((NOW + 60)) provisioningserviceowner "$(random_key)")"
unauthorized "owner key under the reader's name" -H "Authorization: $(token localhost $((NOW + 60)) reader "$OWNER_KEY")"
unauthorized "sr is another host" -H "Authorization: $(token evil.example $((NOW + 60)) provisioningserviceowner "$OWNER_KEY")"
unauthorized "sr only starts with the host" -H "Authorization: $(token localhostx $((NOW + 60)) provisioningserviceowner "$OWNER_KEY")"
unauthorized "sr has the host further in" -H "Authorization: $(token evil/localhost $((NOW + 60)) provisioningserviceowner "$OWNER_KEY")"
unauthorized "expired beyond the 300 s skew" -H "Authorization: $(token localhost $((NOW - 400)) provisioningserviceowner "$OWNER_KEY")"
unauthorized "signature over another se" -H "Authorization: $(token localhost $((NOW + 60)) provisioningserviceowner "$OWNER_KEY" | sed "s/se=$((NOW + 60))/se=$((NOW + 61))/")"
http GET "/nothing/here" '' ; expect_eq "unknown path without a token is 401, not 404" 401 "$STATUS"
http GET "/enrollments/dev-1" '' ; expect_eq "missing api-version without a token is 401, not 400" 401 "$STATUS"
expect_eq "no failed request wrote an event" "$EVENTS" "$(event_count)"
http GET "/enrollments/intruder$V" '' -H "$OWNER"
expect_eq "no failed request created the enrollment" 404 "$STATUS"

for sr in LOCALHOST localhost/enrollments localhost%2Fenrollments; do
  http GET "/enrollments/dev-1$V" '' -H "Authorization: $(token "$sr" $((NOW + 60)) provisioningserviceowner "$OWNER_KEY")"
  expect_eq "sr=$sr is accepted" 200 "$STATUS"
done
http GET "/enrollments/dev-1$V" '' -H "Authorization: $(token localhost $((NOW - 200)) provisioningserviceowner "$OWNER_KEY")"
expect_eq "a token expired within the skew is accepted" 200 "$STATUS"

# --- read-only policy: reads yes, writes never ---
http GET "/enrollments/dev-1$V" '' -H "$READER"
expect_eq "reader can GET" 200 "$STATUS"
forbidden() { # description method path [body]
  http "$2" "$3$V" "${4-}" -H "$READER"
  expect_eq "reader gets 403 on $1" 403 "$STATUS"
}
forbidden "PUT (update)" PUT /enrollments/dev-1 "$SYM"
forbidden "PUT (create)" PUT /enrollments/dev-new "$SYM"
forbidden "DELETE" DELETE /enrollments/dev-1
forbidden "group PUT" PUT /enrollmentGroups/grp-new "$SYM"
forbidden "group DELETE" DELETE /enrollmentGroups/grp-new
forbidden "bulk create" POST /enrollments/ '{"mode":"create","enrollments":[{"registrationId":"dev-b","attestation":{"type":"symmetricKey"}}]}'
forbidden "bulk delete" POST /enrollments '{"mode":"delete","enrollments":[{"registrationId":"dev-1"}]}'
forbidden "group bulk" POST /enrollmentGroups '{"mode":"delete","enrollmentGroups":[{"enrollmentGroupId":"g"}]}'
forbidden "registration DELETE" DELETE /registrations/dev-1
expect_eq "the reader changed nothing (etag)" "$ETAG" "$(etag_of /enrollments/dev-1)"
expect_eq "the reader wrote no event" "$EVENTS" "$(event_count)"

# --- GET /policy: what the console may offer ---
http GET "/policy$V" '' -H "$READER"
expect_eq "GET /policy names the reader" reader "$(json_get "$BODY_OUT" name)"
expect_eq "the reader cannot write" False "$(json_get "$BODY_OUT" canWrite)"
http GET "/policy$V" '' -H "$OWNER"
expect_eq "the owner can write" True "$(json_get "$BODY_OUT" canWrite)"
expect_eq "GET /policy says the ID scope" "$SCOPE" "$(json_get "$BODY_OUT" idScope)"
http GET "/policy$V" ''
expect_eq "GET /policy needs a token" 401 "$STATUS"
http POST "/policy$V" '{}' -H "$OWNER"
expect_eq "only GET /policy" 405 "$STATUS"

# --- If-Match on enrollments ---
http PUT "/enrollments/dev-1$V" "$SYM" -H "$OWNER" -H 'If-Match: "not-the-etag"'
expect_eq "PUT with another etag: 412" 412 "$STATUS"
expect_eq "PUT with another etag: errorCode 412001" 412001 "$(json_get "$BODY_OUT" errorCode)"
http PUT "/enrollments/nobody$V" "$SYM" -H "$OWNER" -H 'If-Match: "x"'
expect_eq "PUT with an etag on a missing enrollment: 404" 404 "$STATUS"
http PUT "/enrollments/nobody$V" "$SYM" -H "$OWNER" -H 'If-Match: *'
expect_eq "PUT with If-Match * on a missing enrollment: 412" 412 "$STATUS"
http GET "/enrollments/nobody$V" '' -H "$OWNER"
expect_eq "refused conditional PUTs created nothing" 404 "$STATUS"
sleep 0.01
http PUT "/enrollments/dev-1$V" "{\"attestation\":{\"type\":\"symmetricKey\",\"symmetricKey\":{\"primaryKey\":\"$KEY1\",\"secondaryKey\":\"$KEY2\"}},\"createdDateTimeUtc\":\"2001-01-01T00:00:00Z\"}" \
  -H "$OWNER" -H "If-Match: $ETAG"
expect_eq "PUT with the current etag: 200" 200 "$STATUS"
check "PUT answers a new etag" test "$(json_get "$BODY_OUT" etag)" != "$ETAG"
expect_eq "createdDateTimeUtc survives the update (client value ignored)" "$CREATED" "$(json_get "$BODY_OUT" createdDateTimeUtc)"
ETAG=$(json_get "$BODY_OUT" etag)
http DELETE "/enrollments/dev-1$V" '' -H "$OWNER" -H 'If-Match: "not-the-etag"'
expect_eq "DELETE with another etag: 412" 412 "$STATUS"
http DELETE "/enrollments/nobody$V" '' -H "$OWNER" -H 'If-Match: "x"'
expect_eq "DELETE of a missing enrollment: 404" 404 "$STATUS"

# --- If-Match on groups ---
http PUT "/enrollmentGroups/grp-1$V" "$SYM" -H "$OWNER"
expect_eq "group PUT: 200" 200 "$STATUS"
GKEY=$(json_get "$BODY_OUT" attestation.symmetricKey.primaryKey)
GETAG=$(json_get "$BODY_OUT" etag)
http PUT "/enrollmentGroups/grp-1$V" "$SYM" -H "$OWNER" -H 'If-Match: "x"'
expect_eq "group PUT with another etag: 412" 412 "$STATUS"
http DELETE "/enrollmentGroups/grp-1$V" '' -H "$OWNER" -H 'If-Match: "x"'
expect_eq "group DELETE with another etag: 412" 412 "$STATUS"
http DELETE "/enrollmentGroups/nogroup$V" '' -H "$OWNER"
expect_eq "group DELETE of a missing group: 404" 404 "$STATUS"
expect_eq "group DELETE of a missing group: 404202" 404202 "$(json_get "$BODY_OUT" errorCode)"

# --- If-Match on registrations ---
http PUT "/$SCOPE/registrations/dev-1/register?api-version=2019-03-31" '{"registrationId":"dev-1"}' \
  -H "Authorization: $(device_token "$KEY1" dev-1)"
expect_eq "the device registers" 202 "$STATUS"
for _ in $(seq 1 50); do
  http GET "/registrations/dev-1$V" '' -H "$OWNER"
  [ "$STATUS" = 200 ] && break
  sleep 0.1
done
expect_eq "GET /registrations/dev-1" 200 "$STATUS"
RETAG=$(json_get "$BODY_OUT" etag)
http DELETE "/registrations/dev-1$V" '' -H "$OWNER" -H 'If-Match: "x"'
expect_eq "registration DELETE with another etag: 412" 412 "$STATUS"
http DELETE "/registrations/dev-1$V" '' -H "$OWNER" -H "If-Match: $RETAG"
expect_eq "registration DELETE with its etag: 204" 204 "$STATUS"
http DELETE "/registrations/dev-1$V" '' -H "$OWNER"
expect_eq "registration DELETE again: 404" 404 "$STATUS"

# --- keys: single-record reads only ---
http GET "/enrollments/dev-1$V" '' -H "$OWNER"
expect_eq "GET keeps the keys (DPS wire traces)" "$KEY1" "$(json_get "$BODY_OUT" attestation.symmetricKey.primaryKey)"
http POST "/enrollments/dev-1/attestationmechanism$V" '' -H "$OWNER"
expect_eq "attestationmechanism hands out the keys" "$KEY2" "$(json_get "$BODY_OUT" symmetricKey.secondaryKey)"
http POST "/enrollments/query$V" '{"query":"*"}' -H "$READER"
expect_eq "enrollment query answers 200" 200 "$STATUS"
check "enrollment query lists dev-1" grep -q '"registrationId":"dev-1"' "$WORK/resp"
check "enrollment query says the attestation type" grep -q '"type":"symmetricKey"' "$WORK/resp"
check "enrollment query carries no key" bash -c "! grep -q -e '$KEY1' -e '$KEY2' -e primaryKey -e secondaryKey '$WORK/resp'"
http POST "/enrollmentGroups/query$V" '' -H "$OWNER"
expect_eq "group query answers 200" 200 "$STATUS"
check "group query lists grp-1" grep -q '"enrollmentGroupId":"grp-1"' "$WORK/resp"
check "group query carries no key" bash -c "! grep -q -e '$GKEY' -e primaryKey -e secondaryKey '$WORK/resp'"
http GET "/events$V&limit=1000" '' -H "$OWNER"
check "events carry no key" bash -c "! grep -q -e '$KEY1' -e '$KEY2' -e '$GKEY' -e primaryKey '$WORK/resp'"
check "the log carries no key" bash -c "! grep -q -e '$KEY1' -e '$KEY2' -e '$GKEY' '$WORK/provd.log'"

# --- hostile input ---
http GET "/enrollments/a%2Fb$V" '' -H "$OWNER"
expect_eq "an id with a slash is 400001" 400001 "$(json_get "$BODY_OUT" errorCode)"
http GET "/enrollments/$(printf 'a%.0s' $(seq 1 129))$V" '' -H "$OWNER"
expect_eq "a 129-character id is 400" 400 "$STATUS"
http PUT "/enrollments/dev-2$V" '[1]' -H "$OWNER"
expect_eq "a body that is not an object is 400" 400 "$STATUS"
http PUT "/enrollments/dup-1$V" '{"registrationId":"dup-1","attestation":{"type":"symmetricKey"},"provisioningStatus":"enabled","provisioningStatus":"disabled"}' -H "$OWNER"
expect_eq "a body that repeats a key is 400000" 400000 "$(json_get "$BODY_OUT" errorCode)"
http GET "/enrollments/dup-1$V" '' -H "$OWNER"
expect_eq "the refused duplicate-key body stored nothing" 404 "$STATUS"
http PUT "/enrollments/dev-2$V" '{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"AAAA"}}}' -H "$OWNER"
expect_eq "a 3-byte key is 400004" 400004 "$(json_get "$BODY_OUT" errorCode)"
ITEMS=$(python3 -c 'import json; print(json.dumps({"mode":"create","enrollments":[{"registrationId":"b%d" % i,"attestation":{"type":"symmetricKey"}} for i in range(11)]}))')
http POST "/enrollments/$V" "$ITEMS" -H "$OWNER"
expect_eq "a bulk of 11 items is 400" 400 "$STATUS"
http GET "/enrollments/b0$V" '' -H "$OWNER"
expect_eq "the refused bulk wrote nothing" 404 "$STATUS"
FORGED=$(printf "x' OR 1=1 --" | base64 -w0 | tr '+/' '-_' | tr -d =)
http POST "/enrollments/query$V" '' -H "$OWNER" -H "x-ms-continuation: $FORGED"
expect_eq "a forged continuation token is 400" 400 "$STATUS"
http POST "/enrollments/query$V" '' -H "$OWNER" -H "x-ms-max-item-count: 0"
expect_eq "page size 0 is 400" 400 "$STATUS"
DEEP=$(python3 -c 'print("{\"attestation\":{\"type\":\"symmetricKey\"},\"initialTwin\":{\"tags\":" + "["*3000 + "]"*3000 + "}}")')
http PUT "/enrollments/dev-2$V" "$DEEP" -H "$OWNER"
expect_eq "JSON nested 3000 deep is 400" 400 "$STATUS"
# allocation fields (docs/allocation.md)
bad_alloc() { # description, extra enrollment fields
  http PUT "/enrollments/dev-2$V" "{\"attestation\":{\"type\":\"symmetricKey\"},$2}" -H "$OWNER"
  expect_eq "$1 is 400" 400 "$STATUS"
}
bad_alloc "a policy no plugin implements" '"allocationPolicy":"nearest-dc"'
bad_alloc "static without a hub" '"allocationPolicy":"static"'
bad_alloc "custom without its webhook" '"allocationPolicy":"custom"'
bad_alloc "a webhook URL with a bad scheme" '"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"ftp://x/a","apiVersion":"2021-10-01"}'
bad_alloc "an initialTwin that is not an object" '"initialTwin":"ready"'
http GET "/enrollments/dev-2$V" '' -H "$OWNER"
expect_eq "the refused PUTs created no dev-2" 404 "$STATUS"
check "provd is still running" kill -0 "$PROVD_PID"

finish
