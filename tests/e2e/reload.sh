#!/usr/bin/env bash
# ctest-labels: e2e
# SIGHUP re-reads the config without dropping connections: service
# policies (a rotated key), the TLS certificate (new connections only),
# registration.retry_after and log_level apply; other changed sections
# are named in a warning; a config that does not load, or a certificate
# that cannot be read, changes nothing.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
K1=$(random_key); K2=$(random_key)
config() { # reader-key retry-after log-level workers [tls yaml]
  write_config "$WORK/provd.yaml" "$DATA_DIR"
  sed -i "s/^workers: 2/workers: $4/" "$WORK/provd.yaml"
  cat >> "$WORK/provd.yaml" <<YAML
log_level: $3
registration: { retry_after: $2 }
service_policies:
  - { name: reader, key: "$1", access: read }
${5:-}
YAML
}
reader_status() { # KEY: status of a read with the reader policy signed by KEY
  http GET "/enrollments/nobody?api-version=2021-10-01" '' -H "Authorization: $(service_token reader "$1")"
  echo "$STATUS"
}
served_cert() { # sha256 fingerprint of the certificate a new connection gets
  openssl s_client -connect "127.0.0.1:$PORT" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256
}
hup() { # signal and wait for the reload's last line (count $1)
  kill -HUP "$PROVD_PID"
  wait_for 10 bash -c "[ \$(grep -c 'SIGHUP: linked hubs reloaded\|SIGHUP: the config does not load' '$WORK/provd.log') -ge $1 ]" ||
    fail "SIGHUP $1 was not logged"
}

config "$K1" 1 info 2
start_provd "$WORK/provd.yaml"
expect_eq "the reader policy reads with its key" 404 "$(reader_status "$K1")"
DK=$(random_key)
provctl enrollment add rl-1 --primary-key "$DK" --secondary-key "$(random_key)" >/dev/null
OLD_CERT=$(served_cert)
check "a certificate is served" test -n "$OLD_CERT"

# A keep-alive connection opened before the reload, used after it.
python3 - "$PORT" "$DATA_DIR/tls/ca.pem" > "$WORK/keepalive.out" 2>&1 <<'PY' &
import ssl, socket, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
s.sendall(req); first = s.recv(4096).split(b"\r\n")[0]
print("before", first.decode(), flush=True)
time.sleep(3)  # the test reloads meanwhile
s.sendall(req); again = s.recv(4096).split(b"\r\n")[0]
print("after", again.decode(), flush=True)
PY
KEEPALIVE_PID=$!
wait_for 10 grep -q before "$WORK/keepalive.out" || fail "the keep-alive client did not connect"

# New certificate and key (the operator's), rotated reader key, slower
# polls, debug logs, and a change that needs a restart (workers).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$WORK/new.key" -out "$WORK/new.pem" 2>/dev/null
NEW_CERT=$(openssl x509 -in "$WORK/new.pem" -noout -fingerprint -sha256)
config "$K2" 3 debug 3 "tls: { cert: $WORK/new.pem, key: $WORK/new.key }"
hup 1
check "provd survives SIGHUP" kill -0 "$PROVD_PID"
HTTP_CA=$WORK/new.pem
wait "$KEEPALIVE_PID" || true
check "a connection opened before the reload is still served ($(cat "$WORK/keepalive.out"))" \
  grep -q "after HTTP/1.1 200" "$WORK/keepalive.out"
expect_eq "the old reader key is refused" 401 "$(reader_status "$K1")"
expect_eq "the rotated reader key reads" 404 "$(reader_status "$K2")"
expect_eq "new connections get the new certificate" "$NEW_CERT" "$(served_cert)"
check "the new certificate differs from the old" test "$NEW_CERT" != "$OLD_CERT"
check "the restart-only change is named" \
  grep -q "SIGHUP: changed in the config but not applied until a restart: workers" "$WORK/provd.log"

curl -sS -o /dev/null -D "$WORK/headers" --cacert "$WORK/new.pem" -X PUT \
  -H "Content-Type: application/json" -H "Authorization: $(device_token "$DK" rl-1)" \
  --data '{"registrationId":"rl-1"}' \
  "https://localhost:$PORT/$SCOPE/registrations/rl-1/register?api-version=2021-06-01"
check "register answers 202" grep -q "^HTTP/1.1 202" "$WORK/headers"
check "Retry-After follows registration.retry_after (3)" grep -qi "^retry-after: 3" "$WORK/headers"
check "log_level debug applies" wait_for 5 grep -q " debug " "$WORK/provd.log"

# A config that does not load changes nothing.
echo "workers: [ not a number" >> "$WORK/provd.yaml"
hup 2
check "a broken config is refused" grep -q "SIGHUP: the config does not load; nothing changed" "$WORK/provd.log"
expect_eq "still the rotated key" 404 "$(reader_status "$K2")"

# A certificate that does not load keeps the running one.
echo "not a certificate" > "$WORK/garbage.pem"
config "$K2" 3 debug 3 "tls: { cert: $WORK/garbage.pem, key: $WORK/new.key }"
hup 3
check "an unreadable certificate is reported" grep -q "SIGHUP: tls not reloaded" "$WORK/provd.log"
expect_eq "connections keep the running certificate" "$NEW_CERT" "$(served_cert)"

stop_provd TERM
expect_eq "provd exits 0 on SIGTERM" 0 "$STOP_RC"
finish
