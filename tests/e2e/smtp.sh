#!/usr/bin/env bash
# ctest-labels: e2e;plugin
# The smtp notifier against a real SMTP server on loopback (`python3 -m
# aiosmtpd` with its Mailbox handler writing each message to a maildir):
# the enrollment.created mail arrives with the right recipients (a fixed
# address, and the enrollment's `contact` tag through a template),
# subject (UTF-8, encoded), Date, Message-ID from the event id and the
# fields; with include_credentials the device key is in the mail and in
# no log line (log_level debug).
source "$(dirname "$0")/lib/common.bash"

PY=
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import aiosmtpd' 2>/dev/null; then PY=$candidate; break; fi
done
[ -n "$PY" ] || { fail "python3 -m aiosmtpd is not installed (scripts/install-deps.sh installs python3-aiosmtpd)"; finish; }

DATA_DIR=$WORK/data
MAILDIR=$WORK/maildir
SPORT=$(free_port)
"$PY" -m aiosmtpd -n -l "127.0.0.1:$SPORT" -c aiosmtpd.handlers.Mailbox "$MAILDIR" \
  2>>"$WORK/smtpd.err" &
RECEIVER_PID=$!   # stopped by common.bash's cleanup
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT" 2>/dev/null || { fail "aiosmtpd did not start"; finish; }

write_config "$WORK/provd.yaml" "$DATA_DIR"
cat >> "$WORK/provd.yaml" <<YAML
  - kind: notifier
    name: smtp
    id: ops-mail
    events: [ enrollment.created ]
    options: { url: "smtp://127.0.0.1:$SPORT", from: "provd@example.net", to: [ "ops@example.net" ],
               starttls: "off", id_scope: "$SCOPE", endpoint: "localhost" }
  - kind: notifier
    name: smtp
    id: owner-mail
    events: [ enrollment.created ]
    options:
      url: "smtp://127.0.0.1:$SPORT"
      from: "provd@example.net"
      to: [ "{{tags.contact}}" ]
      subject: "Gerät {{registration_id}} ist bereit"
      include_credentials: true
      starttls: "off"
log_level: debug
events: { retry_initial: 100ms, poll: 20ms }
YAML
start_provd "$WORK/provd.yaml"

KEY=$(random_key)
provctl enrollment add dev-1 --primary-key "$KEY" --secondary-key "$(random_key)" \
  --initial-twin '{"tags":{"contact":"owner@example.org"}}' >/dev/null
EVENT_ID=$(provctl events list --json | python3 -c 'import json,sys; print([e["id"] for e in json.load(sys.stdin) if e["type"]=="enrollment.created"][0])')

mails() { ls "$MAILDIR/new" 2>/dev/null | wc -l; }
check "two mails arrive" wait_for 15 bash -c "[ \$(ls '$MAILDIR/new' 2>/dev/null | wc -l) -ge 2 ]"
sleep 0.3
expect_eq "exactly two mails (one per instance)" 2 "$(mails)"

if "$PY" - "$MAILDIR/new" "$KEY" "$EVENT_ID" <<'PY'
import email, email.header, email.policy, os, sys
d, key, event_id = sys.argv[1:]
mails = [email.message_from_binary_file(open(os.path.join(d, f), "rb"), policy=email.policy.default)
         for f in os.listdir(d)]
by_rcpt = {m["X-RcptTo"]: m for m in mails}
assert set(by_rcpt) == {"ops@example.net", "owner@example.org"}, by_rcpt.keys()
ops, owner = by_rcpt["ops@example.net"], by_rcpt["owner@example.org"]
for m in mails:
    assert m["From"] == "provd@example.net" and m["X-MailFrom"] == "provd@example.net"
    assert m["Date"] and m["MIME-Version"] == "1.0"
    assert m["Message-ID"] == f"<{event_id}.provd@example.net>", m["Message-ID"]
    assert m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"
assert ops["To"] == "ops@example.net" and owner["To"] == "owner@example.org"
assert ops["Subject"] == "provd: enrollment.created dev-1", ops["Subject"]
assert owner["Subject"] == "Gerät dev-1 ist bereit", owner["Subject"]
raw_owner = [open(os.path.join(d, f), "rb").read() for f in os.listdir(d)]
assert any(b"Subject: =?UTF-8?B?" in r for r in raw_owner), "subject not RFC 2047 encoded"
body_ops, body_owner = ops.get_content(), owner.get_content()
assert "Registration id: dev-1" in body_ops and "ID scope:        0ne00000001" in body_ops, body_ops
assert "Endpoint:        localhost" in body_ops
assert key not in body_ops, "ops mail has the key without include_credentials"
assert f"Primary key:     {key}" in body_owner, body_owner
PY
then pass "recipients, headers (Date, Message-ID, MIME, encoded UTF-8 subject), fields, and the key only where include_credentials is on"
else fail "the mails are not as expected"; fi
check "the key is in no log line" bash -c "! grep -qF -- '$KEY' '$WORK/provd.log'"
check "the debug log names the delivery" grep -q "mailed to 1 recipient" "$WORK/provd.log"
check "include_credentials warns at start" grep -q "include_credentials is on" "$WORK/provd.log"
stop_provd TERM
expect_eq "provd stops cleanly" 0 "$STOP_RC"
finish
