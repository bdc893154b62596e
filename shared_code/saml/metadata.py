"""IdP metadata: fetch it safely from the URL the tenant admin gives us, and read what sign-in needs from it.

We keep the IdP's entity ID, its single sign-on URL and EVERY signing certificate (during a rollover Entra
publishes the old and the new one; the assertion consumer accepts either). The metadata's own signature is not
checked: like every SAML SP we trust the metadata because the tenant admin gave it to us over HTTPS or pasted it.

The fetch is an SSRF surface (the URL is user input and the server fetches it): it goes through
`shared_code.platform.outbound`, the one policy every call out follows. `allow_private` exists only for local
development (ALLOW_PRIVATE_METADATA_URLS).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

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
    slo_url: str | None = None  # SingleLogoutService (HTTP-Redirect): where a LogoutRequest goes

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
            slo_url=data.get("slo_url"),
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
        slo_url=_slo_url(descriptor),
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


def _slo_url(descriptor) -> str | None:
    """The IdP's SingleLogoutService for the HTTP-Redirect binding (Entra lists only that one), if any."""
    for service in descriptor.findall(_MD + "SingleLogoutService"):
        location = (service.get("Location") or "").strip()
        if service.get("Binding") == BINDING_REDIRECT and location:
            parts = urlsplit(location)
            if parts.scheme in ("https", "http") and parts.hostname:
                return location
    return None


def _short(exc: Exception) -> str:
    return (str(exc).splitlines() or [exc.__class__.__name__])[0][:160]


# ---------------------------------------------------------------- fetching

def fetch_idp_metadata(url: str, *, allow_private: bool, timeout: float = 10) -> bytes:
    """GET the metadata at `url` under the outbound policy (`shared_code.platform.outbound`: public HTTPS only, checked
    redirects, a real overall deadline), and make sure what came back looks like XML metadata."""
    from shared_code.platform import outbound

    try:
        answer = outbound.request("GET", url, what="The metadata URL", timeout=timeout, max_redirects=MAX_REDIRECTS,
                                  max_bytes=MAX_METADATA_BYTES, allow_private=allow_private,
                                  headers={"Accept": "application/samlmetadata+xml, application/xml, text/xml"})
    except outbound.OutboundError as error:
        message = error.message
        if "is larger than" in message:
            message = "The metadata is larger than 1 MiB; this is not the federation metadata of one IdP."
        raise MetadataError(message) from None
    if answer.status != 200:
        raise MetadataError(f"The server answered {answer.status} {answer.reason} for {outbound.display(answer.url)}. "
                            "Check the App Federation Metadata Url in Entra.".replace("  ", " "))
    data = answer.body
    sniff = data[:512].lstrip().lower()
    content_type = answer.headers.get("content-type", "").lower()
    if "text/html" in content_type or sniff.startswith((b"<!doctype html", b"<html")):
        raise MetadataError("This is not SAML metadata: the URL returned a web page. Use the App Federation "
                            "Metadata Url from the Single sign-on page of the application in Entra.")
    if not sniff.startswith(b"<"):
        raise MetadataError("This is not SAML metadata: the URL did not return XML.")
    return data
