"""The admin's self-check: a one-time, expiring link that starts an SP-initiated sign-in; signing in through it
shows "The test was successful" (no redirect, no session), moves the tenant to `testing`, and works before SSO
is enabled; then SSO can be enabled for all employees."""
from __future__ import annotations

import requests

from tests.sso.conftest import SESSION, assert_refused, login_cookies, session_of, set_cookies
from tests.support.idp import decode_authn_request


def open_link(url: str, cookies: dict[str, str] | None = None) -> requests.Response:
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
    return requests.get(url, allow_redirects=False, timeout=30, headers=headers)


def self_check_sign_in(sso, link: str, employee: dict) -> requests.Response:
    """Open the link in a fresh (private) browser, let the IdP answer, post the answer to the ACS."""
    opened = open_link(link)
    assert opened.status_code == 302, opened.text
    request, relay_state = decode_authn_request(opened.headers["Location"])
    return sso.post_acs(sso.response_for(employee, in_response_to=request.get("ID")), relay_state,
                        login_cookies(opened))


def test_the_self_check_link_is_a_one_time_login_link(sso):
    response = sso.handle.api("POST", "sso/test-link")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"].startswith(sso.login_url + "?self_check=gh_selfcheck_")
    assert body["expires_at"]
    opened = open_link(body["url"])
    assert opened.status_code == 302
    assert opened.headers["Location"].startswith(sso.idp.sso_url)
    assert_refused(open_link(body["url"]), 410, "used already")


def test_a_self_check_sign_in_reports_success_and_moves_the_tenant_to_testing(sso, alice):
    assert sso.handle.api("GET", "sso").json()["status"] == "draft"
    link = sso.handle.api("POST", "sso/test-link").json()["url"]
    response = self_check_sign_in(sso, link, alice)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert "The test was successful" in response.text and "Alice Example" in response.text
    assert "Location" not in response.headers and SESSION not in set_cookies(response)
    setup = sso.handle.api("GET", "sso").json()
    assert setup["status"] == "testing"
    assert setup["steps"]["self_check"]["done"] is True


def test_after_the_self_check_the_admin_enables_sso_for_all(sso, alice):
    assert sso.handle.api("POST", "sso/enable").status_code == 409  # not before a passed self-check
    link = sso.handle.api("POST", "sso/test-link").json()["url"]
    assert self_check_sign_in(sso, link, alice).status_code == 200
    enabled = sso.handle.api("POST", "sso/enable")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["status"] == "enabled"
    assert sso.handle.api("GET", "sso").json()["status"] == "enabled"


def test_a_self_check_by_someone_not_provisioned_fails_with_the_reason(sso):
    stranger = {"userName": "stranger@acme.example.com", "externalId": None}
    link = sso.handle.api("POST", "sso/test-link").json()["url"]
    response = self_check_sign_in(sso, link, stranger)
    assert_refused(response, 403, "The self-check failed", "not been provisioned")
    assert sso.handle.api("GET", "sso").json()["status"] == "draft"


def test_an_ordinary_sign_in_is_not_a_self_check(sso, alice):
    sso.sign_in(alice)
    sso.answer_login(alice)
    assert sso.handle.api("GET", "sso").json()["status"] == "draft"


def test_the_self_check_link_asks_for_a_private_window_when_the_browser_is_signed_in(sso, alice):
    session = session_of(sso.answer_login(alice))
    link = sso.handle.api("POST", "sso/test-link").json()["url"]
    assert_refused(open_link(link, {SESSION: session}), 409, "private", "incognito")
    # The link was not spent by that: a private window can still use it.
    assert self_check_sign_in(sso, link, alice).status_code == 200


def test_a_tampered_or_made_up_self_check_link_is_refused(sso):
    link = sso.handle.api("POST", "sso/test-link").json()["url"]
    assert_refused(open_link(link[:-3] + "xyz"), 410)
    assert_refused(open_link(sso.login_url + "?self_check=gh_selfcheck_" + "A" * 43), 410)
    assert_refused(open_link(sso.login_url + "?self_check="), 410)


def test_a_self_check_link_needs_the_idp_connected_and_the_admin_key(new_tenant, sso):
    bare = new_tenant("Bare")
    assert bare.api("POST", "sso/test-link").status_code == 409
    anonymous = requests.post(f"{sso.base_url}/api/tenants/{sso.tenant_id}/sso/test-link", timeout=10)
    assert anonymous.status_code == 401
    foreign = requests.post(f"{sso.base_url}/api/tenants/{sso.tenant_id}/sso/test-link", timeout=10,
                            headers={"Authorization": f"Bearer {bare.admin_key}"})
    assert foreign.status_code == 403


def test_an_expired_self_check_link_is_refused(sso, app_settings):
    import datetime as dt

    from shared_code.sign_in import service as sign_in
    from shared_code.tenancy import tenants

    half_an_hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=31)
    link, _ = sign_in.issue_self_check_link(tenants.get_tenant(sso.tenant_id), now=half_an_hour_ago)
    assert_refused(open_link(link), 410, "expired")


def test_a_self_check_link_opened_twice_at_once_starts_one_login(sso):
    import threading

    link = sso.handle.api("POST", "sso/test-link").json()["url"]
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def open_it() -> None:
        barrier.wait()
        statuses.append(open_link(link).status_code)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302] + [410] * 7
