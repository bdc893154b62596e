"""Setup wizard access over HTTP: one-time links, the session they open, and the CSRF rule on every admin call.

A link's token opens exactly one session; the session's cookie is for its own tenant only; state-changing calls
with the cookie need the session's X-CSRF-Token; the admin key keeps working as before.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
import requests

from shared_code.tenancy import setup_access
from shared_code.storage import setup_links


def issue_link(app_url: str, operator_key: str, tenant_id: str) -> dict:
    response = requests.post(f"{app_url}/api/tenants/{tenant_id}/setup-link",
                             headers={"Authorization": f"Bearer {operator_key}"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def token_of(link: dict) -> str:
    return link["url"].split("#t=", 1)[1]


def open_session(app_url: str, tenant_id: str, token: str) -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    response = browser.post(f"{app_url}/api/setup/{tenant_id}/session", json={"token": token}, timeout=10)
    return browser, response


@pytest.fixture
def wizard(app_url, operator_key, new_tenant):
    """A tenant, and a browser-like session that opened its setup link: (tenant, session, csrf token)."""
    tenant = new_tenant("Wizard Co")
    link = issue_link(app_url, operator_key, tenant.tenant_id)
    browser, response = open_session(app_url, tenant.tenant_id, token_of(link))
    assert response.status_code == 201, response.text
    return tenant, browser, response.json()["csrf_token"]


def test_operator_issues_a_one_time_link_with_the_token_only_in_the_fragment(app_url, operator_key, new_tenant,
                                                                               app_settings):
    tenant = new_tenant()
    link = issue_link(app_url, operator_key, tenant.tenant_id)
    base = app_settings["PUBLIC_BASE_URL"]
    assert re.fullmatch(rf"{re.escape(base)}/api/setup/{tenant.tenant_id}#t=gh_setup_[A-Za-z0-9_-]{{43}}", link["url"])
    expires = dt.datetime.fromisoformat(link["expires_at"])
    assert dt.timedelta(hours=23) < expires - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(hours=24)
    stored = setup_links.get_link(tenant.tenant_id)
    assert token_of(link) not in repr(stored)  # only the hash is kept


def test_only_the_operator_issues_setup_links(app_url, new_tenant):
    tenant = new_tenant()
    url = f"{app_url}/api/tenants/{tenant.tenant_id}/setup-link"
    assert requests.post(url, timeout=10).status_code == 401
    refused = requests.post(url, headers=tenant.admin_headers, timeout=10)
    assert refused.status_code == 403 and refused.json()["message"] == "This operator key is not valid."


def test_link_for_an_unknown_tenant_is_404(app_url, operator_key):
    response = requests.post(f"{app_url}/api/tenants/no-such-tenant-000/setup-link",
                             headers={"Authorization": f"Bearer {operator_key}"}, timeout=10)
    assert response.status_code == 404


def test_link_opens_a_strict_httponly_session_and_returns_a_csrf_token(app_url, operator_key, new_tenant):
    tenant = new_tenant()
    link = issue_link(app_url, operator_key, tenant.tenant_id)
    browser, response = open_session(app_url, tenant.tenant_id, token_of(link))
    assert response.status_code == 201, response.text
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"gh_setup_{tenant.tenant_id}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # the test app is plain http on loopback; over https it is Secure + __Host-
    body = response.json()
    assert body["tenant_id"] == tenant.tenant_id and len(body["csrf_token"]) >= 32
    assert browser.cookies.get(f"gh_setup_{tenant.tenant_id}") not in response.text
    # A reloaded page gets the same CSRF token back from its cookie, and without a cookie nothing.
    again = browser.get(f"{app_url}/api/setup/{tenant.tenant_id}/session", timeout=10)
    assert again.status_code == 200 and again.json()["csrf_token"] == body["csrf_token"]
    assert requests.get(f"{app_url}/api/setup/{tenant.tenant_id}/session", timeout=10).status_code == 401


def test_session_reads_without_csrf_and_writes_only_with_it(app_url, wizard):
    tenant, browser, csrf = wizard
    api = f"{app_url}/api/tenants/{tenant.tenant_id}"
    read = browser.get(f"{api}/sso", timeout=10)
    assert read.status_code == 200, read.text
    assert read.json()["tenant_id"] == tenant.tenant_id

    no_csrf = browser.put(f"{api}/default-department", json={"department": "Sales"}, timeout=10)
    assert no_csrf.status_code == 403
    assert "X-CSRF-Token" in no_csrf.json()["message"]
    wrong_csrf = browser.put(f"{api}/default-department", json={"department": "Sales"},
                             headers={"X-CSRF-Token": csrf[:-2] + "xx"}, timeout=10)
    assert wrong_csrf.status_code == 403 and "X-CSRF-Token" in wrong_csrf.json()["message"]
    for method, path in (("POST", "scim/token"), ("POST", "sso/enable"), ("POST", "sso/cancel")):
        refused = browser.request(method, f"{api}/{path}", timeout=10)
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["message"], (path, refused.text)
    assert tenant.api("GET", "sso").json()["steps"]["default_department"]["done"] is False

    ok = browser.put(f"{api}/default-department", json={"department": "Sales"}, headers={"X-CSRF-Token": csrf},
                     timeout=10)
    assert ok.status_code == 200, ok.text
    token = browser.post(f"{api}/scim/token", headers={"X-CSRF-Token": csrf}, timeout=10)
    assert token.status_code == 201 and token.json()["secret_token"]


def test_a_used_link_is_refused_with_a_clear_message(app_url, operator_key, new_tenant):
    tenant = new_tenant()
    token = token_of(issue_link(app_url, operator_key, tenant.tenant_id))
    assert open_session(app_url, tenant.tenant_id, token)[1].status_code == 201
    _, again = open_session(app_url, tenant.tenant_id, token)
    assert again.status_code == 403
    assert "already been used" in again.json()["message"]
    assert "new setup link" in again.json()["message"]
    assert "Set-Cookie" not in again.headers


def test_a_newer_link_replaces_the_older_one(app_url, operator_key, new_tenant):
    tenant = new_tenant()
    first = token_of(issue_link(app_url, operator_key, tenant.tenant_id))
    second = token_of(issue_link(app_url, operator_key, tenant.tenant_id))
    refused = open_session(app_url, tenant.tenant_id, first)[1]
    assert refused.status_code == 403 and "not valid" in refused.json()["message"]
    assert open_session(app_url, tenant.tenant_id, second)[1].status_code == 201


def test_an_expired_link_is_refused(app_url, operator_key, new_tenant):
    tenant = new_tenant()
    token = token_of(issue_link(app_url, operator_key, tenant.tenant_id))
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    stored = setup_links.get_link(tenant.tenant_id)
    setup_links.put_link(tenant.tenant_id, stored["token_hash"], past - dt.timedelta(hours=24), past)
    response = open_session(app_url, tenant.tenant_id, token)[1]
    assert response.status_code == 403
    assert "expired" in response.json()["message"]


def test_a_link_works_only_for_its_own_tenant(app_url, operator_key, new_tenant):
    acme, globex = new_tenant("Acme"), new_tenant("Globex")
    token = token_of(issue_link(app_url, operator_key, acme.tenant_id))
    for tenant_id in (globex.tenant_id, "no-such-tenant-000"):
        refused = open_session(app_url, tenant_id, token)[1]
        assert refused.status_code == 403 and refused.json()["error"] == "setup_link_refused", refused.text
        assert "not valid" in refused.json()["message"] and "Set-Cookie" not in refused.headers
    for body in ({}, {"token": ""}, {"token": 42}):
        response = requests.post(f"{app_url}/api/setup/{acme.tenant_id}/session", json=body, timeout=10)
        assert response.status_code == 403 and response.json()["field"] == "token"


def test_another_tenants_session_is_refused(app_url, operator_key, new_tenant, wizard):
    acme, browser, csrf = wizard
    globex = new_tenant("Globex")
    cookie = browser.cookies.get(f"gh_setup_{acme.tenant_id}")
    target = f"{app_url}/api/tenants/{globex.tenant_id}"
    # The browser's own cookie is named for Acme, so Globex's endpoints see no session at all...
    assert browser.put(f"{target}/default-department", json={"department": "X"},
                       headers={"X-CSRF-Token": csrf}, timeout=10).status_code == 401
    # ...and Acme's signed value under Globex's cookie name is refused too.
    forged = requests.put(f"{target}/default-department", json={"department": "X"},
                          headers={"X-CSRF-Token": csrf, "Cookie": f"gh_setup_{globex.tenant_id}={cookie}"}, timeout=10)
    assert forged.status_code == 401
    assert "Acme" not in forged.text
    assert globex.api("GET", "sso").json()["steps"]["default_department"]["done"] is False


def test_forged_or_tampered_cookies_are_refused(app_url, wizard):
    tenant, browser, csrf = wizard
    name = f"gh_setup_{tenant.tenant_id}"
    cookie = browser.cookies.get(name)
    version, tid, sid, expiry, mac = cookie.split(".")
    later = str(int(expiry) + 86400)
    other_sid = sid[:-1] + ("B" if sid.endswith("A") else "A")  # really different (1 in 64 ids ends in "A")
    for value in (f"{version}.{tid}.{sid}.{later}.{mac}", f"{version}.{tid}.{other_sid}.{expiry}.{mac}",
                  "v1.x.y.1.z", "", "garbage"):
        response = requests.put(f"{app_url}/api/tenants/{tenant.tenant_id}/default-department",
                                json={"department": "X"}, headers={"X-CSRF-Token": csrf, "Cookie": f"{name}={value}"},
                                timeout=10)
        assert response.status_code in (401, 403), value


def test_expired_session_is_refused(app_settings, new_tenant, app_url):
    tenant = new_tenant()
    session = setup_access._new_session(tenant.tenant_id, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
    response = requests.get(f"{app_url}/api/tenants/{tenant.tenant_id}/sso",
                            headers={"Cookie": f"gh_setup_{tenant.tenant_id}={session.cookie_value}"}, timeout=10)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_admin_key_still_works_and_needs_no_csrf(wizard):
    tenant, _, _ = wizard
    assert tenant.api("PUT", "default-department", json={"department": "Ops"}).status_code == 200


def test_ending_the_session_clears_the_cookie(app_url, wizard):
    tenant, browser, _ = wizard
    response = browser.delete(f"{app_url}/api/setup/{tenant.tenant_id}/session", timeout=10)
    assert response.status_code == 204
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert browser.get(f"{app_url}/api/setup/{tenant.tenant_id}/session", timeout=10).status_code == 401


def test_wizard_page_has_a_strict_csp_and_cacheable_assets(app_url, new_tenant):
    tenant = new_tenant()
    page = requests.get(f"{app_url}/api/setup/{tenant.tenant_id}", timeout=10)
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert "<style" not in page.text and " style=" not in page.text and "on" + "click=" not in page.text
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page.text, re.S)
    assert scripts == [""]  # one external script, no inline code
    assets = re.findall(r'(?:src|href)="(/api/setup-assets/[^"]+)"', page.text)
    assert len(assets) == 2
    for asset in assets:
        response = requests.get(f"{app_url}{asset}", timeout=10)
        assert response.status_code == 200
        assert "immutable" in response.headers["Cache-Control"]
        etag = response.headers["ETag"]
        assert requests.get(f"{app_url}{asset}", headers={"If-None-Match": etag}, timeout=10).status_code == 304
    assert requests.get(f"{app_url}/api/setup-assets/wizard.0000000000000000.js", timeout=10).status_code == 404
    assert requests.get(f"{app_url}/api/setup/NOT..valid", timeout=10).status_code == 404


def test_over_https_the_cookie_is_secure_and_host_pinned(app_settings, monkeypatch):
    import dataclasses

    from shared_code.platform.settings import get_settings

    https = dataclasses.replace(get_settings(), public_base_url="https://gatehouse.example")
    monkeypatch.setattr(setup_access, "get_settings", lambda: https)
    session = setup_access._new_session("acme-0a1b2c", dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    header = setup_access.set_cookie_header(session)
    assert header.startswith("__Host-gh_setup_acme-0a1b2c=")
    assert "; Secure" in header and "Path=/" in header and "Domain" not in header
    assert "; Secure" in setup_access.clear_cookie_header("acme-0a1b2c")


def test_a_session_signed_with_another_key_is_refused(app_settings, monkeypatch):
    import dataclasses

    from shared_code.platform.settings import get_settings

    session = setup_access._new_session("acme-0a1b2c", dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    assert setup_access.read_session("acme-0a1b2c", session.cookie_value) is not None
    rotated = dataclasses.replace(get_settings(), session_signing_key="another-key")
    monkeypatch.setattr(setup_access, "get_settings", lambda: rotated)
    assert setup_access.read_session("acme-0a1b2c", session.cookie_value) is None
    unset = dataclasses.replace(get_settings(), session_signing_key="")
    monkeypatch.setattr(setup_access, "get_settings", lambda: unset)
    with pytest.raises(setup_access.SetupNotConfigured):
        setup_access.read_session("acme-0a1b2c", session.cookie_value)


def test_ending_the_session_ends_it_on_the_server_not_only_its_cookie(app_url, wizard):
    tenant, browser, csrf = wizard
    cookie = browser.cookies.get(f"gh_setup_{tenant.tenant_id}")
    assert browser.delete(f"{app_url}/api/setup/{tenant.tenant_id}/session", timeout=10).status_code == 204
    # Someone who copied the cookie before "End session" cannot use it afterwards.
    replayed = requests.get(f"{app_url}/api/tenants/{tenant.tenant_id}/sso", timeout=10,
                            headers={"Cookie": f"gh_setup_{tenant.tenant_id}={cookie}"})
    assert replayed.status_code == 401 and "ended" in replayed.json()["message"]


def test_a_new_setup_link_ends_the_wizard_sessions_opened_before_it(app_url, operator_key, wizard):
    tenant, browser, csrf = wizard
    api = f"{app_url}/api/tenants/{tenant.tenant_id}"
    assert browser.get(f"{api}/sso", timeout=10).status_code == 200
    link = issue_link(app_url, operator_key, tenant.tenant_id)  # e.g. the first link leaked
    ended = browser.put(f"{api}/default-department", json={"department": "Sales"}, headers={"X-CSRF-Token": csrf},
                        timeout=10)
    assert ended.status_code == 401 and "newer setup link" in ended.json()["message"]
    assert browser.get(f"{app_url}/api/setup/{tenant.tenant_id}/session", timeout=10).status_code == 401
    newer, opened = open_session(app_url, tenant.tenant_id, token_of(link))
    assert opened.status_code == 201
    assert newer.put(f"{api}/default-department", json={"department": "Sales"}, timeout=10,
                     headers={"X-CSRF-Token": opened.json()["csrf_token"]}).status_code == 200


def test_deeply_nested_json_before_authentication_is_a_400(app_url, new_tenant):
    tenant = new_tenant()
    for body in (b"[" * 60_000, b"{" + b'"t":{' * 100 + b"}" * 101):
        response = requests.post(f"{app_url}/api/setup/{tenant.tenant_id}/session", data=body, timeout=10,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "bad_request" and "Traceback" not in response.text
