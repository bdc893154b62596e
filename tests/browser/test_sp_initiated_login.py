"""SP-initiated sign-in in headless Chromium, as an employee does it: the app's login link → the IdP's page (a
real HTTP server in this process playing Entra, on "localhost" so that its POST to the ACS on 127.0.0.1 is
cross-site, as from login.microsoftonline.com) → its auto-posting form → the ACS → the tenant's app → /me.

It proves in a real browser what the HTTP tests cannot: that the login-binding cookie (SameSite=None; Secure)
comes back with the cross-site POST, and that the session cookie (HttpOnly; SameSite=Lax) works afterwards.
Screenshots land in test-output/sso/.
"""
from __future__ import annotations

import json
import uuid
from typing import Iterator

import pytest
import requests

from tests.support.idp import TestIdp
from tests.support.idp_server import IdpServer

pytestmark = pytest.mark.browser

APP_HOME = "<!doctype html><html><head><title>Acme app</title></head><body><h1>Acme app</h1><p>{}</p></body></html>"


@pytest.fixture
def entra() -> Iterator[IdpServer]:
    with IdpServer(TestIdp(key_label="sso-browser"), host="localhost") as server:
        yield server


def test_an_employee_signs_in_sp_initiated_through_the_idp_page_and_sees_themselves(
        chromium, entra, app_url, operator_key, test_output):
    # The tenant's own app lives on another site too (here: the IdP's server, as a stand-in web app).
    entra.publish("/acme", APP_HOME.format("Home"), content_type="text/html")
    entra.publish("/acme/projects/7", APP_HOME.format("Project 7"), content_type="text/html")
    created = requests.post(f"{app_url}/api/tenants", json={"name": "Acme Browser", "app_url": entra.url + "/acme"},
                            headers={"Authorization": f"Bearer {operator_key}"}, timeout=10)
    assert created.status_code == 201, created.text
    tenant_id, admin_key = created.json()["tenant_id"], created.json()["admin_key"]
    admin = {"Authorization": f"Bearer {admin_key}"}
    connected = requests.post(f"{app_url}/api/tenants/{tenant_id}/sso/idp-metadata", headers=admin, timeout=30,
                              json={"metadata_url": entra.publish_metadata()})
    assert connected.status_code == 200, connected.text
    token = requests.post(f"{app_url}/api/tenants/{tenant_id}/scim/token", headers=admin, timeout=10).json()
    object_id = str(uuid.uuid4())
    user = requests.post(f"{token['scim_tenant_url']}/Users", timeout=10, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@acme.example.com",
        "externalId": object_id, "displayName": "Alice Example", "active": True,
        "emails": [{"value": "alice@acme.example.com", "type": "work", "primary": True}]},
        headers={"Authorization": f"Bearer {token['secret_token']}", "Content-Type": "application/scim+json"})
    assert user.status_code == 201, user.text
    entra.sign_in_as("alice@acme.example.com", object_id)

    shots = test_output / "sso"
    shots.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context()
    page = context.new_page()
    posts: list[tuple[str, str | None]] = []
    page.on("request", lambda request: request.method == "POST" and posts.append(
        (request.url, request.header_value("cookie"))))
    page.goto(f"{app_url}/api/sso/{tenant_id}/login?RelayState=/acme/projects/7")
    page.wait_for_url(entra.url + "/acme/projects/7")
    assert page.text_content("h1") == "Acme app"
    page.screenshot(path=str(shots / "sp-initiated-landed.png"))

    # The IdP page really posted cross-site to the ACS, and the binding cookie went with it.
    (acs_url, cookie_header), = posts
    assert acs_url == f"{app_url}/api/sso/{tenant_id}/acs"
    assert "__Host-gh_login=" in (cookie_header or "")
    assert len(entra.received) == 1 and entra.received[0].relay_state != "/acme/projects/7"

    session = next(c for c in context.cookies() if c["name"] == "gh_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == f"/api/sso/{tenant_id}/"

    page.goto(f"{app_url}/api/sso/{tenant_id}/me")
    me = json.loads(page.text_content("body"))
    assert me == {"id": user.json()["id"], "userName": "alice@acme.example.com", "email": "alice@acme.example.com",
                  "displayName": "Alice Example", "is_admin": False, "tenant": tenant_id}
    page.screenshot(path=str(shots / "sp-initiated-me.png"))
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script on our origin can read either cookie

    # A second visit to /me in a fresh browser (no cookie) is refused.
    other = chromium.new_context()
    refused = other.new_page().goto(f"{app_url}/api/sso/{tenant_id}/me")
    assert refused.status == 401
    other.close()
    context.close()


def _provision(scim_url: str, scim_token: str, user_name: str, object_id: str) -> dict:
    response = requests.post(f"{scim_url}/Users", timeout=10, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "externalId": object_id,
        "displayName": user_name.split("@")[0], "active": True,
        "emails": [{"value": user_name, "type": "work", "primary": True}]},
        headers={"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_my_apps_response_replayed_in_another_browser_signs_in_only_that_browsers_own_employee(
        chromium, entra, app_url, operator_key, test_output):
    """Login CSRF: Mallory, assigned to the app, takes her own unsolicited (My Apps) response and makes Alice's
    browser post it. The ACS must not sign Alice's browser in as Mallory: it starts a login in that browser,
    which Entra completes as whoever that browser is signed in to Entra as (Alice), landing where My Apps said."""
    entra.publish("/acme", APP_HOME.format("Home"), content_type="text/html")
    entra.publish("/acme/projects/7", APP_HOME.format("Project 7"), content_type="text/html")
    created = requests.post(f"{app_url}/api/tenants", json={"name": "Acme CSRF", "app_url": entra.url + "/acme"},
                            headers={"Authorization": f"Bearer {operator_key}"}, timeout=10).json()
    tenant_id, admin = created["tenant_id"], {"Authorization": f"Bearer {created['admin_key']}"}
    connected = requests.post(f"{app_url}/api/tenants/{tenant_id}/sso/idp-metadata", headers=admin, timeout=30,
                              json={"metadata_url": entra.publish_metadata()})
    assert connected.status_code == 200, connected.text
    token = requests.post(f"{app_url}/api/tenants/{tenant_id}/scim/token", headers=admin, timeout=10).json()
    alice_oid, mallory_oid = str(uuid.uuid4()), str(uuid.uuid4())
    alice = _provision(token["scim_tenant_url"], token["secret_token"], "alice@acme.example.com", alice_oid)
    _provision(token["scim_tenant_url"], token["secret_token"], "mallory@acme.example.com", mallory_oid)

    # Mallory's own genuine My Apps response (no InResponseTo), on a page that auto-posts it to the ACS.
    mallorys = entra.idp.response(created["sp_entity_id"], created["acs_url"], "mallory@acme.example.com",
                                  mallory_oid)
    entra.publish("/lure", f'<!doctype html><form method="POST" action="{created["acs_url"]}">'
                  f'<input type="hidden" name="SAMLResponse" value="{mallorys}">'
                  '<input type="hidden" name="RelayState" value="/acme/projects/7"></form>'
                  '<script>document.forms[0].submit()</script>', content_type="text/html")
    entra.sign_in_as("alice@acme.example.com", alice_oid)  # Alice's browser has her own Entra session

    context = chromium.new_context()
    page = context.new_page()
    page.goto(entra.url + "/lure")
    page.wait_for_url(entra.url + "/acme/projects/7")  # My Apps' landing survives the detour through Entra
    assert len(entra.received) == 1, "the unsolicited response did not start a login in this browser"
    page.goto(f"{app_url}/api/sso/{tenant_id}/me")
    assert json.loads(page.text_content("body"))["id"] == alice["id"]  # Alice, never Mallory
    shots = test_output / "sso"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "unsolicited-replayed-me.png"))
    context.close()
