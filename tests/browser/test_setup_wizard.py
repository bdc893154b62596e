"""The setup wizard in headless Chromium, end to end against the local host, Azurite and a test IdP.

An operator's setup link opens the wizard; the admin connects Entra (metadata served by a local HTTP server),
generates the SCIM token that provisions a few employees, checks their email domains and fixes or allows the
ones outside, sets the default department and the mobile settings, runs the self-check sign-in through the
IdP's page and enables SSO. Screenshots of each step land in test-output/wizard/.
"""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect

from tests.support.idp import TestIdp
from tests.support.idp_server import IdpServer

pytestmark = pytest.mark.browser

WIZARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
ADMIN_OBJECT_ID = str(uuid.uuid4())


# ---- fixtures --------------------------------------------------------------------------------------------

@pytest.fixture
def shots(test_output: Path) -> Callable:
    folder = test_output / "wizard"
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page, name: str, section: str | None = None) -> Path:
        """A viewport-size screenshot, scrolled so that `section` starts at the top (small PNGs)."""
        if section:
            page.evaluate("id => document.getElementById(id).scrollIntoView({block: 'start'})", section)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return shoot


ENTRA_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db46"


def setup_link(app_url: str, operator_key: str, tenant_id: str) -> str:
    response = requests.post(f"{app_url}/api/tenants/{tenant_id}/setup-link",
                             headers={"Authorization": f"Bearer {operator_key}"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["url"]


class Watch:
    """What a page did that the test asserts on afterwards: request URLs, console errors, CSP violations."""

    def __init__(self, page):
        self.urls: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        # Expected 4xx answers show up as "Failed to load resource"; script errors and CSP violations do not.
        page.on("console", lambda message: message.type == "error" and "Failed to load resource" not in message.text
                and self.problems.append(message.text))
        page.on("response", lambda response: response.status == 404 and self.problems.append(f"404 {response.url}"))
        page.on("pageerror", lambda error: self.problems.append(str(error)))


def open_wizard(context, url: str):
    page = context.new_page()
    watch = Watch(page)
    response = page.goto(url)
    page.wait_for_selector("#steps:not([hidden]), #access:not([hidden])")
    return page, watch, response


def scim_user(tenant, token: str, user_name: str, name: str, object_id: str) -> dict:
    given, _, family = name.partition(" ")
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": True,
            "externalId": object_id, "displayName": name, "name": {"givenName": given, "familyName": family},
            "emails": [{"type": "work", "primary": True, "value": user_name}]}
    response = requests.post(f"{tenant.scim_url}/Users", json=body, timeout=10,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    assert response.status_code == 201, response.text
    return response.json()


def done_steps(page) -> list[str]:
    return page.eval_on_selector_all("#progress li.done", "items => items.map(i => i.dataset.step)")


# ---- the whole walk ---------------------------------------------------------------------------------------

def test_setup_link_walks_the_admin_through_every_step(chromium, app_url, operator_key, new_tenant, shots,
                                                       local_host, dns_server):
    tenant = new_tenant("Contoso Ltd", "https://contoso.example.com")
    url = setup_link(app_url, operator_key, tenant.tenant_id)
    token = url.split("#t=", 1)[1]
    admin = {"email": "alice@contoso.example", "object_id": ADMIN_OBJECT_ID, "name": "Alice Admin"}
    context = chromium.new_context(viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_url)
    page, watch, response = open_wizard(context, url)

    # Safe page: strict CSP, no inline code, the token gone from the address bar before anything else.
    assert response.headers["content-security-policy"] == WIZARD_CSP
    scripts = page.eval_on_selector_all("script", "s => s.map(e => [e.src, e.textContent.trim()])")
    assert scripts and all(src and not body for src, body in scripts)
    assert page.eval_on_selector_all("style, [style]", "e => e.length") == 0
    assert "#t=" not in page.url and token not in page.url
    assert page.evaluate("location.hash") == ""
    expect_visible(page, "#steps")
    # The steps show at once and fill in when the tenant's summary arrives: wait for it, don't race it.
    expect(page.locator("#tenant-name")).to_have_text("Contoso Ltd")
    expect(page.locator("#status-badge")).to_have_text(re.compile(r"^draft"))

    # (1) the SP values, copied with the buttons.
    assert page.input_value("#acs-url") == tenant.created["acs_url"]
    assert page.input_value("#sp-entity-id") == tenant.created["sp_entity_id"]
    page.click('button[data-copy="acs-url"]')
    expect(page.locator("#copy-status")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == tenant.created["acs_url"]
    shots(page, "1-entra-application", "step-1")

    # The Entra tenant of the MSAL configuration pasted in step 6: its authority must name the connected one.
    with IdpServer(TestIdp(entra_tenant_id=ENTRA_TENANT_ID), host="localhost") as idp:
        idp.sign_in_as(admin["email"], admin["object_id"], admin["email"], display_name=admin["name"])
        metadata_url = idp.publish_metadata()
        # (2) Check now: first a URL that serves nothing (the error sits next to the field), then the real one.
        page.fill("#metadata-url", f"{idp.url}/nothing-here")
        page.click("#idp-form button[type=submit]")
        page.wait_for_selector("#metadata-url-error:not(:empty)")
        assert page.get_attribute("#metadata-url", "aria-invalid") == "true"
        shots(page, "2-connect-entra-error", "step-2")
        page.fill("#metadata-url", metadata_url)
        page.click("#idp-form button[type=submit]")
        page.wait_for_selector("#idp-result:not([hidden])")
        assert page.text_content("#metadata-url-error") == ""
        assert "Connection established" in page.text_content("#idp-result")
        assert page.text_content("#idp-entity-id") == idp.idp.entity_id
        assert idp.idp.identity.sha256.lower() in page.text_content("#cert-table").lower().replace(":", "")
        assert idp.idp.identity.not_after.strftime("%Y") in page.text_content("#cert-table")
        page.wait_for_selector('#progress li.done[data-step="idp_metadata"]')
        shots(page, "2-connect-entra", "step-2")

        # (3) Generate the SCIM token: shown once with a warning; Entra would use it to provision these people.
        assert page.input_value("#scim-url") == tenant.scim_url
        page.click("#generate-token")
        page.wait_for_selector("#scim-token-box:not([hidden])")
        secret = page.input_value("#scim-token")
        assert secret and "shown only once" in page.text_content("#scim-token-box")
        page.wait_for_selector('#progress li.done[data-step="scim_token"]')
        shots(page, "3-provisioning", "step-3")
        scim_user(tenant, secret, admin["email"], admin["name"], admin["object_id"])
        scim_user(tenant, secret, "bob@gmail.com", "Bob Personal", str(uuid.uuid4()))
        scim_user(tenant, secret, "carol@old-contoso.example", "Carol Former", str(uuid.uuid4()))

        # (4) Corporate domains → the audit lists Bob and Carol; Edit fixes Bob's email, Allow accepts Carol.
        page.fill("#domains", "contoso.example")
        page.click("#domains-form button[type=submit]")
        page.wait_for_selector("#audit-table tbody tr")
        rows = page.locator("#audit-table tbody tr")
        assert rows.count() == 2
        assert "bob@gmail.com" in page.text_content("#audit-table")
        shots(page, "4-email-domains-audit", "step-4")
        bob_id = page.locator("#audit-table tbody tr", has_text="bob@gmail.com").get_attribute("data-employee")
        bob = page.locator(f'#audit-table tbody tr[data-employee="{bob_id}"]')  # the email turns into a field
        bob.get_by_role("button", name="Edit").click()
        email = bob.locator("input[type=email]")
        email.fill("bob@contoso.example")
        bob.get_by_role("button", name="Save").click()
        expect(page.locator("#audit-table")).not_to_contain_text("bob@gmail.com")
        carol = page.locator("#audit-table tbody tr", has_text="carol@old-contoso.example")
        carol.get_by_role("button", name="Allow").click()
        page.wait_for_selector("dialog#confirm[open]")
        page.click("#confirm-ok")
        expect(page.locator("#audit-table tbody tr", has_text="carol@old-contoso.example")).to_have_count(0)
        page.wait_for_selector('#progress li.done[data-step="domains"]')
        shots(page, "4-email-domains-fixed", "step-4")

        # Domain ownership: the wizard shows the TXT record to create; checked against the test's DNS server.
        owned = page.locator('#verification-table tbody tr[data-domain="contoso.example"]')
        expect(owned).to_contain_text("Not verified")
        owned.get_by_role("button", name="Show the DNS record for contoso.example").click()
        expect(owned.locator(".record-name")).to_have_text("_gatehouse.contoso.example")
        record_value = owned.locator(".record-value").text_content()
        assert record_value.startswith("gatehouse-verification=")
        owned.get_by_role("button", name="Check the DNS record of contoso.example").click()
        expect(owned.locator(".field-error")).to_contain_text("No TXT record was found")
        dns_server.publish_txt("_gatehouse.contoso.example", record_value)
        owned.get_by_role("button", name="Check the DNS record of contoso.example").click()
        expect(owned).to_contain_text("Verified")
        shots(page, "4-domain-ownership", "step-4")

        # (5) Default department.
        page.fill("#department", "New hires")
        page.click("#department-form button[type=submit]")
        page.wait_for_selector("#department-saved:not(:empty)")
        page.wait_for_selector('#progress li.done[data-step="default_department"]')
        shots(page, "5-default-department", "step-5")

        # (6) Mobile: the operator's identifiers to copy; a wrong redirect URI is refused next to its field.
        expect(page.locator("#ios-bundle-id")).not_to_have_value("")
        bundle = page.input_value("#ios-bundle-id")
        package = page.input_value("#android-package")
        signature = page.input_value("#android-signature")
        page.fill("#ios-redirect-uri", "msauth.com.wrong.app://auth")
        page.click("#mobile-form button[type=submit]")
        page.wait_for_selector("#ios-redirect-uri-error:not(:empty)")
        assert page.get_attribute("#ios-redirect-uri", "aria-invalid") == "true"
        page.fill("#ios-redirect-uri", f"msauth.{bundle}://auth")
        page.fill("#msal-configuration", msal_configuration(package, signature))
        page.click("#mobile-form button[type=submit]")
        page.wait_for_selector("#mobile-saved:not(:empty)")
        assert page.text_content("#ios-redirect-uri-error") == ""
        page.wait_for_selector('#progress li.done[data-step="mobile"]')
        shots(page, "6-mobile", "step-6")

        # Reloading loses nothing: progress and values come back from the API.
        page.reload()
        page.wait_for_selector('#progress li.done[data-step="mobile"]')
        assert set(done_steps(page)) >= {"service_provider", "idp_metadata", "scim_token", "domains",
                                         "default_department", "mobile"}
        assert page.input_value("#department") == "New hires"
        assert page.input_value("#domains") == "contoso.example"

        # (7) Test: the one-time self-check link signs in through the IdP's page and reports success.
        page.click("#test-link")
        page.wait_for_selector("#test-box:not([hidden])")
        with context.expect_page() as popup_info:
            page.click("#test-open")
        popup = popup_info.value
        popup.wait_for_load_state()
        expect(popup.locator("body")).to_contain_text(re.compile("test was successful", re.I))
        shots(popup, "7-self-check-result")
        popup.close()
        page.bring_to_front()
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        expect(page.locator("#self-check-state")).to_contain_text("passed")

    # Enable for all employees, behind a confirmation that says it cannot be undone.
    page.click("#enable")
    page.wait_for_selector("dialog#confirm[open]")
    assert "cannot undo" in page.text_content("#confirm-text")
    shots(page, "7-enable-confirmation")
    page.click("#confirm-ok")
    page.wait_for_selector("#enabled-state:not(:empty)")
    assert page.text_content("#status-badge") == "enabled for all employees"
    assert page.is_hidden("#cancel-setup")
    page.wait_for_selector('#progress li.done[data-step="enabled"]')
    assert tenant.api("GET", "sso").json()["status"] == "enabled"
    shots(page, "7-enabled", "step-7")

    # Readable on a phone.
    page.set_viewport_size(PHONE)
    page.goto(f"{app_url}/api/setup/{tenant.tenant_id}")
    page.wait_for_selector("#steps:not([hidden])")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shots(page, "phone-375")

    # The token never left the fragment: no request carried it, nor did the host's log.
    assert not [u for u in watch.urls if token in u]
    assert token not in local_host.log_text()
    assert secret not in local_host.log_text()
    assert not watch.problems, watch.problems
    context.close()


def msal_configuration(package: str, signature: str) -> str:
    return json.dumps({
        "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
        "authorization_user_agent": "DEFAULT",
        "redirect_uri": f"msauth://{package}/{quote(signature, safe='')}",
        "broker_redirect_uri_registered": True,
        "authorities": [{"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": ENTRA_TENANT_ID}}],
    }, indent=2)


def expect_visible(page, selector: str) -> None:
    """Visible now or within Playwright's wait (the page may still be answering a fetch)."""
    expect(page.locator(selector)).to_be_visible()


# ---- access: reused links, the admin key, keyboard --------------------------------------------------------

def test_a_reused_setup_link_says_so_and_offers_the_admin_key(chromium, app_url, operator_key, new_tenant, shots):
    tenant = new_tenant("Reuse Inc")
    url = setup_link(app_url, operator_key, tenant.tenant_id)
    first = chromium.new_context(viewport=DESKTOP)
    page, _, _ = open_wizard(first, url)
    expect_visible(page, "#steps")
    first.close()

    second = chromium.new_context(viewport=DESKTOP)
    page, watch, _ = open_wizard(second, url)
    expect_visible(page, "#access")
    assert "already been used" in page.text_content("#access-reason")
    assert page.url.endswith(f"/api/setup/{tenant.tenant_id}")
    shots(page, "access-link-reused")

    # The admin key is the alternative: kept in this tab only, never in the URL.
    page.fill("#admin-key", "gh_admin_wrong")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#admin-key-error:not(:empty)")
    page.fill("#admin-key", tenant.admin_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#steps:not([hidden])")
    assert tenant.admin_key not in page.url
    page.reload()
    page.wait_for_selector("#steps:not([hidden])")
    expect(page.locator("#tenant-name")).to_have_text("Reuse Inc")
    assert not [u for u in watch.urls if tenant.admin_key in u]
    second.close()


def test_cancel_the_setting_returns_an_unfinished_setup_to_draft(chromium, app_url, operator_key, new_tenant, shots):
    tenant = new_tenant("Cancel GmbH")
    with IdpServer(TestIdp()) as idp:
        connected = tenant.api("POST", "sso/idp-metadata", json={"metadata_url": idp.publish_metadata()})
        assert connected.status_code == 200, connected.text
    context = chromium.new_context(viewport=DESKTOP)
    page, watch, _ = open_wizard(context, setup_link(app_url, operator_key, tenant.tenant_id))
    page.wait_for_selector('#progress li.done[data-step="idp_metadata"]')
    expect(page.locator("#idp-result")).to_be_visible()
    page.click("#cancel-setup")
    page.wait_for_selector("dialog#confirm[open]")
    page.click("#confirm .secondary")  # "Go back" changes nothing
    assert tenant.api("GET", "sso").json()["steps"]["idp_metadata"]["done"] is True
    page.click("#cancel-setup")
    page.click("#confirm-ok")
    expect(page.locator("#global-message")).to_contain_text("back to draft")
    expect(page.locator('#progress li[data-step="idp_metadata"]')).not_to_have_class(re.compile(r"\bdone\b"))
    expect(page.locator("#idp-result")).to_be_hidden()
    body = tenant.api("GET", "sso").json()
    assert body["status"] == "draft" and body["steps"]["idp_metadata"]["done"] is False
    shots(page, "7-cancelled")
    assert not watch.problems, watch.problems
    context.close()


def test_every_control_is_labelled_and_keyboard_reachable_with_visible_focus(chromium, app_url, operator_key,
                                                                              new_tenant):
    tenant = new_tenant("Keys Ltd")
    context = chromium.new_context(viewport=DESKTOP)
    page, _, _ = open_wizard(context, setup_link(app_url, operator_key, tenant.tenant_id))
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, textarea, select')]
        .filter(e => !e.closest('[hidden]') && e.type !== 'hidden')
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id)""")
    assert unlabelled == []
    seen, outlines = set(), []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => { const e = document.activeElement;
            if (e === document.body) return null;  // past the last control, focus leaves the page
            const s = getComputedStyle(e); return [e.id || e.getAttribute('data-copy') || e.textContent.trim(),
            s.outlineStyle, s.outlineWidth]; }""")
        if focused is None:
            continue
        seen.add(focused[0])
        outlines.append(focused)
    for wanted in ("metadata-url", "domains", "department", "generate-token", "acs-url"):
        assert wanted in seen, (wanted, seen)
    assert [f for f in outlines if f[1] == "none" or f[2] == "0px"] == []
    context.close()


def test_the_roles_step_maps_entra_groups_to_the_products_roles(chromium, app_url, operator_key, new_tenant, shots):
    tenant = new_tenant("Roles Ltd")
    token = tenant.scim_token()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    user = scim_user(tenant, token, "rhea@roles.example", "Rhea Admin", "6f1d1c9e-0000-4000-8000-000000000001")
    groups = {}
    for name in ("Gatehouse Admins", "Everyone"):
        response = requests.post(f"{tenant.scim_url}/Groups", timeout=10, headers=headers, json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name,
            "members": [{"value": user["id"]}]})
        assert response.status_code == 201, response.text
        groups[name] = response.json()["id"]
    context = chromium.new_context(viewport=DESKTOP)
    page, watch, _ = open_wizard(context, setup_link(app_url, operator_key, tenant.tenant_id))
    expect_visible(page, "#roles-form")
    # one row per provisioned group, one labelled checkbox per declared role (PRODUCT_ROLES: admin, member)
    assert page.eval_on_selector_all("#roles-table thead th", "h => h.map(e => e.textContent)") == [
        "Group", "admin", "member"]
    expect(page.locator("#rehire-rule")).to_contain_text("does not come back by itself")
    page.check(f'#role-{groups["Gatehouse Admins"]}-admin')
    page.check(f'#role-{groups["Everyone"]}-member')
    page.click("#roles-form button[type=submit]")
    expect(page.locator("#roles-saved")).to_contain_text("Saved")
    shots(page, "5-roles", "step-roles")
    mapped = tenant.api("GET", "role-mappings").json()["mappings"]
    assert {m["group_id"]: m["roles"] for m in mapped} == {groups["Gatehouse Admins"]: ["admin"],
                                                            groups["Everyone"]: ["member"]}
    assert tenant.api("GET", f"employees/{user['id']}").json()["roles"] == ["admin", "member"]
    # after a reload the page shows what is stored
    page.reload()
    expect_visible(page, "#roles-form")
    assert page.is_checked(f'#role-{groups["Gatehouse Admins"]}-admin')
    assert not page.is_checked(f'#role-{groups["Gatehouse Admins"]}-member')
    assert watch.problems == []
    context.close()
