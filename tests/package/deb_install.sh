#!/usr/bin/env bash
# ctest-labels: package
# The Debian packages end to end, on this machine (as root): cpack builds provd_VERSION_ARCH.deb and
# provd-dev; their control data (Depends from shared libraries, the
# conffile, the maintainer scripts) and contents are checked; dpkg -i
# creates the provd user and /var/lib/provd 0700; the installed provd, as
# that user with the installed config, finds the installed plugins, serves,
# and a device registers with the installed provctl and provd-device; a
# reinstall keeps an edited /etc/provd/provd.yaml; dpkg --purge keeps the
# data dir unless PROVD_PURGE_DATA=1.  Whatever happens, the package, the
# data dir and a provd user this test created are gone at the end.
# Runs under a machine-wide lock: several checkouts may test at once.
source "$(dirname "$0")/../e2e/lib/common.bash"

[ "$(id -u)" -eq 0 ] || { fail "installs a package: run as root"; finish; exit 1; }
# The marker names what a run installed, so that a run killed before its
# clean-up is cleaned up by the next one.
MARKER=/var/lib/provd-package-test.state
DATA=/var/lib/provd

{ exec 9>/var/lock/provd-package-test.lock; } 2>/dev/null ||
  { fail "cannot open /var/lock/provd-package-test.lock (root needed)"; finish; exit 1; }
flock -w 240 9 || { fail "another package test holds the lock"; finish; exit 1; }

dpkg_locked() { # dpkg ARGS...: retries while apt or dpkg holds its lock
  local out rc
  for _ in $(seq 1 60); do
    out=$("$@" 2>&1) && rc=0 || rc=$?
    if [ "$rc" -ne 0 ] && grep -q "lock" <<<"$out"; then sleep 1; continue; fi
    printf '%s\n' "$out"
    return "$rc"
  done
  printf '%s\n' "$out"
  return 1
}

package_installed() { dpkg-query -W -f='${Status}' provd 2>/dev/null | grep -q ' installed$'; }
package_known() { dpkg-query -W -f='${Status}' provd >/dev/null 2>&1 &&
                  ! dpkg-query -W -f='${Status}' provd 2>/dev/null | grep -q 'not-installed'; }

remove_everything() {
  if [ -n "${PROVD_PID}" ]; then kill -KILL "$PROVD_PID" 2>/dev/null || true; PROVD_PID=; fi
  if package_known; then
    dpkg_locked env PROVD_PURGE_DATA=1 dpkg --purge provd >/dev/null || true
  fi
  rm -rf "$DATA"
  if grep -q '^created-user$' "$MARKER" 2>/dev/null && getent passwd provd >/dev/null; then
    userdel provd >/dev/null 2>&1 || true
    getent group provd >/dev/null && groupdel provd >/dev/null 2>&1 || true
  fi
  rm -f "$MARKER"
}

if [ -f "$MARKER" ]; then
  echo "# cleaning up after an earlier run that did not finish" >&2
  remove_everything
fi
if package_known || [ -e "$DATA" ]; then
  fail "a provd package or $DATA is already on this machine; this test installs and removes its own"
  finish; exit 1
fi
getent passwd provd >/dev/null && echo "user-existed" > "$MARKER" || echo "created-user" > "$MARKER"
trap 'remove_everything; cleanup' EXIT

# --- build ---
VERSION=$("$BUILD_DIR/provd" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
(cd "$WORK" && cpack -G DEB -B "$WORK/pkg" --config "$BUILD_DIR/CPackConfig.cmake" \
   > "$WORK/cpack.log" 2>&1) && rc=0 || { rc=$?; cat "$WORK/cpack.log" >&2; }
expect_eq "cpack builds the packages" 0 "$rc"
DEB=$WORK/pkg/provd_${VERSION}_${ARCH}.deb
DEV=$WORK/pkg/provd-dev_${VERSION}_${ARCH}.deb
check "provd_${VERSION}_${ARCH}.deb exists" test -f "$DEB"
check "provd-dev_${VERSION}_${ARCH}.deb exists" test -f "$DEV"
[ -f "$DEB" ] || { finish; exit 1; }

# --- control data and contents ---
depends=$(dpkg-deb -f "$DEB" Depends)
for lib in libssl3 libevent-2.1-7 libjansson4 libyaml-0-2 libcurl4 libsqlite3-0 libpq5 libtss2-mu0 adduser; do
  check "provd Depends on $lib" grep -q "\\b$lib\\b" <<<"$depends"
done
expect_eq "provd-dev depends on this provd" "provd (= $VERSION)" "$(dpkg-deb -f "$DEV" Depends)"
dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$WORK" ./conffiles ./postinst ./postrm ./prerm
expect_eq "the example config is a conffile" /etc/provd/provd.yaml "$(cat "$WORK/conffiles")"
check "maintainer scripts are executable" test -x "$WORK/postinst" -a -x "$WORK/postrm" -a -x "$WORK/prerm"
dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$WORK" ./shlibs ./triggers
expect_eq "shlibs names libprovd-device.so.0" "libprovd-device 0 provd (>= $VERSION)" "$(cat "$WORK/shlibs")"
expect_eq "the ldconfig trigger" "activate-noawait ldconfig" "$(cat "$WORK/triggers")"
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/bin/provd ./usr/bin/provctl ./usr/bin/provd-device \
         ./usr/lib/provd/plugins/sqlite.so ./usr/lib/provd/plugins/symmetric-key.so \
         ./usr/lib/provd/mosquitto/provd_auth.so ./usr/lib/libprovd-device.so.0 \
         ./usr/lib/systemd/system/provd.service ./etc/provd/provd.yaml; do
  check "provd ships $f" grep -qx -- "$f" <<<"$contents"
done
check "provd ships no SDK header" bash -c '! grep -q "^./usr/include/" <<<"$1"' _ "$contents"
dev_contents=$(dpkg-deb -c "$DEV" | awk '{print $6}')
for f in ./usr/include/provd/plugin.h ./usr/include/provd/device.h \
         ./usr/lib/pkgconfig/provd-plugin.pc ./usr/lib/pkgconfig/provd-device.pc \
         ./usr/lib/cmake/provd/provdConfig.cmake ./usr/lib/libprovd-device.so; do
  check "provd-dev ships $f" grep -qx -- "$f" <<<"$dev_contents"
done

# --- install ---
out=$(dpkg_locked dpkg -i "$DEB") && rc=0 || rc=$?
expect_eq "dpkg -i exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || { echo "$out" >&2; finish; exit 1; }
check "provd is installed" package_installed
uid=$(getent passwd provd | cut -d: -f3)
check "postinst created the provd system user" test -n "$uid" -a "${uid:-1000}" -lt 1000
expect_eq "/var/lib/provd is 0700 provd:provd" "700 provd:provd" "$(stat -c '%a %U:%G' "$DATA" 2>/dev/null)"
expect_eq "/usr/bin/provd is this version" "provd $VERSION" "$(/usr/bin/provd --version)"
check "the unit runs the installed provd with the installed config" \
  grep -qx 'ExecStart=/usr/bin/provd -c /etc/provd/provd.yaml' /usr/lib/systemd/system/provd.service
out=$(/usr/bin/provd -c /etc/provd/provd.yaml --check-config 2>&1) && rc=0 || rc=$?
expect_eq "the installed config checks, plugins found beside the binary" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" >&2

# --- serve as the provd user from the installed files ---
DATA_DIR=$WORK/data
mkdir -p "$DATA_DIR" && chown provd:provd "$DATA_DIR" && chmod 0700 "$DATA_DIR"
chmod 0711 "$WORK"
cat > "$WORK/provd-as-service" <<SH
#!/bin/sh
exec setpriv --reuid=provd --regid=provd --init-groups /usr/bin/provd "\$@" \
  --listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 --data-dir "$DATA_DIR"
SH
chmod 0755 "$WORK/provd-as-service"
PROVD=$WORK/provd-as-service
PROVCTL=/usr/bin/provctl
start_provd /etc/provd/provd.yaml
expect_eq "provd runs as the provd user" provd "$(ps -o user= -p "$PROVD_PID")"
expect_eq "the data dir's files belong to provd" provd "$(stat -c %U "$DATA_DIR/service-connection-string")"
K=$(random_key)
provctl enrollment add pkg-dev-1 --primary-key "$K" --secondary-key "$(random_key)" >/dev/null && rc=0 || rc=$?
expect_eq "installed provctl enrolls a device" 0 "$rc"
out=$(/usr/bin/provd-device register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" \
      --scope "$SCOPE" --registration-id pkg-dev-1 --symmetric-key "$K" 2>&1) && rc=0 || rc=$?
expect_eq "installed provd-device registers" 0 "$rc"
check "the device is assigned the config's hub" grep -q "assigned hub=hub-1.example.net device_id=pkg-dev-1" <<<"$out"
stop_provd
expect_eq "provd stops with 0" 0 "$STOP_RC"

# --- reinstall keeps the operator's config ---
echo "# edited by the operator" >> /etc/provd/provd.yaml
dpkg_locked dpkg -i "$DEB" >/dev/null && rc=0 || rc=$?
expect_eq "dpkg -i again exits 0" 0 "$rc"
check "reinstall keeps the edited /etc/provd/provd.yaml" grep -q "edited by the operator" /etc/provd/provd.yaml

# --- purge keeps the data unless asked ---
echo registrations > "$DATA/keep-me"; chown provd:provd "$DATA/keep-me"
dpkg_locked dpkg --purge provd > "$WORK/purge.log" && rc=0 || rc=$?
expect_eq "dpkg --purge exits 0" 0 "$rc"
check "purge removed the package" bash -c '! dpkg-query -W -f="\${Status}" provd 2>/dev/null | grep -q " installed$"'
for f in /usr/bin/provd /usr/bin/provctl /usr/lib/provd /etc/provd /usr/lib/systemd/system/provd.service; do
  check "purge removed $f" test ! -e "$f"
done
check "purge kept $DATA by default" test -f "$DATA/keep-me"
check "purge says it kept the data" grep -q "keeping $DATA" "$WORK/purge.log"

dpkg_locked dpkg -i "$DEB" >/dev/null && rc=0 || rc=$?
expect_eq "dpkg -i over kept data exits 0" 0 "$rc"
check "the kept data is still there" test -f "$DATA/keep-me"
touch "$DATA/PURGE-WITH-PACKAGE"
dpkg_locked dpkg --purge provd >/dev/null && rc=0 || rc=$?
expect_eq "dpkg --purge with $DATA/PURGE-WITH-PACKAGE exits 0" 0 "$rc"
check "$DATA/PURGE-WITH-PACKAGE: purge removes $DATA" test ! -e "$DATA"

dpkg_locked dpkg -i "$DEB" >/dev/null && rc=0 || rc=$?
expect_eq "dpkg -i once more exits 0" 0 "$rc"
check "postinst made $DATA again" test -d "$DATA"
dpkg_locked env PROVD_PURGE_DATA=1 dpkg --purge provd >/dev/null && rc=0 || rc=$?
expect_eq "PROVD_PURGE_DATA=1 dpkg --purge exits 0" 0 "$rc"
check "PROVD_PURGE_DATA=1 removes $DATA" test ! -e "$DATA"
finish
