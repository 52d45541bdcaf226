#!/usr/bin/env bash
# ctest-labels: e2e
# The daemon skeleton: data-dir initialisation, /healthz over TLS verified
# with the generated CA, reuse on restart, /metrics, SIGTERM, --check-config.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"

check "--version prints the version" bash -c "'$PROVD' --version | grep -q '^provd [0-9]'"
check "--help documents --check-config" bash -c "'$PROVD' --help | grep -q -- --check-config"
rc=0; "$PROVD" --no-such-flag >/dev/null 2>&1 || rc=$?
expect_eq "unknown flag exits 2" 2 "$rc"

start_provd "$WORK/provd.yaml"
check "banner names the ID scope" grep -q "ID scope: *$SCOPE" "$WORK/banner"
check "banner names the CA file" grep -q "CA file: *$DATA_DIR/tls/ca.pem" "$WORK/banner"
check "the connection string file holds the admin connection string" \
  grep -q "HostName=localhost;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=" "$DATA_DIR/service-connection-string"
expect_eq "data dir is 0700" 700 "$(stat -c %a "$DATA_DIR")"
expect_eq "connection string file is 0600" 600 "$(stat -c %a "$DATA_DIR/service-connection-string")"
expect_eq "server key is 0600" 600 "$(stat -c %a "$DATA_DIR/tls/server.key")"
check "server certificate is ECDSA P-256" bash -c \
  "openssl x509 -in '$DATA_DIR/tls/server.pem' -noout -text | grep -q 'prime256v1'"
check "server certificate has SAN localhost and 127.0.0.1" bash -c \
  "openssl x509 -in '$DATA_DIR/tls/server.pem' -noout -ext subjectAltName | grep -q 'DNS:localhost, IP Address:127.0.0.1'"

code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$DATA_DIR/tls/ca.pem" "https://localhost:$PORT/healthz")
expect_eq "/healthz answers 200 over TLS verified with ca.pem" 200 "$code"
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$DATA_DIR/tls/ca.pem" "https://127.0.0.1:$PORT/healthz")
expect_eq "/healthz answers 200 on 127.0.0.1 (IP SAN)" 200 "$code"
rc=0; curl -sS -o /dev/null "https://localhost:$PORT/healthz" 2>/dev/null || rc=$?
check "without the CA the certificate is not trusted" test "$rc" -ne 0
rc=0; curl -sS -o /dev/null --tls-max 1.1 --cacert "$DATA_DIR/tls/ca.pem" "https://localhost:$PORT/healthz" 2>/dev/null || rc=$?
check "TLS 1.1 is refused" test "$rc" -ne 0
metrics=$(curl -sS --cacert "$DATA_DIR/tls/ca.pem" "https://localhost:$PORT/metrics")
check "/metrics is Prometheus text with provd counters" bash -c "grep -q '^# TYPE provd_' <<<'$metrics'"

ca_before=$(sha256sum < "$DATA_DIR/tls/ca.pem")
key_before=$(sha256sum < "$DATA_DIR/tls/server.key")
conn_before=$(cat "$DATA_DIR/service-connection-string")
stop_provd; expect_eq "SIGTERM exits 0" 0 "$STOP_RC"

start_provd "$WORK/provd.yaml"
expect_eq "second start reuses the CA" "$ca_before" "$(sha256sum < "$DATA_DIR/tls/ca.pem")"
expect_eq "second start reuses the server key" "$key_before" "$(sha256sum < "$DATA_DIR/tls/server.key")"
expect_eq "second start reuses the connection string" "$conn_before" "$(cat "$DATA_DIR/service-connection-string")"
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$DATA_DIR/tls/ca.pem" "https://localhost:$PORT/healthz")
expect_eq "/healthz after restart" 200 "$code"
stop_provd INT; expect_eq "SIGINT exits 0" 0 "$STOP_RC"

# the admin key: not in the banner, printed on request only
key=$(sed -n 's/.*SharedAccessKey=\([^;]*\).*/\1/p' "$DATA_DIR/service-connection-string")
check "the banner does not print the admin key" bash -c "! grep -qF -- '$key' '$WORK/banner'"
check "the banner says where the connection string is" grep -q "connection string: in $DATA_DIR/service-connection-string" "$WORK/banner"
out=$("$PROVD" -c "$WORK/provd.yaml" --print-connection-string) && rc=0 || rc=$?
expect_eq "--print-connection-string exits 0" 0 "$rc"
expect_eq "--print-connection-string prints the data dir's connection string" "$(cat "$DATA_DIR/service-connection-string")" "$out"

"$PROVD" -c "$WORK/provd.yaml" --show-connection-string > "$WORK/banner-shown" 2>>"$WORK/provd.log" &
SHOWN_PID=$!
check "--show-connection-string (make run) prints it in the banner" \
  wait_for 10 grep -qF -- "connection string: $(cat "$DATA_DIR/service-connection-string")  (file" "$WORK/banner-shown"
kill -TERM "$SHOWN_PID"; wait "$SHOWN_PID" || true

# --check-config
out=$("$PROVD" -c "$WORK/provd.yaml" --check-config 2>&1) && rc=0 || rc=$?
expect_eq "--check-config on a good file exits 0" 0 "$rc"
check "--check-config names the plugins" grep -q "attestation/symmetric-key" <<<"$out"
printf 'id_scope: 0ne00000001\nlisten: { https: "127.0.0.1:99999" }\nhubz: []\n' > "$WORK/bad.yaml"
out=$("$PROVD" -c "$WORK/bad.yaml" --check-config 2>&1) && rc=0 || rc=$?
expect_eq "--check-config on a broken file exits 2" 2 "$rc"
check "errors are FILE:LINE:COL: message" grep -Eq "^$WORK/bad.yaml:2:[0-9]+: " <<<"$out"
check "unknown key gets a hint" grep -Eq "^$WORK/bad.yaml:3:1: .*hubs" <<<"$out"

finish
