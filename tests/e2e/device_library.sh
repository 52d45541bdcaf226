#!/usr/bin/env bash
# ctest-labels: e2e
# libprovd-device as a device maker uses it: `cmake --install` into an
# empty prefix, then tests/device/test_device_lib.c (Check) compiled with
# nothing but `pkg-config --cflags --libs provd-device` and run against a
# real provd and its mosquitto hub: symmetric key (register, keep the
# credentials 0600, send telemetry), TPM (a swtpm; hub tokens signed in
# the TPM), group key, X.509 (over HTTPS and over
# provd's DPS MQTT endpoint), a refusal with its reason on both
# transports, and Retry-After honoured (with jitter): through a front that
# answers 429 twice before passing requests to provd, and against provd's
# own per-device register limit.
source "$(dirname "$0")/lib/common.bash"
export TSS2_LOG=all+none
source "$(dirname "$0")/lib/swtpm.bash"

PREFIX=$WORK/prefix
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; fail "cmake --install"; finish; }
PCDIR=$(dirname "$(find "$PREFIX" -name provd-device.pc | head -n 1)")
check "provd-device.pc and provd/device.h are installed" \
  test -f "$PCDIR/provd-device.pc" -a -f "$PREFIX/include/provd/device.h"
# A sanitizer build installs an instrumented library: the program that
# links it must carry the same runtime.
SAN=
LIBDEV=$(find "$PREFIX" -name 'libprovd-device.so' | head -n 1)
ldd "$LIBDEV" | grep libasan >/dev/null && SAN="-fsanitize=address,undefined"
if PKG_CONFIG_PATH=$PCDIR cc -std=c11 -Wall -Wextra -Werror $SAN \
     -o "$WORK/test_device_lib" "$SOURCE_DIR/tests/device/test_device_lib.c" \
     $(PKG_CONFIG_PATH=$PCDIR pkg-config --cflags --libs provd-device check) \
     2>"$WORK/cc.log"; then
  pass "the test compiles and links with pkg-config provd-device alone"
else
  cat "$WORK/cc.log"; fail "compiling against the installed library"; finish
fi

DATA_DIR=$WORK/data
IDS=$WORK/identities
MPORT=$(free_port)
XPORT=$(free_port)
BROKER_PID=
PROXY_PID=
stop_extra() {
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
  stop_swtpm
  cleanup
}
trap stop_extra EXIT

# provd itself throttles: 6 registers per registration id a minute, the
# 7th is answered 429 with Retry-After: 1.
write_hub_config "$WORK/provd.yaml" "$DATA_DIR" localhost "$IDS" "$MPORT" \
  "limits: { retry_after_max: 1, register_rate_per_device: 6 }"
sed -i 's/^  - { kind: attestation, name: x509 }$/&\n  - { kind: attestation, name: tpm }/' "$WORK/provd.yaml"
start_provd "$WORK/provd.yaml"
DPS_MQTT_PORT=$(sed -n 's|.*MQTT endpoint: *mqtts://localhost:\([0-9]*\).*|\1|p' "$WORK/banner")

# Two listeners: SAS tokens on MPORT; X.509 on CPORT, where the broker
# asks for a client certificate (the test device's self-signed one is the
# CA it trusts there) and provd_auth checks its thumbprint.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=lib-x509 -keyout "$WORK/x509.key" -out "$WORK/x509.pem" \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=clientAuth 2>/dev/null
CPORT=$(free_port)
cat >"$WORK/mosquitto.conf" <<CONF
per_listener_settings false
listener $MPORT 127.0.0.1
certfile $DATA_DIR/tls/server.pem
keyfile $DATA_DIR/tls/server.key
listener $CPORT 127.0.0.1
certfile $DATA_DIR/tls/server.pem
keyfile $DATA_DIR/tls/server.key
cafile $WORK/x509.pem
require_certificate true
allow_anonymous false
plugin $BUILD_DIR/mosquitto/provd_auth.so
plugin_opt_identities $IDS
persistence false
user $(id -un)
log_dest stderr
CONF
start_mosquitto "$WORK/mosquitto.conf" "$WORK/mosquitto.log"
BROKER_PID=$MOSQUITTO_PID
python3 "$SOURCE_DIR/tests/e2e/lib/throttle_proxy.py" --port "$XPORT" --upstream-port "$PORT" \
  --cert "$DATA_DIR/tls/server.pem" --key "$DATA_DIR/tls/server.key" --ca "$DATA_DIR/tls/ca.pem" \
  --throttle 2 --retry-after 1 --log "$WORK/proxy.log" 2>"$WORK/proxy.err" &
PROXY_PID=$!
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check "mosquitto listens" wait_for 20 port_up "$MPORT"
check "the throttling front listens" wait_for 20 port_up "$XPORT"

SYM_KEY=$(random_key); GROUP_KEY=$(random_key); LIMITED_KEY=$(random_key)
provctl enrollment add lib-sym --primary-key "$SYM_KEY" --secondary-key "$(random_key)" >/dev/null
provctl enrollment add lib-limited --primary-key "$LIMITED_KEY" --secondary-key "$(random_key)" >/dev/null
provctl group add lib-fleet --primary-key "$GROUP_KEY" --secondary-key "$(random_key)" >/dev/null
provctl enrollment add lib-x509 --attestation x509 --cert "$WORK/x509.pem" >/dev/null
start_swtpm
TPM_INFO=$("$PROVD_DEVICE" tpm-info --tpm "$TCTI" --json)
provctl enrollment add --attestation tpm --endorsement-key "$(json_get "$TPM_INFO" endorsementKey)" >/dev/null

if env DEV_URL="https://localhost:$PORT" DEV_CA="$DATA_DIR/tls/ca.pem" DEV_SCOPE="$SCOPE" \
     DEV_THROTTLED_URL="https://localhost:$XPORT" DEV_MQTT_URL="mqtts://localhost:$DPS_MQTT_PORT" \
     DEV_SYM_ID=lib-sym DEV_SYM_KEY="$SYM_KEY" \
     DEV_LIMITED_ID=lib-limited DEV_LIMITED_KEY="$LIMITED_KEY" \
     DEV_GROUP_KEY="$GROUP_KEY" DEV_GROUP_MEMBER=lib-fleet-01 \
     DEV_X509_ID=lib-x509 DEV_X509_CERT="$WORK/x509.pem" DEV_X509_KEY="$WORK/x509.key" \
     DEV_TPM_TCTI="$TCTI" \
     DEV_HUB_PORT="$MPORT" DEV_HUB_CERT_PORT="$CPORT" DEV_WORK="$WORK" CK_FORK=no \
     "$WORK/test_device_lib" >"$WORK/check.out" 2>&1; then
  pass "libprovd-device Check suite: $(tail -n 1 "$WORK/check.out" | tr -d '\n')"
else
  cat "$WORK/check.out"; fail "libprovd-device Check suite"
fi
expect_eq "the front answered 429 twice" 2 "$(grep -c ' 429 ' "$WORK/proxy.log" || true)"
check "the hub saw the library's telemetry login" \
  grep -q "provd_auth: device lib-sym connected (SAS token)" "$WORK/mosquitto.log"
THUMB=$(openssl x509 -in "$WORK/x509.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
check "provd pushed the X.509 device's certificate thumbprint to the hub" \
  bash -c "awk -F'\t' '\$1 == \"lib-x509\" {print \$5}' '$IDS' | grep -qix '$THUMB'"
check "the hub saw the TPM device's login (a token its TPM signed)" \
  grep -q "provd_auth: device $(json_get "$TPM_INFO" registrationId) connected (SAS token)" "$WORK/mosquitto.log"
check "the hub saw the X.509 device's certificate login" \
  grep -q "provd_auth: device lib-x509 connected (certificate)" "$WORK/mosquitto.log"
stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
