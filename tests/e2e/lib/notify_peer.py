#!/usr/bin/env python3
"""The far side of provd's notifiers, for the e2e tests.

receive  a webhook receiver (http.server) whose answer depends on the
         path: /ok 200, /flaky 500 then 200 per event id, /bad 400,
         /retry-after 503 + "Retry-After: 2" then 200 per event id,
         /slow 200 after one second.  Every request is one JSON line in
         --log: path, status answered, signature check, CloudEvent fields.
produce  writes enrollments over the service API (one keep-alive HTTPS
         connection): --create N creates out-0000.., --update also
         disables each one afterwards (a second event per subject).
         Every acknowledged change is a line in --ledger.
"""
import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import ssl
import sys
import threading
import time

SECRET = b""
LOG = None
LOCK = threading.Lock()
SEEN = {}  # (path, event id) -> requests so far


def signature_ok(header, body):
    fields = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(SECRET, fields["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), fields["v1"]) and \
        abs(time.time() - int(fields["t"])) < 300


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            event = json.loads(body)
            sig = signature_ok(self.headers.get("X-Provd-Signature", ""), body)
        except Exception:  # a malformed request is logged, not fatal
            event, sig = {}, False
        key = (self.path, event.get("id"))
        with LOCK:
            n = SEEN.get(key, 0)
            SEEN[key] = n + 1
        status, extra = 200, {}
        if self.path == "/flaky" and n == 0:
            status = 500
        elif self.path == "/bad":
            status = 400
        elif self.path == "/retry-after" and n == 0:
            status, extra = 503, {"Retry-After": "2"}
        elif self.path == "/slow":
            time.sleep(1)
        line = {"path": self.path, "status": status, "sig_ok": sig,
                "t": time.time(), "id": event.get("id"),
                "type": event.get("type"), "subject": event.get("subject"),
                "sequence": event.get("sequence"),
                "specversion": event.get("specversion"),
                "content_type": self.headers.get("Content-Type"),
                "data": event.get("data")}
        with LOCK:
            LOG.write(json.dumps(line) + "\n")
            LOG.flush()
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


def receive(args):
    global SECRET, LOG
    SECRET = args.secret.encode()
    LOG = open(args.log, "a")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def produce(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    conn = http.client.HTTPSConnection("localhost", args.port, context=ctx)
    ledger = open(args.ledger, "a")
    headers = {"Authorization": args.token,
               "Content-Type": "application/json; charset=utf-8"}

    def put(rid, doc, what):
        try:
            conn.request("PUT", f"/enrollments/{rid}?api-version=2021-10-01",
                         json.dumps(doc), headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            sys.exit(0)  # provd is gone (the crash test kills it)
        if resp.status == 200:
            ledger.write(f"{what} {rid}\n")
            ledger.flush()

    for i in range(args.create):
        rid = f"{args.prefix}-{i:04d}"
        doc = {"registrationId": rid, "attestation": {"type": "symmetricKey"}}
        put(rid, doc, "enrollment.created")
        if args.update:
            doc["provisioningStatus"] = "disabled"
            put(rid, doc, "enrollment.updated")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("receive")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--log", required=True)
    r.add_argument("--secret", required=True)
    w = sub.add_parser("produce")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--ca", required=True)
    w.add_argument("--token", required=True)
    w.add_argument("--ledger", required=True)
    w.add_argument("--prefix", default="out")
    w.add_argument("--create", type=int, required=True)
    w.add_argument("--update", action="store_true")
    args = p.parse_args()
    receive(args) if args.cmd == "receive" else produce(args)


if __name__ == "__main__":
    main()
