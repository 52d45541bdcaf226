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
import ssl
import struct

from mqtt_peer import frame, s
from testkit import b64hmac, rss_kib, sas


def connect_packet(i, a):
    regid = "idle-%d" % i
    sr = "%s/registrations/%s" % (a.scope, regid)
    token = sas(sr, b64hmac(a.group_key, regid))
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
