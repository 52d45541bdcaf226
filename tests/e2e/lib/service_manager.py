#!/usr/bin/env python3
"""Plays systemd's side of Type=notify for one provd: binds the datagram
socket NOTIFY_SOCKET names, starts provd with it (and WATCHDOG_USEC when
asked) and checks the states provd sends.

  service_manager.py PROVD CONFIG WORKDIR

Prints one "ok - ..." or "not ok - ..." line per check; exit 0 when all
pass.  The ports are read from provd's banner, printed before READY=1.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

FAILS = 0


def check(what, cond, detail=""):
    global FAILS
    if cond:
        print("ok - " + what)
    else:
        FAILS += 1
        print("not ok - %s%s" % (what, ": " + detail if detail else ""))


def receive(sock, seconds):
    """The next datagram as text, or None after seconds."""
    sock.settimeout(seconds)
    try:
        return sock.recv(4096).decode()
    except socket.timeout:
        return None


def receive_all(sock, seconds):
    end, got = time.monotonic() + seconds, []
    while True:
        left = end - time.monotonic()
        msg = receive(sock, left) if left > 0 else None
        if msg is None:
            return got
        got.append(msg)


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def healthz(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    url = "https://127.0.0.1:%d/healthz" % port
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return r.status
    except Exception as e:  # the status is what the check reports
        return str(e)


def start(provd, config, workdir, address, extra_env):
    env = dict(os.environ, NOTIFY_SOCKET=address, **extra_env)
    out = open(os.path.join(workdir, "banner"), "w")
    log = open(os.path.join(workdir, "provd.log"), "a")
    return subprocess.Popen([provd, "-c", config], stdout=out, stderr=log,
                            env=env)


def banner_port(workdir, pattern):
    with open(os.path.join(workdir, "banner")) as f:
        m = re.search(pattern, f.read())
    return int(m.group(1)) if m else 0


def stop(proc, sock):
    proc.send_signal(signal.SIGTERM)
    msgs = []
    while not msgs or msgs[-1] == "WATCHDOG=1":
        msg = receive(sock, 5)
        if msg is None:
            break
        msgs.append(msg)
    check("STOPPING=1 on SIGTERM", msgs and msgs[-1] == "STOPPING=1",
          repr(msgs))
    check("provd exits 0", proc.wait(timeout=20) == 0)


def abstract_socket_with_watchdog(provd, config, workdir):
    name = "provd-test-%d" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    proc = start(provd, config, workdir, "@" + name,
                 {"WATCHDOG_USEC": "200000"})
    try:
        first = receive(sock, 30)
        https = banner_port(workdir, r"device endpoint: *https://\S+:(\d+)")
        mqtt = banner_port(workdir, r"MQTT endpoint: *mqtts://\S+:(\d+)")
        # Both listeners must accept the moment READY=1 arrives.
        https_ok, mqtt_ok = accepts(https), accepts(mqtt)
        check("first message is READY=1", first is not None
              and first.split("\n")[0] == "READY=1", repr(first))
        check("READY=1 names the listener in STATUS",
              first is not None and "STATUS=serving https on" in first)
        check("HTTPS listener accepts when READY=1 arrives", https_ok)
        check("MQTT listener accepts when READY=1 arrives", mqtt_ok)
        check("healthz answers 200 after READY=1", healthz(https) == 200)
        pings = [m for m in receive_all(sock, 1.0) if m == "WATCHDOG=1"]
        check("WATCHDOG=1 about every 100 ms (WATCHDOG_USEC=200000)",
              4 <= len(pings) <= 15, "%d pings in 1 s" % len(pings))
        proc.send_signal(signal.SIGHUP)
        msgs = [m for m in receive_all(sock, 2) if m != "WATCHDOG=1"]
        check("SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1",
              len(msgs) == 2 and msgs[0].startswith("RELOADING=1\n")
              and "MONOTONIC_USEC=" in msgs[0] and msgs[1] == "READY=1",
              repr(msgs))
        stop(proc, sock)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def path_socket_watchdog_of_another_pid(provd, config, workdir):
    path = os.path.join(workdir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    proc = start(provd, config, workdir, path,
                 {"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    try:
        first = receive(sock, 30)
        check("READY=1 on a socket path", first is not None
              and first.startswith("READY=1\n"), repr(first))
        msgs = receive_all(sock, 0.5)
        check("no WATCHDOG=1 when WATCHDOG_PID is another process",
              "WATCHDOG=1" not in msgs, repr(msgs))
        stop(proc, sock)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def main():
    provd, config, workdir = sys.argv[1:4]
    abstract_socket_with_watchdog(provd, config, workdir)
    path_socket_watchdog_of_another_pid(provd, config, workdir)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
