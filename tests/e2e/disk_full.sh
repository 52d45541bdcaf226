#!/usr/bin/env bash
# ctest-labels: e2e
# A full disk under the data dir: registrations answer 503 with a
# Retry-After instead of hanging or claiming success, /healthz stops
# saying "ok" and names the problem, and once space is back both recover
# without a restart (/healthz through its own write probe, before any
# device writes again).  The data dir is a small tmpfs, mounted in a
# private mount namespace (a user namespace too when not root), so
# nothing outside this test sees it.
if [ -z "${PROVD_DISK_FULL_NS:-}" ]; then
  ns=(unshare --mount)
  [ "$(id -u)" -eq 0 ] || ns+=(--map-root-user)
  PROVD_DISK_FULL_NS=1 exec "${ns[@]}" bash "$0" "$@"
fi
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
mkdir -p "$DATA_DIR"
mount -t tmpfs -o size=6m tmpfs "$DATA_DIR" ||
  { fail "cannot mount a tmpfs for the data dir (needs a mount namespace)"; finish; exit 1; }
trap 'umount -l "$DATA_DIR" 2>/dev/null; cleanup' EXIT

write_config "$WORK/provd.yaml" "$DATA_DIR"
start_provd "$WORK/provd.yaml"

GROUP_KEY=$(random_key)
provctl group add full-fleet --primary-key "$GROUP_KEY" --secondary-key "$(random_key)" >/dev/null

reg_path() { echo "/$SCOPE/registrations/$1/register?api-version=2019-03-31"; }
register() { # REGID: sets STATUS, BODY_OUT; headers in $WORK/headers
  http PUT "$(reg_path "$1")" "{\"registrationId\":\"$1\"}" -D "$WORK/headers" \
    -H "Authorization: $(device_token "$(derive_key "$GROUP_KEY" "$1")" "$1")"
}
health() { http GET /healthz; }

register before-full
expect_eq "a registration with room on disk answers 202" 202 "$STATUS"
health
expect_eq "/healthz answers 200 before the disk fills" 200 "$STATUS"

# Fill the file system to the last byte, then register new devices until
# the store has to grow (SQLite's WAL may have room left at first).
dd if=/dev/zero of="$DATA_DIR/filler" bs=64k 2>/dev/null || true
refused=
for i in $(seq 1 300); do
  register "while-full-$i"
  if [ "$STATUS" != 202 ]; then refused=$i; break; fi
done
check "a registration is refused once the disk is full" test -n "$refused"
expect_eq "the refusal is 503" 503 "$STATUS"
check "the refusal carries a Retry-After" grep -qi '^retry-after: [0-9]' "$WORK/headers"
check "the log names the store's write failure" grep -q 'writes fail reason=STORE_IO' "$WORK/provd.log"

health
expect_eq "/healthz answers 503 while writes fail" 503 "$STATUS"
msg=$(json_get "$BODY_OUT" message)
check "/healthz names the problem ($msg)" grep -qi 'refuses writes.*full' <<<"$msg"

rm -f "$DATA_DIR/filler"
healthy() { health; [ "$STATUS" = 200 ]; }
check "/healthz recovers without a restart once space is back" wait_for 10 healthy
check "the log says writes succeed again" grep -q 'writes succeed again' "$WORK/provd.log"
register after-full
expect_eq "a registration after recovery answers 202" 202 "$STATUS"

stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
