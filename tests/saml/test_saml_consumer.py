"""The assertion consumer against real signed SAML responses: every good Entra shape is accepted with the right
values, and every attack from the literature is refused with its own reason code."""
from __future__ import annotations

import base64
import copy
import datetime as dt

import pytest
import xmlsec
from lxml import etree

from shared_code.saml.assertion_consumer import CLOCK_SKEW, SignIn, consume
from shared_code.saml.errors import SamlRejected
from shared_code.saml.metadata import parse_idp_metadata
from tests.support import idp as tidp
from tests.support.idp import OMIT, TestIdp, encode

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def rejected(reason: str, response, sp, metadata, now=None) -> SamlRejected:
    with pytest.raises(SamlRejected) as info:
        consume(response if isinstance(response, str) else encode(response), sp, metadata, now=now)
    assert info.value.reason == reason, info.value
    assert info.value.message and "Traceback" not in info.value.message
    return info.value


# ---------------------------------------------------------------- accepted shapes

@pytest.mark.parametrize("sign_assertion,sign_response", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("in_response_to", [None, "id0123456789abcdef0123456789abcdef"])
def test_good_shapes_are_accepted_with_the_right_values(idp, sp, metadata, sign_assertion, sign_response, in_response_to):
    response = idp.response(
        sp.entity_id, sp.acs_url, "alice@contoso.example", object_id="0c7a4c2e-1f55-4d8a-9a43-6a0b1a7f0e11",
        in_response_to=in_response_to, sign_assertion=sign_assertion, sign_response=sign_response,
        assertion_id="_assertion-1", issue_instant=NOW, session_index="_session-1",
        extra_attributes={"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["g1", "g2"]},
    )
    sign_in = consume(response, sp, metadata, now=NOW + dt.timedelta(seconds=2))
    assert isinstance(sign_in, SignIn)
    assert sign_in.name_id == "alice@contoso.example"
    assert sign_in.name_id_format == tidp.NAMEID_EMAIL
    assert sign_in.object_id == "0c7a4c2e-1f55-4d8a-9a43-6a0b1a7f0e11"
    assert sign_in.email == "alice@contoso.example"
    assert sign_in.display_name == "Alice Example"
    assert sign_in.assertion_id == "_assertion-1"
    assert sign_in.in_response_to == in_response_to
    assert sign_in.issuer == idp.entity_id
    assert sign_in.entra_tenant_id == idp.entra_tenant_id
    assert sign_in.session_index == "_session-1"
    assert sign_in.attributes["http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"] == ["g1", "g2"]
    assert sign_in.attributes[tidp.CLAIM_GIVEN_NAME] == ["Alice"]
    # Replay cache lifetime: the bearer window (5 min, Entra's) plus the skew, never the 70-minute Conditions.
    assert sign_in.not_on_or_after == NOW + dt.timedelta(minutes=5) + CLOCK_SKEW


def test_accepts_bytes_and_line_wrapped_base64(idp, sp, metadata):
    response = idp.response(sp.entity_id, sp.acs_url)
    wrapped = "\r\n".join(response[i:i + 76] for i in range(0, len(response), 76))
    assert consume(wrapped.encode(), sp, metadata).name_id == "alice@contoso.example"


def test_email_falls_back_to_name_claim_then_name_id(idp, sp, metadata):
    no_email = idp.response(sp.entity_id, sp.acs_url, "bob@contoso.example", email=OMIT)
    assert consume(no_email, sp, metadata).email == "bob@contoso.example"
    opaque = idp.response(sp.entity_id, sp.acs_url, "Uz2Pqz1X7pxe4XLWxV9KJQ+n59d573SepSAkuYKSde8=", email=OMIT,
                          name_id_format=OMIT, display_name=None)
    sign_in = consume(opaque, sp, metadata)
    assert sign_in.email is None and sign_in.name_id_format is None
    assert sign_in.display_name == "Alice Example"  # given name + surname when there is no displayname claim


def test_ecdsa_signed_response_is_accepted(sp):
    ec_idp = TestIdp(key_type="ec")
    metadata = parse_idp_metadata(ec_idp.metadata_xml(sign_metadata=False), NOW)
    assert consume(ec_idp.response(sp.entity_id, sp.acs_url), sp, metadata).issuer == ec_idp.entity_id


def test_certificate_rollover_accepts_the_new_and_the_old_key(idp, sp):
    new_key = TestIdp(entity_id=idp.entity_id, entra_tenant_id=idp.entra_tenant_id, key_label="rollover-new")
    both = parse_idp_metadata(idp.metadata_xml(extra_certs=[new_key.identity]), NOW)
    assert len(both.certificates) == 2
    assert consume(idp.response(sp.entity_id, sp.acs_url), sp, both)
    assert consume(new_key.response(sp.entity_id, sp.acs_url), sp, both)


def test_accepted_within_clock_skew(idp, sp, metadata):
    early = idp.response(sp.entity_id, sp.acs_url, issue_instant=NOW + dt.timedelta(minutes=2))
    assert consume(early, sp, metadata, now=NOW)  # NotBefore 2 minutes ahead of our clock
    late = idp.response(sp.entity_id, sp.acs_url, issue_instant=NOW - dt.timedelta(minutes=7))
    assert consume(late, sp, metadata, now=NOW)  # bearer NotOnOrAfter passed 2 minutes ago


# ---------------------------------------------------------------- envelope attacks

def test_oversized_is_refused_before_decoding(sp, metadata):
    rejected("too_large", "A" * (256 * 1024 + 4), sp, metadata)
    rejected("too_large", b"A" * (256 * 1024 + 4), sp, metadata)


@pytest.mark.parametrize("garbage", ["not base64!!", "QUJD=", "QUJDRA==QUJD", "", "ÄÖÜ", "PD94bWw-"])
def test_not_base64(garbage, sp, metadata):
    rejected("not_base64", garbage, sp, metadata)


@pytest.mark.parametrize("payload", [b"hello world", b"{\"SAMLResponse\": 1}", b"<unclosed", b"\x00\x01\x02"])
def test_not_xml(payload, sp, metadata):
    rejected("not_xml", base64.b64encode(payload).decode(), sp, metadata)


def test_not_a_saml_response(idp, sp, metadata):
    rejected("not_saml_response", encode(idp.metadata_xml()), sp, metadata)


@pytest.mark.parametrize("doctype", [tidp.XXE_DOCTYPE, tidp.EXTERNAL_DTD_DOCTYPE, tidp.BILLION_LAUGHS_DOCTYPE])
def test_doctype_attacks(doctype, idp, sp, metadata):
    genuine = idp.response_xml(sp.entity_id, sp.acs_url, name_id="alice@contoso.example")
    rejected("doctype_forbidden", tidp.with_doctype(genuine, doctype), sp, metadata)
    # ...also when the entity is actually used inside the NameID
    hostile = genuine.replace(b"alice@contoso.example</NameID>", b"&xxe;</NameID>", 1)
    rejected("doctype_forbidden", tidp.with_doctype(hostile, doctype), sp, metadata)


def test_doctype_in_utf16_is_refused(idp, sp, metadata):
    genuine = idp.response_xml(sp.entity_id, sp.acs_url)
    doc = ('<?xml version="1.0" encoding="UTF-16"?>' + tidp.XXE_DOCTYPE + genuine.decode()).encode("utf-16")
    rejected("doctype_forbidden", doc, sp, metadata)


# ---------------------------------------------------------------- signature attacks

def test_stripped_signature(idp, sp, metadata):
    rejected("unsigned", tidp.strip_signatures(idp.response_xml(sp.entity_id, sp.acs_url)), sp, metadata)
    both = idp.response_xml(sp.entity_id, sp.acs_url, sign_response=True)
    rejected("unsigned", tidp.strip_signatures(both), sp, metadata)


@pytest.mark.parametrize("sign_assertion,sign_response", [(True, False), (False, True), (True, True)])
def test_modified_after_signing(idp, sp, metadata, sign_assertion, sign_response):
    genuine = idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=sign_assertion, sign_response=sign_response)
    rejected("signature_invalid", tidp.replace_name_id(genuine, "admin@contoso.example"), sp, metadata)


def test_resigned_with_a_key_not_in_metadata(idp, sp, metadata):
    attacker = TestIdp(entity_id=idp.entity_id, entra_tenant_id=idp.entra_tenant_id, key_label="attacker")
    forged = attacker.response_xml(sp.entity_id, sp.acs_url, "admin@contoso.example")
    # The attacker's certificate rides along in KeyInfo; it must not be used, and the reason says why.
    error = rejected("unknown_certificate", forged, sp, metadata)
    assert "not in this app's IdP settings" in error.message


def test_resigned_with_unknown_key_and_no_keyinfo(idp, sp, metadata):
    attacker = TestIdp(entity_id=idp.entity_id, entra_tenant_id=idp.entra_tenant_id, key_label="attacker")
    doc = idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False)
    root = etree.fromstring(doc)
    tidp.sign(root.find(f"{{{tidp.NS_SAML}}}Assertion"), attacker.identity, include_certificate=False)
    rejected("signature_invalid", etree.tostring(root), sp, metadata)


def test_keyinfo_certificate_not_in_metadata_is_ignored_when_metadata_key_signed(idp, sp, metadata):
    """KeyInfo is never a key source: a genuine signature with a foreign certificate in KeyInfo still verifies
    with the metadata key, and the foreign certificate changes nothing."""
    other = TestIdp(key_label="keyinfo-decoy")
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url))
    cert = root.find(f".//{{{tidp.NS_DS}}}X509Certificate")
    cert.text = other.identity.cert_b64
    assert consume(encode(root), sp, metadata).name_id == "alice@contoso.example"


def test_comment_injection_in_name_id(idp, sp, metadata):
    genuine = idp.response_xml(sp.entity_id, sp.acs_url, "admin@corp.com.evil.com", email="admin@corp.com.evil.com")
    hostile = tidp.inject_comment_in_name_id(genuine, keep="admin@corp.com")
    assert b"admin@corp.com<!---->.evil.com" in hostile
    rejected("comment_forbidden", hostile, sp, metadata)


def test_processing_instruction_is_refused(idp, sp, metadata):
    genuine = idp.response_xml(sp.entity_id, sp.acs_url)
    hostile = genuine.replace(b"</NameID>", b"<?evil x?></NameID>", 1)
    rejected("comment_forbidden", hostile, sp, metadata)


@pytest.mark.parametrize("variant", range(1, 9))
def test_xml_signature_wrapping(variant, idp, sp, metadata):
    genuine = idp.response_xml(sp.entity_id, sp.acs_url, "alice@contoso.example",
                               sign_response=variant <= 2, sign_assertion=variant > 2)
    hostile = tidp.xsw(genuine, variant, evil_name_id="admin@contoso.example")
    assert b"admin@contoso.example" in hostile
    rejected("multiple_assertions", hostile, sp, metadata)


def test_another_idps_valid_response(sp, metadata):
    other = TestIdp(key_label="another-entra-tenant")
    rejected("wrong_issuer", other.response_xml(sp.entity_id, sp.acs_url, "admin@contoso.example"), sp, metadata)


def test_another_idps_assertion_with_our_issuer(idp, sp, metadata):
    """Same issuer string, different key: the signature decides."""
    other = TestIdp(entity_id=idp.entity_id, key_label="impostor", entra_tenant_id=idp.entra_tenant_id)
    rejected("unknown_certificate", other.response_xml(sp.entity_id, sp.acs_url), sp, metadata)


def test_sha1_signature(idp, sp, metadata):
    doc = idp.response_xml(sp.entity_id, sp.acs_url, signature_method=xmlsec.Transform.RSA_SHA1,
                           digest_method=xmlsec.Transform.SHA1)
    rejected("algorithm_forbidden", doc, sp, metadata)
    digest_only = idp.response_xml(sp.entity_id, sp.acs_url, digest_method=xmlsec.Transform.SHA1)
    rejected("algorithm_forbidden", digest_only, sp, metadata)


def test_hmac_signature(idp, sp, metadata):
    """HMAC with a key the attacker picks (e.g. the public certificate bytes): never a key type we accept."""
    doc = idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False)
    root = etree.fromstring(doc)
    tidp.sign(root.find(f"{{{tidp.NS_SAML}}}Assertion"), signature_method=xmlsec.Transform.HMAC_SHA256,
              hmac_key=base64.b64decode(metadata.certificates[0].der_b64))
    rejected("algorithm_forbidden", etree.tostring(root), sp, metadata)


@pytest.mark.parametrize("transform", ["xpath", "xslt"])
def test_forbidden_transform(transform, idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False))
    assertion = root.find(f"{{{tidp.NS_SAML}}}Assertion")
    if transform == "xpath":  # genuinely signed by the IdP key, with an XPath transform
        tidp.sign(assertion, idp.identity, transforms=(xmlsec.Transform.XPATH, xmlsec.Transform.EXCL_C14N))
    else:
        tidp.sign(assertion, idp.identity)
        # lxml's find() misses nodes that xmlsec created until the tree is re-parsed
        assertion = etree.fromstring(etree.tostring(root)).find(f"{{{tidp.NS_SAML}}}Assertion")
        root = assertion.getparent()
        transforms = assertion.find(f".//{{{tidp.NS_DS}}}Transforms")
        xslt = etree.SubElement(transforms, f"{{{tidp.NS_DS}}}Transform",
                                Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116")
        transforms.insert(1, xslt)
    rejected("transform_forbidden", etree.tostring(root), sp, metadata)


def test_multiple_references(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url))
    signed_info = root.find(f".//{{{tidp.NS_DS}}}SignedInfo")
    reference = signed_info.find(f"{{{tidp.NS_DS}}}Reference")
    signed_info.append(copy.deepcopy(reference))
    rejected("signature_malformed", etree.tostring(root), sp, metadata)


def test_reference_to_another_element(idp, sp, metadata):
    """A crypto-valid signature by the IdP key, inside the assertion, but over the Response: refused."""
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False))
    assertion = root.find(f"{{{tidp.NS_SAML}}}Assertion")
    tidp.sign(assertion, idp.identity, reference_uri="#" + root.get("ID"),
              transforms=(xmlsec.Transform.EXCL_C14N,))
    rejected("signature_reference_mismatch", etree.tostring(root), sp, metadata)


def test_whole_document_reference_and_missing_id(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False))
    assertion = root.find(f"{{{tidp.NS_SAML}}}Assertion")
    del assertion.attrib["ID"]
    tidp.sign(assertion, idp.identity, reference_uri="")
    rejected("missing_id", etree.tostring(root), sp, metadata)


def test_assertion_without_id_under_a_signed_response(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False))
    del root.find(f"{{{tidp.NS_SAML}}}Assertion").attrib["ID"]
    tidp.sign(root, idp.identity)
    rejected("missing_id", etree.tostring(root), sp, metadata)


def test_duplicate_id(idp, sp, metadata):
    doc = idp.response_xml(sp.entity_id, sp.acs_url, assertion_id="_same", response_id="_same")
    rejected("duplicate_id", doc, sp, metadata)


def test_signature_in_an_unexpected_place(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url))
    signature = root.find(f".//{{{tidp.NS_DS}}}Signature")
    subject = root.find(f".//{{{tidp.NS_SAML}}}Subject")
    subject.append(copy.deepcopy(signature))
    rejected("signature_malformed", etree.tostring(root), sp, metadata)


def test_response_signature_invalid_even_if_assertion_signature_valid(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, sign_response=True))
    root.find(f"{{{tidp.NS_SAMLP}}}Status/{{{tidp.NS_SAMLP}}}StatusCode").set("Value", tidp.STATUS_SUCCESS + " ")
    root.find(f"{{{tidp.NS_SAMLP}}}Status/{{{tidp.NS_SAMLP}}}StatusCode").set("Value", tidp.STATUS_SUCCESS)
    root.set("IssueInstant", "2000-01-01T00:00:00Z")  # outside the assertion, covered only by the Response signature
    rejected("signature_invalid", etree.tostring(root), sp, metadata)


def test_expired_signing_certificate(sp):
    old = TestIdp(expired_certificate=True)
    fresh = TestIdp(entity_id=old.entity_id, entra_tenant_id=old.entra_tenant_id, key_label="fresh-for-expired")
    metadata = parse_idp_metadata(old.metadata_xml(extra_certs=[fresh.identity], sign_metadata=False), NOW)
    rejected("certificate_expired", old.response_xml(sp.entity_id, sp.acs_url), sp, metadata)


# ---------------------------------------------------------------- structure

def test_two_assertions(idp, sp, metadata):
    first = idp.response_xml(sp.entity_id, sp.acs_url, "alice@contoso.example")
    second = idp.response_xml(sp.entity_id, sp.acs_url, "admin@contoso.example")
    rejected("multiple_assertions", tidp.add_second_assertion(first, second), sp, metadata)


def test_encrypted_assertion(idp, sp, metadata):
    error = rejected("encrypted_assertion", tidp.encrypt_assertion(idp.response_xml(sp.entity_id, sp.acs_url)),
                     sp, metadata)
    assert "no decryption key" in error.message and "Token encryption" in error.message


def test_no_assertion(idp, sp, metadata):
    doc = idp.response_xml(sp.entity_id, sp.acs_url, include_assertion=False, sign_response=True)
    rejected("no_assertion", doc, sp, metadata)


def test_unknown_condition(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, sign_assertion=False))
    conditions = root.find(f".//{{{tidp.NS_SAML}}}Conditions")
    etree.SubElement(conditions, f"{{{tidp.NS_SAML}}}Condition")
    tidp.sign(root.find(f"{{{tidp.NS_SAML}}}Assertion"), idp.identity)
    rejected("malformed", etree.tostring(root), sp, metadata)


# ---------------------------------------------------------------- protocol checks on genuinely signed responses

def test_wrong_audience(idp, sp, metadata):
    error = rejected("wrong_audience", idp.response_xml(sp.entity_id, sp.acs_url, audience="https://other.example/"),
                     sp, metadata)
    assert sp.entity_id in error.message  # tells the admin what to set in Entra
    rejected("wrong_audience", idp.response_xml(sp.entity_id, sp.acs_url, audience=OMIT), sp, metadata)


def test_wrong_recipient(idp, sp, metadata):
    rejected("wrong_recipient", idp.response_xml(sp.entity_id, sp.acs_url, recipient="https://evil.example/acs"),
             sp, metadata)
    rejected("wrong_recipient", idp.response_xml(sp.entity_id, sp.acs_url, recipient=OMIT), sp, metadata)


def test_wrong_destination(idp, sp, metadata):
    rejected("wrong_destination", idp.response_xml(sp.entity_id, sp.acs_url, destination="https://evil.example/acs"),
             sp, metadata)


def test_destination_may_be_absent(idp, sp, metadata):
    assert consume(idp.response(sp.entity_id, sp.acs_url, destination=OMIT), sp, metadata)


def test_wrong_issuer(idp, sp, metadata):
    rejected("wrong_issuer", idp.response_xml(sp.entity_id, sp.acs_url, issuer="https://sts.windows.net/evil/"),
             sp, metadata)
    rejected("wrong_issuer", idp.response_xml(sp.entity_id, sp.acs_url, response_issuer="https://evil.example/"),
             sp, metadata)


def test_wrong_entra_tenant_claim(idp, sp, metadata):
    rejected("wrong_entra_tenant", idp.response_xml(sp.entity_id, sp.acs_url,
                                                    tenant_id_claim="00000000-0000-4000-8000-000000000000"),
             sp, metadata)
    assert consume(idp.response(sp.entity_id, sp.acs_url, tenant_id_claim=OMIT), sp, metadata).entra_tenant_id is None


def test_expired(idp, sp, metadata):
    old = idp.response_xml(sp.entity_id, sp.acs_url, issue_instant=NOW - dt.timedelta(minutes=9))
    rejected("expired", old, sp, metadata, now=NOW)  # bearer expired 4 minutes ago: beyond the 3-minute skew
    conditions = idp.response_xml(sp.entity_id, sp.acs_url, issue_instant=NOW,
                                  not_on_or_after=NOW - dt.timedelta(minutes=4))
    rejected("expired", conditions, sp, metadata, now=NOW)


def test_not_yet_valid_beyond_skew(idp, sp, metadata):
    future = idp.response_xml(sp.entity_id, sp.acs_url, issue_instant=NOW + dt.timedelta(minutes=4))
    rejected("not_yet_valid", future, sp, metadata, now=NOW)
    not_before = idp.response_xml(sp.entity_id, sp.acs_url, issue_instant=NOW, not_before=NOW + dt.timedelta(minutes=4))
    rejected("not_yet_valid", not_before, sp, metadata, now=NOW)


def test_in_response_to_mismatch(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, in_response_to="id-request-a"))
    root.set("InResponseTo", "id-request-b")  # only the assertion is signed; the Response attribute is not
    rejected("in_response_to_mismatch", etree.tostring(root), sp, metadata)


def test_unsigned_response_in_response_to_is_not_trusted(idp, sp, metadata):
    root = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url))
    root.set("InResponseTo", "id-forged")
    rejected("in_response_to_mismatch", etree.tostring(root), sp, metadata)


def test_missing_subject_confirmation_expiry(idp, sp, metadata):
    rejected("malformed", idp.response_xml(sp.entity_id, sp.acs_url, subject_not_on_or_after=OMIT), sp, metadata)


# ---------------------------------------------------------------- status

def test_status_not_success_from_entra(idp, sp, metadata):
    message = ("AADSTS50105: Your administrator has configured the application Gatehouse ('x') to block users "
               "unless they are specifically granted ('assigned') access to the application.\n\t<script>")
    doc = idp.response_xml(sp.entity_id, sp.acs_url, status=tidp.STATUS_REQUESTER,
                           sub_status=tidp.STATUS_REQUEST_DENIED, status_message=message)
    error = rejected("status_not_success", doc, sp, metadata)
    assert "add you as a user of this application in Entra" in error.message
    assert "(Entra error code AADSTS50105.)" in error.message  # a code of our own table, with our advice
    assert "\n" not in error.message and "<script>" not in error.message
    assert "Your administrator has configured" not in error.message  # unsigned text is never quoted


def test_unverified_text_is_never_quoted_on_the_error_page(idp, sp, metadata):
    """Status message and issuer are read before any signature check: whoever posts a response could make
    our page say anything (a phishing line under our name). Only our own words, and Entra's bare error code."""
    lure = "AADSTS90000: Your account is locked. Call +1 555 0100 or visit https://evil.example/unlock"
    doc = idp.response_xml(sp.entity_id, sp.acs_url, status=tidp.STATUS_RESPONDER, status_message=lure,
                           sign_response=False, sign_assertion=False)
    error = rejected("status_not_success", doc, sp, metadata)
    assert "evil.example" not in error.message and "555" not in error.message and "locked" not in error.message
    assert "AADSTS90000" not in error.message  # a code we do not know is not echoed either
    forged = idp.response_xml(sp.entity_id, sp.acs_url, issuer="https://sts.windows.net/ Call +1 555 0100 now/")
    error = rejected("wrong_issuer", forged, sp, metadata)
    assert "555" not in error.message and "sts.windows.net" not in error.message


def test_authn_instant_and_entra_authentication_methods_come_from_the_signed_assertion(idp, sp, metadata):
    authenticated = NOW - dt.timedelta(hours=5)
    methods = ["http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
               "http://schemas.microsoft.com/claims/multipleauthn"]
    sign_in = consume(idp.response(sp.entity_id, sp.acs_url, issue_instant=NOW, authn_instant=authenticated,
                                   authn_methods=methods), sp, metadata, now=NOW)
    assert sign_in.authn_instant == authenticated and sign_in.authn_methods == tuple(methods)
    # An AuthnInstant in the future, or none at all, is refused.
    rejected("not_yet_valid", idp.response_xml(sp.entity_id, sp.acs_url, issue_instant=NOW,
                                               authn_instant=NOW + dt.timedelta(minutes=10)), sp, metadata, now=NOW)
    doc = etree.fromstring(idp.response_xml(sp.entity_id, sp.acs_url, issue_instant=NOW, sign_assertion=False))
    doc.find(f".//{{{tidp.NS_SAML}}}AuthnStatement").attrib.pop("AuthnInstant")
    tidp.sign(doc.find(f"{{{tidp.NS_SAML}}}Assertion"), idp.identity)
    rejected("malformed", etree.tostring(doc), sp, metadata, now=NOW)


def test_no_passive_is_its_own_reason_with_the_request_it_answers(idp, sp, metadata):
    for sub_status, message in ((tidp.STATUS_NO_PASSIVE, None), (None, "AADSTS50058: A silent sign-in request "
                                                                 "was sent but no user is signed in.")):
        doc = idp.response_xml(sp.entity_id, sp.acs_url, status=tidp.STATUS_REQUESTER, sub_status=sub_status,
                               status_message=message, in_response_to="id" + "ab" * 20)
        error = rejected("no_passive", doc, sp, metadata)
        assert error.in_response_to == "id" + "ab" * 20 and "without asking" in error.message


def test_status_responder_without_message(idp, sp, metadata):
    doc = idp.response_xml(sp.entity_id, sp.acs_url, status=tidp.STATUS_RESPONDER)
    error = rejected("status_not_success", doc, sp, metadata)
    assert "Entra could not complete the sign-in" in error.message


def test_status_requester_generic(idp, sp, metadata):
    doc = idp.response_xml(sp.entity_id, sp.acs_url, status=tidp.STATUS_REQUESTER, sign_response=True)
    error = rejected("status_not_success", doc, sp, metadata)
    assert error.message.startswith("Entra refused the sign-in: ask your administrator to add you as a user")


def test_rejection_maps_to_http_status(sp, metadata):
    assert rejected("not_base64", "!!", sp, metadata).status == 400
    assert rejected("too_large", "A" * 300_000, sp, metadata).status == 413


# ---------------------------------------------------------------- robustness

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_GENUINE: dict[str, bytes] = {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=3),
                                st.binary(min_size=0, max_size=8)), min_size=1, max_size=4))
def test_mutated_responses_are_refused_cleanly_or_unchanged(edits, idp, sp, metadata):
    """Random byte edits of a genuine response: consume() raises SamlRejected (never anything else) or, if the
    edit touched nothing that matters, returns exactly the genuine values."""
    genuine = _GENUINE.setdefault("doc", idp.response_xml(sp.entity_id, sp.acs_url, "alice@contoso.example",
                                                          object_id="obj-1", sign_response=True))
    doc = bytearray(genuine)
    for position, kind, data in edits:
        at = position % (len(doc) + 1)
        if kind == 0:
            doc[at:at + len(data)] = data
        elif kind == 1:
            doc[at:at] = data
        else:
            del doc[at:at + kind]
    try:
        sign_in = consume(encode(bytes(doc)), sp, metadata)
    except SamlRejected as exc:
        assert exc.reason and exc.message
        return
    assert (sign_in.name_id, sign_in.object_id, sign_in.email) == ("alice@contoso.example", "obj-1",
                                                                    "alice@contoso.example")
