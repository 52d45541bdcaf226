#!/usr/bin/env python3
"""Holds N idle TLS connections to a server (handshake done, no request)
while a command runs, and samples the server's RSS meanwhile.

  idle_holder.py --port P --ca FILE --pid PID --count N [--during CMD]
Output (last line): "idle held=N closed_by_server=M rss_kib before=A
max=B after=C during_rc=R"
"""
import argparse
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "e2e", "lib"))
from testkit import closed_by_server, rss_kib  # noqa: E402


def open_idle(port, ctx, count):
    socks = []
    for i in range(count):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(ctx.wrap_socket(raw, server_hostname="localhost"))
        if (i + 1) % 2000 == 0:
            print("idle: %d connections open" % (i + 1), file=sys.stderr)
    return socks


def sample_rss(pid, stop, peak):
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        stop.wait(0.5)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--during", default="")
    a = p.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    before = rss_kib(a.pid)
    peak = [before]
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(a.pid, stop, peak))
    sampler.start()
    socks = open_idle(a.port, ctx, a.count) if a.count else []
    rc = subprocess.call(a.during, shell=True) if a.during else 0
    closed = sum(1 for s in socks if closed_by_server(s))
    for s in socks:
        s.close()
    time.sleep(2)
    stop.set()
    sampler.join()
    print("idle held=%d closed_by_server=%d rss_kib before=%d max=%d after=%d "
          "during_rc=%d" % (len(socks), closed, before, peak[0],
                            rss_kib(a.pid), rc))


if __name__ == "__main__":
    main()
