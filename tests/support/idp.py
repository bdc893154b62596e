"""A test identity provider that behaves like Microsoft Entra ID: real keys, real XML signatures, Entra-shaped
federation metadata and SAML responses, plus helpers that turn a genuine response into the classic attacks.

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
import zlib
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XENC = "http://www.w3.org/2001/04/xmlenc#"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_FED = "http://docs.oasis-open.org/wsfed/federation/200706"
NSMAP = {"samlp": NS_SAMLP, "saml": NS_SAML, "ds": NS_DS, "md": NS_MD, "xenc": NS_XENC}

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
STATUS_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"  # IsPassive, and no session to answer from
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

CLAIM_TENANT_ID = "http://schemas.microsoft.com/identity/claims/tenantid"
CLAIM_OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
CLAIM_DISPLAY_NAME = "http://schemas.microsoft.com/identity/claims/displayname"
CLAIM_IDENTITY_PROVIDER = "http://schemas.microsoft.com/identity/claims/identityprovider"
CLAIM_AUTHN_METHODS = "http://schemas.microsoft.com/claims/authnmethodsreferences"
CLAIM_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
CLAIM_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
CLAIM_GIVEN_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
CLAIM_SURNAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"

RSA_SHA256 = xmlsec.Transform.RSA_SHA256
SHA256 = xmlsec.Transform.SHA256


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT = _Omit()  # pass as an override to leave the attribute/element out entirely


# ---------------------------------------------------------------- keys and certificates

@dataclass(frozen=True)
class SigningIdentity:
    key_pem: bytes
    cert_pem: bytes
    cert_der: bytes

    @property
    def cert_b64(self) -> str:
        return base64.b64encode(self.cert_der).decode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.cert_der).hexdigest()

    @property
    def not_after(self) -> dt.datetime:
        return x509.load_der_x509_certificate(self.cert_der).not_valid_after_utc


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
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Microsoft Azure Federated SSO Certificate")])
    if expired:
        not_before, not_after = now - dt.timedelta(days=800), now - dt.timedelta(days=30)
    else:
        not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=3 * 365)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return SigningIdentity(key_pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER))


# ---------------------------------------------------------------- encoding helpers

def encode(xml: bytes | etree._Element) -> str:
    """Base64 of a document, as the HTTP-POST binding carries it."""
    if not isinstance(xml, bytes):
        xml = etree.tostring(xml)
    return base64.b64encode(xml).decode()


def decode(saml_response: str | bytes) -> bytes:
    return base64.b64decode(saml_response)


def parse(saml_response_or_xml: str | bytes) -> etree._Element:
    """The lxml tree of a base64 SAMLResponse or of raw XML bytes (trusted test input)."""
    data = saml_response_or_xml
    if isinstance(data, str) or not data.lstrip().startswith(b"<"):
        data = decode(data)
    return etree.fromstring(data, etree.XMLParser(remove_blank_text=False, resolve_entities=False))


def saml_time(value: dt.datetime) -> str:
    """Entra's format: UTC, milliseconds, Z."""
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def new_id() -> str:
    return "_" + str(uuid.uuid4())


def decode_authn_request(url: str) -> tuple[etree._Element, str | None]:
    """The AuthnRequest and RelayState of an HTTP-Redirect URL (what Entra does with our login redirect)."""
    query = parse_qs(urlsplit(url).query)
    raw = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    relay = query.get("RelayState", [None])[0]
    return etree.fromstring(raw), relay


# ---------------------------------------------------------------- signing

def sign(
    element: etree._Element,
    identity: SigningIdentity | None = None,
    *,
    signature_method=RSA_SHA256,
    digest_method=SHA256,
    c14n_method=xmlsec.Transform.EXCL_C14N,
    reference_uri: str | None = None,
    transforms=(xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
    include_certificate: bool = True,
    hmac_key: bytes | None = None,
    position: int | None = None,
    xpath_expression: str | None = None,
) -> etree._Element:
    """Put an enveloped signature into `element` (after its Issuer, as SAML requires) and sign it.

    Note: lxml's find() does not see the nodes xmlsec creates until the tree is serialised and parsed again.

    The knobs exist to produce hostile-but-correctly-signed documents (SHA-1, HMAC, XPath transform,
    a Reference to another element, ...): the verifier must refuse them for policy, not for bad crypto.
    """
    signature = xmlsec.template.create(element, c14n_method, signature_method, ns="ds")
    if position is None:
        issuer = element.find(f"{{{NS_SAML}}}Issuer")
        position = list(element).index(issuer) + 1 if issuer is not None else 0
    element.insert(position, signature)
    element_id = element.get("ID")
    uri = reference_uri if reference_uri is not None else f"#{element_id}"
    reference = xmlsec.template.add_reference(signature, digest_method, uri=uri)
    for transform in transforms:
        node = xmlsec.template.add_transform(reference, transform)
        if transform == xmlsec.Transform.XPATH:
            etree.SubElement(node, f"{{{NS_DS}}}XPath").text = xpath_expression or "not(ancestor-or-self::ds:Signature)"
    ctx = xmlsec.SignatureContext()
    if element_id:
        ctx.register_id(element, "ID")
    for node in element.getroottree().iter():  # so that a Reference may point anywhere (hostile documents)
        if isinstance(node.tag, str) and node.get("ID") and node.get("ID") != element_id:
            ctx.register_id(node, "ID")
    if hmac_key is not None:
        ctx.key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, hmac_key)
    else:
        assert identity is not None
        key = xmlsec.Key.from_memory(identity.key_pem, xmlsec.KeyFormat.PEM, None)
        if include_certificate:
            key.load_cert_from_memory(identity.cert_pem, xmlsec.KeyFormat.CERT_PEM)
            key_info = xmlsec.template.ensure_key_info(signature)
            x509_data = xmlsec.template.add_x509_data(key_info)
            xmlsec.template.x509_data_add_certificate(x509_data)
        ctx.key = key
    ctx.sign(signature)
    return signature


# ---------------------------------------------------------------- the IdP

class TestIdp:
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
        self.entra_tenant_id = (entra_tenant_id or str(uuid.uuid4())).lower()
        self.entity_id = entity_id or f"https://sts.windows.net/{self.entra_tenant_id}/"
        self.sso_url = f"https://login.microsoftonline.com/{self.entra_tenant_id}/saml2"
        self.identity = signing_identity(key_label or self.entity_id, key_type=key_type, expired=expired_certificate)
        self.signature_method = xmlsec.Transform.ECDSA_SHA256 if key_type == "ec" else RSA_SHA256

    # -- metadata

    def metadata_xml(
        self,
        extra_certs: list[SigningIdentity | bytes | str] = (),
        *,
        include_own_certificate: bool = True,
        sso_bindings: tuple[str, ...] = (BINDING_REDIRECT, BINDING_POST),
        sign_metadata: bool = True,
    ) -> bytes:
        """Federation metadata shaped like Entra's (`.../federationmetadata/2007-06/federationmetadata.xml`).

        `extra_certs` are further signing certificates (SigningIdentity, DER bytes or base64 text), as Entra
        publishes during a certificate rollover.
        """
        root = etree.Element(
            f"{{{NS_MD}}}EntityDescriptor",
            nsmap={None: NS_MD},
            attrib={"ID": new_id(), "entityID": self.entity_id},
        )
        certs = [self.identity.cert_b64] if include_own_certificate else []
        for extra in extra_certs:
            if isinstance(extra, SigningIdentity):
                certs.append(extra.cert_b64)
            elif isinstance(extra, bytes):
                certs.append(base64.b64encode(extra).decode())
            else:
                certs.append(extra)
        # Entra also lists WS-Federation roles; a parser must skip them.
        role = etree.SubElement(
            root,
            f"{{{NS_MD}}}RoleDescriptor",
            nsmap={"xsi": NS_XSI, "fed": NS_FED},
            attrib={f"{{{NS_XSI}}}type": "fed:SecurityTokenServiceType",
                    "protocolSupportEnumeration": "http://docs.oasis-open.org/wsfed/federation/200706"},
        )
        self._key_descriptors(role, certs)
        endpoint = etree.SubElement(role, f"{{{NS_FED}}}PassiveRequestorEndpoint")
        endpoint.text = f"https://login.microsoftonline.com/{self.entra_tenant_id}/wsfed"
        idp = etree.SubElement(root, f"{{{NS_MD}}}IDPSSODescriptor",
                               protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol")
        self._key_descriptors(idp, certs)
        etree.SubElement(idp, f"{{{NS_MD}}}SingleLogoutService", Binding=BINDING_REDIRECT, Location=self.sso_url)
        for binding in sso_bindings:
            etree.SubElement(idp, f"{{{NS_MD}}}SingleSignOnService", Binding=binding, Location=self.sso_url)
        if sign_metadata:
            sign(root, self.identity, position=0)
        return etree.tostring(root, xml_declaration=True, encoding="utf-8")

    @staticmethod
    def _key_descriptors(parent: etree._Element, certs: list[str]) -> None:
        for cert in certs:
            descriptor = etree.SubElement(parent, f"{{{NS_MD}}}KeyDescriptor", use="signing")
            key_info = etree.SubElement(descriptor, f"{{{NS_DS}}}KeyInfo", nsmap={None: NS_DS})
            data = etree.SubElement(key_info, f"{{{NS_DS}}}X509Data")
            etree.SubElement(data, f"{{{NS_DS}}}X509Certificate").text = cert

    # -- responses

    def response(self, sp_entity_id: str, acs_url: str, name_id: str = "alice@contoso.example",
                 object_id: str | None = None, email: str | None | _Omit = None, **options) -> str:
        """A base64 SAMLResponse, as Entra posts it to the ACS. See `response_xml` for the options."""
        return encode(self.response_xml(sp_entity_id, acs_url, name_id, object_id, email, **options))

    def response_xml(
        self,
        sp_entity_id: str,
        acs_url: str,
        name_id: str = "alice@contoso.example",
        object_id: str | None = None,
        email: str | None | _Omit = None,
        *,
        display_name: str | None = "Alice Example",
        given_name: str | None = "Alice",
        surname: str | None = "Example",
        in_response_to: str | None = None,
        sign_assertion: bool = True,
        sign_response: bool = False,
        issue_instant: dt.datetime | None = None,
        not_before: dt.datetime | _Omit | None = None,
        not_on_or_after: dt.datetime | _Omit | None = None,
        subject_not_on_or_after: dt.datetime | _Omit | None = None,
        status: str = STATUS_SUCCESS,
        sub_status: str | None = None,
        status_message: str | None = None,
        issuer: str | None = None,
        response_issuer: str | None | _Omit = None,
        audience: str | _Omit | None = None,
        recipient: str | _Omit | None = None,
        destination: str | _Omit | None = None,
        tenant_id_claim: str | _Omit | None = None,
        extra_attributes: dict[str, list[str]] | None = None,
        assertion_id: str | None = None,
        response_id: str | None = None,
        name_id_format: str | _Omit = NAMEID_EMAIL,
        session_index: str | None = None,
        include_assertion: bool | None = None,
        signature_method=None,
        digest_method=SHA256,
        signer: SigningIdentity | None = None,
        authn_instant: dt.datetime | None = None,
        authn_methods: list[str] | None = None,
    ) -> bytes:
        """An Entra-shaped SAML Response (bytes). Defaults are what Entra sends for a successful sign-in.

        Overrides: pass a value to replace what Entra would send, or OMIT to leave it out. Times default to
        Entra's: NotBefore = IssueInstant, Conditions NotOnOrAfter = +70 min, bearer NotOnOrAfter = +5 min.
        `authn_instant` is when the person authenticated (AuthnInstant; default a minute before IssueInstant, as
        for an Entra session a minute old); `authn_methods` Entra's authnmethodsreferences (default password).
        """
        now = issue_instant or dt.datetime.now(dt.timezone.utc)
        issuer = issuer or self.entity_id
        signer = signer or self.identity
        signature_method = signature_method or self.signature_method
        assertion_id = assertion_id or new_id()
        response = etree.Element(
            f"{{{NS_SAMLP}}}Response",
            nsmap={"samlp": NS_SAMLP},
            attrib={"ID": response_id or new_id(), "Version": "2.0", "IssueInstant": saml_time(now)},
        )
        _set(response, "Destination", acs_url if destination is None else destination)
        if in_response_to:
            response.set("InResponseTo", in_response_to)
        response_issuer = issuer if response_issuer is None else response_issuer
        if not isinstance(response_issuer, _Omit):
            etree.SubElement(response, f"{{{NS_SAML}}}Issuer", nsmap={None: NS_SAML}).text = response_issuer
        status_el = etree.SubElement(response, f"{{{NS_SAMLP}}}Status")
        code = etree.SubElement(status_el, f"{{{NS_SAMLP}}}StatusCode", Value=status)
        if sub_status:
            etree.SubElement(code, f"{{{NS_SAMLP}}}StatusCode", Value=sub_status)
        if status_message:
            etree.SubElement(status_el, f"{{{NS_SAMLP}}}StatusMessage").text = status_message
        if include_assertion is None:
            include_assertion = status == STATUS_SUCCESS
        if include_assertion:
            assertion = self._assertion(
                assertion_id, now, issuer, sp_entity_id, acs_url, name_id, object_id, email, display_name,
                given_name, surname, in_response_to, not_before, not_on_or_after, subject_not_on_or_after,
                audience, recipient, tenant_id_claim, extra_attributes, name_id_format, session_index,
                authn_instant, authn_methods,
            )
            response.append(assertion)
            if sign_assertion:
                sign(assertion, signer, signature_method=signature_method, digest_method=digest_method)
        if sign_response:
            sign(response, signer, signature_method=signature_method, digest_method=digest_method)
        return etree.tostring(response)

    def _assertion(self, assertion_id, now, issuer, sp_entity_id, acs_url, name_id, object_id, email, display_name,
                   given_name, surname, in_response_to, not_before, not_on_or_after, subject_not_on_or_after,
                   audience, recipient, tenant_id_claim, extra_attributes, name_id_format, session_index,
                   authn_instant=None, authn_methods=None):
        a = etree.Element(
            f"{{{NS_SAML}}}Assertion",
            nsmap={None: NS_SAML},
            attrib={"ID": assertion_id, "IssueInstant": saml_time(now), "Version": "2.0"},
        )
        etree.SubElement(a, f"{{{NS_SAML}}}Issuer").text = issuer
        subject = etree.SubElement(a, f"{{{NS_SAML}}}Subject")
        nid = etree.SubElement(subject, f"{{{NS_SAML}}}NameID")
        _set(nid, "Format", name_id_format)
        nid.text = name_id
        confirmation = etree.SubElement(subject, f"{{{NS_SAML}}}SubjectConfirmation",
                                        Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
        data = etree.SubElement(confirmation, f"{{{NS_SAML}}}SubjectConfirmationData")
        if in_response_to:
            data.set("InResponseTo", in_response_to)
        _set(data, "NotOnOrAfter", _time(subject_not_on_or_after, now + dt.timedelta(minutes=5)))
        _set(data, "Recipient", acs_url if recipient is None else recipient)
        conditions = etree.SubElement(a, f"{{{NS_SAML}}}Conditions")
        _set(conditions, "NotBefore", _time(not_before, now))
        _set(conditions, "NotOnOrAfter", _time(not_on_or_after, now + dt.timedelta(minutes=70)))
        if not isinstance(audience, _Omit):
            restriction = etree.SubElement(conditions, f"{{{NS_SAML}}}AudienceRestriction")
            etree.SubElement(restriction, f"{{{NS_SAML}}}Audience").text = audience or sp_entity_id
        statement = etree.SubElement(a, f"{{{NS_SAML}}}AttributeStatement")
        attributes: dict[str, list[str]] = {}
        tenant_claim = self.entra_tenant_id if tenant_id_claim is None else tenant_id_claim
        if not isinstance(tenant_claim, _Omit):
            attributes[CLAIM_TENANT_ID] = [tenant_claim]
        if not isinstance(object_id, _Omit):  # OMIT: a response without the objectidentifier claim
            attributes[CLAIM_OBJECT_ID] = [object_id or str(uuid.uuid4())]
        attributes[CLAIM_IDENTITY_PROVIDER] = [self.entity_id]
        if display_name:
            attributes[CLAIM_DISPLAY_NAME] = [display_name]
        attributes[CLAIM_AUTHN_METHODS] = list(authn_methods) if authn_methods is not None else [
            "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"]
        if given_name:
            attributes[CLAIM_GIVEN_NAME] = [given_name]
        if surname:
            attributes[CLAIM_SURNAME] = [surname]
        if not isinstance(email, _Omit):
            attributes[CLAIM_EMAIL] = [email or name_id]
        attributes[CLAIM_NAME] = [email if isinstance(email, str) else name_id]
        attributes.update(extra_attributes or {})
        for name, values in attributes.items():
            attribute = etree.SubElement(statement, f"{{{NS_SAML}}}Attribute", Name=name)
            for value in values:
                etree.SubElement(attribute, f"{{{NS_SAML}}}AttributeValue").text = value
        authn = etree.SubElement(a, f"{{{NS_SAML}}}AuthnStatement", AuthnInstant=saml_time(
                                     authn_instant or now - dt.timedelta(minutes=1)),
                                 SessionIndex=session_index or assertion_id)
        context = etree.SubElement(authn, f"{{{NS_SAML}}}AuthnContext")
        etree.SubElement(context, f"{{{NS_SAML}}}AuthnContextClassRef").text = (
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
        return a


def _set(element: etree._Element, name: str, value) -> None:
    if value is None or isinstance(value, _Omit):
        return
    element.set(name, value)


def _time(override, default: dt.datetime):
    if isinstance(override, _Omit):
        return override
    return saml_time(override or default)


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
