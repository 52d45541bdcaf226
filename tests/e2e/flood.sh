#!/usr/bin/env bash
# ctest-labels: e2e;slow
# A flood of TLS connections that never finish their handshake
# (FLOOD_COUNT, default 10,000): provd's memory stays bounded by
# limits.max_handshakes, a device registers in the middle of it, the
# shed connections are counted and logged, and the memory is given back
# afterwards.  Prints RSS before, during and after.
source "$(dirname "$0")/lib/common.bash"

COUNT=${FLOOD_COUNT:-10000}
DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $(( COUNT + 512 )) ] || COUNT=$(( $(ulimit -n) - 512 ))
start_provd "$WORK/provd.yaml"
K=$(random_key)
provctl enrollment add flood-dev --primary-key "$K" --secondary-key "$(random_key)" >/dev/null

cat > "$WORK/register.sh" <<SH
curl -sS -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$DATA_DIR/tls/ca.pem" -X PUT \
  -H 'Content-Type: application/json' -H "Authorization: $(device_token "$K" flood-dev)" \
  --data '{"registrationId":"flood-dev"}' \
  "https://localhost:$PORT/$SCOPE/registrations/flood-dev/register?api-version=2021-06-01" > "$WORK/during.status"
SH
line=$(python3 "$SOURCE_DIR/tests/e2e/lib/tls_flood.py" --port "$PORT" --pid "$PROVD_PID" \
       --count "$COUNT" --during "bash $WORK/register.sh")
echo "# $line"
read -r before during after opened closed < <(sed -n 's/.*before=\([0-9]*\) during=\([0-9]*\) after=\([0-9]*\) open=\([0-9]*\) closed_by_server=\([0-9]*\).*/\1 \2 \3 \4 \5/p' <<<"$line")
expect_eq "all $COUNT flood connections were made" "$COUNT" "$opened"
expect_eq "a device registers during the flood" 202 "$(cat "$WORK/during.status")"
check "most half-open connections were shed ($closed of $COUNT)" test "$closed" -ge $(( COUNT - 2 * 256 - 64 ))
check "memory during the flood is bounded: +$(( (during - before) / 1024 )) MiB < 200 MiB" \
  test $(( during - before )) -lt $(( 200 * 1024 ))
check "memory is given back afterwards: +$(( (after - before) / 1024 )) MiB < 48 MiB" \
  test $(( after - before )) -lt $(( 48 * 1024 ))
http GET /metrics ''
check "the shed connections are counted" grep -q 'provd_connections_shed_total{transport="https",reason="handshake_backlog"}' <<<"$BODY_OUT"
check "the shedding is logged" grep -q "shedding connections transport=https reason=handshake_backlog" "$WORK/provd.log"
check "the log is rate-limited (at most a few lines)" test "$(grep -c 'shedding connections' "$WORK/provd.log")" -le 8
stop_provd TERM
expect_eq "provd exits 0 on SIGTERM" 0 "$STOP_RC"
finish
