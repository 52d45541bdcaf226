#!/usr/bin/env python3
"""A small MQTT 3.1.1 device for the e2e tests, standard library only.

  register: CONNECT, SUBSCRIBE, PUBLISH register, poll until final; prints
            one JSON line per server answer ({"connack": n}, {"status":
            ..., "topic": ..., "body": ...}) and exits 0 when assigned.
  probe:    sends raw packets (hex, after an optional valid CONNECT) and
            prints what comes back, then "closed" or "open".
"""
import argparse
import json
import socket
import ssl
import struct
import sys
import time


def rl(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | 0x80 if n else b])
        if not n:
            return out


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(x)) + x


def frame(first, body):
    return bytes([first]) + rl(len(body)) + body


def connect_packet(a):
    flags = 0x02 | (0x80 if a.user is not None else 0) | (0x40 if a.password else 0)
    body = s("MQTT") + bytes([4, flags]) + struct.pack(">H", a.keepalive) + s(a.regid)
    if a.user is not None:
        body += s(a.user)
    if a.password:
        body += s(a.password)
    return frame(0x10, body)


def publish_packet(topic, payload, qos, pid):
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + payload.encode()
    return frame(0x30 | qos << 1, body)


def open_conn(a):
    raw = socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout)
    if a.plain:
        return raw
    ctx = ssl.create_default_context(cafile=a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_packet(sock):
    first = read_exact(sock, 1)[0]
    mult, n = 1, 0
    while True:
        b = read_exact(sock, 1)[0]
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, read_exact(sock, n)


def describe(first, body):
    t = first >> 4
    if t == 2:
        return {"connack": body[1]}
    if t == 3:
        qos = (first >> 1) & 3
        tl = struct.unpack(">H", body[:2])[0]
        topic = body[2:2 + tl].decode()
        rest = body[2 + tl + (2 if qos else 0):]
        pid = struct.unpack(">H", body[2 + tl:4 + tl])[0] if qos else 0
        status = int(topic.split("/")[3]) if topic.startswith("$dps/registrations/res/") else None
        return {"publish": topic, "qos": qos, "pid": pid, "status": status,
                "body": json.loads(rest.decode("ascii"))}
    names = {4: "puback", 9: "suback", 11: "unsuback", 13: "pingresp"}
    d = {"type": names.get(t, t)}
    if t in (4, 9, 11):
        d["pid"] = struct.unpack(">H", body[:2])[0]
    if t == 9:
        d["granted"] = list(body[2:])
    return d


def emit(d):
    print(json.dumps(d), flush=True)


def next_answer(sock, rid):
    """Reads until the PUBLISH answering rid; acks it (QoS 1)."""
    while True:
        d = describe(*read_packet(sock))
        if "publish" not in d:
            continue
        if d["qos"]:
            sock.sendall(frame(0x40, struct.pack(">H", d["pid"])))
        if ("$rid=%s" % rid) in d["publish"]:
            return d


FIRST_PID = 2


def start_register(a, emit=lambda d: None):
    """Connects as a.regid, subscribes to the answers and publishes the
    register as $rid=r2 (packet id 2) at a.qos; emits the CONNACK and the
    SUBACK.  The socket, or None when the CONNACK refused."""
    sock = open_conn(a)
    try:
        sock.sendall(connect_packet(a))
        d = describe(*read_packet(sock))
        emit(d)
        if d.get("connack") != 0:
            sock.close()
            return None
        sock.sendall(frame(0x82, struct.pack(">H", 1) + s("$dps/registrations/res/#") + bytes([1])))
        emit(describe(*read_packet(sock)))
        body = {"registrationId": a.regid}
        if a.payload:
            body["payload"] = json.loads(a.payload)
        sock.sendall(publish_packet("$dps/registrations/PUT/iotdps-register/?$rid=r%d" % FIRST_PID,
                                    json.dumps(body), a.qos, FIRST_PID))
        return sock
    except BaseException:
        sock.close()
        raise


def cmd_register(a):
    sock = start_register(a, emit)
    if sock is None:
        return 1
    pid = FIRST_PID
    rid = "r%d" % pid
    for _ in range(20):
        d = next_answer(sock, rid)
        emit(d)
        if d["status"] != 202:
            break
        time.sleep(0.2)  # the retry-after is honoured by real SDKs
        pid += 1
        rid = "r%d" % pid
        sock.sendall(publish_packet(
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=%s&operationId=%s"
            % (rid, d["body"]["operationId"]), " ", a.qos, pid))
    sock.sendall(frame(0xE0, b""))
    sock.close()
    return 0 if d["status"] == 200 and d["body"].get("status") == "assigned" else 1


def cmd_probe(a):
    sock = open_conn(a)
    if a.connect_first:
        sock.sendall(connect_packet(a))
        emit(describe(*read_packet(sock)))
    for h in a.send:
        try:
            sock.sendall(bytes.fromhex(h))
        except OSError:
            break
    sock.settimeout(a.wait)
    state = "open"
    try:
        while True:
            emit(describe(*read_packet(sock)))
    except (EOFError, ConnectionResetError, ssl.SSLError):
        state = "closed"
    except socket.timeout:
        state = "open"
    emit({"connection": state})
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["register", "probe"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca")
    p.add_argument("--plain", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--regid", default="dev")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--keepalive", type=int, default=60)
    p.add_argument("--qos", type=int, default=1)
    p.add_argument("--payload")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--connect-first", action="store_true")
    p.add_argument("--send", action="append", default=[])
    p.add_argument("--wait", type=float, default=2)
    a = p.parse_args()
    sys.exit(cmd_register(a) if a.cmd == "register" else cmd_probe(a))


if __name__ == "__main__":
    main()
