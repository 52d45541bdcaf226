#!/usr/bin/env python3
"""Opens N MQTT/TLS connections to provd, CONNECTs each as a member of
a symmetric-key group (CONNECT checks the token's signature), keeps them
idle, prints the server's RSS before, while they are open and after they
are closed.

  mqtt_idle.py --port P --ca CA --pid PID --count N --group-key B64 --scope S
Output: one line "rss_kib before=A during=B after=C open=N".
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import ssl
import struct
import time

from mqtt_peer import frame, s


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def hmac_b64(key_b64, text):
    mac = hmac.new(base64.b64decode(key_b64), text.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def connect_packet(i, a):
    regid = "idle-%d" % i
    sr = "%s/registrations/%s" % (a.scope, regid)
    se = int(time.time()) + 3600
    sig = hmac_b64(hmac_b64(a.group_key, regid), "%s\n%d" % (sr, se))
    token = "SharedAccessSignature sr=%s&sig=%s&skn=registration&se=%d" % (
        sr, sig.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"), se)
    body = (s("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 600) + s(regid)
            + s("%s/api-version=2019-03-31" % sr) + s(token))
    return frame(0x10, body)


async def one(i, a, ctx, conns, sem):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", a.port, ssl=ctx,
                                             server_hostname="localhost")
        w.write(connect_packet(i, a))
        ack = await r.readexactly(4)
        if ack[3] != 0:
            raise RuntimeError("CONNACK %d" % ack[3])
        conns.append(w)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--group-key", required=True)
    p.add_argument("--scope", required=True)
    a = p.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    before = rss_kib(a.pid)
    conns = []
    sem = asyncio.Semaphore(64)
    await asyncio.gather(*(one(i, a, ctx, conns, sem) for i in range(a.count)))
    await asyncio.sleep(1)
    during = rss_kib(a.pid)
    opened = len(conns)
    for w in conns:
        w.close()
    await asyncio.sleep(3)
    after = rss_kib(a.pid)
    print("rss_kib before=%d during=%d after=%d open=%d" % (before, during, after, opened))


asyncio.run(main())
