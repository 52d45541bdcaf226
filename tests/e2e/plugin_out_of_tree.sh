#!/usr/bin/env bash
# ctest-labels: plugin;e2e
# The SDK is enough to build a plugin: install provd into a temporary
# prefix, build tests/data/example-plugin against it with pkg-config only,
# check the .so exports exactly one provd symbol, then have
# `provd --check-config` load it by path, once with good options (exit 0)
# and once with a bad one (exit 2, FILE:LINE:COL: message).
set -euo pipefail

: "${PROVD_SOURCE_DIR:?}" "${PROVD_BUILD_DIR:?}" "${PROVD_BIN:?}"
: "${PROVD_PLUGIN_DIR:?}"

tmp=$(mktemp -d /tmp/provd-oot-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$PROVD_BUILD_DIR" --prefix "$tmp/prefix" >"$tmp/install.log" \
  || { cat "$tmp/install.log" >&2; fail "cmake --install"; }
for h in plugin.h host.h attest.h alloc.h storage.h notifier.h hub.h; do
  [ -f "$tmp/prefix/include/provd/$h" ] || fail "SDK header provd/$h not installed"
done
[ -f "$tmp/prefix/lib/pkgconfig/provd-plugin.pc" ] || fail "provd-plugin.pc not installed"

# Only the installed prefix: no source tree include paths, no system provd.
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
incdir=$(pkg-config --cflags-only-I provd-plugin | sed 's/^ *-I//; s/ *$//')
[ -n "$incdir" ] && [ "$(realpath "$incdir")" = "$(realpath "$tmp/prefix/include")" ] \
  || fail "pkg-config provd-plugin points at '$incdir', not the install prefix (is the .pc prefix relocatable?)"

cmake -S "$PROVD_SOURCE_DIR/tests/data/example-plugin" -B "$tmp/b" \
  >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log" >&2; fail "configure"; }
cmake --build "$tmp/b" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log" >&2; fail "build"; }
so="$tmp/b/example.so"
[ -f "$so" ] || fail "example.so was not built"

exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | grep -c provd || true)
[ "$exported" = 1 ] || { nm -D --defined-only "$so" >&2; fail "$exported provd symbols exported, want 1"; }
nm -D --defined-only "$so" | awk '{print $NF}' | grep -qx provd_plugin_v1 \
  || fail "provd_plugin_v1 is not exported"

write_config() { # $1 = file, $2 = options line for the example plugin
  cat >"$1" <<YAML
data_dir: $tmp/data
plugin_path: [ "$PROVD_PLUGIN_DIR" ]
plugins:
  - kind: notifier
    name: example
    path: $so
    options:
$2
YAML
}

write_config "$tmp/good.yaml" "      file: $tmp/events.jsonl"
set +e
out=$("$PROVD_BIN" -c "$tmp/good.yaml" --check-config 2>&1)
rc=$?
set -e
[ "$rc" = 0 ] || { echo "$out" >&2; fail "--check-config exited $rc on a good config"; }
echo "$out" | grep -q "example" || { echo "$out" >&2; fail "plugin not named in output"; }
echo "$out" | grep -q "from $so" || { echo "$out" >&2; fail "plugin path not logged"; }

# Line 8 column 7 is the misspelt key.
write_config "$tmp/bad.yaml" "      fiel: $tmp/events.jsonl"
set +e
out=$("$PROVD_BIN" -c "$tmp/bad.yaml" --check-config 2>&1)
rc=$?
set -e
[ "$rc" = 2 ] || { echo "$out" >&2; fail "--check-config exited $rc on a bad option, want 2"; }
echo "$out" | grep -q "^$tmp/bad.yaml:8:7: .*fiel" \
  || { echo "$out" >&2; fail "no FILE:LINE:COL: line for the bad option"; }

echo "PASS: out-of-tree plugin built from the installed SDK and loaded"
