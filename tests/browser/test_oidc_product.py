"""The product's side, in headless Chromium: a sample product built on authlib's OIDC client (it knows only the
issuer URL and its client credentials) signs an employee in through Gatehouse and Entra (the TestIdp's pages),
and a sign-in started from My Apps lands in the product and signs in through the product's own request. The
same product on pyoidc, with its documentation's defaults (no PKCE, UserInfo by POST body, logout without an ID
token; and without state, as openid-client's README does), signs in too.
Screenshots land in test-output/oidc/."""
from __future__ import annotations

import time
import uuid
from html import escape
from typing import Iterator

import pytest
import requests

from tests.support.idp import TestIdp
from tests.support.idp_server import IdpServer
from tests.support.sample_product import PyoidcProduct, SampleProduct

pytestmark = pytest.mark.browser


@pytest.fixture
def entra() -> Iterator[IdpServer]:
    with IdpServer(TestIdp(key_label="oidc-browser"), host="localhost") as server:
        yield server


class Setup:
    def __init__(self, app_url: str, operator_key: str, entra: IdpServer):
        operator = {"Authorization": f"Bearer {operator_key}"}
        created = requests.post(f"{app_url}/api/tenants", json={"name": "Acme Product", "app_url": "https://acme.example"},
                                headers=operator, timeout=10).json()
        self.tenant_id, admin = created["tenant_id"], {"Authorization": f"Bearer {created['admin_key']}"}
        self.created = created
        connected = requests.post(f"{app_url}/api/tenants/{self.tenant_id}/sso/idp-metadata", headers=admin,
                                  timeout=30, json={"metadata_url": entra.publish_metadata()})
        assert connected.status_code == 200, connected.text
        token = requests.post(f"{app_url}/api/tenants/{self.tenant_id}/scim/token", headers=admin, timeout=10).json()
        self.scim = (token["scim_tenant_url"], {"Authorization": f"Bearer {token['secret_token']}",
                                                "Content-Type": "application/scim+json"})
        self.object_id = str(uuid.uuid4())
        user = requests.post(f"{self.scim[0]}/Users", headers=self.scim[1], timeout=10, json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@acme.example.com",
            "externalId": self.object_id, "displayName": "Alice Example", "active": True,
            "emails": [{"value": "alice@acme.example.com", "type": "work", "primary": True}]})
        assert user.status_code == 201, user.text
        self.user = user.json()
        entra.sign_in_as("alice@acme.example.com", self.object_id)
        self.issuer = f"{app_url}/api/oidc/{self.tenant_id}"
        self.operator = operator
        self.app_url = app_url

    def register(self, product: SampleProduct) -> None:
        response = requests.post(f"{self.app_url}/api/tenants/{self.tenant_id}/oidc/clients", headers=self.operator,
                                 timeout=10, json={
                                     "redirect_uris": [product.redirect_uri],
                                     "post_logout_redirect_uris": [f"{product.url}/bye"],
                                     "initiate_login_uri": f"{product.url}/start",
                                     "backchannel_logout_uri": f"{product.url}/backchannel-logout",
                                     "client_name": "Sample product"})
        assert response.status_code == 201, response.text
        product.client_id, product.client_secret = response.json()["client_id"], response.json()["client_secret"]


def _signed_in(chromium, product):
    """A fresh browser that signed Alice in to the product through its own /login (authorize → Entra → ACS)."""
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{product.url}/login")
    page.wait_for_url(f"{product.url}/home")
    assert page.text_content("#who") == "alice@acme.example.com"
    return context, page


def test_the_product_signs_an_employee_in_with_any_oidc_library(chromium, entra, app_url, operator_key,
                                                                 test_output):
    setup = Setup(app_url, operator_key, entra)
    shots = test_output / "oidc"
    shots.mkdir(parents=True, exist_ok=True)
    with SampleProduct(setup.issuer) as product:
        setup.register(product)
        context, page = _signed_in(chromium, product)
        page.screenshot(path=str(shots / "product-signed-in.png"))
        (claims,) = [s["claims"] for s in product.sessions.values()]
        assert claims["sub"] == setup.user["id"] and claims["tenant"] == setup.tenant_id
        # No Gatehouse cookie for the product's sign-in: the product holds the session, not us.
        assert not [c for c in context.cookies() if c["name"].endswith("gh_session")]

        # Logout: product → end_session → Entra's SingleLogoutService (the test IdP) → our SLO → the product.
        page.goto(f"{product.url}/logout")
        page.wait_for_url(f"{product.url}/bye?state=bye-state")
        (logout_request,) = entra.logout_requests
        assert logout_request.findtext("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer") == setup.created["sp_entity_id"]
        page.screenshot(path=str(shots / "product-signed-out.png"))
        context.close()


def test_dismissal_over_scim_reaches_the_product_by_back_channel_logout(chromium, entra, app_url, operator_key):
    setup = Setup(app_url, operator_key, entra)
    with SampleProduct(setup.issuer) as product:
        setup.register(product)
        context, page = _signed_in(chromium, product)
        dismissed = requests.patch(f"{setup.scim[0]}/Users/{setup.user['id']}", headers=setup.scim[1], timeout=10,
                                   json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                         "Operations": [{"op": "replace", "path": "active", "value": False}]})
        assert dismissed.status_code in (200, 204), dismissed.text
        deadline = time.monotonic() + 20
        while not product.logout_tokens and time.monotonic() < deadline:
            time.sleep(0.05)
        (token,) = product.logout_tokens
        assert token["sub"] == setup.user["id"]
        page.reload()
        assert page.text_content("#who") == "nobody"  # the product ended its own session on the token
        context.close()


def test_a_sign_in_from_my_apps_lands_in_the_product_and_signs_in_through_its_own_request(
        chromium, entra, app_url, operator_key, test_output):
    setup = Setup(app_url, operator_key, entra)
    with SampleProduct(setup.issuer) as product:
        setup.register(product)
        # My Apps: Entra posts an unsolicited response to the ACS from its own page.
        unsolicited = entra.idp.response(setup.created["sp_entity_id"], setup.created["acs_url"],
                                         "alice@acme.example.com", setup.object_id)
        entra.publish("/myapps", f'<!doctype html><form method="POST" action="{escape(setup.created["acs_url"])}">'
                                 f'<input type="hidden" name="SAMLResponse" value="{unsolicited}"></form>'
                                 '<script>document.forms[0].submit()</script>', content_type="text/html")
        context = chromium.new_context()
        page = context.new_page()
        page.goto(f"{entra.url}/myapps")
        page.wait_for_url(f"{product.url}/home")
        assert page.text_content("#who") == "alice@acme.example.com"
        # It went through the product's own authorization request: Entra saw an SP-initiated request.
        assert len(entra.received) == 1
        (test_output / "oidc").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(test_output / "oidc" / "my-apps-landed.png"))
        context.close()


def test_the_setup_page_shows_the_products_connection_read_only(chromium, entra, app_url, operator_key,
                                                                 test_output):
    setup = Setup(app_url, operator_key, entra)
    with SampleProduct(setup.issuer) as product:
        link = requests.post(f"{app_url}/api/tenants/{setup.tenant_id}/setup-link", headers=setup.operator,
                             timeout=10).json()["url"]
        context = chromium.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.goto(link)
        page.wait_for_selector("#product-state:not(:empty)")
        assert "Not connected" in page.text_content("#product-state")
        setup.register(product)
        page.reload()
        page.wait_for_selector("#product-clients li")
        assert "Connected" in page.text_content("#product-state")
        assert page.text_content("#product-issuer") == setup.issuer
        assert "Sample product" in page.text_content("#product-clients")
        assert page.input_value("#slo-url") == setup.created["slo_url"]
        assert page.locator("#product button, #product input, #product form").count() == 0  # read-only
        (test_output / "oidc").mkdir(parents=True, exist_ok=True)
        page.locator("#product").screenshot(path=str(test_output / "oidc" / "setup-product-connection.png"))
        context.close()


@pytest.mark.parametrize("send_state", [True, False], ids=["pyoidc-docs", "no-state"])
def test_a_product_on_pyoidc_signs_in_with_the_librarys_defaults(chromium, entra, app_url, operator_key, send_state,
                                                                 test_output):
    setup = Setup(app_url, operator_key, entra)
    with PyoidcProduct(setup.issuer, send_state=send_state) as product:
        setup.register(product)
        context, page = _signed_in(chromium, product)
        (claims,) = [s["claims"] for s in product.sessions.values()]
        assert claims["sub"] == setup.user["id"] and claims["iss"] == setup.issuer
        (info,) = product.userinfo  # pyoidc POSTed the access token in the form body (RFC 6750 §2.2)
        assert info["sub"] == setup.user["id"] and info["email"] == "alice@acme.example.com"
        assert info["name"] == "Alice Example"
        (sent,) = product.authorization_requests
        assert "code_challenge" not in sent and sent["nonce"] and ("state" in sent) is send_state
        (test_output / "oidc").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(test_output / "oidc" / f"pyoidc-{'state' if send_state else 'no-state'}.png"))
        # Logout without an id_token_hint: straight back to the registered address, with state.
        page.goto(f"{product.url}/logout")
        page.wait_for_url(f"{product.url}/bye?state=bye-state")
        context.close()
