"""Our side of the SAML trust: the service provider's identity, its metadata, and the AuthnRequest we send.

pysaml2's schema classes (saml2.md, saml2.samlp) generate both documents, so they are schema-correct by
construction; pysaml2's Config/Client machinery is not used (it needs the xmlsec1 program and a metadata store).
These imports are done on first call: only the metadata and login endpoints pay for them (~0.1 s once).
"""
from __future__ import annotations

import base64
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from .metadata import IdpMetadata

NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
MAX_RELAY_STATE_BYTES = 80  # SAML bindings 3.4.3: RelayState "MUST NOT exceed 80 bytes"


@dataclass(frozen=True)
class ServiceProvider:
    """One customer tenant's SP: its entity ID and its ACS URL (both built from PUBLIC_BASE_URL by the caller)."""

    entity_id: str
    acs_url: str


@dataclass(frozen=True)
class AuthnRedirect:
    """Where to send the browser (HTTP-Redirect binding), and the request ID to remember for InResponseTo."""

    url: str
    request_id: str


def sp_metadata_xml(sp: ServiceProvider) -> str:
    """SP metadata an IdP can import: SPSSODescriptor, ACS over HTTP-POST, emailAddress NameID, signed assertions."""
    from saml2 import md

    descriptor = md.SPSSODescriptor(
        protocol_support_enumeration=SAML2_PROTOCOL,
        authn_requests_signed="false",
        want_assertions_signed="true",
        name_id_format=[md.NameIDFormat(text=NAMEID_EMAIL)],
        assertion_consumer_service=[
            md.AssertionConsumerService(binding=BINDING_POST, location=sp.acs_url, index="0", is_default="true")
        ],
    )
    entity = md.EntityDescriptor(entity_id=sp.entity_id, spsso_descriptor=descriptor)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + entity.to_string(nspair={"md": md.NAMESPACE}).decode("utf-8")


def new_request_id() -> str:
    """An xs:ID (must start with a letter or '_') with 160 bits from the OS CSPRNG, like Entra's own "id…" IDs."""
    return "id" + secrets.token_hex(20)


def build_authn_request(sp: ServiceProvider, idp: "IdpMetadata", relay_state: str | None, *,
                        force_authn: bool = False, login_hint: str | None = None) -> AuthnRedirect:
    """An SP-initiated sign-in: the URL of the IdP's SSO endpoint with a deflated, base64 SAMLRequest.

    `force_authn` asks Entra for a fresh sign-in even within its own session (OIDC `prompt=login`);
    `login_hint` travels as Entra's `login_hint` query parameter (Entra refuses a Subject in an AuthnRequest).

    The request is not signed: Entra does not require signed AuthnRequests (it only checks that the ACS URL is
    a Reply URL registered for the Identifier), and an unsigned request lets us hold no private key at all.
    """
    from saml2 import saml, samlp

    if relay_state is not None and len(relay_state.encode("utf-8")) > MAX_RELAY_STATE_BYTES:
        raise ValueError(f"RelayState must not exceed {MAX_RELAY_STATE_BYTES} bytes (SAML bindings 3.4.3)")
    request_id = new_request_id()
    request = samlp.AuthnRequest(
        id=request_id,
        version="2.0",
        issue_instant=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        destination=idp.sso_url,
        assertion_consumer_service_url=sp.acs_url,
        protocol_binding=BINDING_POST,
        issuer=saml.Issuer(text=sp.entity_id),
        force_authn="true" if force_authn else None,
    )
    xml = request.to_string(nspair={"samlp": samlp.NAMESPACE, "saml": saml.NAMESPACE})
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw DEFLATE, as the HTTP-Redirect binding requires
    encoded = base64.b64encode(deflater.compress(xml) + deflater.flush()).decode("ascii")
    query = {"SAMLRequest": encoded}
    if relay_state:
        query["RelayState"] = relay_state
    if login_hint:
        query["login_hint"] = login_hint
    separator = "&" if "?" in idp.sso_url else "?"
    return AuthnRedirect(url=idp.sso_url + separator + urlencode(query), request_id=request_id)
