#!/usr/bin/env bash
# ctest-labels: e2e
# listen.console: a second HTTPS listener with the console and the service
# API (what the console calls) but not the device API; the banner prints
# its console URL; the main listener keeps everything.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
sed -i 's|^listen: { https: "127.0.0.1:0" }|listen: { https: "127.0.0.1:0", console: "127.0.0.1:0" }|' "$WORK/provd.yaml"
start_provd "$WORK/provd.yaml"

CPORT=$(sed -n 's|.*console: *https://localhost:\([0-9]*\)/console/.*|\1|p' "$WORK/banner")
check "the banner prints the console listener's URL" test -n "$CPORT"
check "on its own port" test "$CPORT" != "$PORT"

on_console() { # method path [curl args]: STATUS, BODY_OUT from the console port
  local saved=$PORT
  PORT=$CPORT
  http "$@"
  PORT=$saved
}
on_console GET /console/ ''
expect_eq "the console is served there" 200 "$STATUS"
check "the page" grep -q 'name="connectionString"' <<<"$BODY_OUT"
on_console GET "/enrollments/nobody?api-version=2021-10-01" '' -H "Authorization: $(service_token)"
expect_eq "the service API answers there (404 for a missing enrollment)" 404 "$STATUS"
expect_eq "with the service API's error code" 404201 "$(json_get "$BODY_OUT" errorCode)"
on_console PUT "/$SCOPE/registrations/dev-1/register?api-version=2019-03-31" '{"registrationId":"dev-1"}' \
  -H "Authorization: $(device_token "$(random_key)" dev-1)"
expect_eq "no device API there" 404 "$STATUS"
expect_eq "answered as an unknown path" 404000 "$(json_get "$BODY_OUT" errorCode)"
on_console GET /healthz ''
expect_eq "healthz there" 200 "$STATUS"

http GET /console/ ''
expect_eq "the main listener still serves the console" 200 "$STATUS"
http PUT "/$SCOPE/registrations/dev-1/register?api-version=2019-03-31" '{"registrationId":"dev-1"}' \
  -H "Authorization: $(device_token "$(random_key)" dev-1)"
expect_eq "and the device API (401: no such enrollment)" 401 "$STATUS"

finish
