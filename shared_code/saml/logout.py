"""Single logout messages from the IdP on the HTTP-Redirect binding (SAML bindings §3.4): Entra's
LogoutResponse to our LogoutRequest, and Entra's own LogoutRequest when the employee signed out elsewhere.

The redirect binding signs the query, not the XML: the signature covers the raw (still URL-encoded)
`SAMLRequest|SAMLResponse=…&RelayState=…&SigAlg=…` as it arrived, so it is checked on the raw query string.
RSA-SHA256 only; every signing certificate of the IdP's metadata is tried (rollover). Both kinds must be signed:
a LogoutRequest ends sessions, and a LogoutResponse's status is what the employee and the product are told.

As the SAML profiles say (§4.4.4): `Destination` must be this tenant's SLO URL (a message addressed to another
SP is not ours to act on), `IssueInstant` recent (within `FRESHNESS` plus clock skew) and a LogoutRequest's
`NotOnOrAfter` not passed. Each LogoutRequest ID is accepted once (the caller keeps an insert-once row until
`LogoutMessage.keep_until`).
"""
from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import unquote, unquote_plus

from .errors import SamlRejected
from .safe_xml import NS_SAML, NS_SAMLP, UntrustedXmlError, parse_untrusted
from .timestamps import parse_instant

if TYPE_CHECKING:
    from .metadata import IdpMetadata

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
MAX_ENCODED = 64 * 1024
MAX_XML = 256 * 1024
_P, _A = "{%s}" % NS_SAMLP, "{%s}" % NS_SAML
FRESHNESS = timedelta(minutes=5)  # a logout message is acted on when sent, not replayed later
CLOCK_SKEW = timedelta(minutes=3)


@dataclass(frozen=True)
class LogoutMessage:
    kind: str  # "request" or "response"
    id: str
    issuer: str
    in_response_to: str | None
    name_id: str | None
    session_indexes: list[str]
    success: bool
    relay_state: str | None
    signed: bool
    issue_instant: datetime | None = None
    status_code: str | None = None

    @property
    def keep_until(self) -> datetime | None:
        """Until when a replay of this message would still pass the freshness check (how long to remember its ID)."""
        return self.issue_instant + FRESHNESS + 2 * CLOCK_SKEW if self.issue_instant is not None else None


def _raw_params(raw_query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in raw_query.split("&"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        if name in params:
            raise SamlRejected("duplicate_parameter", "The logout message carries a parameter twice.")
        params[name] = value
    return params


def read_logout_message(raw_query: str, idp: "IdpMetadata", *, destination: str | None = None,
                        now: datetime | None = None) -> LogoutMessage:
    """Read and check a LogoutRequest or LogoutResponse from `idp` (raw query string of the GET), addressed to
    `destination` (our SLO URL) and fresh at `now` (both checked when given)."""
    params = _raw_params(raw_query or "")
    parameter = "SAMLRequest" if "SAMLRequest" in params else "SAMLResponse" if "SAMLResponse" in params else None
    if parameter is None:
        raise SamlRejected("no_message", "This address receives logout messages from Microsoft Entra; none came.")
    encoded = params[parameter]
    if len(encoded) > MAX_ENCODED:
        raise SamlRejected("too_large", "The logout message is too large.")
    signed = "Signature" in params
    if signed:
        _check_signature(params, parameter, idp)
    try:
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(base64.b64decode(unquote_plus(encoded), validate=True), MAX_XML)
        if inflater.unconsumed_tail:
            raise SamlRejected("too_large", "The logout message is too large.")
        root = parse_untrusted(xml)
    except (binascii.Error, zlib.error, UntrustedXmlError, ValueError):
        raise SamlRejected("malformed", "The logout message could not be read.") from None
    expected = _P + ("LogoutRequest" if parameter == "SAMLRequest" else "LogoutResponse")
    if root.tag != expected:
        raise SamlRejected("malformed", "The logout message is not a SAML logout message.")
    issuer = (root.findtext(_A + "Issuer") or "").strip()
    if issuer != idp.entity_id:
        raise SamlRejected("wrong_issuer", "The logout message comes from another identity provider.")
    if parameter == "SAMLRequest" and not signed:
        raise SamlRejected("unsigned", "A logout request from the identity provider must be signed.")
    if not signed:
        raise SamlRejected("unsigned", "A logout response from the identity provider must be signed; this one is "
                           "not, so it cannot say whether you were signed out of Microsoft.")
    if destination is not None and (root.get("Destination") or "") != destination:
        raise SamlRejected("wrong_destination", "The logout message is addressed to another service, not this "
                           "organisation's sign-out address.")
    issue_instant = parse_instant(root.get("IssueInstant"))
    if now is not None:
        if issue_instant is None:
            raise SamlRejected("malformed", "The logout message has no valid IssueInstant.")
        if issue_instant > now + CLOCK_SKEW:
            raise SamlRejected("not_yet_valid", "The logout message is dated in the future; check the clocks.")
        if now - issue_instant > FRESHNESS + CLOCK_SKEW:
            raise SamlRejected("stale", "The logout message is too old to act on (a sign-out message is used when "
                               "it is sent, never later).")
        not_on_or_after = root.get("NotOnOrAfter")
        if not_on_or_after is not None:
            deadline = parse_instant(not_on_or_after)
            if deadline is None or now >= deadline + CLOCK_SKEW:
                raise SamlRejected("stale", "The logout message has expired (NotOnOrAfter has passed).")
    status = root.find(f"{_P}Status/{_P}StatusCode")
    relay_state = unquote_plus(params["RelayState"]) if "RelayState" in params else None
    return LogoutMessage(
        kind="request" if parameter == "SAMLRequest" else "response", id=root.get("ID") or "", issuer=issuer,
        in_response_to=root.get("InResponseTo"), name_id=(root.findtext(_A + "NameID") or "").strip() or None,
        session_indexes=[(e.text or "").strip() for e in root.findall(_P + "SessionIndex") if (e.text or "").strip()],
        success=status is not None and status.get("Value") == STATUS_SUCCESS, relay_state=relay_state, signed=signed,
        issue_instant=issue_instant, status_code=status.get("Value") if status is not None else None)


def _check_signature(params: dict[str, str], parameter: str, idp: "IdpMetadata") -> None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if unquote(params.get("SigAlg", "")) != RSA_SHA256:
        raise SamlRejected("signature_algorithm", "The logout message is not signed with RSA-SHA256.")
    signed = f"{parameter}={params[parameter]}"
    if "RelayState" in params:
        signed += f"&RelayState={params['RelayState']}"
    signed += f"&SigAlg={params['SigAlg']}"
    try:
        signature = base64.b64decode(unquote_plus(params["Signature"]), validate=True)
    except binascii.Error:
        raise SamlRejected("bad_signature", "The logout message's signature is not valid.") from None
    for certificate in idp.certificates:
        key = x509.load_der_x509_certificate(base64.b64decode(certificate.der_b64)).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            continue
        try:
            key.verify(signature, signed.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
            return
        except InvalidSignature:
            continue
    raise SamlRejected("bad_signature", "The logout message's signature is not valid.")
