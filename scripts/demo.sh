#!/usr/bin/env bash
# make demo: the whole back-office story on one machine, with real parts,
# all on 127.0.0.1 and free ports:
#   provd (SMTP notifier on, a mosquitto hub connector)
#   an SMTP sink (python3 -m aiosmtpd)
#   mosquitto with provd's broker plugin (tools/mosquitto-auth), the hub
#   provctl enrolls a device -> the owner's mail carries the credentials ->
#   provd-device registers with them, lands on the hub, sends telemetry ->
#   a back-end subscriber sees it -> provctl lists device -> hub.
# Every step checks its outcome and stops the demo (exit 1) when it does
# not hold.  Everything started here stops at the end, also on Ctrl-C.
#
# Environment: PROVD_BUILD_DIR (default build), DEMO_WORK (a directory to
# work in and keep afterwards; default a temporary one, removed),
# DEMO_MESSAGES (default 5).
set -euo pipefail

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${PROVD_BUILD_DIR:-$SOURCE_DIR/build}
MESSAGES=${DEMO_MESSAGES:-5}
DEVICE=thermostat-42
OWNER=owner@example.net
SCOPE=0ne0000demo
STEPS=8

if [ -n "${DEMO_WORK:-}" ]; then
  WORK=$DEMO_WORK; KEEP=1; mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/provd-demo.XXXXXX); KEEP=0
fi
PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ -d "$WORK" ]; then
    for log in provd.log mosquitto.log smtpd.log; do
      [ -s "$WORK/$log" ] && { echo "--- last lines of $log"; tail -n 15 "$WORK/$log"; }
    done
  fi
  [ "$KEEP" = 1 ] || rm -rf "$WORK"
  echo "demo: everything it started is stopped."
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

step_no=0
step() { step_no=$((step_no + 1)); printf '\n[%d/%d] %s\n' "$step_no" "$STEPS" "$*"; }
say() { printf '      %s\n' "$*"; }
die() { printf '\ndemo: step %d failed: %s\n' "$step_no" "$*" >&2; exit 1; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() { # SECONDS COMMAND...
  local tries=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.1; done
  return 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for tool in "$BUILD_DIR/provd" "$BUILD_DIR/provctl" "$BUILD_DIR/provd-device" \
            "$BUILD_DIR/mosquitto/provd_auth.so"; do
  [ -e "$tool" ] || { echo "demo: $tool is missing; run make build" >&2; exit 1; }
done
for cmd in mosquitto mosquitto_sub mosquitto_passwd python3; do
  command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] ||
    { echo "demo: $cmd is missing; run scripts/install-deps.sh" >&2; exit 1; }
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
# Debian's python3-aiosmtpd lives in the system Python, which a pyenv or
# venv python3 earlier on PATH does not see.
PY=
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import aiosmtpd' 2>/dev/null; then PY=$candidate; break; fi
done
[ -n "$PY" ] ||
  { echo "demo: python3 -m aiosmtpd is missing; run scripts/install-deps.sh" >&2; exit 1; }

DATA=$WORK/data
MAILDIR=$WORK/maildir
IDENTITIES=$WORK/hub-identities
SMTP_PORT=$(free_port)
HUB_PORT=$(free_port)
provctl() { "$BUILD_DIR/provctl" --url "https://localhost:$PROVD_PORT" --data-dir "$DATA" "$@"; }

# ---------------------------------------------------------------------
step "An SMTP sink for the owner's mail: python3 -m aiosmtpd on 127.0.0.1:$SMTP_PORT"
"$PY" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$MAILDIR" \
  >"$WORK/smtpd.log" 2>&1 &
PIDS+=($!)
wait_for 10 port_open "$SMTP_PORT" || die "the SMTP sink did not start"
say "listening"

# ---------------------------------------------------------------------
step "provd with the smtp notifier and a mosquitto hub connector for hub 'demo-hub'"
cat >"$WORK/provd.yaml" <<YAML
id_scope: $SCOPE
listen: { https: "127.0.0.1:0" }
data_dir: $DATA
plugin_path: [ $BUILD_DIR/plugins ]
workers: 2
hubs:
  - { name: demo-hub, hostname: localhost, weight: 1 }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: allocation, name: hashed }
  - kind: hub
    name: mosquitto
    id: demo-hub
    options: { identities_file: $IDENTITIES, broker: "127.0.0.1:$HUB_PORT" }
  - kind: notifier
    name: smtp
    id: owner-mail
    events: [ enrollment.created ]
    options:
      url: "smtp://127.0.0.1:$SMTP_PORT"
      from: "provd@example.net"
      to: [ "{{tags.contact}}" ]
      subject: "Your device {{registration_id}} is ready"
      include_credentials: true
      starttls: "off"
      id_scope: "$SCOPE"
      endpoint: "localhost"
events: { retry_initial: 100ms, poll: 20ms }
YAML
"$BUILD_DIR/provd" -c "$WORK/provd.yaml" >"$WORK/banner" 2>"$WORK/provd.log" &
PIDS+=($!)
PROVD_PORT=
for _ in $(seq 1 150); do
  PROVD_PORT=$(sed -n 's|.*device endpoint: *https://localhost:\([0-9]*\).*|\1|p' "$WORK/banner")
  [ -n "$PROVD_PORT" ] && break
  sleep 0.1
done
[ -n "$PROVD_PORT" ] || die "provd did not start"
say "serving https://localhost:$PROVD_PORT (ID scope $SCOPE, CA $DATA/tls/ca.pem)"

# ---------------------------------------------------------------------
step "The hub: mosquitto on 127.0.0.1:$HUB_PORT (TLS) with provd's broker plugin"
mosquitto_passwd -c -b "$WORK/passwd" backend backend-secret >/dev/null 2>&1
chmod 600 "$WORK/passwd"
printf 'user backend\ntopic read devices/#\n' >"$WORK/acl"
cat >"$WORK/mosquitto.conf" <<CONF
per_listener_settings false
listener $HUB_PORT 127.0.0.1
certfile $DATA/tls/server.pem
keyfile $DATA/tls/server.key
allow_anonymous false
plugin $BUILD_DIR/mosquitto/provd_auth.so
plugin_opt_identities $IDENTITIES
password_file $WORK/passwd
acl_file $WORK/acl
persistence false
user $(id -un)
log_dest stderr
CONF
LD_PRELOAD=$("$SOURCE_DIR/scripts/mosquitto-preload.sh" "$BUILD_DIR/mosquitto/provd_auth.so") \
  "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_for 10 port_open "$HUB_PORT" || die "mosquitto did not start"
say "devices authenticate as on IoT Hub; the back end is user 'backend' (password_file)"
mosquitto_sub -h localhost -p "$HUB_PORT" --cafile "$DATA/tls/ca.pem" \
  -u backend -P backend-secret -t 'devices/+/messages/events/#' -v \
  >"$WORK/telemetry.txt" 2>"$WORK/subscriber.log" &
PIDS+=($!)
say "a back-end subscriber listens on devices/+/messages/events/#"

# ---------------------------------------------------------------------
step "Back office: provctl enrolls '$DEVICE' for its owner $OWNER"
provctl enrollment add "$DEVICE" \
  --initial-twin "{\"tags\":{\"contact\":\"$OWNER\"}}" | sed 's/^/      /'

# ---------------------------------------------------------------------
step "The owner's mail arrives"
wait_for 15 bash -c "ls '$MAILDIR/new' 2>/dev/null | grep -q ." || die "no mail within 15 s"
MAIL=$(ls "$MAILDIR/new" | head -n 1)
python3 - "$MAILDIR/new/$MAIL" >"$WORK/mail.txt" <<'PY'
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print(f"To: {m['To']}\nSubject: {m['Subject']}\n")
print(m.get_content().rstrip())
PY
sed 's/^/      | /' "$WORK/mail.txt"
mail_field() { sed -n "s/^$1: *//p" "$WORK/mail.txt" | head -n 1; }
REGID=$(mail_field "Registration id")
KEY=$(mail_field "Primary key")
MAIL_SCOPE=$(mail_field "ID scope")
[ "$REGID" = "$DEVICE" ] || die "the mail names registration id '$REGID'"
[ -n "$KEY" ] || die "the mail has no primary key"
[ "$MAIL_SCOPE" = "$SCOPE" ] || die "the mail names ID scope '$MAIL_SCOPE'"
say "read from the mail: registration id $REGID, ID scope $MAIL_SCOPE, its key"

# ---------------------------------------------------------------------
step "The device registers with those credentials (provd-device register)"
"$BUILD_DIR/provd-device" register --scope "$MAIL_SCOPE" --registration-id "$REGID" \
  --symmetric-key "$KEY" --url "https://localhost:$PROVD_PORT" --ca "$DATA/tls/ca.pem" \
  --credentials "$WORK/device-credentials.json" 2>"$WORK/device.log" | tee "$WORK/register.txt" |
  sed 's/^/      /'
grep -q "^assigned hub=localhost device_id=$DEVICE" "$WORK/register.txt" ||
  die "the device was not assigned to the hub"
say "credentials kept in $WORK/device-credentials.json (mode $(stat -c %a "$WORK/device-credentials.json"))"

# ---------------------------------------------------------------------
step "The device sends $MESSAGES telemetry messages to its hub (provd-device send)"
# provd pushes the identity to the broker right after the assignment.
wait_for 10 grep -q "^$DEVICE	" "$IDENTITIES" || die "the hub never learned the device"
"$BUILD_DIR/provd-device" send --credentials "$WORK/device-credentials.json" \
  --message '{"temperature":21.5,"humidity":40}' --count "$MESSAGES" --interval 0.2 \
  --hub-port "$HUB_PORT" --hub-ca "$DATA/tls/ca.pem" 2>>"$WORK/device.log" | sed 's/^/      /' ||
  die "provd-device send failed: $(tail -n 1 "$WORK/device.log")"
wait_for 10 bash -c "[ \$(wc -l <'$WORK/telemetry.txt') -ge $MESSAGES ]" ||
  die "the subscriber saw $(wc -l <"$WORK/telemetry.txt") of $MESSAGES messages"
say "the back-end subscriber received:"
sed 's/^/      > /' "$WORK/telemetry.txt"

# ---------------------------------------------------------------------
step "Where is every device? (provctl registration list)"
provctl registration list | tee "$WORK/registrations.txt" | sed 's/^/      /'
grep -q "$DEVICE" "$WORK/registrations.txt" || die "the registration is not listed"

printf '\ndemo: done. Device %s was enrolled, mailed, provisioned to hub %s and sent %s messages.\n' \
  "$DEVICE" localhost "$MESSAGES"
