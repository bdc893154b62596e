"""The production settings, served over HTTP by a second local host on the suite's Azurite: an https://
PUBLIC_BASE_URL (as behind Azure's front end) gives `__Secure-`/`__Host-` cookie names and the Secure flag on
every cookie the app sets, and ALLOW_PRIVATE_METADATA_URLS=false (Azure's value) refuses a loopback metadata
URL through the admin API without fetching it — while the development host, with the setting on, accepts
the same URL (so the refusal is the setting's doing)."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest
import requests

from tests.conftest import LocalHost, TenantHandle, free_port
from tests.sso.conftest import LOGIN_BINDING, SCIM_JSON, cookie_header, login_cookies, set_cookies
from tests.support.idp import TestIdp, decode_authn_request
from tests.support.idp_server import IdpServer
from tests.test_setup_access import issue_link, open_session, token_of

PUBLIC = "https://gatehouse.example.test"


@pytest.fixture(scope="module")
def production(app_settings, test_output) -> Iterator[LocalHost]:
    port = free_port()
    settings = {**app_settings, "PUBLIC_BASE_URL": PUBLIC, "ALLOW_PRIVATE_METADATA_URLS": "false",
                "PORT": str(port)}
    host = LocalHost(settings, test_output / "local-host-production.log")
    host.start()
    yield host
    host.stop()


@pytest.fixture
def tenant(production, operator_key) -> TenantHandle:
    response = requests.post(f"{production.url}/api/tenants", timeout=30,
                             json={"name": "Prod Corp", "app_url": "https://prod.example.com"},
                             headers={"Authorization": f"Bearer {operator_key}"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["acs_url"].startswith(PUBLIC + "/api/sso/")
    return TenantHandle(production.url, body["tenant_id"], body["admin_key"], body)


def _assert_secure(cookie, *, host_prefix: bool) -> None:
    assert "secure" in cookie.attributes and "httponly" in cookie.attributes, cookie
    if host_prefix:  # __Host-: Secure, Path=/, no Domain
        assert cookie.attributes.get("path") == "/" and "domain" not in cookie.attributes, cookie


def test_over_https_the_sign_in_cookies_are_prefixed_and_secure(production, tenant):
    idp = TestIdp()
    assert tenant.api("POST", "sso/idp-metadata", json={"metadata_xml": idp.metadata_xml().decode()}).status_code == 200
    token = tenant.scim_token()
    user_name, object_id = "pat@prod.example.com", str(uuid.uuid4())
    created = requests.post(f"{tenant.scim_url}/Users", timeout=30, headers={
        "Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "externalId": object_id,
        "active": True, "emails": [{"value": user_name, "type": "work", "primary": True}]})
    assert created.status_code == 201, created.text

    login = requests.get(f"{production.url}/api/sso/{tenant.tenant_id}/login", allow_redirects=False, timeout=30)
    assert login.status_code == 302, login.text
    binding = set_cookies(login)[LOGIN_BINDING]
    _assert_secure(binding, host_prefix=True)
    request, relay_state = decode_authn_request(login.headers["Location"])
    assert request.get("AssertionConsumerServiceURL", tenant.created["acs_url"]).startswith(PUBLIC)

    saml = idp.response(tenant.created["sp_entity_id"], tenant.created["acs_url"], user_name, object_id,
                        in_response_to=request.get("ID"))
    answer = requests.post(f"{production.url}/api/sso/{tenant.tenant_id}/acs", allow_redirects=False, timeout=30,
                           data={"SAMLResponse": saml, "RelayState": relay_state},
                           headers=cookie_header(login_cookies(login)))
    assert answer.status_code == 303, answer.text
    cookies = set_cookies(answer)
    assert "gh_session" not in cookies, cookies  # never the plain name over https
    session = cookies["__Secure-gh_session"]
    _assert_secure(session, host_prefix=False)
    me = requests.get(f"{production.url}/api/sso/{tenant.tenant_id}/me", timeout=30,
                      headers={"Cookie": f"__Secure-gh_session={session.value}"})
    assert me.status_code == 200 and me.json()["userName"] == user_name, me.text
    plain = requests.get(f"{production.url}/api/sso/{tenant.tenant_id}/me", timeout=30,
                         headers={"Cookie": f"gh_session={session.value}"})
    assert plain.status_code == 401  # the unprefixed name is not read over https


def test_over_https_the_setup_wizard_cookie_is_host_prefixed_and_secure(production, tenant, operator_key):
    link = issue_link(production.url, operator_key, tenant.tenant_id)
    assert link["url"].startswith(f"{PUBLIC}/api/setup/{tenant.tenant_id}#t=")
    _, response = open_session(production.url, tenant.tenant_id, token_of(link))
    assert response.status_code == 201, response.text
    cookies = set_cookies(response)
    assert list(cookies) == [f"__Host-gh_setup_{tenant.tenant_id}"], cookies
    _assert_secure(cookies[f"__Host-gh_setup_{tenant.tenant_id}"], host_prefix=True)


@pytest.mark.parametrize("scheme_host", ["http://127.0.0.1", "https://127.0.0.1", "https://localhost"])
def test_a_loopback_metadata_url_is_refused_through_the_api_in_production(tenant, scheme_host):
    with IdpServer(TestIdp()) as server:
        url = server.publish_metadata().replace("http://127.0.0.1", scheme_host)
        response = tenant.api("POST", "sso/idp-metadata", json={"metadata_url": url})
        assert response.status_code == 422, response.text
        message = response.json()["message"]
        if scheme_host.startswith("http://"):
            assert "https://" in message, message
        else:
            assert any(word in message for word in ("private", "loopback", "public")), message
        assert server.fetched == []  # refused before any request left the app
    summary = tenant.api("GET", "sso").json()
    assert summary["status"] == "draft", summary


def test_the_same_loopback_metadata_url_is_accepted_where_private_urls_are_allowed(new_tenant):
    dev = new_tenant("Dev Corp")
    with IdpServer(TestIdp()) as server:
        response = dev.api("POST", "sso/idp-metadata", json={"metadata_url": server.publish_metadata()})
        assert server.fetched == ["/federationmetadata/2007-06/federationmetadata.xml"]
    assert response.status_code == 200 and response.json()["connection"] == "established", response.text
