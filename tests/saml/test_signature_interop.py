"""Signatures checked against an implementation other than the one under test: the `xmlsec1` program (Debian
package xmlsec1, in the Makefile's SYSTEM_PACKAGES).

The other signature tests sign with the test IdP (python-xmlsec) and verify with our verifier (python-xmlsec
too): a fault shared by both sides would pass them. Here the xmlsec1 program signs what our verifier must accept
(and, altered, refuse), and verifies what the test IdP signs, so both sides meet the XML-DSig standard and not
merely each other. Issue 26.
"""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from shared_code.saml.safe_xml import parse_untrusted
from shared_code.saml.signature import SignatureRejected, verify_enveloped
from tests.support import idp as tidp
from tests.support.idp import TestIdp

XMLSEC1 = shutil.which("xmlsec1")
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    assert XMLSEC1, "the xmlsec1 program is missing: `make system-deps` installs it (Debian package xmlsec1)"
    return XMLSEC1


def _template(unsigned: bytes) -> bytes:
    """The assertion with an empty enveloped-signature template after its Issuer, written out by hand (no
    library): RSA-SHA256, SHA-256 digest, exclusive c14n, Reference to the assertion's ID, empty X509Data."""
    root = etree.fromstring(unsigned)
    assertion = root.find(f"{{{tidp.NS_SAML}}}Assertion")
    E = lambda tag, **attrs: etree.Element(f"{{{DS}}}{tag}", attrs, nsmap={"ds": DS})  # noqa: E731
    signature = E("Signature")
    signed_info = etree.SubElement(signature, f"{{{DS}}}SignedInfo")
    etree.SubElement(signed_info, f"{{{DS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, f"{{{DS}}}SignatureMethod",
                     Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    reference = etree.SubElement(signed_info, f"{{{DS}}}Reference", URI="#" + assertion.get("ID"))
    transforms = etree.SubElement(reference, f"{{{DS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=f"{DS}enveloped-signature")
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    etree.SubElement(reference, f"{{{DS}}}DigestValue")
    etree.SubElement(signature, f"{{{DS}}}SignatureValue")
    etree.SubElement(etree.SubElement(signature, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
    issuer = assertion.find(f"{{{tidp.NS_SAML}}}Issuer")
    assertion.insert(list(assertion).index(issuer) + 1, signature)
    return etree.tostring(root)


def _signed_by_xmlsec1(xmlsec1: str, idp: TestIdp, unsigned: bytes, tmp_path: Path) -> bytes:
    (tmp_path / "key.pem").write_bytes(idp.identity.key_pem)
    (tmp_path / "cert.pem").write_bytes(idp.identity.cert_pem)
    (tmp_path / "template.xml").write_bytes(_template(unsigned))
    done = subprocess.run([xmlsec1, "--sign", "--privkey-pem", f"{tmp_path / 'key.pem'},{tmp_path / 'cert.pem'}",
                           "--id-attr:ID", f"{tidp.NS_SAML}:Assertion", "--output", str(tmp_path / "signed.xml"),
                           str(tmp_path / "template.xml")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "signed.xml").read_bytes()


def _xmlsec1_verifies(xmlsec1: str, idp: TestIdp, document: bytes, tmp_path: Path) -> bool:
    (tmp_path / "cert.pem").write_bytes(idp.identity.cert_pem)
    (tmp_path / "document.xml").write_bytes(document)
    done = subprocess.run([xmlsec1, "--verify", "--pubkey-cert-pem", str(tmp_path / "cert.pem"),
                           "--id-attr:ID", f"{tidp.NS_SAML}:Assertion", str(tmp_path / "document.xml")],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0


def test_an_assertion_signed_by_the_xmlsec1_program_verifies_and_altered_it_does_not(
        xmlsec1, idp, sp, metadata, tmp_path):
    unsigned = idp.response_xml(sp.entity_id, sp.acs_url, "alice@contoso.example", sign_assertion=False)
    signed = _signed_by_xmlsec1(xmlsec1, idp, unsigned, tmp_path)
    assert b"<ds:SignatureValue>" in signed and b"<ds:SignatureValue/>" not in signed
    assertion = parse_untrusted(signed).find(f"{{{tidp.NS_SAML}}}Assertion")
    verified = verify_enveloped(assertion, metadata.certificates, NOW)
    assert verified.certificate_sha256 == metadata.certificates[0].sha256
    assert verified.signature_method.endswith("rsa-sha256") and verified.digest_method.endswith("sha256")

    altered = signed.replace(b"alice@contoso.example", b"admin@contoso.example")
    assert altered != signed
    with pytest.raises(SignatureRejected):
        verify_enveloped(parse_untrusted(altered).find(f"{{{tidp.NS_SAML}}}Assertion"), metadata.certificates, NOW)


def test_an_assertion_the_xmlsec1_program_signed_with_another_key_is_refused(xmlsec1, sp, metadata, tmp_path):
    stranger = TestIdp(key_label="interop-stranger")
    unsigned = stranger.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False)
    signed = _signed_by_xmlsec1(xmlsec1, stranger, unsigned, tmp_path)
    with pytest.raises(SignatureRejected):
        verify_enveloped(parse_untrusted(signed).find(f"{{{tidp.NS_SAML}}}Assertion"), metadata.certificates, NOW)


def test_the_test_idps_signatures_verify_with_the_xmlsec1_program(xmlsec1, idp, sp, tmp_path):
    """So what the test IdP signs (every other SAML test's input) is standard XML-DSig, not a private dialect
    our verifier happens to share."""
    signed = idp.response_xml(sp.entity_id, sp.acs_url, "alice@contoso.example")
    assert _xmlsec1_verifies(xmlsec1, idp, signed, tmp_path)
    assert not _xmlsec1_verifies(xmlsec1, idp, signed.replace(b"alice@contoso.example", b"admin@contoso.example"),
                                 tmp_path)
