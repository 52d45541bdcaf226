#!/usr/bin/env python3
"""Opens N TCP connections to a TLS port, each sending a partial
ClientHello and then nothing (a handshake that never ends), while a
callback command runs; prints the server's RSS before, during and after.

  tls_flood.py --port P --pid PID --count N [--during CMD]
Output: "rss_kib before=A during=B after=C open=N closed_by_server=M during_rc=R"
"""
import argparse
import os
import socket
import subprocess
import time

from testkit import closed_by_server, rss_kib


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--during", default="")
    a = p.parse_args()
    hello = bytes.fromhex("16030100f4010000f00303") + os.urandom(32)
    before = rss_kib(a.pid)
    socks = []
    for _ in range(a.count):
        s = socket.create_connection(("127.0.0.1", a.port))
        s.sendall(hello)
        socks.append(s)
    time.sleep(1)
    during = rss_kib(a.pid)
    rc = subprocess.call(a.during, shell=True) if a.during else 0
    closed = sum(1 for s in socks if closed_by_server(s))
    for s in socks:
        s.close()
    time.sleep(2)
    after = rss_kib(a.pid)
    print("rss_kib before=%d during=%d after=%d open=%d closed_by_server=%d during_rc=%d"
          % (before, during, after, len(socks), closed, rc))


if __name__ == "__main__":
    main()
