# Helpers for the e2e tests: start/stop a real provd on 127.0.0.1 with a
# free port and a temp data dir, compute SAS tokens, make assertions.
set -euo pipefail

SOURCE_DIR=${PROVD_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
BUILD_DIR=${PROVD_BUILD_DIR:-$SOURCE_DIR/build}
PROVD=${PROVD_BIN:-$BUILD_DIR/provd}
PROVCTL=$BUILD_DIR/provctl
PROVD_DEVICE=$BUILD_DIR/provd-device
PLUGIN_DIR=${PROVD_PLUGIN_DIR:-$BUILD_DIR/plugins}
SCOPE=0ne00000001

WORK=$(mktemp -d /tmp/provd-e2e.XXXXXX)
PROVD_PID=
PORT=
FAILS=0
PASSES=0

cleanup() {
  if [ -n "${PROVD_PID}" ] && kill -0 "$PROVD_PID" 2>/dev/null; then
    kill -KILL "$PROVD_PID" 2>/dev/null || true
  fi
  if [ -n "${RECEIVER_PID:-}" ]; then kill "$RECEIVER_PID" 2>/dev/null || true; fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

write_config() { # file data_dir
  cat > "$1" <<YAML
id_scope: $SCOPE
listen: { https: "127.0.0.1:0" }
data_dir: $2
plugin_path: [ $PLUGIN_DIR ]
workers: 2
hubs:
  - { name: hub-1, hostname: hub-1.example.net, weight: 1 }
  - { name: hub-2, hostname: hub-2.example.net, weight: 1 }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: attestation, name: x509 }
  - { kind: allocation, name: hashed }
YAML
}

# write_hub_config FILE DATA_DIR HUB_HOSTNAME IDENTITIES BROKER_PORT
# [EXTRA_YAML]: a provd with one linked hub "local" served by the
# mosquitto connector (symmetric-key and x509 attestation, hashed
# allocation; device API on HTTPS and MQTT); EXTRA_YAML is appended.
write_hub_config() {
  cat > "$1" <<YAML
id_scope: $SCOPE
listen: { https: "127.0.0.1:0", mqtt: "127.0.0.1:0" }
data_dir: $2
plugin_path: [ $PLUGIN_DIR ]
workers: 2
hubs:
  - { name: local, hostname: $3, weight: 1 }
plugins:
  - { kind: attestation, name: symmetric-key }
  - { kind: attestation, name: x509 }
  - { kind: allocation, name: hashed }
  - kind: hub
    name: mosquitto
    id: local
    options: { identities_file: $4, broker: "127.0.0.1:$5" }
events: { retry_initial: 100ms, poll: 20ms }
${6:-}
YAML
}

# write_broker_config CONF PORT IDENTITIES [TLS_DIR]: a mosquitto hub
# with provd's broker plugin on 127.0.0.1:PORT (TLS with
# TLS_DIR/server.pem when given), and a back end: user "backend",
# password "backend-pw", may read devices/#.
write_broker_config() {
  local tls=${4:-}
  mosquitto_passwd -c -b "$WORK/passwd" backend backend-pw >/dev/null 2>&1
  printf 'user backend\ntopic read devices/#\n' >"$WORK/acl"
  {
    printf 'per_listener_settings false\nlistener %s 127.0.0.1\n' "$2"
    if [ -n "$tls" ]; then
      printf 'certfile %s/server.pem\nkeyfile %s/server.key\n' "$tls" "$tls"
    fi
    cat <<CONF
allow_anonymous false
plugin $BUILD_DIR/mosquitto/provd_auth.so
plugin_opt_identities $3
password_file $WORK/passwd
acl_file $WORK/acl
persistence false
user $(id -un)
log_dest stderr
log_type all
CONF
  } >"$1"
}

# start_mosquitto CONF LOG: mosquitto in the background (sets
# MOSQUITTO_PID).  In a sanitizer build the broker plugin needs the ASan
# and UBSan runtimes loaded first, which mosquitto itself does not link.
start_mosquitto() {
  local bin preload
  bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  preload=$("$SOURCE_DIR/scripts/mosquitto-preload.sh" "$BUILD_DIR/mosquitto/provd_auth.so")
  LD_PRELOAD=$preload "$bin" -c "$1" >>"$2" 2>&1 &
  MOSQUITTO_PID=$!
}

# start_provd CONFIG: runs provd in the background, waits for its banner,
# sets PORT and PROVD_PID; logs go to $WORK/provd.log (appended).
start_provd() {
  : > "$WORK/banner"
  "$PROVD" -c "$1" > "$WORK/banner" 2>> "$WORK/provd.log" &
  PROVD_PID=$!
  for _ in $(seq 1 150); do
    PORT=$(sed -n 's|.*device endpoint: *https://localhost:\([0-9]*\).*|\1|p' "$WORK/banner")
    [ -n "$PORT" ] && return 0
    kill -0 "$PROVD_PID" 2>/dev/null || { cat "$WORK/provd.log" >&2; fail "provd exited during start"; exit 1; }
    sleep 0.1
  done
  cat "$WORK/provd.log" >&2
  fail "provd did not print its banner"
  exit 1
}

# stop_provd [SIGNAL]: sets STOP_RC to provd's exit code.  Not usable in
# $(...): a subshell cannot wait for this shell's child.
stop_provd() {
  kill "-${1:-TERM}" "$PROVD_PID"
  STOP_RC=0
  wait "$PROVD_PID" || STOP_RC=$?
  PROVD_PID=
}

pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }

check() { # description, command...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

expect_eq() { # description expected actual
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}

b64_to_hex() { printf %s "$1" | base64 -d | od -An -tx1 -v | tr -d ' \n'; }

urlenc_b64() { printf %s "$1" | sed -e 's/+/%2B/g' -e 's|/|%2F|g' -e 's/=/%3D/g'; }

# device_token KEY_B64 REGID [EXPIRY]: Node-SDK style token (sr not encoded)
device_token() {
  local key=$1 regid=$2 se=${3:-$(( $(date +%s) + 3600 ))}
  local sr="$SCOPE/registrations/$regid"
  local sig
  sig=$(printf '%s\n%s' "$sr" "$se" |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(b64_to_hex "$key")" -binary | base64 -w0)
  printf 'SharedAccessSignature sr=%s&sig=%s&skn=registration&se=%s' "$sr" "$(urlenc_b64 "$sig")" "$se"
}

# service_token [POLICY KEY_B64]: a service API token, by default the
# admin's from the data dir's connection string.
service_token() {
  local cs host name key se sig
  cs=$(cat "$DATA_DIR/service-connection-string")
  host=$(sed -n 's/.*HostName=\([^;]*\).*/\1/p' <<<"$cs")
  name=${1:-$(sed -n 's/.*SharedAccessKeyName=\([^;]*\).*/\1/p' <<<"$cs")}
  key=${2:-$(sed -n 's/.*SharedAccessKey=\([^;]*\).*/\1/p' <<<"$cs")}
  se=$(( $(date +%s) + 3600 ))
  sig=$(printf '%s\n%s' "$host" "$se" |
        openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(b64_to_hex "$key")" -binary | base64 -w0)
  printf 'SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s' "$host" "$(urlenc_b64 "$sig")" "$se" "$name"
}

derive_key() { # GROUP_KEY_B64 REGID
  printf %s "$2" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(b64_to_hex "$1")" -binary | base64 -w0
}

random_key() { openssl rand -base64 32; }

# http METHOD PATH [BODY] [extra curl args...]: sets STATUS and BODY_OUT.
# CONTENT_TYPE overrides the body's content type; HTTP_CA the CA file.
http() {
  local method=$1 path=$2 body=${3-}
  shift 3 || shift $#
  local args=(-sS -o "$WORK/resp" -w '%{http_code}' --cacert "${HTTP_CA:-$DATA_DIR/tls/ca.pem}" -X "$method")
  if [ -n "$body" ]; then
    args+=(-H "Content-Type: ${CONTENT_TYPE:-application/json; charset=utf-8}" --data-binary "$body")
  fi
  STATUS=$(curl "${args[@]}" "$@" "https://localhost:$PORT$path")
  BODY_OUT=$(cat "$WORK/resp")
}

json_get() { # JSON FIELD(dotted)
  printf %s "$1" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    doc = doc.get(part) if isinstance(doc, dict) else None
print("" if doc is None else doc)' "$2"
}

provctl() { "$PROVCTL" --url "https://localhost:$PORT" --data-dir "$DATA_DIR" "$@"; }

# free_port: a TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_receiver PORT LOG SECRET: tests/e2e/lib/notify_peer.py receive in
# the background; sets RECEIVER_PID once it accepts connections.  A port
# found free earlier may have been taken meanwhile by another test's
# listener (then the receiver exits and the probe reaches that one):
# it tries again for up to 30 s while the port is held.
start_receiver() {
  local attempt
  for attempt in $(seq 1 30); do
    python3 "$SOURCE_DIR/tests/e2e/lib/notify_peer.py" receive --port "$1" \
      --log "$2" --secret "$3" 2>>"$WORK/receiver.err" &
    RECEIVER_PID=$!
    for _ in $(seq 1 100); do
      kill -0 "$RECEIVER_PID" 2>/dev/null || break
      if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        sleep 0.1 # a receiver that lost the bind race has exited by now
        kill -0 "$RECEIVER_PID" 2>/dev/null && return 0
        break
      fi
      sleep 0.05
    done
    wait "$RECEIVER_PID" 2>/dev/null || true
    echo "# the webhook receiver could not listen on $1 (attempt $attempt)" >&2
    sleep 1
  done
  RECEIVER_PID=
  fail "the webhook receiver did not start on port $1"; exit 1
}

stop_receiver() {
  [ -n "${RECEIVER_PID:-}" ] && kill "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null || true
  RECEIVER_PID=
}

# wait_for SECONDS COMMAND...: polls every 0.1 s until COMMAND succeeds.
wait_for() {
  local tries=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.1; done
  return 1
}
