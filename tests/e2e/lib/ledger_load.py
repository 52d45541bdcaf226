#!/usr/bin/env python3
"""Load for the crash-ledger test (tests/e2e/crash_ledger.sh): enrollment
writes over the service API and device registrations over the device API,
kept up while provd is killed and restarted.  Every write provd
acknowledged is a line in --ledger:

  enroll ID      PUT /enrollments/ID answered 200 (or 201)
  disable ID     PUT /enrollments/ID with provisioningStatus disabled, 200
  register ID    PUT /{scope}/registrations/ID/register answered 202
  register-mqtt ID  the same register over DPS MQTT (--mqtt-port: a third
                 of the registrations), its res/202 answer received

Refused connections and 5xx are retried after a short pause; the script
stops after --seconds or when --stop-file appears.
"""
import argparse
import base64
import http.client
import json
import os
import random
import ssl
import time
from types import SimpleNamespace

from mqtt_peer import FIRST_PID, next_answer, start_register
from testkit import sas

API = "api-version=2021-10-01"
DEV_API = "api-version=2021-06-01"


class Client:
    def __init__(self, port, ca):
        self.port, self.ctx, self.conn = port, ssl.create_default_context(cafile=ca), None

    def call(self, method, path, body, headers):
        """(status, body) or (None, None) when provd is not reachable."""
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection(
                        "localhost", self.port, context=self.ctx, timeout=10)
                self.conn.request(method, path, body, headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn = None
        return None, None


def mqtt_register(a, rid, token):
    """The status of provd's answer to a register over MQTT, or None when
    provd was not reachable or refused the CONNECT (it is restarting)."""
    peer = SimpleNamespace(port=a.mqtt_port, ca=a.ca, plain=False, cert=None,
                           key=None, timeout=10, regid=rid, password=token,
                           keepalive=60, qos=1, payload=None,
                           user="%s/registrations/%s/%s" % (a.scope, rid, DEV_API))
    try:
        sock = start_register(peer)
        if sock is None:
            return None
        try:
            return next_answer(sock, "r%d" % FIRST_PID)["status"]
        finally:
            sock.close()
    except (OSError, EOFError, ValueError):  # ssl.SSLError is an OSError
        return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--scope", required=True)
    p.add_argument("--conn-string", required=True)
    p.add_argument("--ledger", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--mqtt-port", type=int)
    a = p.parse_args()
    cs = dict(kv.split("=", 1) for kv in open(a.conn_string).read().strip().split(";"))
    admin = {"Content-Type": "application/json; charset=utf-8"}
    client = Client(a.port, a.ca)
    ledger = open(a.ledger, "a")
    keys = {}          # enrolled id -> primary key
    n = 0
    end = time.time() + a.seconds
    while time.time() < end and not os.path.exists(a.stop_file):
        admin["Authorization"] = sas(cs["HostName"], cs["SharedAccessKey"],
                                     cs["SharedAccessKeyName"])
        choice = random.random()
        if choice < 0.4 or not keys:          # a new enrollment
            rid = "led-%05d" % n
            n += 1
            key = base64.b64encode(os.urandom(32)).decode()
            doc = {"registrationId": rid,
                   "attestation": {"type": "symmetricKey", "symmetricKey": {
                       "primaryKey": key,
                       "secondaryKey": base64.b64encode(os.urandom(32)).decode()}}}
            st, _ = client.call("PUT", "/enrollments/%s?%s" % (rid, API),
                                json.dumps(doc), admin)
            if st in (200, 201):
                keys[rid] = key
                ledger.write("enroll %s\n" % rid)
        elif choice < 0.9:                    # a device registers
            rid = random.choice(list(keys))
            tok = sas("%s/registrations/%s" % (a.scope, rid), keys[rid])
            if a.mqtt_port and random.random() < 1 / 3:
                st = mqtt_register(a, rid, tok)
                if st == 202:
                    ledger.write("register-mqtt %s\n" % rid)
            else:
                st, _ = client.call(
                    "PUT", "/%s/registrations/%s/register?%s" % (a.scope, rid, DEV_API),
                    json.dumps({"registrationId": rid}),
                    {"Content-Type": "application/json", "Authorization": tok})
                if st == 202:
                    ledger.write("register %s\n" % rid)
        else:                                 # an enrollment is disabled
            rid = random.choice(list(keys))
            st, body = client.call("GET", "/enrollments/%s?%s" % (rid, API), None, admin)
            if st == 200:
                doc = json.loads(body)
                doc["provisioningStatus"] = "disabled"
                st, _ = client.call("PUT", "/enrollments/%s?%s" % (rid, API),
                                    json.dumps(doc), admin)
                if st == 200:
                    ledger.write("disable %s\n" % rid)
                    del keys[rid]
        ledger.flush()
        if st is None or (st and st >= 500):
            time.sleep(0.05)          # provd is restarting


if __name__ == "__main__":
    main()
