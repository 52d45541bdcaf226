"""An HTTPS front for provd that answers the first N requests with 429 and
a Retry-After, then passes every request through: how a DPS service
throttles a fleet, for the device library's backoff tests.

usage: throttle_proxy.py --port P --upstream-port U --cert PEM --key PEM
                         --ca PEM --throttle N --retry-after S --log FILE
Each request is logged as "<unix time> <status> <method> <path>".
"""
import argparse
import http.client
import http.server
import ssl
import threading
import time

ap = argparse.ArgumentParser()
for name in ("port", "upstream-port", "throttle"):
    ap.add_argument("--" + name, type=int, required=True)
for name in ("cert", "key", "ca", "log", "retry-after"):
    ap.add_argument("--" + name, required=True)
args = ap.parse_args()
lock = threading.Lock()
seen = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self, status):
        with open(args.log, "a") as f:
            f.write(f"{time.time():.3f} {status} {self.command} {self.path}\n")

    def relay(self):
        global seen
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with lock:
            seen += 1
            throttled = seen <= args.throttle
        if throttled:
            out = b'{"errorCode":429001,"message":"Too many requests, retry later."}'
            self.send_response(429)
            self.send_header("Retry-After", args.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            self.note(429)
            return
        ctx = ssl.create_default_context(cafile=args.ca)
        up = http.client.HTTPSConnection("localhost", args.upstream_port, context=ctx)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        up.request(self.command, self.path, body=body, headers=headers)
        r = up.getresponse()
        out = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        up.close()
        self.note(r.status)

    do_GET = do_PUT = do_POST = relay


srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(args.cert, args.key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
