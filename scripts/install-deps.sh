#!/usr/bin/env bash
# Installs every Debian and npm package provd's build, run and tests need.
# groff-base and man-db check the generated man pages (tests/e2e/man_pages.sh).
# nginx-light is the benchmark's external ceiling (bench/run.sh starts its own
# instance; the package's service is not needed).  dpkg-dev (dpkg-shlibdeps),
# adduser, systemd (systemd-analyze) and strace serve `make package` and
# its tests; systemd need not run.
# Idempotent and quiet when nothing is missing.  Run as root (or with sudo
# available) on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config git curl ca-certificates python3 time
  libssl-dev openssl libevent-dev libjansson-dev libyaml-dev
  libcurl4-openssl-dev libtss2-dev libsqlite3-dev sqlite3 libpq-dev check
  libjemalloc-dev
  swtpm swtpm-tools tpm2-tools mosquitto mosquitto-clients mosquitto-dev
  libmosquitto-dev groff-base man-db
  postgresql haproxy python3-aiosmtpd nginx-light chromium
  dpkg-dev adduser systemd strace
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
# Node.js 20 may come from elsewhere with its own npm: only add Debian's
# packages when the commands are missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages for the interoperability tests (the unmodified Azure IoT SDK:
# the DPS clients, and azure-iot-device + azure-iot-device-mqtt for the hub)
# and the browser tests (playwright-core, driving Debian's chromium: never a
# downloaded browser),
# pinned by tests/interop/package-lock.json.  --ignore-scripts: tss.js pulls
# a native module that does not build on Node 20.
interop=tests/interop
if [ -f "$interop/package-lock.json" ]; then
  stamp="$interop/node_modules/.provd-lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$interop/package-lock.json" "$stamp"; then
    echo "install-deps: npm ci in $interop"
    (cd "$interop" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$interop/package-lock.json" "$stamp"
  fi
fi
