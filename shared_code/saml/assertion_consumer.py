"""The assertion consumer: turns the SAMLResponse that Entra posts to our ACS into a verified SignIn, or refuses.

What pysaml2 does here, and what we do ourselves (and why):
pysaml2 drives the SP side of the protocol where it is cheap and safe: it generates our AuthnRequest and our SP
metadata from its schema classes (service_provider.py), and `pysaml2_backend.InProcessXmlsecBackend` lets its
own `SecurityContext` verify signatures in process through the same verifier as below. But on the ACS path we
do not let pysaml2's `Saml2Client` parse the response: its signature check first validates the document
against the SAML XML schemas with xmlschema (~1 s to import, tens of ms per response), writes every
certificate to a temp file, and then reads the values from a second, ElementTree copy of the document, not from
the tree whose signature was verified. Our budget is 3 ms per sign-in and, above all, reading from the verified
tree. bench/acs.py measured, on the same Entra-shaped responses: `consume` ~1.0 ms median, python3-saml ~5 ms,
pysaml2 with our in-process backend ~17 ms, pysaml2 with its default xmlsec1 program ~93 ms. So `consume` does the SAML 2.0 Web SSO profile checks itself, on one lxml tree, in this order:

1. size cap on the base64 text (before decoding), strict base64, XML without DOCTYPE/entities/network;
2. no comments or processing instructions anywhere (comment injection into NameID);
3. a samlp:Response; a non-Success status is reported with Entra's own message (sanitised);
4. exactly one Assertion in the whole document, no EncryptedAssertion (we hold no decryption key);
5. Issuer of the Response (if any) and of the Assertion equal the metadata entity ID;
6. signatures only as direct children of the Response or the Assertion; at least one present; every one
   present must verify (signature.verify_enveloped: its Reference is its parent's own ID, keys from
   metadata only, allowlisted algorithms). A Response signature envelopes the whole Assertion;
7. from the verified tree only: Destination, bearer SubjectConfirmation (Recipient, NotOnOrAfter,
   InResponseTo), Conditions (NotBefore/NotOnOrAfter with 3 minutes of skew, Audience), AuthnStatement,
   attributes, and the Entra tenant ID claim against the metadata's tenant.

`authn_instant` (the AuthnStatement's AuthnInstant: when Entra last authenticated the person, not when it wrote
this assertion) and `authn_methods` (Entra's authnmethodsreferences claim: password, multipleauthn, …) come from
the same signed tree; the OpenID Provider reports them as `auth_time` and `amr` and checks step-up against them.
A `NoPassive` status (Entra could not sign in silently, AADSTS50058) is refused with reason `no_passive` and the
Response's (unsigned) InResponseTo, so the caller can answer the waiting silent sign-in `login_required`.

Replay (the assertion ID seen before) and the InResponseTo bookkeeping are the caller's, with what SignIn
returns: `assertion_id`, `not_on_or_after` (keep the ID until then) and `in_response_to`.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from lxml import etree

from .errors import SamlRejected
from .safe_xml import NS_DS, NS_SAML, NS_SAMLP, UntrustedXmlError, first_comment_or_pi, parse_untrusted
from .signature import SignatureRejected, signature_of, verify_enveloped
from .timestamps import parse_instant

if TYPE_CHECKING:
    from .metadata import IdpMetadata
    from .service_provider import ServiceProvider

MAX_RESPONSE_CHARS = 256 * 1024  # of base64 text; Entra's responses are 5-10 KB
CLOCK_SKEW = timedelta(minutes=3)

CLAIM_OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
CLAIM_TENANT_ID = "http://schemas.microsoft.com/identity/claims/tenantid"
CLAIM_DISPLAY_NAME = "http://schemas.microsoft.com/identity/claims/displayname"
CLAIM_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
CLAIM_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
CLAIM_GIVEN_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
CLAIM_SURNAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
CLAIM_AUTHN_METHODS = "http://schemas.microsoft.com/claims/authnmethodsreferences"

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

_P = "{%s}" % NS_SAMLP
_A = "{%s}" % NS_SAML
_DS = "{%s}" % NS_DS
_EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
_BASE64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

AGAIN = "Start the sign-in again from the app's sign-in page; if it keeps happening, tell your administrator."
ADMIN_METADATA = "Ask your administrator to upload the current Federation Metadata XML of the application from Entra."


@dataclass(frozen=True)
class SignIn:
    """A verified sign-in. Every value comes from the signed part of the response."""

    name_id: str
    name_id_format: str | None
    object_id: str | None
    email: str | None
    display_name: str | None
    attributes: dict[str, list[str]] = field(repr=False)
    assertion_id: str
    not_on_or_after: datetime  # keep assertion_id in the replay cache until this instant (skew included)
    in_response_to: str | None  # the AuthnRequest ID this answers; None for an IdP-initiated sign-in
    issuer: str
    entra_tenant_id: str | None
    session_index: str | None
    authn_instant: datetime | None = None  # when Entra authenticated the person (AuthnStatement AuthnInstant)
    authn_methods: tuple[str, ...] = ()  # Entra's authnmethodsreferences values, as sent


def consume(
    saml_response_b64: str | bytes,
    sp: "ServiceProvider",
    idp: "IdpMetadata",
    now: datetime | None = None,
) -> SignIn:
    """Verify a base64 SAMLResponse (HTTP-POST binding) for `sp` from `idp`; raise SamlRejected if anything is off."""
    now = _aware(now or datetime.now(timezone.utc))
    root = _parse(_decode(saml_response_b64))
    node = first_comment_or_pi(root)
    if node is not None:
        kind = "comment" if isinstance(node, etree._Comment) else "processing instruction"
        raise SamlRejected("comment_forbidden", f"The sign-in response contains an XML {kind}, which is refused "
                           f"because comments are used to forge user names. {AGAIN}")
    if root.tag != _P + "Response":
        raise SamlRejected("not_saml_response", f"The sign-in data is not a SAML response. {AGAIN}")
    if root.get("Version") != "2.0":
        raise _malformed("the Response is not SAML version 2.0")
    _check_status(root, sp)
    assertion = _the_assertion(root)
    _check_issuers(root, assertion, idp)
    response_signed = _check_signatures(root, assertion, idp, now)
    return _read_assertion(root, assertion, response_signed, sp, idp, now)


# ---------------------------------------------------------------- envelope

def _decode(data: str | bytes) -> bytes:
    if isinstance(data, str):
        if len(data) > MAX_RESPONSE_CHARS:
            raise _too_large()
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise _not_base64() from None
    elif not isinstance(data, (bytes, bytearray)):
        raise _not_base64()
    if len(data) > MAX_RESPONSE_CHARS:
        raise _too_large()
    compact = b"".join(bytes(data).split())  # some IdPs wrap the base64 at 76 columns
    if not compact:
        raise SamlRejected("not_base64", f"No sign-in response was received. {AGAIN}")
    if len(compact) % 4 or not _BASE64.match(compact):  # b64decode alone tolerates stray padding
        raise _not_base64()
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _not_base64() from None


def _too_large() -> SamlRejected:
    return SamlRejected("too_large", f"The sign-in response is larger than {MAX_RESPONSE_CHARS // 1024} KiB, "
                        f"far more than a real one. {AGAIN}")


def _not_base64() -> SamlRejected:
    return SamlRejected("not_base64", f"The sign-in response is not valid base64. {AGAIN}")


def _parse(xml: bytes) -> etree._Element:
    try:
        return parse_untrusted(xml)
    except UntrustedXmlError as exc:
        if exc.kind == "doctype_forbidden":
            raise SamlRejected("doctype_forbidden", "The sign-in response declares a DOCTYPE, which SAML never "
                               f"uses and attacks do; it was refused. {AGAIN}") from None
        raise SamlRejected("not_xml", f"The sign-in response is not XML. {AGAIN}") from None


def _malformed(detail: str) -> SamlRejected:
    return SamlRejected("malformed", f"The sign-in response is not a valid SAML response ({detail}). {AGAIN}")


def _safe(text: str | None, limit: int = 200) -> str:
    """Text from the document, made fit to quote to a person (still to be HTML-escaped by the page)."""
    cleaned = " ".join(_CONTROL.sub(" ", text or "").split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# ---------------------------------------------------------------- status

_ENTRA_ERRORS = {
    "AADSTS50105": "Entra refused the sign-in because you are not assigned to this application: ask your "
                   "administrator to add you as a user of this application in Entra (Users and groups).",
    "AADSTS700016": "Entra does not know this application: ask your administrator to set the Identifier "
                    "(Entity ID) in Entra's Basic SAML Configuration to {entity_id}.",
    "AADSTS50011": "Entra refused to send the sign-in to this address: ask your administrator to set the Reply "
                   "URL (Assertion Consumer Service URL) in Entra's Basic SAML Configuration to {acs_url}.",
    "AADSTS50020": "Your account is not from the Entra tenant this application is set up in: sign in with your "
                   "work account of this organization, or ask your administrator to invite you.",
    "AADSTS50034": "Entra does not know this account: sign in with your work account of this organization.",
    "AADSTS53003": "Entra blocked the sign-in by a Conditional Access policy: ask your administrator.",
}


def _check_status(root: etree._Element, sp: "ServiceProvider") -> None:
    code = root.find(f"{_P}Status/{_P}StatusCode")
    if code is None:
        raise _malformed("no Status")
    value = code.get("Value")
    if value == STATUS_SUCCESS:
        return
    sub = code.find(f"{_P}StatusCode")
    sub_value = (sub.get("Value") or "") if sub is not None else ""
    # The status arrives before (and usually without) any signature: anyone can post one. So the page says
    # only our own words, chosen by Entra's error code; the message itself is never quoted to the person.
    match = re.search(r"AADSTS\d{1,9}", root.findtext(f"{_P}Status/{_P}StatusMessage") or "")
    if sub_value.endswith(":NoPassive") or (match and match.group(0) == "AADSTS50058"):
        # A silent sign-in (IsPassive) found no Entra session. Unsigned, like every status: it can only ever
        # turn a pending silent sign-in into login_required, which the person could have had by asking.
        error = SamlRejected("no_passive", "Entra could not sign you in without asking you. Start the sign-in "
                             "again from the app and sign in at Microsoft.")
        error.in_response_to = root.get("InResponseTo")
        raise error
    if match and match.group(0) in _ENTRA_ERRORS:
        advice = _ENTRA_ERRORS[match.group(0)].format(entity_id=sp.entity_id, acs_url=sp.acs_url)
    elif sub_value.endswith(":AuthnFailed"):
        advice = "Entra could not sign you in. Start the sign-in again and complete it at Microsoft."
    elif (value or "").endswith(":Requester"):
        advice = ("Entra refused the sign-in: ask your administrator to add you as a user of this application "
                  "in Entra.")
    else:
        advice = ("Entra could not complete the sign-in. Try again in a few minutes; if it keeps happening, ask "
                  "your administrator to check the application's single sign-on settings in Entra.")
    if match and match.group(0) in _ENTRA_ERRORS:
        advice += f" (Entra error code {match.group(0)}.)"  # one of ours: the page never echoes unverified text
    raise SamlRejected("status_not_success", advice)


# ---------------------------------------------------------------- structure

def _the_assertion(root: etree._Element) -> etree._Element:
    if next(root.iter(_A + "EncryptedAssertion"), None) is not None:
        raise SamlRejected(
            "encrypted_assertion",
            "Entra encrypted the SAML assertion (token encryption is on for this application), but this app "
            "holds no decryption key. Ask your administrator to turn off Token encryption for the application "
            "in Entra.",
        )
    assertions = list(root.iter(_A + "Assertion"))
    if len(assertions) > 1:
        raise SamlRejected("multiple_assertions", "The sign-in response contains more than one assertion, which "
                           f"is refused because that is how signed responses are forged. {AGAIN}")
    if not assertions:
        raise SamlRejected("no_assertion", f"The sign-in response contains no assertion. {AGAIN}")
    assertion = assertions[0]
    if assertion.getparent() is not root or next(root.iter(_P + "Response"), None) is not root or \
            sum(1 for _ in root.iter(_P + "Response")) != 1:
        raise _malformed("the assertion is not where SAML puts it")
    if assertion.get("Version") != "2.0":
        raise _malformed("the assertion is not SAML version 2.0")
    if not (assertion.get("ID") or "").strip():  # the replay cache is keyed by it, even when only the Response is signed
        raise SamlRejected("missing_id", f"The sign-in assertion has no ID. {AGAIN}")
    return assertion


def _check_issuers(root: etree._Element, assertion: etree._Element, idp: "IdpMetadata") -> None:
    for element, what in ((root, "response"), (assertion, "assertion")):
        issuers = element.findall(_A + "Issuer")
        if not issuers and element is root:
            continue  # the Response Issuer is optional; the Assertion's is not
        text = _text(issuers[0]) if len(issuers) == 1 else None
        if text != idp.entity_id:
            # Checked before the signature: the issuer it names is not quoted (it could say anything).
            raise SamlRejected(
                "wrong_issuer",
                f"The sign-in {what} comes from another identity provider than the one this app is set up with. "
                "Ask your administrator to check that the app's IdP metadata is the one of your organization's "
                "Entra application.",
            )


def _check_signatures(root: etree._Element, assertion: etree._Element, idp: "IdpMetadata", now: datetime) -> bool:
    """Verify every signature; return whether the Response itself is signed. Raises if nothing is signed."""
    try:
        response_signature = signature_of(root)
        assertion_signature = signature_of(assertion)
        expected = {s for s in (response_signature, assertion_signature) if s is not None}
        for signature in root.iter(_DS + "Signature"):
            if signature not in expected:
                raise SignatureRejected("signature_malformed", "a Signature sits somewhere SAML does not put one")
        if not expected:
            raise SignatureRejected("unsigned", "neither the response nor the assertion is signed")
        if response_signature is not None:
            # Enveloping: the assertion is a child of the Response, so this signature covers all of it.
            verify_enveloped(root, idp.certificates, now)
        if assertion_signature is not None:
            verify_enveloped(assertion, idp.certificates, now)
    except SignatureRejected as exc:
        raise SamlRejected(exc.reason, _signature_message(exc)) from None
    return response_signature is not None


def _signature_message(exc: SignatureRejected) -> str:
    reason = exc.reason
    if reason == "unsigned":
        return ("The sign-in response is not signed. Ask your administrator to make Entra sign the SAML assertion "
                "(SAML Signing Certificate → Signing Option: Sign SAML assertion).")
    if reason == "unknown_certificate":
        return ("The sign-in response was signed with a certificate that is not in this app's IdP settings; Entra "
                f"may be using a new signing certificate. {ADMIN_METADATA}")
    if reason == "certificate_expired":
        return (f"The sign-in response was signed with an expired certificate ({_safe(exc.detail)}). Ask your "
                "administrator to activate a new SAML signing certificate in Entra and upload the new metadata.")
    if reason == "signature_invalid":
        return f"The sign-in response's signature is not valid for this app's IdP certificates. {ADMIN_METADATA}"
    if reason == "algorithm_forbidden":
        return ("The sign-in response is signed with an algorithm this app does not accept (only RSA or ECDSA with "
                "SHA-256 or stronger). Ask your administrator to set the Signing Algorithm to SHA-256 in the "
                "application's SAML Signing Certificate settings in Entra.")
    return f"The sign-in response's signature is not in the form SAML requires, so it was refused. {AGAIN}"


# ---------------------------------------------------------------- the verified assertion

def _read_assertion(root, assertion, response_signed: bool, sp, idp, now: datetime) -> SignIn:
    destination = root.get("Destination")
    if destination is not None and destination != sp.acs_url:
        raise SamlRejected("wrong_destination", f"The sign-in response was sent to another address "
                           f"({_safe(destination)}). Ask your administrator to set the Reply URL in Entra's Basic "
                           f"SAML Configuration to {sp.acs_url}.")
    issue_instant = _instant(assertion.get("IssueInstant"), "IssueInstant", required=True)
    if issue_instant > now + CLOCK_SKEW:
        raise _not_yet_valid()

    subject = _one(assertion, _A + "Subject", "Subject")
    if subject.find(_A + "EncryptedID") is not None:
        raise SamlRejected("encrypted_assertion", "Entra encrypted the user's NameID, but this app holds no "
                           "decryption key. Ask your administrator to turn off encryption in Entra.")
    name_id_element = subject.find(_A + "NameID")
    name_id = _text(name_id_element) if name_id_element is not None else None
    if not name_id or len(subject.findall(_A + "NameID")) != 1:
        raise SamlRejected("no_name_id", "The sign-in response does not say who you are (no NameID). Ask your "
                           "administrator to check the Unique User Identifier claim in Entra (Attributes & Claims).")

    in_response_to, subject_deadline = _check_bearer(root, subject, response_signed, sp, now)
    conditions_deadline = _check_conditions(assertion, sp, now)
    session_index, authn_instant = _check_authn_statement(assertion, now)
    attributes = _attributes(assertion)

    entra_tenant_id = _first(attributes, CLAIM_TENANT_ID)
    if idp.entra_tenant_id and entra_tenant_id and entra_tenant_id.lower() != idp.entra_tenant_id.lower():
        raise SamlRejected("wrong_entra_tenant", "The sign-in comes from another Entra tenant than the one this "
                           "app is set up with. Sign in with your work account of this organization, or ask your "
                           "administrator to check the app's IdP metadata.")

    deadlines = [d for d in (subject_deadline, conditions_deadline) if d is not None]
    return SignIn(
        name_id=name_id,
        name_id_format=name_id_element.get("Format"),
        object_id=_first(attributes, CLAIM_OBJECT_ID),
        email=_email(attributes, name_id),
        display_name=_display_name(attributes),
        attributes=attributes,
        assertion_id=assertion.get("ID"),
        not_on_or_after=min(deadlines) + CLOCK_SKEW,
        in_response_to=in_response_to,
        issuer=idp.entity_id,
        entra_tenant_id=entra_tenant_id.lower() if entra_tenant_id else None,
        session_index=session_index,
        authn_instant=authn_instant,
        authn_methods=tuple(v.strip() for v in attributes.get(CLAIM_AUTHN_METHODS, []) if v.strip())[:16],
    )


def _check_bearer(root, subject, response_signed: bool, sp, now: datetime) -> tuple[str | None, datetime]:
    """Find a bearer SubjectConfirmation that fits; return (signed InResponseTo, its NotOnOrAfter)."""
    confirmations = [c for c in subject.findall(_A + "SubjectConfirmation") if c.get("Method") == BEARER]
    if not confirmations:
        raise _malformed("no bearer SubjectConfirmation")
    response_irt = root.get("InResponseTo")
    first_error: SamlRejected | None = None
    for confirmation in confirmations:
        try:
            data = _one(confirmation, _A + "SubjectConfirmationData", "SubjectConfirmationData")
            recipient = data.get("Recipient")
            if recipient != sp.acs_url:
                shown = _safe(recipient) if recipient else "none"
                raise SamlRejected("wrong_recipient", f"The sign-in response is meant for another address "
                                   f"({shown}). Ask your administrator to set the Reply URL in Entra's Basic SAML "
                                   f"Configuration to {sp.acs_url}.")
            not_on_or_after = _instant(data.get("NotOnOrAfter"), "SubjectConfirmationData NotOnOrAfter", required=True)
            if now - CLOCK_SKEW >= not_on_or_after:
                raise _expired()
            not_before = _instant(data.get("NotBefore"), "SubjectConfirmationData NotBefore")
            if not_before is not None and now + CLOCK_SKEW < not_before:
                raise _not_yet_valid()
            irt = data.get("InResponseTo")
            if response_irt is not None and irt is not None and irt != response_irt:
                raise _irt_mismatch()
            if irt is None and response_irt is not None:
                if not response_signed:  # an unsigned Response attribute cannot vouch for anything
                    raise _irt_mismatch()
                irt = response_irt
            return irt, not_on_or_after
        except SamlRejected as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _check_conditions(assertion, sp, now: datetime) -> datetime | None:
    conditions = _one(assertion, _A + "Conditions", "Conditions")
    not_before = _instant(conditions.get("NotBefore"), "Conditions NotBefore")
    if not_before is not None and now + CLOCK_SKEW < not_before:
        raise _not_yet_valid()
    not_on_or_after = _instant(conditions.get("NotOnOrAfter"), "Conditions NotOnOrAfter")
    if not_on_or_after is not None and now - CLOCK_SKEW >= not_on_or_after:
        raise _expired()
    restrictions = 0
    for condition in conditions:
        if not isinstance(condition.tag, str):
            continue
        if condition.tag == _A + "AudienceRestriction":
            restrictions += 1
            audiences = [_text(a) for a in condition.findall(_A + "Audience")]
            if sp.entity_id not in audiences:
                shown = ", ".join(_safe(a, 120) for a in audiences if a) or "none"
                raise SamlRejected("wrong_audience", f"The sign-in response was issued for another application "
                                   f"({shown}). Ask your administrator to set the Identifier (Entity ID) in Entra's "
                                   f"Basic SAML Configuration to {sp.entity_id}.")
        elif condition.tag in (_A + "OneTimeUse", _A + "ProxyRestriction"):
            continue  # one-time use is what the caller's replay cache enforces anyway
        else:
            raise _malformed("a condition this app does not understand")
    if not restrictions:
        raise SamlRejected("wrong_audience", "The sign-in response names no audience, so it could be meant for any "
                           f"application. Ask your administrator to set the Identifier (Entity ID) in Entra to "
                           f"{sp.entity_id}.")
    return not_on_or_after


def _check_authn_statement(assertion, now: datetime) -> tuple[str | None, datetime]:
    """(SessionIndex, AuthnInstant) of the first AuthnStatement; AuthnInstant is required (SAML core 2.7.2)."""
    statements = assertion.findall(_A + "AuthnStatement")
    if not statements:
        raise _malformed("no AuthnStatement")
    statement = statements[0]
    session_end = _instant(statement.get("SessionNotOnOrAfter"), "SessionNotOnOrAfter")
    if session_end is not None and now - CLOCK_SKEW >= session_end:
        raise _expired()
    authn_instant = _instant(statement.get("AuthnInstant"), "AuthnInstant", required=True)
    if authn_instant > now + CLOCK_SKEW:
        raise _not_yet_valid()
    return statement.get("SessionIndex"), authn_instant


def _attributes(assertion) -> dict[str, list[str]]:
    if assertion.find(f"{_A}AttributeStatement/{_A}EncryptedAttribute") is not None:
        raise SamlRejected("encrypted_assertion", "Entra encrypted some claims, but this app holds no decryption "
                           "key. Ask your administrator to turn off encryption in Entra.")
    attributes: dict[str, list[str]] = {}
    for attribute in assertion.iterfind(f"{_A}AttributeStatement/{_A}Attribute"):
        name = attribute.get("Name")
        if not name:
            raise _malformed("an attribute without a name")
        values = attributes.setdefault(name, [])
        for value in attribute.iterfind(_A + "AttributeValue"):
            if len(value):
                raise _malformed(f"the attribute {_safe(name, 80)} has structured values")
            values.append(value.text or "")
    return attributes


# ---------------------------------------------------------------- small helpers

def _one(parent, tag: str, what: str):
    found = parent.findall(tag)
    if len(found) != 1:
        raise _malformed(f"{'no' if not found else 'more than one'} {what}")
    return found[0]


def _text(element) -> str | None:
    """The text of a leaf element; an element with child elements has no trustworthy text."""
    if element is None or len(element):
        return None
    return (element.text or "").strip() or None


def _instant(value: str | None, what: str, *, required: bool = False) -> datetime | None:
    if value is None:
        if required:
            raise _malformed(f"no {what}")
        return None
    parsed = parse_instant(value)
    if parsed is None:
        raise _malformed(f"{what} is not a date and time")
    return parsed


def _first(attributes: dict[str, list[str]], name: str) -> str | None:
    for value in attributes.get(name, []):
        if value.strip():
            return value.strip()
    return None


def _email(attributes: dict[str, list[str]], name_id: str) -> str | None:
    for candidate in (_first(attributes, CLAIM_EMAIL), _first(attributes, CLAIM_NAME), name_id):
        if candidate and _EMAIL.match(candidate):
            return candidate
    return None


def _display_name(attributes: dict[str, list[str]]) -> str | None:
    display = _first(attributes, CLAIM_DISPLAY_NAME)
    if display:
        return display
    parts = [p for p in (_first(attributes, CLAIM_GIVEN_NAME), _first(attributes, CLAIM_SURNAME)) if p]
    return " ".join(parts) or None


def _expired() -> SamlRejected:
    return SamlRejected("expired", "The sign-in response has expired. Sign in again; if it keeps happening, the "
                        "clock of your computer or of the server may be wrong.")


def _not_yet_valid() -> SamlRejected:
    return SamlRejected("not_yet_valid", "The sign-in response is not valid yet, which usually means a clock is "
                        "wrong. Wait a minute and sign in again.")


def _irt_mismatch() -> SamlRejected:
    return SamlRejected("in_response_to_mismatch", f"The sign-in response does not match the sign-in request. {AGAIN}")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("consume() needs a timezone-aware `now`")
    return value.astimezone(timezone.utc)
