#!/usr/bin/python3
"""A small SAML service provider built on pysaml2 (Debian python3-pysaml2)
for .ci/saml-sps.sh: it asks ElevID to log a pupil in (HTTP-Redirect),
requires a signed response and signed assertions, decrypts the assertion
with its own key (pysaml2 runs xmlsec1), and shows what it received.

Usage: pysaml2_sp.py PORT DIR   (DIR holds sp.key, sp.crt and idp.xml)

GET  /metadata  the SP's metadata (encryption and signing key)
GET  /login     starts a login
POST /acs       the assertion consumer service: one "NAME=VALUE" line per
                attribute value, or the refusal status the IdP sent
"""
import html
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.response import StatusError
from saml2.saml import NAMEID_FORMAT_PERSISTENT

port, work = int(sys.argv[1]), sys.argv[2]
base = f"http://localhost:{port}"
config = SPConfig()
config.load({
    "entityid": f"{base}/metadata",
    "service": {"sp": {
        "endpoints": {"assertion_consumer_service": [(f"{base}/acs", BINDING_HTTP_POST)]},
        "allow_unsolicited": False,
        "authn_requests_signed": True,
        "want_response_signed": True,
        "want_assertions_signed": True,
        "name_id_format": NAMEID_FORMAT_PERSISTENT,
        # ElevID refuses SHA-1 signatures (pysaml2's default).
        "signing_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
    }},
    "metadata": {"local": [f"{work}/idp.xml"]},
    "key_file": f"{work}/sp.key",
    "cert_file": f"{work}/sp.crt",
    "encryption_keypairs": [{"key_file": f"{work}/sp.key", "cert_file": f"{work}/sp.crt"}],
    "xmlsec_binary": "/usr/bin/xmlsec1",
    "allow_unknown_attributes": True,
})
client = Saml2Client(config)
outstanding = {}  # request id -> where to go after login


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/metadata":
            return self.reply(200, str(entity_descriptor(config)))
        if self.path == "/login":
            idp = next(iter(client.metadata.identity_providers()))
            reqid, info = client.prepare_for_authenticate(entityid=idp, relay_state="/after", binding=BINDING_HTTP_REDIRECT)
            outstanding[reqid] = "/after"
            return self.reply(303, "", [h for h in info["headers"] if h[0] == "Location"])
        return self.reply(404, "not found")

    def do_POST(self):
        if self.path != "/acs":
            return self.reply(404, "not found")
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        try:
            resp = client.parse_authn_request_response(form["SAMLResponse"][0], BINDING_HTTP_POST, outstanding)
        except StatusError as e:
            return self.reply(403, f"pysaml2 SP: the identity provider refused the login: {type(e).__name__}: {e}\n")
        except Exception as e:  # anything else is a failure the test must see
            return self.reply(500, f"pysaml2 SP: response rejected: {type(e).__name__}: {html.escape(str(e))}\n")
        lines = ["pysaml2 SP: logged in", f"NAME_ID={resp.name_id.text}", f"RelayState={form.get('RelayState', [''])[0]}"]
        for info in resp.authn_info():  # (class ref, authorities, instant)
            lines.append(f"AUTHN_CONTEXT={info[0]}")
        for name, values in sorted(resp.get_identity().items()):
            lines += [f"{name}={v}" for v in values]
        return self.reply(200, "\n".join(lines) + "\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("pysaml2 SP: " + (fmt % args) + "\n")


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
