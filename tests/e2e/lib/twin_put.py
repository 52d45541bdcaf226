#!/usr/bin/env python3
"""One HTTPS request sent to two provd instances at the same moment, for
the race checks of tests/e2e/scale_out.sh.  Both connections are opened
and given all of the request but its last byte; then both last bytes go
out together, so the instances work on the two requests at once instead
of whenever two background curls happen to start.

  twin_put.py --ca CA --path PATH --body JSON --auth TOKEN PORT:OUT PORT:OUT

Each OUT gets the answer's body and OUT.status its HTTP status (000 when
none arrived), as multi.bash's curl_to writes them.
"""
import argparse
import socket
import ssl
import threading


def read_answer(sock):
    """(status, body) of one HTTP/1.1 answer with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        body += chunk
    return lines[0].split(" ", 2)[1], body[:length]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ca", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--auth", required=True)
    p.add_argument("targets", nargs=2, metavar="PORT:OUT")
    a = p.parse_args()
    body = a.body.encode()
    request = ("PUT %s HTTP/1.1\r\nHost: localhost\r\n"
               "Content-Type: application/json; charset=utf-8\r\n"
               "Authorization: %s\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n" % (a.path, a.auth, len(body))).encode() + body
    ctx = ssl.create_default_context(cafile=a.ca)
    conns = []
    for target in a.targets:
        port, out = target.split(":", 1)
        raw = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(request[:-1])
        conns.append((sock, out))
    together = threading.Barrier(len(conns))

    def finish(sock, out):
        status, answer = "000", b""
        together.wait()
        try:
            sock.sendall(request[-1:])
            status, answer = read_answer(sock)
        except (OSError, EOFError, ValueError, IndexError):
            pass
        finally:
            sock.close()
        with open(out, "wb") as f:
            f.write(answer)
        with open(out + ".status", "w") as f:
            f.write(status)

    threads = [threading.Thread(target=finish, args=c) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
