#!/usr/bin/env bash
# ctest-labels: e2e
# The man pages say what the programs and docs/configuration.md say: the
# built pages equal what man/gen_man.py makes from today's --help texts
# and doc; every option of every --help text (provctl: of every command)
# and every key of docs/configuration.md is on its page; groff renders
# them without a warning; `cmake --install` puts them under share/man.
source "$(dirname "$0")/lib/common.bash"

MAN_DIR=$BUILD_DIR/man
PAGES="provd.8 provctl.1 provd-device.1 provd.yaml.5"

python3 "$SOURCE_DIR/man/gen_man.py" --provd "$PROVD" --provctl "$PROVCTL" \
  --provd-device "$PROVD_DEVICE" --config-doc "$SOURCE_DIR/docs/configuration.md" \
  --version "$("$PROVD" --version | cut -d' ' -f2)" --out "$WORK/man"
for p in $PAGES; do
  check "$p: the built page is what --help and the docs say now" \
    cmp -s "$MAN_DIR/$p" "$WORK/man/$p"
  warnings=$(groff -man -ww -z "$MAN_DIR/$p" 2>&1)
  expect_eq "$p: groff renders it without warnings" "" "$warnings"
done

# every_option PAGE HELP_TEXT: each --option in the help is on the page.
every_option() {
  local page=$1 missing=""
  for opt in $(grep -o -- '--[a-z][a-z0-9-]*' <<<"$2" | sort -u); do
    grep -qF -- "$(sed 's/-/\\-/g' <<<"$opt")" "$MAN_DIR/$page" || missing+=" $opt"
  done
  expect_eq "$page: every option of the --help text is on the page" "" "$missing"
}
every_option provd.8 "$("$PROVD" --help; "$PROVD" restore --help)"
every_option provd-device.1 "$("$PROVD_DEVICE" --help)"

# provctl: the commands its --help lists, and each command's own help.
commands=$("$PROVCTL" --help | awk '/^Commands:/ {on=1; next} on && /^$/ {exit}
  on && /^  [a-z]/ { w=""; for (i=1; i<=NF && $i ~ /^[a-z][a-z-]*$/; i++) w=w" "$i; print w }' | sort -u)
check "provctl --help lists commands" test "$(wc -l <<<"$commands")" -ge 20
help_all=$("$PROVCTL" --help)
missing=""
while read -r words; do
  # shellcheck disable=SC2086
  help_all+=$'\n'$("$PROVCTL" $words --help)
  grep -qF ".SS $(sed 's/-/\\-/g' <<<"$words")" "$MAN_DIR/provctl.1" || missing+=" [$words]"
done <<<"$commands"
expect_eq "provctl.1: a section for every command" "" "$missing"
every_option provctl.1 "$help_all"

# provd.yaml(5): every key in the first column of docs/configuration.md's
# tables.
missing=$(python3 - "$SOURCE_DIR/docs/configuration.md" "$MAN_DIR/provd.yaml.5" <<'PY'
import re, sys
doc, page = open(sys.argv[1]).read(), open(sys.argv[2]).read()
keys = set()
for line in doc.split("\n"):
    if line.startswith("|") and not line.startswith("| ---") and not line.startswith("|---"):
        first = line.strip("|").split("|")[0]
        keys.update(re.findall(r"`([^`]+)`", first))
print(" ".join(sorted(k for k in keys if k.replace("-", "\\-") not in page)))
PY
)
expect_eq "provd.yaml.5: every key of docs/configuration.md is on the page" "" "$missing"

# DESTDIR keeps every file, absolute destinations too, inside $WORK.
DESTDIR=$WORK/dest cmake --install "$BUILD_DIR" --prefix /usr > "$WORK/install.log" 2>&1 && rc=0 || rc=$?
expect_eq "cmake --install succeeds" 0 "$rc"
for p in $PAGES; do
  check "$p is installed under share/man/man${p##*.}" \
    cmp -s "$MAN_DIR/$p" "$WORK/dest/usr/share/man/man${p##*.}/$p"
done
check "man finds provd(8) there" bash -c "man -M '$WORK/dest/usr/share/man' -w 8 provd >/dev/null"
finish
