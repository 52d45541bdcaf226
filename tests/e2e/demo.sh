#!/usr/bin/env bash
# ctest-labels: e2e
# make demo as a test: scripts/demo.sh runs the whole story (SMTP sink,
# provd, mosquitto with provd_auth, provctl, provd-device, a subscriber)
# and this checks every step from what it left in its work directory:
# the mail (recipient, subject, registration id, the device's key), the
# assignment, the messages that reached the hub's subscriber (count,
# topic, body), the device -> hub mapping, the credentials file's mode,
# the time taken, and that nothing it started is still running.
source "$(dirname "$0")/lib/common.bash"

DEMO=$WORK/demo
start=$(date +%s)
if PROVD_BUILD_DIR=$BUILD_DIR DEMO_WORK=$DEMO DEMO_MESSAGES=5 \
     "$SOURCE_DIR/scripts/demo.sh" >"$WORK/demo.out" 2>&1; then
  pass "scripts/demo.sh exits 0"
else
  cat "$WORK/demo.out"; fail "scripts/demo.sh failed"; finish
fi
elapsed=$(( $(date +%s) - start ))
check "the demo takes under a minute (${elapsed} s)" [ "$elapsed" -lt 60 ]
for n in 1 2 3 4 5 6 7 8; do
  check "step $n/8 is announced" grep -q "^\[$n/8\] " "$WORK/demo.out"
done
check "the demo says everything is stopped" grep -q "everything it started is stopped" "$WORK/demo.out"

# The mail: to the owner (the enrollment's contact tag), with the key.
MAILS=$(ls "$DEMO/maildir/new" | wc -l)
expect_eq "one mail arrived" 1 "$MAILS"
KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["symmetricKey"])' \
      "$DEMO/device-credentials.json")
if python3 - "$DEMO/maildir/new" "$KEY" <<'PY'
import email, email.policy, os, sys
d, key = sys.argv[1:]
m = email.message_from_binary_file(open(os.path.join(d, os.listdir(d)[0]), "rb"),
                                   policy=email.policy.default)
assert m["To"] == "owner@example.net", m["To"]
assert m["Subject"] == "Your device thermostat-42 is ready", m["Subject"]
body = m.get_content()
assert "Registration id: thermostat-42" in body, body
assert "ID scope:        0ne0000demo" in body, body
assert f"Primary key:     {key}" in body, "the mail's key is not the one the device used"
PY
then pass "the mail goes to the owner and carries the registration id, scope and the key the device used"
else fail "the mail is not as expected"; fi

check "the device was assigned to hub localhost as thermostat-42" \
  grep -qx "assigned hub=localhost device_id=thermostat-42" "$DEMO/register.txt"
expect_eq "the credentials file is mode 600" 600 "$(stat -c %a "$DEMO/device-credentials.json")"
expect_eq "the hub's subscriber received 5 messages" 5 "$(wc -l <"$DEMO/telemetry.txt")"
expect_eq "every message came on the device's own topic with its body" 5 \
  "$(grep -cx 'devices/thermostat-42/messages/events/ {"temperature":21.5,"humidity":40}' "$DEMO/telemetry.txt")"
check "the device is listed as assigned to localhost" \
  grep -Eq '^thermostat-42 +thermostat-42 +assigned +localhost ' "$DEMO/registrations.txt"
check "the broker logged the device's SAS login" \
  grep -q "provd_auth: device thermostat-42 connected (SAS token)" "$DEMO/mosquitto.log"
# Brackets: the pattern must not match this pgrep's own command line.
demo_left() { pgrep -f "[p]rovd -c $DEMO|[m]osquitto -c $DEMO|[a]iosmtpd .*$DEMO|[m]osquitto_sub .*$DEMO" >/dev/null; }
if demo_left; then fail "a process of the demo is still running"; else pass "no process of the demo is left"; fi
finish
