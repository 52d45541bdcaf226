#!/usr/bin/env bash
# ctest-labels: e2e;package
# systemd's Type=notify protocol (docs/operations.md): READY=1 only once
# the HTTPS and MQTT listeners accept, WATCHDOG=1 at half WATCHDOG_USEC
# (and none when WATCHDOG_PID names another process), RELOADING=1 then
# READY=1 on SIGHUP, STOPPING=1 on SIGTERM; on an abstract socket
# ("@name") and on a socket path.
source "$(dirname "$0")/lib/common.bash"

write_config "$WORK/provd.yaml" "$WORK/data"
sed -i 's|^listen:.*|listen: { https: "127.0.0.1:0", mqtt: "127.0.0.1:0" }|' "$WORK/provd.yaml"
if python3 "$SOURCE_DIR/tests/e2e/lib/service_manager.py" "$PROVD" \
     "$WORK/provd.yaml" "$WORK"; then
  pass "provd speaks the service manager's notify protocol"
else
  cat "$WORK/provd.log" >&2
  fail "provd speaks the service manager's notify protocol"
fi
finish
