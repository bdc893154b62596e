"""IdP metadata: fetch it safely from the URL the tenant admin gives us, and read what sign-in needs from it.

We keep the IdP's entity ID, its single sign-on URL and EVERY signing certificate (during a rollover Entra
publishes the old and the new one; the assertion consumer accepts either). The metadata's own signature is not
checked: like every SAML SP we trust the metadata because the tenant admin gave it to us over HTTPS or pasted it.

The fetch is an SSRF surface (the URL is user input and the server fetches it), so: HTTPS only, every address
the host resolves to must be public, every redirect hop is checked again, the address actually connected to is
checked once more (DNS rebinding), and the body is capped and time-boxed. `allow_private` exists only for
local development (ALLOW_PRIVATE_METADATA_URLS).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import MetadataError
from .safe_xml import NS_DS, NS_MD, UntrustedXmlError, parse_untrusted

MAX_METADATA_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
_ENTRA_ENTITY_ID = re.compile(
    r"^https://sts\.windows\.net/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$", re.IGNORECASE
)
_MD = "{%s}" % NS_MD
_DS = "{%s}" % NS_DS


@dataclass(frozen=True)
class SigningCertificate:
    """One IdP signing certificate. `der_b64` is the certificate itself; `sha256` is the hex SHA-256 of the DER."""

    der_b64: str
    sha256: str
    not_after: datetime


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_url: str
    certificates: list[SigningCertificate] = field(default_factory=list)
    entra_tenant_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the caller to store (datetimes as ISO 8601 UTC)."""
        data = asdict(self)
        for cert in data["certificates"]:
            cert["not_after"] = cert["not_after"].isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IdpMetadata":
        return cls(
            entity_id=data["entity_id"],
            sso_url=data["sso_url"],
            certificates=[
                SigningCertificate(c["der_b64"], c["sha256"], datetime.fromisoformat(c["not_after"]))
                for c in data["certificates"]
            ],
            entra_tenant_id=data.get("entra_tenant_id"),
        )


def entra_tenant_id_of(entity_id: str) -> str | None:
    """The Entra tenant GUID in an entity ID of the form https://sts.windows.net/<guid>/, else None."""
    match = _ENTRA_ENTITY_ID.match(entity_id)
    return match.group(1).lower() if match else None


# ---------------------------------------------------------------- parsing

def parse_idp_metadata(xml: bytes, now: datetime) -> IdpMetadata:
    """Read IdP metadata (an EntityDescriptor, or an EntitiesDescriptor holding exactly one IdP)."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    if len(xml) > MAX_METADATA_BYTES:
        raise MetadataError("The metadata is larger than 1 MiB; this is not the federation metadata of one IdP.")
    if not xml.strip():
        raise MetadataError("The metadata is empty. Paste the Federation Metadata XML downloaded from Entra.")
    try:
        root = parse_untrusted(xml)
    except UntrustedXmlError as exc:
        if exc.kind == "doctype_forbidden":
            raise MetadataError("The metadata contains a DOCTYPE declaration, which SAML metadata never needs; "
                                "it was refused for safety.") from None
        raise MetadataError(f"This is not XML ({exc.detail}). Paste the Federation Metadata XML downloaded "
                            "from Entra's Single sign-on page, or give its App Federation Metadata Url.") from None

    entity = _the_idp_entity(root)
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id or len(entity_id) > 1024:
        raise MetadataError("The metadata's EntityDescriptor has no entityID.")
    valid_until = entity.get("validUntil") or root.get("validUntil")
    if valid_until:
        from .timestamps import parse_instant

        expires = parse_instant(valid_until)
        if expires is not None and expires <= now:
            raise MetadataError(f"This metadata expired on {expires:%Y-%m-%d %H:%M} UTC (validUntil). "
                                "Download fresh metadata from the IdP.")
    descriptor = _idp_descriptor(entity)
    certificates = _signing_certificates(descriptor)
    if not certificates:
        raise MetadataError("The metadata has no signing certificate (no KeyDescriptor with an X509Certificate "
                            "in the IDPSSODescriptor), so no sign-in could ever be verified.")
    if all(cert.not_after <= now for cert in certificates):
        latest = max(cert.not_after for cert in certificates)
        raise MetadataError(f"Every signing certificate in this metadata has expired (the latest on "
                            f"{latest:%Y-%m-%d}). In Entra, create a new SAML signing certificate, make it active, "
                            "and then upload the new metadata.")
    return IdpMetadata(
        entity_id=entity_id,
        sso_url=_sso_url(descriptor),
        certificates=certificates,
        entra_tenant_id=entra_tenant_id_of(entity_id),
    )


def _the_idp_entity(root):
    if root.tag == _MD + "EntityDescriptor":
        return root
    if root.tag == _MD + "EntitiesDescriptor":
        idps = [e for e in root.iter(_MD + "EntityDescriptor") if e.find(_MD + "IDPSSODescriptor") is not None]
        if len(idps) == 1:
            return idps[0]
        if not idps:
            raise MetadataError("The metadata describes no identity provider (no IDPSSODescriptor).")
        raise MetadataError(f"The metadata describes {len(idps)} identity providers; give the metadata of "
                            "just one (in Entra: the enterprise application's Federation Metadata XML).")
    name = root.tag.rsplit("}", 1)[-1] if isinstance(root.tag, str) else "?"
    hint = " It looks like an HTML page." if name.lower() == "html" else ""
    raise MetadataError(f"This is not SAML metadata: the document is a <{name}>, not an EntityDescriptor.{hint} "
                        "Use the App Federation Metadata Url from the Single sign-on page of the application in Entra.")


def _idp_descriptor(entity):
    descriptors = entity.findall(_MD + "IDPSSODescriptor")
    if not descriptors:
        if entity.find(_MD + "SPSSODescriptor") is not None:
            raise MetadataError("This is the metadata of a service provider, not of an identity provider. "
                                "Give the metadata that Entra publishes for the application, not ours.")
        raise MetadataError("The metadata has no IDPSSODescriptor: it does not describe a SAML identity provider.")
    for descriptor in descriptors:
        if SAML2_PROTOCOL in (descriptor.get("protocolSupportEnumeration") or "").split():
            return descriptor
    raise MetadataError("The identity provider in this metadata does not support SAML 2.0.")


def _signing_certificates(descriptor) -> list[SigningCertificate]:
    from cryptography import x509  # only the admin's metadata upload pays for this import

    found: dict[str, SigningCertificate] = {}
    for index, key_descriptor in enumerate(descriptor.findall(_MD + "KeyDescriptor"), start=1):
        if key_descriptor.get("use", "signing") != "signing":  # no `use` means both signing and encryption
            continue
        for node in key_descriptor.iter(_DS + "X509Certificate"):
            text = "".join((node.text or "").split())
            try:
                der = base64.b64decode(text, validate=True)
                certificate = x509.load_der_x509_certificate(der)
                not_after = certificate.not_valid_after_utc
            except (binascii.Error, ValueError) as exc:
                raise MetadataError(f"Signing certificate #{index} in the metadata is malformed ({_short(exc)}). "
                                    "Download the metadata again; do not edit it by hand.") from None
            digest = hashlib.sha256(der).hexdigest()
            found.setdefault(digest, SigningCertificate(base64.b64encode(der).decode(), digest, not_after))
    return list(found.values())


def _sso_url(descriptor) -> str:
    services = {s.get("Binding"): (s.get("Location") or "").strip() for s in descriptor.findall(_MD + "SingleSignOnService")}
    for binding in (BINDING_REDIRECT, BINDING_POST):
        location = services.get(binding)
        if location:
            parts = urlsplit(location)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise MetadataError(f"The single sign-on URL {location[:200]!r} is not an http(s) URL.")
            return location
    raise MetadataError("The metadata has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding.")


def _short(exc: Exception) -> str:
    return (str(exc).splitlines() or [exc.__class__.__name__])[0][:160]


# ---------------------------------------------------------------- fetching

def fetch_idp_metadata(url: str, *, allow_private: bool, timeout: float = 10) -> bytes:
    """GET the metadata at `url`, refusing anything but a public HTTPS server (see the module docstring)."""
    import requests  # only the admin's metadata check pays for this import

    deadline = time.monotonic() + timeout
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment: we check the peer we talk to
    adapter = _checked_adapter(allow_private)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    current = url.strip() if isinstance(url, str) else ""
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            host = _check_url(current, allow_private)
            remaining = max(0.1, deadline - time.monotonic())
            try:
                response = session.get(current, allow_redirects=False, stream=True, timeout=(remaining, remaining),
                                       headers={"Accept": "application/samlmetadata+xml, application/xml, text/xml"})
            except _RefusedPeer as exc:
                raise MetadataError(str(exc)) from None
            except requests.exceptions.SSLError:
                raise MetadataError(f"Could not reach {host}: its TLS certificate could not be verified.") from None
            except requests.exceptions.Timeout:
                raise MetadataError(f"Could not reach {host}: no answer within {timeout:g} seconds.") from None
            except requests.exceptions.RequestException as exc:
                raise MetadataError(f"Could not reach {host}: {_connection_reason(exc)}.") from None
            with response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    if not location:
                        raise MetadataError(f"The server at {host} answered {response.status_code} without a Location.")
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise MetadataError(f"The server answered {response.status_code} {response.reason or ''} for "
                                        f"{_display(current)}. Check the App Federation Metadata Url in Entra.".replace("  ", " "))
                return _read_capped(response, deadline, host, timeout)
        raise MetadataError(f"Too many redirects (more than {MAX_REDIRECTS}) fetching {_display(url)}.")
    finally:
        session.close()


def _read_capped(response, deadline: float, host: str, timeout: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_METADATA_BYTES:
        raise MetadataError("The metadata is larger than 1 MiB; this is not the federation metadata of one IdP.")
    body = bytearray()
    try:
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > MAX_METADATA_BYTES:
                raise MetadataError("The metadata is larger than 1 MiB; this is not the federation metadata of one IdP.")
            if time.monotonic() > deadline:
                raise MetadataError(f"Could not reach {host}: the download took longer than {timeout:g} seconds.")
    except MetadataError:
        raise
    except Exception as exc:  # requests wraps socket errors in several ways while streaming
        raise MetadataError(f"Could not reach {host}: the download failed ({_short(exc)}).") from None
    data = bytes(body)
    sniff = data[:512].lstrip().lower()
    content_type = (response.headers.get("Content-Type") or "").lower()
    if "text/html" in content_type or sniff.startswith((b"<!doctype html", b"<html")):
        raise MetadataError("This is not SAML metadata: the URL returned a web page. Use the App Federation "
                            "Metadata Url from the Single sign-on page of the application in Entra.")
    if not sniff.startswith(b"<"):
        raise MetadataError("This is not SAML metadata: the URL did not return XML.")
    return data


def _display(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"[:200]


def _check_url(url: str, allow_private: bool) -> str:
    """Refuse a URL we must not fetch; return its host. Used for the first URL and every redirect hop."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise MetadataError("The metadata URL is not a valid URL.") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise MetadataError(f"The metadata URL must use {' or '.join(s + '://' for s in allowed)} (got {got}).")
    host = parts.hostname
    if not host:
        raise MetadataError("The metadata URL has no host name.")
    if parts.username or parts.password:
        raise MetadataError("The metadata URL must not contain a user name or password.")
    if allow_private:
        return host
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise MetadataError(f"Could not reach {host}: the host name does not resolve.") from None
    for info in infos:
        address = info[4][0]
        if not is_public_address(address):
            raise MetadataError(f"Refused to fetch metadata from {host}: it resolves to {address}, which is a "
                                "private, loopback, link-local or reserved address.")
    return host


def is_public_address(address: str) -> bool:
    """True only for a globally routable unicast address (IPv4-mapped IPv6 is judged as the IPv4 inside)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not (ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
                                      or ip.is_reserved or ip.is_unspecified)


class _RefusedPeer(Exception):
    """Not an OSError on purpose: urllib3 would retry or wrap those; this must reach fetch_idp_metadata as is."""


def _checked_adapter(allow_private: bool):
    """A requests adapter whose connections re-check the address they actually connected to."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def check(sock):
        if allow_private:
            return
        peer = sock.getpeername()[0]
        if not is_public_address(peer):
            sock.close()
            raise _RefusedPeer(f"Refused to fetch metadata: the server's address {peer} is private or reserved.")

    class CheckedHTTPConnection(HTTPConnection):
        def _new_conn(self):
            sock = super()._new_conn()
            check(sock)
            return sock

    class CheckedHTTPSConnection(HTTPSConnection):
        def _new_conn(self):
            sock = super()._new_conn()
            check(sock)
            return sock

    class CheckedHTTPPool(HTTPConnectionPool):
        ConnectionCls = CheckedHTTPConnection

    class CheckedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPSConnection

    class CheckedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}

    return CheckedAdapter(max_retries=0)


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
        return "the host name does not resolve"
    if "Connection refused" in text:
        return "the connection was refused"
    return "the connection failed"
