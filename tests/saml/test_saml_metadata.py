"""IdP metadata: parsing Entra-shaped documents (rollover, expiry, garbage) and fetching them safely."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared_code.saml.errors import MetadataError
from shared_code.saml.metadata import IdpMetadata, fetch_idp_metadata, parse_idp_metadata
from shared_code.saml.service_provider import sp_metadata_xml
from tests.support import deadlines
from tests.support import idp as tidp
from tests.support.idp import TestIdp

NOW = dt.datetime.now(dt.timezone.utc)


def error_of(xml, now=NOW) -> str:
    with pytest.raises(MetadataError) as info:
        parse_idp_metadata(xml, now)
    assert info.value.status == 422
    return info.value.message


# ---------------------------------------------------------------- parsing

def test_entra_metadata(idp):
    md = parse_idp_metadata(idp.metadata_xml(), NOW)
    assert md.entity_id == f"https://sts.windows.net/{idp.entra_tenant_id}/"
    assert md.entra_tenant_id == idp.entra_tenant_id
    assert md.sso_url == f"https://login.microsoftonline.com/{idp.entra_tenant_id}/saml2"
    [cert] = md.certificates
    assert cert.der_b64 == idp.identity.cert_b64
    assert cert.sha256 == hashlib.sha256(idp.identity.cert_der).hexdigest()
    assert cert.not_after == idp.identity.not_after and cert.not_after.tzinfo is not None


def test_post_binding_when_there_is_no_redirect(idp):
    md = parse_idp_metadata(idp.metadata_xml(sso_bindings=(tidp.BINDING_POST,)), NOW)
    assert md.sso_url == idp.sso_url
    assert "no SingleSignOnService" in error_of(idp.metadata_xml(sso_bindings=()))


def test_two_certificates_during_rollover_are_all_kept(idp):
    new = TestIdp(key_label="metadata-rollover")
    md = parse_idp_metadata(idp.metadata_xml(extra_certs=[new.identity, idp.identity.cert_b64]), NOW)
    assert [c.sha256 for c in md.certificates] == [idp.identity.sha256, new.identity.sha256]  # duplicates once


def test_expired_certificate_is_kept_next_to_a_valid_one(idp):
    old = TestIdp(expired_certificate=True)
    md = parse_idp_metadata(idp.metadata_xml(extra_certs=[old.identity]), NOW)
    assert len(md.certificates) == 2


def test_every_certificate_expired():
    old = TestIdp(expired_certificate=True)
    message = error_of(old.metadata_xml(sign_metadata=False))
    assert "expired" in message and "new SAML signing certificate" in message


def test_no_signing_certificate(idp):
    assert "no signing certificate" in error_of(idp.metadata_xml(include_own_certificate=False, sign_metadata=False))


def test_malformed_certificate(idp):
    bad_b64 = idp.metadata_xml(extra_certs=["not*base64"], sign_metadata=False)
    assert "malformed" in error_of(bad_b64)
    not_a_cert = idp.metadata_xml(extra_certs=[base64.b64encode(b"hello").decode()], sign_metadata=False)
    assert "#" in error_of(not_a_cert) and "malformed" in error_of(not_a_cert)


@pytest.mark.parametrize("garbage,expected", [
    (b"", "empty"),
    (b"hello", "not XML"),
    (b"<html><body>Sign in</body></html>", "not SAML metadata"),
    (b"<a:EntityDescriptor xmlns:a='urn:x'/>", "not SAML metadata"),
    (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "DOCTYPE"),
    (b"<EntityDescriptor xmlns='urn:oasis:names:tc:SAML:2.0:metadata' entityID='x'/>", "no IDPSSODescriptor"),
    (b"<x>" + b"a" * (1024 * 1024) + b"</x>", "larger than 1 MiB"),
])
def test_garbage(garbage, expected):
    assert expected in error_of(garbage)


def test_our_own_sp_metadata_is_recognised_as_the_wrong_side(sp):
    assert "service provider" in error_of(sp_metadata_xml(sp).encode())


def test_entities_descriptor_with_one_idp_and_a_non_entra_entity_id():
    other = TestIdp(entity_id="https://idp.example.org/saml", key_label="generic-idp")
    inner = other.metadata_xml(sign_metadata=False).split(b"?>", 1)[1]
    wrapped = b"<EntitiesDescriptor xmlns='urn:oasis:names:tc:SAML:2.0:metadata'>" + inner + b"</EntitiesDescriptor>"
    md = parse_idp_metadata(wrapped, NOW)
    assert md.entity_id == "https://idp.example.org/saml" and md.entra_tenant_id is None
    two = b"<EntitiesDescriptor xmlns='urn:oasis:names:tc:SAML:2.0:metadata'>" + inner + inner + b"</EntitiesDescriptor>"
    assert "2 identity providers" in error_of(two)


def test_valid_until_in_the_past(idp):
    xml = idp.metadata_xml(sign_metadata=False).replace(b"entityID=", b'validUntil="2020-01-01T00:00:00Z" entityID=', 1)
    assert "expired on 2020-01-01" in error_of(xml)


def test_round_trip_for_storage(metadata):
    assert IdpMetadata.from_dict(metadata.to_dict()) == metadata


# ---------------------------------------------------------------- fetching

class _Handler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        routes = {
            "/metadata": (200, {"Content-Type": "application/samlmetadata+xml"}, self.body),
            "/redirect": (302, {"Location": "/hop2"}, b""),
            "/hop2": (301, {"Location": "/metadata"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
            "/missing": (404, {}, b"nope"),
            "/html": (200, {"Content-Type": "text/html"}, b"<!DOCTYPE html><html>login</html>"),
            "/big": (200, {"Content-Type": "application/xml"}, b"<x>" + b"a" * (1024 * 1024 + 10) + b"</x>"),
        }
        if self.path == "/slow":
            time.sleep(2)
            routes["/slow"] = (200, {}, b"<x/>")
        if self.path == "/trickle":  # headers at once, then a byte every 0.4 s for a minute: never idle long
            self.send_response(200)   # enough for a per-read timeout
            self.send_header("Content-Type", "application/xml")
            self.end_headers()
            try:
                for _ in range(150):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.4)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.path == "/big":  # no Content-Length: the cap must hold while streaming
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading at the cap, as it should
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client that refused the connection or timed out

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(idp):
    _Handler.body = idp.metadata_xml()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch_error(url, allow_private, **kw) -> str:
    with pytest.raises(MetadataError) as info:
        fetch_idp_metadata(url, allow_private=allow_private, **kw)
    return info.value.message


def test_fetch_from_a_local_server_when_private_is_allowed(server, idp):
    data = fetch_idp_metadata(server + "/metadata", allow_private=True)
    assert parse_idp_metadata(data, NOW).entity_id == idp.entity_id


def test_fetch_follows_at_most_three_redirects(server, idp):
    assert fetch_idp_metadata(server + "/redirect", allow_private=True) == _Handler.body
    assert "Too many redirects" in fetch_error(server + "/loop", True)


def test_every_redirect_hop_is_checked(server):
    assert "must use https:// or http://" in fetch_error(server + "/to-file", True)


def test_fetch_errors_say_what_happened(server):
    assert "answered 404" in fetch_error(server + "/missing", True)
    assert "not SAML metadata" in fetch_error(server + "/html", True)
    assert "larger than 1 MiB" in fetch_error(server + "/big", True)
    assert "no answer within 0.5 seconds" in fetch_error(server + "/slow", True, timeout=0.5)
    closed = server.rsplit(":", 1)[0] + ":9"  # discard port on loopback: nothing listens
    assert fetch_error(closed + "/x", True).startswith("Could not reach 127.0.0.1")


def test_https_only_unless_private_is_allowed(server):
    assert "must use https://" in fetch_error(server + "/metadata", False)
    assert "must use https://" in fetch_error("ftp://example.com/metadata.xml", False)
    assert "user name or password" in fetch_error("https://user:pw@example.com/metadata.xml", False)


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/metadata",
    "https://169.254.169.254/metadata/instance",
    "https://10.0.0.1/federationmetadata.xml",
    "https://[::1]/metadata",
    "https://[::ffff:10.0.0.1]/metadata",
    "https://localhost/metadata",
    "https://0.0.0.0/metadata",
])
def test_private_addresses_are_refused_before_connecting(url):
    message = fetch_error(url, False)
    assert message.startswith("Refused to call") and "not public" in message
    for internal in ("127.0.0.1", "169.254.169.254", "10.0.0.1", "::1", "0.0.0.0"):
        assert f"resolves to {internal}" not in message  # the refusal never reveals what a host resolved to


def test_a_trickling_server_is_cut_off_at_the_deadline(server):
    """A byte every 0.4 s never trips a per-read timeout; the overall deadline still ends the fetch."""
    deadline = 1.5
    started = time.monotonic()
    message = fetch_error(server + "/trickle", True, timeout=deadline)
    elapsed = time.monotonic() - started
    assert f"longer than {deadline:g} seconds" in message
    assert elapsed < deadlines.bound(deadline), f"the fetch ran {elapsed:.1f} s; the server trickles for 60 s"


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.1", False), ("100.64.0.1", False), ("127.0.0.1", False), ("169.254.169.254", False),
    ("224.0.0.1", False), ("255.255.255.255", False), ("::ffff:127.0.0.1", False), ("fe80::1", False),
    ("fd00::1", False), ("not-an-ip", False),
    ("168.63.129.16", False),                   # Azure's platform address (WireServer)
    ("2002:7f00:1::", False), ("2002:0808:0808::", False),  # 6to4 carries an IPv4 inside: refused outright
    ("2001:0:4136:e378::1", False),             # Teredo
    ("64:ff9b::a00:1", False),                  # NAT64 of 10.0.0.1
])
def test_public_address_classification(address, public):
    from shared_code.platform.outbound import is_public_address
    assert is_public_address(address) is public
