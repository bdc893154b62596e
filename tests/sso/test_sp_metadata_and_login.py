"""Our SP metadata and the SP-initiated login redirect, over HTTP: what Entra imports, what the browser is sent
to, and what the browser keeps (the login binding) — the target never travels in RelayState."""
from __future__ import annotations

import requests
from lxml import etree

from tests.sso.conftest import LOGIN_BINDING, assert_refused, query_of, set_cookies
from tests.support.idp import NS_MD, NS_SAML, TestIdp

BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def test_sp_metadata_names_this_tenants_entity_id_and_acs(sso):
    response = requests.get(f"{sso.base_url}/api/sso/{sso.tenant_id}/metadata", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/samlmetadata+xml")
    root = etree.fromstring(response.content)
    assert root.get("entityID") == sso.sp_entity_id
    acs = root.find(f"{{{NS_MD}}}SPSSODescriptor/{{{NS_MD}}}AssertionConsumerService")
    assert acs.get("Location") == sso.acs_url and acs.get("Binding") == BINDING_POST


def test_sp_metadata_of_an_unknown_tenant_is_a_404_page(app_url):
    response = requests.get(f"{app_url}/api/sso/no-such-tenant-000/metadata", timeout=10)
    assert_refused(response, 404, "Unknown sign-in address")


def test_login_redirects_to_the_idp_with_an_authn_request_for_this_tenant(sso):
    login = sso.login()
    location = login.response.headers["Location"]
    assert location.startswith(sso.idp.sso_url + "?")
    request = login.authn_request
    assert request.get("AssertionConsumerServiceURL") == sso.acs_url
    assert request.get("Destination") == sso.idp.sso_url
    assert request.findtext(f"{{{NS_SAML}}}Issuer") == sso.sp_entity_id
    assert login.request_id.startswith("id") and len(login.request_id) >= 40


def test_login_keeps_the_target_at_home_and_sends_only_an_opaque_relay_state(sso):
    login = sso.login(target="/projects/42?tab=files")
    assert login.relay_state and len(login.relay_state.encode()) <= 80
    assert "projects" not in login.relay_state and "/" not in login.relay_state
    other = sso.login(target="/projects/42?tab=files")
    assert other.relay_state != login.relay_state and other.request_id != login.request_id


def test_login_binds_the_request_to_the_browser_with_a_cookie_that_survives_a_cross_site_post(sso):
    login = sso.login()
    cookie = set_cookies(login.response)[LOGIN_BINDING]
    # Entra's answer is a cross-site POST: only SameSite=None cookies go with it, and those must be Secure.
    assert cookie.attributes["samesite"] == "None"
    assert "secure" in cookie.attributes and "httponly" in cookie.attributes
    assert cookie.attributes["path"] == "/" and "domain" not in cookie.attributes
    assert 0 < int(cookie.attributes["max-age"]) <= 600


def test_a_second_login_in_the_same_browser_keeps_its_binding(sso):
    first = sso.login()
    second = sso.login(cookies={LOGIN_BINDING: first.binding})
    assert second.binding  # re-issued with a fresh lifetime, same browser nonce (both logins stay valid)
    assert second.request_id != first.request_id


def test_login_for_a_tenant_without_idp_says_sso_is_not_set_up(new_tenant, app_url):
    tenant = new_tenant("No IdP yet")
    response = requests.get(f"{app_url}/api/sso/{tenant.tenant_id}/login", allow_redirects=False, timeout=10)
    assert_refused(response, 409, "SSO is not set up for this tenant")


def test_login_for_an_unknown_tenant_is_a_404_page(app_url):
    response = requests.get(f"{app_url}/api/sso/Nope..%2F/login", allow_redirects=False, timeout=10)
    assert_refused(response, 404)


def test_login_uses_the_sso_url_from_the_idps_metadata(sso):
    idp = TestIdp(key_label="sso-tests")
    idp.sso_url = "https://login.example.net/tenant-x/saml2?x=1"
    assert sso.connect(idp).status_code == 200
    location = sso.login().response.headers["Location"]
    assert location.startswith("https://login.example.net/tenant-x/saml2?x=1&SAMLRequest=")
    assert "SAMLRequest" in query_of(location)
