"""Small pieces the e2e helper scripts share: DPS SAS tokens, whether a
server closed a socket, and a process's resident memory."""
import base64
import hashlib
import hmac
import ssl
import time
import urllib.parse


def b64hmac(key_b64, text):
    """base64 HMAC-SHA256 of text under a base64 key (also how a group
    member's key is derived: b64hmac(group_key, registration_id))."""
    mac = hmac.new(base64.b64decode(key_b64), text.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def sas(resource, key_b64, name=None):
    """A SharedAccessSignature for resource, valid one hour; signed over
    sr exactly as sent (URL-encoded).  skn defaults to registration."""
    se = int(time.time()) + 3600
    sr = urllib.parse.quote(resource, safe="")
    sig = b64hmac(key_b64, "%s\n%d" % (sr, se))
    tok = "SharedAccessSignature sr=%s&sig=%s&se=%d" % (
        sr, urllib.parse.quote(sig, safe=""), se)
    return tok + "&skn=%s" % (name or "registration")


def closed_by_server(s):
    """Whether the peer closed s (a plain or a TLS socket), without
    waiting: leaves s non-blocking."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:  # a reset, or ssl.SSLError
        return True


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1
