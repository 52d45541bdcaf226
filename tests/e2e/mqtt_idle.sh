#!/usr/bin/env bash
# ctest-labels: e2e;slow
# Idle MQTT/TLS connections cost bounded memory and give it back: opens
# MQTT_IDLE_COUNT (default 2,000; 10,000 by hand) connected, idle
# connections and checks provd's RSS before, during and after.
source "$(dirname "$0")/lib/common.bash"

COUNT=${MQTT_IDLE_COUNT:-2000}
DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
sed -i 's|listen: { https: "127.0.0.1:0" }|listen: { https: "127.0.0.1:0", mqtt: "127.0.0.1:0" }|' "$WORK/provd.yaml"
ulimit -n $(( COUNT * 2 + 256 )) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
start_provd "$WORK/provd.yaml"
MQTT_PORT=$(sed -n 's|.*MQTT endpoint: *mqtts://localhost:\([0-9]*\).*|\1|p' "$WORK/banner")

G=$(random_key)
provctl group add idle-fleet --primary-key "$G" --secondary-key "$(random_key)" >/dev/null
line=$(python3 "$SOURCE_DIR/tests/e2e/lib/mqtt_idle.py" --port "$MQTT_PORT" \
       --ca "$DATA_DIR/tls/ca.pem" --pid "$PROVD_PID" --count "$COUNT" \
       --group-key "$G" --scope "$SCOPE")
echo "# $line"
read -r before during after opened < <(sed -n 's/.*before=\([0-9]*\) during=\([0-9]*\) after=\([0-9]*\) open=\([0-9]*\).*/\1 \2 \3 \4/p' <<<"$line")
expect_eq "all $COUNT connections were accepted" "$COUNT" "$opened"
grown=$(( during - before ))
# OpenSSL releases its record buffers while a connection is idle
# (SSL_MODE_RELEASE_BUFFERS) and an idle stream keeps no empty read chain
# (core/net/stream.c fill_input): about 17 KiB each; 26 KiB with the empty
# chain, 36 KiB without released buffers.
check "each idle connection costs under 22 KiB ($(( grown / COUNT )) KiB)" test "$grown" -lt $(( COUNT * 22 ))
check "at least half of it is returned once they close (after=$after KiB)" \
  test $(( after - before )) -lt $(( grown / 2 ))
http GET /healthz ''
expect_eq "healthz afterwards" 200 "$STATUS"
stop_provd TERM
expect_eq "provd exits 0 on SIGTERM" 0 "$STOP_RC"
finish
