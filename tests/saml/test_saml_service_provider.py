"""Our SP metadata and AuthnRequest, an SP-initiated round trip, and the cold-start cost of the package."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared_code.saml.assertion_consumer import consume
from shared_code.saml.metadata import IdpMetadata
from shared_code.saml.service_provider import build_authn_request, sp_metadata_xml
from tests.support import idp as tidp

MD = f"{{{tidp.NS_MD}}}"
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_sp_metadata_can_be_imported_by_an_idp(sp):
    from lxml import etree

    xml = sp_metadata_xml(sp)
    root = etree.fromstring(xml.encode())
    assert root.tag == MD + "EntityDescriptor" and root.get("entityID") == sp.entity_id
    descriptor = root.find(MD + "SPSSODescriptor")
    assert descriptor.get("WantAssertionsSigned") == "true"
    assert descriptor.get("AuthnRequestsSigned") == "false"
    assert "urn:oasis:names:tc:SAML:2.0:protocol" in descriptor.get("protocolSupportEnumeration")
    assert descriptor.findtext(MD + "NameIDFormat") == tidp.NAMEID_EMAIL
    acs = descriptor.find(MD + "AssertionConsumerService")
    assert (acs.get("Binding"), acs.get("Location"), acs.get("index")) == (tidp.BINDING_POST, sp.acs_url, "0")
    # pysaml2 (what many IdPs and test tools use) reads it back
    from saml2 import md

    parsed = md.entity_descriptor_from_string(xml)
    assert parsed.spsso_descriptor[0].assertion_consumer_service[0].location == sp.acs_url


def test_authn_request_redirect(sp, metadata, idp):
    redirect = build_authn_request(sp, metadata, relay_state="rs-123")
    assert redirect.url.startswith(idp.sso_url + "?SAMLRequest=")
    request, relay = tidp.decode_authn_request(redirect.url)
    assert relay == "rs-123"
    assert request.tag == f"{{{tidp.NS_SAMLP}}}AuthnRequest"
    assert request.get("ID") == redirect.request_id
    assert redirect.request_id[0].isalpha() and len(redirect.request_id) >= 2 + 32
    assert request.get("Destination") == idp.sso_url
    assert request.get("AssertionConsumerServiceURL") == sp.acs_url
    assert request.get("ProtocolBinding") == tidp.BINDING_POST
    assert request.get("Version") == "2.0" and request.get("IssueInstant").endswith("Z")
    assert request.findtext(f"{{{tidp.NS_SAML}}}Issuer") == sp.entity_id
    assert request.find(f".//{{{tidp.NS_DS}}}Signature") is None  # Entra does not require signed requests


def test_force_authn_and_is_passive_are_asked_only_when_wanted(sp, metadata):
    plain, _ = tidp.decode_authn_request(build_authn_request(sp, metadata, "rs").url)
    assert plain.get("ForceAuthn") is None and plain.get("IsPassive") is None
    forced, _ = tidp.decode_authn_request(build_authn_request(sp, metadata, "rs", force_authn=True).url)
    assert forced.get("ForceAuthn") == "true" and forced.get("IsPassive") is None
    passive, _ = tidp.decode_authn_request(build_authn_request(sp, metadata, "rs", is_passive=True).url)
    assert passive.get("IsPassive") == "true" and passive.get("ForceAuthn") is None


def test_request_ids_are_unpredictable(sp, metadata):
    ids = {build_authn_request(sp, metadata, None).request_id for _ in range(200)}
    assert len(ids) == 200
    assert all(len(bytes.fromhex(i[2:])) * 8 >= 128 for i in ids)


def test_no_relay_state_and_existing_query(sp, metadata):
    idp = IdpMetadata(metadata.entity_id, "https://idp.example/sso?tenant=a", metadata.certificates)
    redirect = build_authn_request(sp, idp, None)
    assert redirect.url.startswith("https://idp.example/sso?tenant=a&SAMLRequest=")
    assert "RelayState" not in redirect.url


def test_relay_state_limit(sp, metadata):
    build_authn_request(sp, metadata, "x" * 80)
    with pytest.raises(ValueError):
        build_authn_request(sp, metadata, "x" * 81)


def test_sp_initiated_round_trip(sp, metadata, idp):
    redirect = build_authn_request(sp, metadata, relay_state=None)
    request, _ = tidp.decode_authn_request(redirect.url)
    response = idp.response(sp.entity_id, request.get("AssertionConsumerServiceURL"),
                            in_response_to=request.get("ID"), sign_response=True)
    assert consume(response, sp, metadata).in_response_to == redirect.request_id


def test_package_import_is_light():
    """Cold start: importing the package, or the ACS path, pulls in neither pysaml2 nor requests."""
    code = (
        "import sys, shared_code.saml as s\n"
        "heavy = {'lxml', 'xmlsec', 'saml2', 'requests', 'cryptography', 'xmlschema'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
        "import shared_code.saml.assertion_consumer\n"
        "assert not {'saml2', 'requests', 'cryptography', 'xmlschema'} & set(sys.modules)\n"
        "s.consume, s.ServiceProvider\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
