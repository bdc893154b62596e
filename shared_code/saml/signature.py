"""Verification of one enveloped XML signature with the xmlsec bindings, in process (no xmlsec1 program).

`verify_enveloped(element, certificates, now)` answers one question: is `element` itself signed, by its own
enveloped `<ds:Signature>` child, with a key from the IdP metadata? It is the single place where the SAML core
trusts cryptography, and it is strict on purpose, because most SAML breaks were verifiers that answered a
slightly different question:

* the Signature must be a direct child of the element and its only Reference must be `#<element's ID>`;
  the ID must occur once in the whole document, and only that ID is registered with xmlsec, so the Reference
  cannot resolve to another copy (XML signature wrapping);
* the key is ALWAYS one of the metadata certificates we were given: `ctx.key` is set, so xmlsec never reads a
  key from the document's KeyInfo (the KeyInfo is only looked at to explain a failure);
* algorithms are allowlisted twice: we read SignedInfo ourselves (clear error codes) and xmlsec is told to
  enable only the same transforms (defence in depth): RSA/ECDSA with SHA-256/384/512, digests SHA-256/384/512,
  enveloped-signature plus exclusive or inclusive c14n 1.0 (without comments). No SHA-1, no HMAC, no XPath,
  XSLT or XPointer, no ds:Object, exactly one Reference.

The pysaml2 CryptoBackend that wraps this function lives in `pysaml2_backend.py`, so that the ACS path never
imports pysaml2's signature module (it pulls in xmlschema: about a second of cold start).
"""
from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Sequence

import xmlsec
from lxml import etree

from .safe_xml import NS_DS

ALG_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ALG_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ALG_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"

CANONICALIZATIONS = {ALG_EXC_C14N: xmlsec.Transform.EXCL_C14N, ALG_C14N: xmlsec.Transform.C14N}
SIGNATURE_METHODS = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": xmlsec.Transform.RSA_SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": xmlsec.Transform.RSA_SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.Transform.RSA_SHA512,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": xmlsec.Transform.ECDSA_SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": xmlsec.Transform.ECDSA_SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": xmlsec.Transform.ECDSA_SHA512,
}
DIGEST_METHODS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": xmlsec.Transform.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": xmlsec.Transform.SHA384,
    "http://www.w3.org/2001/04/xmlenc#sha512": xmlsec.Transform.SHA512,
}
REFERENCE_TRANSFORMS = {ALG_ENVELOPED: xmlsec.Transform.ENVELOPED, **CANONICALIZATIONS}

_DS = "{%s}" % NS_DS
_EXC_C14N_NS = "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces"


class CertificateLike(Protocol):
    """What we need of a metadata signing certificate (metadata.SigningCertificate fits)."""

    der_b64: str
    sha256: str
    not_after: datetime


class SignatureRejected(Exception):
    """The signature does not prove what we need. `reason` is one of the SamlRejected reason codes."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedSignature:
    """Which metadata certificate verified the element, and with which algorithms."""

    certificate_sha256: str
    signature_method: str
    digest_method: str


def signature_of(element: etree._Element) -> etree._Element | None:
    """The enveloped Signature that is a direct child of `element` (None if unsigned); several → rejected."""
    found = [child for child in element if child.tag == _DS + "Signature"]
    if len(found) > 1:
        raise SignatureRejected("signature_malformed", "the element carries more than one Signature")
    return found[0] if found else None


def verify_enveloped(element: etree._Element, certificates: Sequence[CertificateLike], now: datetime) -> VerifiedSignature:
    """Verify the enveloped signature of `element` with one of `certificates`, or raise SignatureRejected."""
    signature = signature_of(element)
    if signature is None:
        raise SignatureRejected("unsigned", "the element has no Signature")
    element_id = _unique_id(element)
    signature_method, digest_method = _check_shape(signature, element_id)

    current = [c for c in certificates if c.not_after > now]
    for certificate in current:
        if _verifies(element, signature, certificate):
            return VerifiedSignature(certificate.sha256, signature_method, digest_method)

    # Explain the failure in a way an administrator can act on; none of this accepts anything.
    expired = [c for c in certificates if c.not_after <= now]
    for certificate in expired:
        if _verifies(element, signature, certificate):
            raise SignatureRejected(
                "certificate_expired",
                f"signed with the IdP certificate {certificate.sha256[:16]}…, which expired on "
                f"{certificate.not_after:%Y-%m-%d}",
            )
    embedded = _embedded_certificate_sha256(signature)
    known = {c.sha256 for c in certificates}
    if embedded is not None and embedded not in known:
        raise SignatureRejected(
            "unknown_certificate",
            f"signed with a certificate (SHA-256 {embedded[:16]}…) that is not in the IdP metadata",
        )
    raise SignatureRejected("signature_invalid", "the signature does not verify with the IdP metadata certificates")


def _unique_id(element: etree._Element) -> str:
    element_id = element.get("ID")
    if not element_id or element_id.strip() != element_id or not _is_ncname(element_id):
        raise SignatureRejected("missing_id", f"the signed <{etree.QName(element).localname}> has no usable ID")
    # Any ID-like attribute anywhere with the same value could be what a Reference resolves to: refuse.
    count = 0
    for node in element.getroottree().iter():
        for name, value in node.attrib.items():
            if value == element_id and _is_id_attribute(name):
                count += 1
    if count != 1:
        raise SignatureRejected("duplicate_id", f"the ID {element_id[:64]!r} occurs more than once in the document")
    return element_id


def _is_id_attribute(name: str) -> bool:
    local = name.rsplit("}", 1)[-1]
    return local.lower() in {"id", "assertionid", "responseid"}


def _is_ncname(value: str) -> bool:
    if len(value) > 256 or not (value[0].isalpha() or value[0] == "_"):
        return False
    return all(ch.isalnum() or ch in "._-" for ch in value)


def _algorithm(node: etree._Element | None, what: str) -> str:
    if node is None:
        raise SignatureRejected("signature_malformed", f"the signature has no {what}")
    return node.get("Algorithm") or ""


def _check_shape(signature: etree._Element, element_id: str) -> tuple[str, str]:
    children = [c for c in signature if isinstance(c.tag, str)]
    tags = [c.tag for c in children]
    if tags[:2] != [_DS + "SignedInfo", _DS + "SignatureValue"] or any(t != _DS + "KeyInfo" for t in tags[2:]) or len(tags) > 3:
        if _DS + "Object" in tags:
            raise SignatureRejected("signature_malformed", "the signature carries a ds:Object (not allowed in SAML)")
        raise SignatureRejected("signature_malformed", "the signature is not SignedInfo, SignatureValue, KeyInfo")
    signed_info = children[0]
    parts = [c for c in signed_info if isinstance(c.tag, str)]
    references = [c for c in parts if c.tag == _DS + "Reference"]
    if len(references) != 1:
        raise SignatureRejected("signature_malformed", f"the signature has {len(references)} References, not exactly one")
    if [c.tag for c in parts] != [_DS + "CanonicalizationMethod", _DS + "SignatureMethod", _DS + "Reference"]:
        raise SignatureRejected("signature_malformed", "SignedInfo is not CanonicalizationMethod, SignatureMethod, Reference")
    c14n, method = parts[0], parts[1]
    if _algorithm(c14n, "CanonicalizationMethod") not in CANONICALIZATIONS:
        raise SignatureRejected("algorithm_forbidden", f"canonicalization {c14n.get('Algorithm')!r} is not allowed")
    _check_c14n_children(c14n)
    signature_method = _algorithm(method, "SignatureMethod")
    if signature_method not in SIGNATURE_METHODS:
        raise SignatureRejected("algorithm_forbidden", f"signature algorithm {signature_method!r} is not allowed")
    if len(method):  # e.g. HMACOutputLength: nothing we allow takes parameters
        raise SignatureRejected("algorithm_forbidden", "the SignatureMethod carries parameters")

    reference = references[0]
    if reference.get("URI") != "#" + element_id:
        raise SignatureRejected(
            "signature_reference_mismatch",
            f"the signature references {reference.get('URI')!r}, not the element it is in (#{element_id[:64]})",
        )
    ref_parts = [c for c in reference if isinstance(c.tag, str)]
    ref_tags = [c.tag for c in ref_parts]
    if ref_tags != [_DS + "Transforms", _DS + "DigestMethod", _DS + "DigestValue"]:
        raise SignatureRejected("signature_malformed", "the Reference is not Transforms, DigestMethod, DigestValue")
    transforms = [c for c in ref_parts[0] if isinstance(c.tag, str)]
    algorithms = []
    for transform in transforms:
        if transform.tag != _DS + "Transform":
            raise SignatureRejected("signature_malformed", "unexpected element in Transforms")
        algorithm = transform.get("Algorithm") or ""
        if algorithm not in REFERENCE_TRANSFORMS:
            raise SignatureRejected("transform_forbidden", f"the transform {algorithm!r} is not allowed")
        _check_c14n_children(transform)
        algorithms.append(algorithm)
    if not 1 <= len(algorithms) <= 2 or algorithms[0] != ALG_ENVELOPED or len(set(algorithms)) != len(algorithms):
        raise SignatureRejected("transform_forbidden", "the transforms must be enveloped-signature, then c14n")
    digest_method = _algorithm(ref_parts[1], "DigestMethod")
    if digest_method not in DIGEST_METHODS:
        raise SignatureRejected("algorithm_forbidden", f"digest algorithm {digest_method!r} is not allowed")
    return signature_method, digest_method


def _check_c14n_children(node: etree._Element) -> None:
    # Exclusive c14n may carry an InclusiveNamespaces PrefixList (ADFS and others send one); nothing else may.
    for child in node:
        if not isinstance(child.tag, str):
            continue
        if child.tag != _EXC_C14N_NS or node.get("Algorithm") != ALG_EXC_C14N or len(child):
            raise SignatureRejected("transform_forbidden", "the transform carries unexpected parameters")


_keys: dict[str, xmlsec.Key] = {}
_keys_lock = threading.Lock()


def _key(certificate: CertificateLike) -> xmlsec.Key:
    key = _keys.get(certificate.der_b64)
    if key is None:
        key = xmlsec.Key.from_memory(base64.b64decode(certificate.der_b64), xmlsec.KeyFormat.CERT_DER, None)
        with _keys_lock:
            if len(_keys) > 512:  # a handful of tenants' certificates; never grows without bound
                _keys.clear()
            _keys[certificate.der_b64] = key
    return key


def _verifies(element: etree._Element, signature: etree._Element, certificate: CertificateLike) -> bool:
    ctx = xmlsec.SignatureContext()
    # Only this element's ID is made resolvable; the Reference was already checked to be exactly "#ID".
    ctx.register_id(element, "ID")
    for transform in (*CANONICALIZATIONS.values(), *SIGNATURE_METHODS.values()):
        ctx.enable_signature_transform(transform)
    for transform in (*REFERENCE_TRANSFORMS.values(), *DIGEST_METHODS.values()):
        ctx.enable_reference_transform(transform)
    ctx.key = _key(certificate)  # the metadata key, so xmlsec never takes one from KeyInfo
    try:
        ctx.verify(signature)
    except (xmlsec.VerificationError, xmlsec.Error):
        return False
    return True


def _embedded_certificate_sha256(signature: etree._Element) -> str | None:
    node = signature.find(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if node is None or not node.text:
        return None
    try:
        der = base64.b64decode("".join(node.text.split()), validate=True)
    except ValueError:
        return None
    return hashlib.sha256(der).hexdigest()
