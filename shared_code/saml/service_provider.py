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
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
MAX_RELAY_STATE_BYTES = 80  # SAML bindings 3.4.3: RelayState "MUST NOT exceed 80 bytes"


@dataclass(frozen=True)
class ServiceProvider:
    """One customer tenant's SP: its entity ID and its ACS URL (both built from PUBLIC_BASE_URL by the caller)."""

    entity_id: str
    acs_url: str
    slo_url: str | None = None  # our SingleLogoutService (HTTP-Redirect): Entra's LogoutResponse/Request


@dataclass(frozen=True)
class AuthnRedirect:
    """Where to send the browser (HTTP-Redirect binding), and the request ID to remember for InResponseTo."""

    url: str
    request_id: str


def sp_metadata_xml(sp: ServiceProvider) -> str:
    """SP metadata an IdP can import: SPSSODescriptor, ACS over HTTP-POST, emailAddress NameID, signed assertions."""
    from saml2 import md

    descriptor = md.SPSSODescriptor(
        single_logout_service=[md.SingleLogoutService(binding=BINDING_REDIRECT, location=sp.slo_url)]
        if sp.slo_url else None,
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
                        force_authn: bool = False, is_passive: bool = False,
                        login_hint: str | None = None) -> AuthnRedirect:
    """An SP-initiated sign-in: the URL of the IdP's SSO endpoint with a deflated, base64 SAMLRequest.

    `force_authn` asks Entra for a fresh sign-in even within its own session (OIDC `prompt=login`, `max_age`);
    the request is unsigned, so the assertion's AuthnInstant is what proves it happened (sign_in/service.py checks it).
    `is_passive` asks Entra to answer without showing a page (OIDC `prompt=none`): signed in from its session,
    or a `NoPassive` status;
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
        is_passive="true" if is_passive else None,
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


def _redirect_url(destination: str, parameter: str, xml: bytes, relay_state: str | None) -> str:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    query = {parameter: base64.b64encode(deflater.compress(xml) + deflater.flush()).decode("ascii")}
    if relay_state:
        query["RelayState"] = relay_state
    return destination + ("&" if "?" in destination else "?") + urlencode(query)


def build_logout_request(sp: ServiceProvider, slo_url: str, name_id: str, session_index: str | None,
                         name_id_format: str | None = None) -> AuthnRedirect:
    """A LogoutRequest (HTTP-Redirect binding) to the IdP's SingleLogoutService for one signed-in user. The
    Issuer is this tenant's SP entity ID: Entra refuses any other (AADSTS50068)."""
    from saml2 import saml, samlp

    request_id = new_request_id()
    request = samlp.LogoutRequest(
        id=request_id, version="2.0", issue_instant=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        destination=slo_url, issuer=saml.Issuer(text=sp.entity_id),
        name_id=saml.NameID(text=name_id, format=name_id_format or NAMEID_EMAIL),
        session_index=[samlp.SessionIndex(text=session_index)] if session_index else None)
    xml = request.to_string(nspair={"samlp": samlp.NAMESPACE, "saml": saml.NAMESPACE})
    return AuthnRedirect(url=_redirect_url(slo_url, "SAMLRequest", xml, None), request_id=request_id)


def build_logout_response(sp: ServiceProvider, slo_url: str, in_response_to: str, relay_state: str | None) -> str:
    """Our LogoutResponse (Success) to a LogoutRequest from the IdP, as an HTTP-Redirect URL."""
    from saml2 import saml, samlp

    response = samlp.LogoutResponse(
        id=new_request_id(), version="2.0", in_response_to=in_response_to, destination=slo_url,
        issue_instant=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        issuer=saml.Issuer(text=sp.entity_id),
        status=samlp.Status(status_code=samlp.StatusCode(value=STATUS_SUCCESS)))
    xml = response.to_string(nspair={"samlp": samlp.NAMESPACE, "saml": saml.NAMESPACE})
    return _redirect_url(slo_url, "SAMLResponse", xml, relay_state)
