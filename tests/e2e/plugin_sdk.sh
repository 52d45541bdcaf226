#!/usr/bin/env bash
# ctest-labels: plugin;e2e
# The SDK contract, for every built-in plugin (each plugins/<kind>-<name>/
# folder, so a new plugin is covered without touching this file):
#   1. `cmake --install` provd into an empty prefix;
#   2. copy the folder alone into an empty directory and build it with
#      `cmake -S DIR -B DIR/build -DCMAKE_PREFIX_PATH=<prefix>`: a plugin
#      that includes a core header or links a provd library fails here;
#   3. the .so exports only provd_plugin_v1 and `provd --check-config`
#      loads it from the out-of-tree build;
#   4. the unit tests that load plugins from PROVD_PLUGIN_DIR and the e2e
#      registration test pass against the out-of-tree plugins alone.
set -euo pipefail

: "${PROVD_SOURCE_DIR:?}" "${PROVD_BUILD_DIR:?}" "${PROVD_BIN:?}"

tmp=$(mktemp -d /tmp/provd-sdk-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
show_fail() { cat "$1" >&2; fail "$2"; }

prefix=$tmp/prefix
oot=$tmp/plugins # every out-of-tree .so, and nothing else
mkdir -p "$oot"
cmake --install "$PROVD_BUILD_DIR" --prefix "$prefix" >"$tmp/install.log" 2>&1 \
  || show_fail "$tmp/install.log" "cmake --install"

# --- 2 and 3: build each folder alone ---
declare -A kind_of # plugin name -> kind
n_folders=0
for src in "$PROVD_SOURCE_DIR"/plugins/*/; do
  [ -f "$src/CMakeLists.txt" ] || continue
  folder=$(basename "$src")
  kind=${folder%%-*}
  dir=$tmp/src/$folder
  mkdir -p "$dir"
  cp -R "$src/." "$dir/"
  # No provd variables from the environment: only the prefix.
  env -u PKG_CONFIG_PATH cmake -S "$dir" -B "$dir/build" \
    -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/$folder.configure.log" 2>&1 \
    || show_fail "$tmp/$folder.configure.log" "$folder: configure against the SDK"
  cmake --build "$dir/build" >"$tmp/$folder.build.log" 2>&1 \
    || show_fail "$tmp/$folder.build.log" "$folder: build against the SDK"
  built=0
  for so in "$dir"/build/*.so; do
    [ -f "$so" ] || continue
    name=$(basename "$so" .so)
    syms=$(nm -D --defined-only "$so" | awk '{print $NF}' | grep -v '^_' || true)
    [ "$syms" = provd_plugin_v1 ] \
      || fail "$folder: $name.so exports '$(echo $syms)', want only provd_plugin_v1"
    cp "$so" "$oot/"
    kind_of[$name]=$kind
    built=$((built + 1))
  done
  [ "$built" -gt 0 ] || fail "$folder: built no .so"
  n_folders=$((n_folders + 1))
done
[ "$n_folders" -gt 0 ] || fail "no plugin folder under $PROVD_SOURCE_DIR/plugins"

# A provd config with plugin_path = the out-of-tree builds only.  A
# plugin with required options takes them from
# tests/data/plugin-options/NAME.yaml (one YAML flow mapping).
write_config() { # file, plugin name
  local name=$2 storage=sqlite options=
  local fixture=$PROVD_SOURCE_DIR/tests/data/plugin-options/$name.yaml
  [ -f "$fixture" ] && options=", options: $(cat "$fixture")"
  local storage_options=
  [ "${kind_of[$name]}" = storage ] && storage=$name storage_options=$options
  {
    echo "id_scope: 0ne00000001"
    echo "data_dir: $tmp/data-$name"
    echo "plugin_path: [ \"$oot\" ]"
    echo "storage: { plugin: $storage$storage_options }"
    if [ "${kind_of[$name]}" != storage ]; then
      echo "plugins:"
      echo "  - { kind: ${kind_of[$name]}, name: $name$options }"
    fi
  } >"$1"
}
for name in "${!kind_of[@]}"; do
  write_config "$tmp/$name.yaml" "$name"
  "$PROVD_BIN" -c "$tmp/$name.yaml" --check-config >"$tmp/$name.check.log" 2>&1 \
    || show_fail "$tmp/$name.check.log" "provd --check-config does not load $name.so"
  grep -q "loaded ${kind_of[$name]} plugin $name .* from $oot/$name.so" \
    "$tmp/$name.check.log" \
    || show_fail "$tmp/$name.check.log" "$name.so was not loaded from the out-of-tree build"
done

# --- 4: the plugin tests, against the out-of-tree .so files ---
export PROVD_PLUGIN_DIR=$oot
n_unit=0
for test_src in "$PROVD_SOURCE_DIR"/tests/unit/test_*.c; do
  grep -q 'getenv("PROVD_PLUGIN_DIR")' "$test_src" || continue
  test_bin=$PROVD_BUILD_DIR/tests/$(basename "$test_src" .c)
  [ -x "$test_bin" ] || fail "$test_bin is not built"
  (cd "$PROVD_SOURCE_DIR/tests/data" && CK_DEFAULT_TIMEOUT=60 "$test_bin") \
    >"$tmp/unit.log" 2>&1 \
    || show_fail "$tmp/unit.log" "$(basename "$test_bin") fails with the out-of-tree plugins"
  n_unit=$((n_unit + 1))
done
[ "$n_unit" -gt 0 ] || fail "no unit test loads plugins from PROVD_PLUGIN_DIR"

bash "$PROVD_SOURCE_DIR/tests/e2e/registration.sh" >"$tmp/registration.log" 2>&1 \
  || show_fail "$tmp/registration.log" "registration through provd fails with the out-of-tree plugins"

echo "PASS: $n_folders plugin folders built alone against the installed SDK," \
  "loaded by provd, $n_unit unit tests and the registration test passed"
