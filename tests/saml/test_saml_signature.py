"""The enveloped-signature verifier on its own, and wrapped as a pysaml2 CryptoBackend.

These show the second line of defence: even without the consumer's "exactly one assertion" rule, the verifier
never vouches for an element a naive SP would read in a wrapped document."""
from __future__ import annotations

import datetime as dt

import pytest
import xmlsec
from lxml import etree

from shared_code.saml.safe_xml import parse_untrusted
from shared_code.saml.signature import SignatureRejected, _verifies, verify_enveloped
from tests.support import idp as tidp
from tests.support.idp import TestIdp

NOW = dt.datetime.now(dt.timezone.utc)
A = f"{{{tidp.NS_SAML}}}Assertion"


def name_id_of(element) -> str:
    """The NameID where an SP reads it: the element's own Subject (or its direct Assertion's, for a Response)."""
    path = f"{{{tidp.NS_SAML}}}Subject/{{{tidp.NS_SAML}}}NameID"
    node = element.find(path) if element.tag == A else element.find(f"{A}/{path}")
    return node.text


@pytest.mark.parametrize("variant", range(1, 9))
def test_wrapped_documents_never_verify_the_evil_element(variant, idp, sp, metadata):
    genuine = idp.response_xml(sp.entity_id, sp.acs_url, "alice@contoso.example",
                               sign_response=variant <= 2, sign_assertion=variant > 2)
    root = parse_untrusted(tidp.xsw(genuine, variant, evil_name_id="admin@contoso.example"))
    candidates = [root, *root.iter(A)]
    verified = []
    for element in candidates:
        try:
            verify_enveloped(element, metadata.certificates, NOW)
            verified.append(element)
        except SignatureRejected as exc:
            assert exc.reason in {"unsigned", "signature_reference_mismatch", "signature_malformed",
                                  "duplicate_id", "signature_invalid"}
    # Whatever verifies is the untouched original (Alice's values); nothing holding the attacker's values does.
    assert all(name_id_of(e) == "alice@contoso.example" for e in verified)
    evil = [e for e in candidates if name_id_of(e) == "admin@contoso.example"]
    assert evil and not any(e in verified for e in evil)


def test_genuine_assertion_and_response_verify(idp, sp, metadata):
    root = parse_untrusted(idp.response_xml(sp.entity_id, sp.acs_url, sign_response=True))
    result = verify_enveloped(root.find(A), metadata.certificates, NOW)
    assert result.certificate_sha256 == metadata.certificates[0].sha256
    assert result.signature_method.endswith("rsa-sha256") and result.digest_method.endswith("sha256")
    verify_enveloped(root, metadata.certificates, NOW)


def test_keyinfo_key_is_never_used(idp, sp, metadata):
    attacker = TestIdp(key_label="keyinfo-attacker")
    root = parse_untrusted(attacker.response_xml(sp.entity_id, sp.acs_url))
    assertion = root.find(A)
    with pytest.raises(SignatureRejected) as info:
        verify_enveloped(assertion, metadata.certificates, NOW)
    assert info.value.reason == "unknown_certificate"
    with pytest.raises(SignatureRejected):
        verify_enveloped(assertion, [], NOW)  # no metadata keys at all: nothing verifies, KeyInfo or not


def test_xmlsec_itself_refuses_transforms_we_did_not_enable(idp, sp, metadata):
    """Defence in depth: below our SignedInfo check, xmlsec is told which transforms exist at all."""
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False))
    tidp.sign(root.find(A), idp.identity, transforms=(xmlsec.Transform.XPATH, xmlsec.Transform.EXCL_C14N))
    root = parse_untrusted(etree.tostring(root))
    assertion = root.find(A)
    signature = assertion.find(f"{{{tidp.NS_DS}}}Signature")
    assert not _verifies(assertion, signature, metadata.certificates[0])
    sha1 = parse_untrusted(idp.response_xml(sp.entity_id, sp.acs_url, signature_method=xmlsec.Transform.RSA_SHA1))
    assertion = sha1.find(A)
    assert not _verifies(assertion, assertion.find(f"{{{tidp.NS_DS}}}Signature"), metadata.certificates[0])


def test_expired_certificate_is_not_used_for_acceptance(sp):
    old = TestIdp(expired_certificate=True)
    root = parse_untrusted(old.response_xml(sp.entity_id, sp.acs_url))
    from shared_code.saml.metadata import SigningCertificate

    cert = SigningCertificate(old.identity.cert_b64, old.identity.sha256, old.identity.not_after)
    with pytest.raises(SignatureRejected) as info:
        verify_enveloped(root.find(A), [cert], NOW)
    assert info.value.reason == "certificate_expired"


# ---------------------------------------------------------------- as pysaml2's CryptoBackend

@pytest.fixture(scope="module")
def pysaml2_context(idp, sp, metadata):
    from saml2 import config
    from saml2.sigver import SecurityContext

    from shared_code.saml.pysaml2_backend import InProcessXmlsecBackend

    conf = config.SPConfig()
    conf.load({
        "entityid": sp.entity_id,
        "metadata": {"inline": [idp.metadata_xml().decode()]},
        "service": {"sp": {"endpoints": {"assertion_consumer_service": [(sp.acs_url, tidp.BINDING_POST)]}}},
    })
    backend = InProcessXmlsecBackend(metadata.certificates)
    return SecurityContext(backend, metadata=conf.metadata, only_use_keys_in_metadata=True), backend


def test_pysaml2_security_context_verifies_through_our_backend(pysaml2_context, idp, sp):
    security, _ = pysaml2_context
    xml = idp.response_xml(sp.entity_id, sp.acs_url, sign_response=True).decode()
    assert security.correctly_signed_response(xml).issuer.text == idp.entity_id
    from saml2 import samlp

    response = samlp.response_from_string(xml)
    assertion = response.assertion[0]
    assert security.check_signature(assertion, "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", origdoc=xml)


def test_pysaml2_backend_refuses_tampering_and_wrapping(pysaml2_context, idp, sp):
    security, backend = pysaml2_context
    genuine = idp.response_xml(sp.entity_id, sp.acs_url, sign_response=True)
    from saml2.sigver import SignatureError

    # A changed NameID breaks the digest; a wrapped copy is refused as a document the signature does not cover.
    for hostile, reason in ((tidp.replace_name_id(genuine, "admin@contoso.example"), "Failed to verify signature"),
                            (tidp.xsw(genuine, 2), "Signature verification failed")):
        with pytest.raises(SignatureError, match=reason):
            security.correctly_signed_response(hostile.decode())


def test_pysaml2_backend_refuses_certificates_outside_metadata(pysaml2_context, idp, sp, tmp_path):
    _, backend = pysaml2_context
    attacker = TestIdp(key_label="pysaml2-keyinfo-attacker")
    xml = attacker.response_xml(sp.entity_id, sp.acs_url, sign_response=True)
    response_id = etree.fromstring(xml).get("ID")
    pem = tmp_path / "attacker.pem"
    pem.write_bytes(attacker.identity.cert_pem)  # what pysaml2 writes when it falls back to KeyInfo
    assert not backend.validate_signature(xml, str(pem), "pem", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
                                          response_id)
    genuine = idp.response_xml(sp.entity_id, sp.acs_url, sign_response=True)
    good_pem = tmp_path / "idp.pem"
    good_pem.write_bytes(idp.identity.cert_pem)
    assert backend.validate_signature(genuine, str(good_pem), "pem", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
                                      etree.fromstring(genuine).get("ID"))
    # asked about another element than the one signed: no
    assertion_id = etree.fromstring(genuine).find(A).get("ID")
    assert not backend.validate_signature(genuine, str(good_pem), "pem",
                                          "urn:oasis:names:tc:SAML:2.0:protocol:Response", assertion_id)
