#!/usr/bin/env bash
# ctest-labels: package
# `cmake --install` into a fresh prefix: bin/, lib/provd/plugins (found by
# the installed provd without plugin_path), lib/systemd/system/provd.service
# naming that prefix, etc/provd/provd.yaml (kept when edited).  The unit
# passes `systemd-analyze verify` and `systemd-analyze security` with an
# exposure of at most 2.0, and every system call provd makes (traced with
# strace while it starts, enrolls and registers a device, reloads and
# stops, as an unprivileged user like the unit's) is one the unit's
# SystemCallFilter= allows.  None of it needs systemd running (this test
# runs in containers where PID 1 is not systemd); READY=1 is covered by
# service_notify.sh.
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

# --- the system calls provd makes are those the unit allows ---
# The installed copy, not the build tree's: a checkout may sit below a
# directory the unprivileged user cannot enter (a `mktemp -d` clone is 0700).
DATA_DIR=$WORK/data
mkdir -p "$DATA_DIR" && chown nobody "$DATA_DIR" && chmod 0711 "$WORK"
PLUGIN_DIR=$ROOT/lib/provd/plugins
write_config "$WORK/provd.yaml" "$DATA_DIR"
sed -i 's|^listen:.*|listen: { https: "127.0.0.1:0", mqtt: "127.0.0.1:0" }|' "$WORK/provd.yaml"
cat > "$WORK/provd-traced" <<SH
#!/bin/sh
exec strace -f -qq -o "$WORK/trace" setpriv --reuid=nobody --regid=nogroup --clear-groups "$ROOT/bin/provd" "\$@"
SH
chmod 0755 "$WORK/provd-traced"
REAL_PROVD=$PROVD PROVD=$WORK/provd-traced
start_provd "$WORK/provd.yaml"
K=$(random_key)
provctl enrollment add traced-1 --primary-key "$K" --secondary-key "$(random_key)" >/dev/null
"$PROVD_DEVICE" register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" --scope "$SCOPE" \
  --registration-id traced-1 --symmetric-key "$K" >/dev/null 2>&1 && rc=0 || rc=$?
expect_eq "a device registers with the traced provd" 0 "$rc"
kill -HUP "$(pgrep -P "$PROVD_PID" -x provd || echo "$PROVD_PID")" 2>/dev/null; sleep 0.3
kill -TERM "$(pgrep -P "$PROVD_PID" -x provd || echo "$PROVD_PID")" 2>/dev/null
wait "$PROVD_PID" || true; PROVD_PID=
PROVD=$REAL_PROVD
systemd-analyze syscall-filter > "$WORK/syscall-groups"
out=$(python3 - "$UNIT" "$WORK/syscall-groups" "$WORK/trace" <<'PY'
import re, sys
unit, groups_file, trace = sys.argv[1:4]
groups, cur = {}, None
for line in open(groups_file):
    if line.startswith("@"):
        cur = line.split()[0]; groups[cur] = set()
    elif cur and line.strip() and not line.lstrip().startswith("#"):
        groups[cur].add(line.split()[0])
def expand(names):
    out = set()
    for n in names:
        out |= expand(groups[n]) if n.startswith("@") else {n}
    return out
allowed = set()
for line in open(unit):
    if line.startswith("SystemCallFilter="):
        value = line.split("=", 1)[1].split()
        if value[0].startswith("~"):
            allowed -= expand([value[0][1:]] + value[1:])
        else:
            allowed |= expand(value)
# From provd's execve on: setpriv's own calls before it are not provd's.
text = open(trace).read()
start = re.search(r'^\d+ +execve\("[^"]*/provd"', text, re.M)
used = set(re.findall(r"^\d+ +([a-z0-9_]+)\(", text[start.end():], re.M))
print(" ".join(sorted(used - allowed)) or "-", len(used))
PY
)
echo "# system calls outside the filter, then how many were traced: $out"
expect_eq "every system call provd made is in the unit's SystemCallFilter" - "${out%% *}"
check "the trace saw provd's work (more than 40 distinct calls)" test "${out##* }" -gt 40

echo "# edited" >> "$ROOT/etc/provd/provd.yaml"
cmake --install "$BUILD_DIR" --prefix "$ROOT" --component provd > "$WORK/install.log" 2>&1 && rc=0 || rc=$?
expect_eq "installing again exits 0" 0 "$rc"
check "installing again keeps the edited config" grep -q "^# edited" "$ROOT/etc/provd/provd.yaml"
finish
