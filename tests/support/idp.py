"""A test identity provider that behaves like Microsoft Entra ID: real keys, real XML signatures, Entra-shaped
federation metadata and SAML responses, plus helpers that turn a genuine response into the classic attacks.

The Entra-shaped documents themselves are the development IdP's (`shared_code/dev_idp/documents.py`, one
implementation); this module adds cached test keys and the attack documents.

Used by the SAML core tests, and by the HTTP and browser tests (POST `idp.response(...)` as `SAMLResponse`).
Signing uses the same xmlsec bindings as the app, but nothing here is imported by the app.

Keys: RSA-2048 generation costs ~50 ms, so each key is made once per label and cached in this process and on
disk under the temp directory (shared by pytest-xdist workers and later runs). Test keys only.
"""
from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import os
import tempfile
import uuid
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from shared_code.dev_idp.documents import (  # noqa: F401 - re-exported: the tests import them from here
    BINDING_POST,
    BINDING_REDIRECT,
    CLAIM_AUTHN_METHODS,
    CLAIM_DISPLAY_NAME,
    CLAIM_EMAIL,
    CLAIM_GIVEN_NAME,
    CLAIM_IDENTITY_PROVIDER,
    CLAIM_NAME,
    CLAIM_OBJECT_ID,
    CLAIM_SURNAME,
    CLAIM_TENANT_ID,
    NAMEID_EMAIL,
    NS_DS,
    NS_FED,
    NS_MD,
    NS_SAML,
    NS_SAMLP,
    NS_XENC,
    NS_XSI,
    NSMAP,
    OMIT,
    RSA_SHA256,
    SHA256,
    STATUS_NO_PASSIVE,
    STATUS_REQUEST_DENIED,
    STATUS_REQUESTER,
    STATUS_RESPONDER,
    STATUS_SUCCESS,
    EntraIdp,
    SigningIdentity,
    _Omit,
    decode,
    decode_authn_request,
    encode,
    new_id,
    parse,
    saml_time,
    self_signed_identity,
    sign,
)

# ---------------------------------------------------------------- keys and certificates

def _cache_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), "gatehouse-test-idp-keys")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@lru_cache(maxsize=None)
def signing_identity(label: str, *, key_type: str = "rsa", expired: bool = False) -> SigningIdentity:
    """A key and self-signed certificate for `label`, the same for every caller (process and disk cache)."""
    name = hashlib.sha256(f"{label}|{key_type}|{expired}|v1".encode()).hexdigest()[:32]
    path = os.path.join(_cache_dir(), name + ".pem")
    now = dt.datetime.now(dt.timezone.utc)
    try:
        with open(path, "rb") as fh:
            blob = fh.read()
        key_pem, cert_pem = blob.split(b"\n--split--\n")
        cert = x509.load_pem_x509_certificate(cert_pem)
        if expired or cert.not_valid_after_utc > now + dt.timedelta(days=30):
            return SigningIdentity(key_pem, cert_pem, cert.public_bytes(serialization.Encoding.DER))
    except (OSError, ValueError):
        pass
    identity = _new_identity(label, key_type, expired, now)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(identity.key_pem + b"\n--split--\n" + identity.cert_pem)
    os.replace(tmp, path)
    return identity


def _new_identity(label: str, key_type: str, expired: bool, now: dt.datetime) -> SigningIdentity:
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(key_type)
    if expired:
        not_before, not_after = now - dt.timedelta(days=800), now - dt.timedelta(days=30)
    else:
        not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=3 * 365)
    return self_signed_identity(key, not_before=not_before, not_after=not_after)


# ---------------------------------------------------------------- the IdP

class TestIdp(EntraIdp):
    """An Entra-like IdP for one Entra tenant. `TestIdp()` is a fresh tenant with its own key."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        entity_id: str | None = None,
        entra_tenant_id: str | None = None,
        *,
        key_label: str | None = None,
        key_type: str = "rsa",
        expired_certificate: bool = False,
    ):
        tenant = (entra_tenant_id or str(uuid.uuid4())).lower()
        entity_id = entity_id or f"https://sts.windows.net/{tenant}/"
        identity = signing_identity(key_label or entity_id, key_type=key_type, expired=expired_certificate)
        super().__init__(identity, tenant, entity_id=entity_id, key_type=key_type)


# ---------------------------------------------------------------- attack documents
#
# Each helper takes a genuine, correctly signed response (base64 or XML bytes) and returns the hostile
# variant as XML bytes; wrap it with encode() to post it. Names follow the literature (Somorovsky et al.,
# "On Breaking SAML", 2012, and SAML Raider's XSW1-XSW8).

def _root(doc) -> etree._Element:
    return parse(doc)


def _assertion_of(root: etree._Element) -> etree._Element:
    return root.find(f"{{{NS_SAML}}}Assertion")


def _signature_of(element: etree._Element) -> etree._Element | None:
    return element.find(f"{{{NS_DS}}}Signature")


def _set_name_id(assertion: etree._Element, value: str) -> None:
    assertion.find(f"{{{NS_SAML}}}Subject/{{{NS_SAML}}}NameID").text = value
    for attribute in assertion.iter(f"{{{NS_SAML}}}Attribute"):
        if attribute.get("Name") in (CLAIM_EMAIL, CLAIM_NAME):
            for av in attribute:
                av.text = value


def _evil_assertion(assertion: etree._Element, evil_name_id: str, *, keep_signature: bool, new_id_: bool = True):
    evil = copy.deepcopy(assertion)
    if not keep_signature:
        sig = _signature_of(evil)
        if sig is not None:
            evil.remove(sig)
    if new_id_:
        evil.set("ID", new_id())
    _set_name_id(evil, evil_name_id)
    return evil


def strip_signatures(doc) -> bytes:
    root = _root(doc)
    for sig in list(root.iter(f"{{{NS_DS}}}Signature")):
        sig.getparent().remove(sig)
    return etree.tostring(root)


def replace_name_id(doc, new_name_id: str) -> bytes:
    """Modified after signing: the signature still sits there, but no longer matches."""
    root = _root(doc)
    _set_name_id(_assertion_of(root), new_name_id)
    return etree.tostring(root)


def inject_comment_in_name_id(doc, keep: str) -> bytes:
    """`victim@corp.com.evil.com` → `victim@corp.com<!---->.evil.com`: exc-c14n ignores comments, so the
    signature still verifies, and a parser that reads only the first text node sees `victim@corp.com`."""
    xml = decode(doc) if isinstance(doc, str) else doc
    root = etree.fromstring(xml)
    nid = _assertion_of(root).find(f"{{{NS_SAML}}}Subject/{{{NS_SAML}}}NameID")
    text = nid.text
    assert text.startswith(keep), (text, keep)
    nid.text = keep
    comment = etree.Comment("")
    nid.append(comment)
    comment.tail = text[len(keep):]
    return etree.tostring(root)


def xsw(doc, variant: int, evil_name_id: str = "admin@contoso.example") -> bytes:
    """XML signature wrapping XSW1..XSW8. 1-2 need a signed Response, 3-8 a signed Assertion."""
    root = _root(doc)
    assertion = _assertion_of(root)
    if variant in (1, 2):
        signature = _signature_of(root)
        assert signature is not None, "XSW1/2 need a signed Response"
        original = root
        original.remove(signature)
        evil = copy.deepcopy(original)
        evil.set("ID", new_id())
        evil_a = _assertion_of(evil)
        sig_a = _signature_of(evil_a)
        if sig_a is not None:
            evil_a.remove(sig_a)
        _set_name_id(evil_a, evil_name_id)
        issuer = evil.find(f"{{{NS_SAML}}}Issuer")
        at = list(evil).index(issuer) + 1
        evil.insert(at, signature)
        if variant == 1:
            signature.append(original)  # the signed original hides inside the Signature
        else:
            evil.insert(at, original)  # detached: the signed original sits before the Signature
        return etree.tostring(evil)

    assert _signature_of(assertion) is not None, "XSW3-8 need a signed Assertion"
    parent = assertion.getparent()
    if variant == 3:  # evil assertion first, original after it
        parent.insert(parent.index(assertion), _evil_assertion(assertion, evil_name_id, keep_signature=False))
    elif variant == 4:  # the original wrapped inside the evil assertion
        evil = _evil_assertion(assertion, evil_name_id, keep_signature=False)
        parent.replace(assertion, evil)
        evil.append(assertion)
    elif variant in (5, 6, 8):  # evil assertion keeps the signature; unsigned original copy moved elsewhere
        original = copy.deepcopy(assertion)
        original.remove(_signature_of(original))
        evil = _evil_assertion(assertion, evil_name_id, keep_signature=True)
        parent.replace(assertion, evil)
        if variant == 5:
            root.append(original)
        elif variant == 6:
            _signature_of(evil).append(original)
        else:
            obj = etree.SubElement(_signature_of(evil), f"{{{NS_DS}}}Object")
            obj.append(original)
    elif variant == 7:  # the signed original hidden in Extensions, evil assertion where the SP looks
        extensions = etree.Element(f"{{{NS_SAMLP}}}Extensions")
        issuer = root.find(f"{{{NS_SAML}}}Issuer")
        root.insert(list(root).index(issuer) + 1 if issuer is not None else 0, extensions)
        evil = _evil_assertion(assertion, evil_name_id, keep_signature=False)
        parent.replace(assertion, evil)
        extensions.append(assertion)
    else:
        raise ValueError(variant)
    return etree.tostring(root)


def add_second_assertion(doc, other_doc) -> bytes:
    """Append the assertion of `other_doc` (e.g. another genuinely signed one) to `doc`."""
    root = _root(doc)
    root.append(copy.deepcopy(_assertion_of(_root(other_doc))))
    return etree.tostring(root)


def encrypt_assertion(doc) -> bytes:
    """Replace the assertion with an EncryptedAssertion (its content is random: we hold no key anyway)."""
    root = _root(doc)
    assertion = _assertion_of(root)
    encrypted = etree.Element(f"{{{NS_SAML}}}EncryptedAssertion", nsmap={"saml": NS_SAML})
    data = etree.SubElement(encrypted, f"{{{NS_XENC}}}EncryptedData", nsmap={"xenc": NS_XENC},
                            Type="http://www.w3.org/2001/04/xmlenc#Element")
    etree.SubElement(data, f"{{{NS_XENC}}}EncryptionMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc")
    cipher = etree.SubElement(etree.SubElement(data, f"{{{NS_XENC}}}CipherData"), f"{{{NS_XENC}}}CipherValue")
    cipher.text = base64.b64encode(os.urandom(96)).decode()
    root.replace(assertion, encrypted)
    return etree.tostring(root)


def with_doctype(doc, doctype: str) -> bytes:
    """Prefix a DOCTYPE (XXE, external DTD, billion laughs) to a genuine document; entities may be used in it."""
    xml = decode(doc) if isinstance(doc, str) else doc
    if xml.startswith(b"<?xml"):
        xml = xml.split(b"?>", 1)[1]
    return doctype.encode() + xml


XXE_DOCTYPE = '<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
EXTERNAL_DTD_DOCTYPE = '<!DOCTYPE samlp:Response SYSTEM "http://127.0.0.1:9/evil.dtd">'
BILLION_LAUGHS_DOCTYPE = (
    '<!DOCTYPE samlp:Response [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]>"
)
