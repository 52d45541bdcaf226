#!/usr/bin/env bash
# ctest-labels: package
# `cmake --install` into a fresh prefix: bin/, lib/provd/plugins (found by
# the installed provd without plugin_path), lib/systemd/system/provd.service
# naming that prefix, etc/provd/provd.yaml (kept when edited).  The unit
# passes `systemd-analyze verify` and `systemd-analyze security` with an
# exposure of at most 2.0.  Neither needs systemd running (this test runs
# in containers where PID 1 is not systemd); the service's start under
# systemd is covered by READY=1 in service_notify.sh.
source "$(dirname "$0")/../e2e/lib/common.bash"

ROOT=$WORK/root
cmake --install "$BUILD_DIR" --prefix "$ROOT" --component provd > "$WORK/install.log" 2>&1 && rc=0 || rc=$?
expect_eq "cmake --install --component provd exits 0" 0 "$rc"
for f in bin/provd bin/provctl bin/provd-device lib/provd/plugins/sqlite.so \
         lib/systemd/system/provd.service etc/provd/provd.yaml; do
  check "installs $f" test -e "$ROOT/$f"
done
check "the provd component installs no SDK header" test ! -e "$ROOT/include"

UNIT=$ROOT/lib/systemd/system/provd.service
check "ExecStart names the installed binary and config" \
  grep -qx "ExecStart=$ROOT/bin/provd -c $ROOT/etc/provd/provd.yaml" "$UNIT"
for line in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' WatchdogSec=60s User=provd \
            StateDirectory=provd ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
            NoNewPrivileges=yes CapabilityBoundingSet=CAP_NET_BIND_SERVICE \
            AmbientCapabilities=CAP_NET_BIND_SERVICE SystemCallFilter=@system-service; do
  check "the unit says $line" grep -qxF -- "$line" "$UNIT"
done

out=$(systemd-analyze verify --man=no "$UNIT" 2>&1) && rc=0 || rc=$?
expect_eq "systemd-analyze verify passes" 0 "$rc"
expect_eq "systemd-analyze verify has nothing to say" "" "$out"
systemd-analyze security --offline=true --threshold=20 "$UNIT" > "$WORK/security" 2>&1 && rc=0 || rc=$?
expect_eq "systemd-analyze security --threshold=20 passes (exposure <= 2.0)" 0 "$rc"
exposure=$(sed -n 's/.*Overall exposure level for provd.service: \([0-9.]*\).*/\1/p' "$WORK/security")
echo "# exposure: $exposure"
check "the exposure is at most 2.0" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }'

out=$("$ROOT/bin/provd" -c "$ROOT/etc/provd/provd.yaml" --check-config 2>&1) && rc=0 || rc=$?
expect_eq "the installed provd finds the installed plugins" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" >&2

echo "# edited" >> "$ROOT/etc/provd/provd.yaml"
cmake --install "$BUILD_DIR" --prefix "$ROOT" --component provd > "$WORK/install.log" 2>&1 && rc=0 || rc=$?
expect_eq "installing again exits 0" 0 "$rc"
check "installing again keeps the edited config" grep -q "^# edited" "$ROOT/etc/provd/provd.yaml"
finish
