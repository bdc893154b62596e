"""An identity provider shaped like Microsoft Entra ID: its App Federation Metadata, its assertion-signed SAML
responses with Entra's claims, its signed single-logout messages (HTTP-Redirect binding), and its v2.0 key set and
ID tokens. One implementation for two users: the development IdP that `make run` serves (`shared_code.dev_idp`,
only with DEV_IDP=true) and the tests' IdP (`tests/support/idp.py` adds its cached test keys and the attack
documents on top).

Everything here builds documents from values the caller chose; nothing parses what a stranger sent (the
development IdP's request handling in `service.py` does that with `shared_code.saml.safe_xml`).
`response_xml` has an override for every part Entra sends, so tests can make precisely wrong documents; the
defaults are what Entra sends for a successful sign-in.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qs, quote_plus, urlsplit

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
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
REDIRECT_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"  # SigAlg of the HTTP-Redirect binding
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


ENTRA_CERTIFICATE_SUBJECT = "Microsoft Azure Federated SSO Certificate"


def self_signed_identity(key, *, subject: str = ENTRA_CERTIFICATE_SUBJECT, not_before: dt.datetime,
                         not_after: dt.datetime, serial_number: int | None = None) -> SigningIdentity:
    """A self-signed certificate for `key`, as Entra publishes one per enterprise application. With a fixed
    serial number and validity the certificate is the same bytes every time (RSA PKCS#1 v1.5 is deterministic)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return SigningIdentity(key_pem, cert.public_bytes(serialization.Encoding.PEM),
                           cert.public_bytes(serialization.Encoding.DER))


# ---------------------------------------------------------------- encoding helpers

def encode(xml: bytes | etree._Element) -> str:
    """Base64 of a document, as the HTTP-POST binding carries it."""
    if not isinstance(xml, bytes):
        xml = etree.tostring(xml)
    return base64.b64encode(xml).decode()


def decode(saml_response: str | bytes) -> bytes:
    return base64.b64decode(saml_response)


def parse(saml_response_or_xml: str | bytes) -> etree._Element:
    """The lxml tree of a base64 SAMLResponse or of raw XML bytes: for documents made here (tests read them back);
    what a stranger sent is parsed with shared_code.saml.safe_xml instead."""
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
    """The AuthnRequest and RelayState of an HTTP-Redirect URL (what Entra does with our login redirect); for
    tests reading Gatehouse's own redirects (the development IdP reads requests in service.read_request)."""
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

class EntraIdp:
    """An Entra-like IdP for one Entra tenant, signing with `identity`. Its single sign-on URL is also its
    SingleLogoutService, as Entra's is (`https://login.microsoftonline.com/{tenant}/saml2`)."""

    def __init__(self, identity: SigningIdentity, entra_tenant_id: str | None = None, *,
                 entity_id: str | None = None, sso_url: str | None = None, key_type: str = "rsa"):
        self.entra_tenant_id = (entra_tenant_id or str(uuid.uuid4())).lower()
        self.entity_id = entity_id or f"https://sts.windows.net/{self.entra_tenant_id}/"
        self.sso_url = sso_url or f"https://login.microsoftonline.com/{self.entra_tenant_id}/saml2"
        self.identity = identity
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


    # -- single logout (HTTP-Redirect binding, signed over the query as Entra signs it)

    def signed_redirect(self, destination: str, parameter: str, xml: bytes, relay_state: str | None = None) -> str:
        """A URL of the HTTP-Redirect binding carrying `xml` as `parameter`, signed with RSA-SHA256."""
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        encoded = base64.b64encode(deflater.compress(xml) + deflater.flush()).decode()
        signed = f"{parameter}={quote_plus(encoded)}"
        if relay_state is not None:
            signed += f"&RelayState={quote_plus(relay_state)}"
        signed += f"&SigAlg={quote_plus(REDIRECT_RSA_SHA256)}"
        key = serialization.load_pem_private_key(self.identity.key_pem, password=None)
        signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        separator = "&" if "?" in destination else "?"
        return f"{destination}{separator}{signed}&Signature={quote_plus(base64.b64encode(signature).decode())}"

    def logout_response_xml(self, destination: str, in_response_to: str | None, status: str = STATUS_SUCCESS) -> bytes:
        """Entra's LogoutResponse to an SP's LogoutRequest."""
        root = etree.Element(f"{{{NS_SAMLP}}}LogoutResponse", nsmap={"samlp": NS_SAMLP, "saml": NS_SAML}, attrib={
            "ID": new_id(), "Version": "2.0", "IssueInstant": saml_time(dt.datetime.now(dt.timezone.utc)),
            "Destination": destination})
        if in_response_to:
            root.set("InResponseTo", in_response_to)
        etree.SubElement(root, f"{{{NS_SAML}}}Issuer").text = self.entity_id
        status_el = etree.SubElement(root, f"{{{NS_SAMLP}}}Status")
        etree.SubElement(status_el, f"{{{NS_SAMLP}}}StatusCode", Value=status)
        return etree.tostring(root)

    def logout_request_xml(self, destination: str, name_id: str, session_index: str | None = None, *,
                           issue_instant: dt.datetime | None = None, not_on_or_after: dt.datetime | None = None,
                           request_id: str | None = None) -> bytes:
        """The LogoutRequest Entra sends an SP when the employee signs out elsewhere (the options make the stale
        or replayed ones an attacker would send)."""
        attributes = {"ID": request_id or new_id(), "Version": "2.0",
                      "IssueInstant": saml_time(issue_instant or dt.datetime.now(dt.timezone.utc)),
                      "Destination": destination}
        if not_on_or_after is not None:
            attributes["NotOnOrAfter"] = saml_time(not_on_or_after)
        root = etree.Element(f"{{{NS_SAMLP}}}LogoutRequest", nsmap={"samlp": NS_SAMLP, "saml": NS_SAML},
                             attrib=attributes)
        etree.SubElement(root, f"{{{NS_SAML}}}Issuer").text = self.entity_id
        etree.SubElement(root, f"{{{NS_SAML}}}NameID").text = name_id
        if session_index:
            etree.SubElement(root, f"{{{NS_SAMLP}}}SessionIndex").text = session_index
        return etree.tostring(root)


# ---------------------------------------------------------------- Entra v2.0 ID tokens and keys (what MSAL gets)

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def v2_id_token_claims(entra_tenant_id: str, client_id: str, oid: str, *, now: int, name: str,
                       preferred_username: str) -> dict:
    """The claims of an ID token from Entra's v2.0 endpoint (aud, iss, iat, nbf, exp, name, oid,
    preferred_username, rh, sub, tid, uti, ver); sign with RS256 and the published key's kid."""
    return {
        "aud": client_id,
        "iss": f"https://login.microsoftonline.com/{entra_tenant_id}/v2.0",
        "iat": now, "nbf": now, "exp": now + 3600,
        "name": name, "oid": oid,
        "preferred_username": preferred_username,
        "rh": "0.AXEA" + _b64url(uuid.uuid4().bytes),
        "sub": _b64url(hashlib.sha256(f"{oid}:{client_id}".encode()).digest()),  # pairwise, as Entra's
        "tid": entra_tenant_id,
        "uti": _b64url(uuid.uuid4().bytes)[:22],
        "ver": "2.0",
    }


def v2_published_key(public_jwk: dict, entra_tenant_id: str, *, kid: str, x5t: str,
                     x5c: list[str] | None = None) -> dict:
    """One key of `{login}/{tenant}/discovery/v2.0/keys`, as Entra publishes it."""
    key = {"kty": "RSA", "use": "sig", "kid": kid, "x5t": x5t, "n": public_jwk["n"], "e": public_jwk["e"]}
    if x5c:
        key["x5c"] = x5c
    key["issuer"] = f"https://login.microsoftonline.com/{entra_tenant_id}/v2.0"
    return key


def _set(element: etree._Element, name: str, value) -> None:
    if value is None or isinstance(value, _Omit):
        return
    element.set(name, value)


def _time(override, default: dt.datetime):
    if isinstance(override, _Omit):
        return override
    return saml_time(override or default)


