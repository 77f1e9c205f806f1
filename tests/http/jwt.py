#!/usr/bin/env python3
"""fleetmcp --http with OAuth Bearer JWTs, end to end.  Tokens are minted
here with test keys (python `cryptography`; the server verifies them with
libcjose): RS256 and ES256 are accepted; expired, not yet valid, wrong
issuer, wrong audience, bad signature, alg none and unknown kid are 401
invalid_token; a missing scope is 403 insufficient_scope (step-up); a
read-only token cannot use a valid approval; the audit rows carry the
token subject, also when the client calls itself mcp-cli.  The keys come
from a JWKS file, then from a JWKS URL this test serves on loopback, which
the server fetches once and caches.  Every wait is bounded.
Usage: jwt.py path/to/fleetmcp"""
import base64
import http.server
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fmhttp import Checks, META, start, stateless  # noqa: E402

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:
    print("FAIL: python3-cryptography is not installed (make deps): it mints the test tokens")
    sys.exit(1)

FM = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/fleetmcp")
CLI = os.path.join(os.path.dirname(FM), "mcp-cli")
tmp = tempfile.mkdtemp(prefix="fm-http-jwt-")
check = Checks("http-auth-jwt")

ISSUER = "https://idp.test/realms/fleet"
AUDIENCE = "http://127.0.0.1/mcp"
ALL = "fleetmcp:read fleetmcp:create fleetmcp:hitl"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n, size=None):
    return b64u(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
rn = RSA.public_key().public_numbers()
en = EC.public_key().public_numbers()
JWKS = {"keys": [
    {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": uint(rn.n), "e": uint(rn.e)},
    {"kty": "EC", "kid": "ec1", "use": "sig", "alg": "ES256", "crv": "P-256",
     "x": uint(en.x, 32), "y": uint(en.y, 32)}]}


def mint(claims=None, alg="RS256", kid="rsa1", key=None, drop=()):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-bot", "client_id": "bot-client",
         "iat": now, "nbf": now - 5, "exp": now + 600, "scope": "fleetmcp:read"}
    c.update(claims or {})
    for k in drop:
        c.pop(k, None)
    hdr = {"alg": alg, "typ": "at+jwt"}
    if kid:
        hdr["kid"] = kid
    signing = (b64u(json.dumps(hdr).encode()) + "." + b64u(json.dumps(c).encode())).encode()
    if alg == "none":
        return signing.decode() + "."
    if alg == "RS256":
        sig = (key or RSA).sign(signing, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature((key or EC).sign(signing, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing.decode() + "." + b64u(sig)


def config(name, jwks, extra=""):
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write("mode: fleet\ntickets:\n  backend: local\n" + extra +
                f"auth:\n  audience: {AUDIENCE}\n  issuer: {ISSUER}\n  jwks: {jwks}\n"
                + APPROVALS)
    return path


def keygen(name):
    out = subprocess.run([CLI, "keygen", "--out", os.path.join(tmp, name + ".key"),
                          "--approver", name], capture_output=True, text=True, timeout=30).stdout
    return re.search(r"public_key:\s*(\S+)", out).group(1)


APPROVALS = f"approvals:\n  keys:\n    - {{id: bob, public_key: \"{keygen('bob')}\"}}\n"


def meta(name):
    m = dict(META)
    m["io.modelcontextprotocol/clientInfo"] = {"name": name, "version": "1"}
    return m


def call(port, tok, tool, args, name="jwt-test"):
    return stateless(port, "tools/call", {"name": tool, "arguments": args, "_meta": meta(name)},
                     {"Authorization": f"Bearer {tok}"})


def text_of(b):
    r = b.get("result", {}) if isinstance(b, dict) else {}
    return r.get("content", [{}])[0].get("text", "") if r else ""


def ok_call(st, b):
    return st == 200 and isinstance(b, dict) and "result" in b and not b["result"].get("isError")


def stop(srv):
    srv.send_signal(signal.SIGTERM)
    try:
        return srv.wait(timeout=15)
    except subprocess.TimeoutExpired:
        srv.kill()
        return srv.wait(timeout=5)


# ---- keys from a JWKS file -----------------------------------------------------------
with open(os.path.join(tmp, "jwks.json"), "w") as f:
    json.dump(JWKS, f)
os.chmod(os.path.join(tmp, "jwks.json"), 0o600)  # the config loader wants file paths private
CFG = config("file", "{file: " + os.path.join(tmp, "jwks.json") + "}")
srv, port = start(FM, CFG, tmp, "jwt.db")

st, _, b = call(port, mint(), "fleet_status", {})
check(ok_call(st, b), f"a valid RS256 token calls fleet_status: {st} {b}")
st, _, b = call(port, mint({"sub": "ec-bot"}, alg="ES256", kid="ec1"), "fleet_status", {})
check(ok_call(st, b), f"a valid ES256 token calls fleet_status: {st} {b}")
st, _, b = call(port, mint({"sub": "self-named"}), "fleet_status", {}, name="mcp-cli")
check(ok_call(st, b), f"a token whose client calls itself mcp-cli is served: {st} {b}")

now = int(time.time())
BAD = [("expired", mint({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}), "expired"),
       ("not yet valid", mint({"nbf": now + 3600}), "not valid for another"),
       ("wrong issuer", mint({"iss": "https://evil.test/"}), "issuer"),
       ("wrong audience", mint({"aud": "https://other.example/mcp"}), "another resource"),
       ("bad signature", mint(key=OTHER_RSA), "signature does not verify"),
       ("alg none", mint(alg="none"), "alg none is refused"),
       ("unknown kid", mint(kid="rsa-unknown"), "no key 'rsa-unknown'"),
       ("no exp", mint(drop=("exp",)), "no exp claim")]
for what, tok, words in BAD:
    st, hd, b = call(port, tok, "fleet_status", {})
    wa = hd.get("www-authenticate", "")
    check(st == 401 and 'error="invalid_token"' in wa and "resource_metadata=" in wa and
          words in wa, f"{what}: 401 invalid_token saying '{words}': {st} {wa!r}")

# A missing scope: 403 step-up naming the scopes to ask for.
st, hd, b = call(port, mint({"sub": "reader"}), "ticket_create",
                 {"summary": "x", "node": "gpu-a01", "fault_class": "gpu_fallen_off_bus"})
wa = hd.get("www-authenticate", "")
check(st == 403 and 'error="insufficient_scope"' in wa and
      'scope="fleetmcp:read fleetmcp:create"' in wa and
      isinstance(b, dict) and b.get("error") == "insufficient_scope",
      f"a read token asking for a create tool gets 403 step-up: {st} {wa!r} {b}")

# A read-only token cannot use a valid approval; the hitl token can.
HITL = mint({"sub": "alice@example.com", "scope": ALL})
st, _, b = call(port, HITL, "killswitch_engage", {"reason": "jwt-drill"})
check(ok_call(st, b), f"a hitl token engages the kill switch: {b}")
st, _, b = call(port, HITL, "killswitch_release", {"reason": "jwt-drill-over"})
m = re.search(r"pl-[0-9a-f]{16}", text_of(b))
check(m is not None, f"release without approval makes a plan: {b}")
plan = m.group(0) if m else "pl-none"
r = subprocess.run([CLI, "--config", CFG, "--format", "json", "approve", plan, "--key",
                    os.path.join(tmp, "bob.key"), "--approver", "bob", "--ttl", "10m", "--yes"],
                   capture_output=True, text=True, timeout=60,
                   env=dict(os.environ, FLEETMCP_DB=os.path.join(tmp, "jwt.db")))
try:
    ap = json.loads(r.stdout)["structuredContent"]["approval_id"]
except (ValueError, KeyError):
    ap = "ap-0000000000000000"
    check(False, f"mcp-cli approve: {r.returncode} {r.stderr}")
args = {"reason": "jwt-drill-over", "approval_id": ap}
st, hd, b = call(port, mint({"sub": "reader"}), "killswitch_release", args)
check(st == 403 and "fleetmcp:hitl" in hd.get("www-authenticate", ""),
      f"a read-only token cannot call a hitl tool with a valid approval: {st} {b}")
st, _, b = call(port, HITL, "killswitch_release", args)
check(ok_call(st, b), f"the hitl token's call runs with the approval: {b}")
check(stop(srv) == 0, "server exits 0")

con = sqlite3.connect(os.path.join(tmp, "jwt.db"))
rows = con.execute("select initiator_kind, initiator_name, os_user from audit"
                   " where tool='fleet_status'").fetchall()
check(sorted(r[1] for r in rows) == ["ec-bot", "self-named", "svc-bot"] and
      all(r[0] == "agent" and r[2] == "jwt:bot-client" for r in rows),
      f"each fleet_status row carries its token's subject: {rows}")
rows = con.execute("select initiator_kind, initiator_name from audit where client_name='mcp-cli'"
                   " and os_user like 'jwt:%'").fetchall()
check(rows == [("agent", "self-named")],
      f"a client calling itself mcp-cli over HTTP is recorded as the token subject: {rows}")
rows = con.execute("select initiator_name, reason, approvers from audit where"
                   " tool='killswitch_release' and phase='intent' and decision='allow'").fetchall()
check(len(rows) == 1 and rows[0][0] == "alice@example.com" and "approved by bob" in rows[0][1]
      and rows[0][2] == "bob",
      f"the released call names the token subject and, in its approvers column, the"
      f" approver: {rows}")
n = con.execute("select count(*) from audit where initiator_name='reader'"
                " and decision='allow'").fetchone()[0]
check(n == 0, f"nothing the read-only token asked beyond its scope ran ({n})")
con.close()


# ---- keys from a JWKS URL on loopback: fetched once, then cached --------------------
class Jwks(http.server.BaseHTTPRequestHandler):
    fetches = 0

    def do_GET(self):
        Jwks.fetches += 1
        body = json.dumps(JWKS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


idp = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
threading.Thread(target=idp.serve_forever, daemon=True).start()
# Each HTTP worker process keeps its own key cache (one fetch per worker),
# so the fetch count is exact with one worker.
CFG2 = config("url", f"{{url: \"http://127.0.0.1:{idp.server_port}/certs\"}}", "http:\n  workers: 1\n")
srv, port = start(FM, CFG2, tmp, "jwt-url.db")
results = [call(port, mint({"sub": f"url-bot-{i}"}, *(("ES256", "ec1") if i % 2 else ())),
                "fleet_status", {}) for i in range(4)]
check(all(ok_call(st, b) for st, _, b in results),
      f"RS256 and ES256 tokens verify against the fetched key set: {[r[0] for r in results]}")
check(Jwks.fetches == 1, f"the key set was fetched once and cached ({Jwks.fetches} fetches)")
st, hd, b = call(port, mint(kid="rsa-unknown"), "fleet_status", {})
check(st == 401 and Jwks.fetches == 1,
      f"an unknown kid is refused without refetching inside min_refresh_s: {st} {Jwks.fetches}")
check(stop(srv) == 0, "server (JWKS URL) exits 0")
idp.shutdown()

if not check.failed:
    shutil.rmtree(tmp, ignore_errors=True)
check.finish()
