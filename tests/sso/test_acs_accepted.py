"""Good sign-ins over HTTP: every shape Entra sends is accepted once, gives a session cookie with the right
attributes, lands on a safe target, and /me shows the employee while the session lasts. An unsolicited response
(My Apps) gives no session by itself: it starts an SP-initiated login in that browser."""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.sso.conftest import LOGIN_BINDING, SESSION, assert_refused, session_of, set_cookies


@pytest.mark.parametrize("sign_assertion,sign_response", [(True, False), (False, True), (True, True)],
                         ids=["assertion-signed", "response-signed", "both-signed"])
def test_an_unsolicited_response_of_each_signed_shape_starts_a_login_that_signs_in(sso, alice, sign_assertion,
                                                                                  sign_response):
    unsolicited = sso.post_acs(sso.response_for(alice, sign_assertion=sign_assertion, sign_response=sign_response))
    assert unsolicited.status_code == 303 and SESSION not in set_cookies(unsolicited)
    response = sso.follow_unsolicited(unsolicited, alice)
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "https://acme.example.com"
    me = sso.me(session_of(response))
    assert me.status_code == 200
    assert me.json() == {"id": alice["id"], "userName": "alice@acme.example.com", "email": "alice@acme.example.com",
                         "displayName": "Alice Example", "is_admin": False, "tenant": sso.tenant_id}


@pytest.mark.parametrize("sign_assertion,sign_response", [(True, False), (False, True), (True, True)],
                         ids=["assertion-signed", "response-signed", "both-signed"])
def test_sp_initiated_sign_in_answers_the_login_request_and_lands_on_its_target(sso, alice, sign_assertion,
                                                                               sign_response):
    login = sso.login(target="/projects/42?tab=files#top")
    saml_response = sso.response_for(alice, in_response_to=login.request_id, sign_assertion=sign_assertion,
                                     sign_response=sign_response)
    response = sso.post_acs(saml_response, login.relay_state, login.cookies)
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "https://acme.example.com/projects/42?tab=files#top"
    assert sso.me(session_of(response)).json()["id"] == alice["id"]


def test_the_session_cookie_is_httponly_lax_short_lived_and_scoped_to_the_tenant(sso, alice):
    response = sso.answer_login(alice)
    cookie = set_cookies(response)[SESSION]
    assert "httponly" in cookie.attributes
    assert cookie.attributes["samesite"] == "Lax"
    assert cookie.attributes["path"] == f"/api/sso/{sso.tenant_id}/"
    assert 0 < int(cookie.attributes["max-age"]) <= 8 * 3600
    # PUBLIC_BASE_URL is http:// in tests; Secure is added exactly when it is https:// (sessions.py).
    assert "secure" not in cookie.attributes and "domain" not in cookie.attributes


def test_an_employee_provisioned_without_object_id_signs_in_by_user_name(sso):
    bob = sso.provision("Bob@Acme.Example.com", object_id=False, display_name="Bob")
    response = sso.answer_login("bob@acme.example.com")
    assert response.status_code == 303, response.text
    assert sso.me(session_of(response)).json()["id"] == bob["id"]


def test_the_email_claim_and_work_emails_never_match_an_employee(sso):
    # Entra admins and on-premises sync can set anyone's email claim: only objectId and NameID identify.
    sso.provision("carol.upn@acme.example.com", object_id=False, email="carol@acme.example.com")
    persistent = sso.answer_login("9f3b0c1a-persistent-id", email="carol@acme.example.com",
                                  name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    assert_refused(persistent, 403, "not been provisioned")
    by_work_email = sso.answer_login("carol@acme.example.com", object_id=str(uuid.uuid4()))
    assert_refused(by_work_email, 403, "not been provisioned")


def test_the_object_id_wins_over_a_name_id_that_names_someone_else(sso):
    dave = sso.provision("dave@acme.example.com")
    erin = sso.provision("erin@acme.example.com")
    # Entra's NameID is Erin's address, but the objectId is Dave's: objectId is the identity that counts.
    response = sso.answer_login("erin@acme.example.com", object_id=dave["externalId"])
    assert sso.me(session_of(response)).json()["id"] == dave["id"] != erin["id"]


@pytest.mark.parametrize("relay_state,expected", [
    ("/projects/7", "https://acme.example.com/projects/7"),
    ("https://acme.example.com/inbox?x=1", "https://acme.example.com/inbox?x=1"),
    ("//evil.example", "https://acme.example.com"),
    ("/\\evil.example", "https://acme.example.com"),
    ("https://evil.example/", "https://acme.example.com"),
    ("https://acme.example.com.evil.example/", "https://acme.example.com"),
    ("https://acme.example.com@evil.example/", "https://acme.example.com"),
    ("http://acme.example.com/", "https://acme.example.com"),
    ("%2F%2Fevil.example", "https://acme.example.com"),
    ("/%2F%2Fevil.example", "https://acme.example.com"),
    ("/%252F%252Fevil.example", "https://acme.example.com"),
    ("/%5Cevil.example", "https://acme.example.com"),
    ("/\tevil", "https://acme.example.com"),
    (" //evil.example", "https://acme.example.com"),
    ("javascript:alert(1)", "https://acme.example.com"),
    ("evil.example", "https://acme.example.com"),
])
def test_an_unsolicited_relay_state_lands_only_inside_the_tenants_app(sso, alice, relay_state, expected):
    response = sso.follow_unsolicited(sso.post_acs(sso.response_for(alice), relay_state), alice)
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == expected


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/x", "/%2F%2Fevil.example",
                                    "/\\evil.example"])
def test_sp_initiated_login_with_an_unsafe_target_lands_on_the_app(sso, alice, target):
    login = sso.login(target=target)
    response = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state,
                            login.cookies)
    assert response.status_code == 303
    assert response.headers["Location"] == "https://acme.example.com"


def test_targets_stay_below_an_app_url_with_a_path(new_tenant, app_url):
    from tests.sso.conftest import SsoTenant
    from tests.support.idp import TestIdp

    tenant = SsoTenant(new_tenant("Pathy", "https://apps.example.com/acme"), TestIdp(key_label="sso-tests"), app_url)
    assert tenant.connect().status_code == 200
    user = tenant.provision("pat@acme.example.com")
    inside = tenant.answer_login(user, "/acme/reports")
    outside = tenant.answer_login(user, "/other-tenant/reports")
    climbing = tenant.answer_login(user, "/acme/../other-tenant/reports")
    assert inside.headers["Location"] == "https://apps.example.com/acme/reports"
    assert outside.headers["Location"] == climbing.headers["Location"] == "https://apps.example.com/acme"


def test_two_browser_tabs_can_each_finish_their_own_login(sso, alice):
    first = sso.login(target="/a")
    second = sso.login(target="/b", cookies={LOGIN_BINDING: first.binding})
    for login, path in ((second, "/b"), (first, "/a")):
        response = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state,
                                {**first.cookies, **second.cookies})  # the browser holds both logins' cookies
        assert response.status_code == 303, response.text
        assert response.headers["Location"] == "https://acme.example.com" + path
        answered = set_cookies(response)[next(iter(login.pending_cookie))]
        assert answered.value == "" and answered.attributes["max-age"] == "0"  # that login's cookie is tidied away


def test_me_without_a_session_or_with_a_forged_one_is_401(sso, alice, new_tenant):
    assert sso.me(None).status_code == 401
    session = session_of(sso.answer_login(alice))
    body, _, mac = session.rpartition(".")
    assert sso.me(body + "." + mac[::-1]).status_code == 401
    assert sso.me(session[:-2] + ("AA" if not session.endswith("AA") else "BB")).status_code == 401
    assert sso.me("v1.e30.AAAA").status_code == 401
    assert sso.me(session).status_code == 200
    answer = sso.me(None)
    assert answer.headers["Content-Type"].startswith("application/json")
    assert "sign" in answer.json()["message"].lower()


def test_a_session_of_one_tenant_is_worthless_at_another(sso, alice, new_tenant):
    session = session_of(sso.answer_login(alice))
    other = new_tenant("Other")
    response = requests.get(f"{sso.base_url}/api/sso/{other.tenant_id}/me", headers={"Cookie": f"{SESSION}={session}"},
                            timeout=10)
    assert response.status_code == 401


def test_a_login_binding_cookie_is_not_a_session(sso, alice):
    login = sso.login()
    assert sso.me(login.binding).status_code == 401


def test_dismissal_ends_the_session_at_the_next_request(sso, alice):
    session = session_of(sso.answer_login(alice))
    assert sso.me(session).status_code == 200
    sso.set_active(alice, False)
    assert sso.me(session).status_code == 401


def test_a_session_from_before_a_dismissal_stays_ended_after_a_rehire(sso, alice):
    before = session_of(sso.answer_login(alice))
    sso.set_active(alice, False)
    sso.set_active(alice, True)
    refused = sso.me(before)
    assert refused.status_code == 401
    assert "deactivated after you signed in" in refused.json()["message"]
    time.sleep(1.05)  # sessions carry whole seconds, and a dismissal also ends those of its own second
    after = session_of(sso.answer_login(alice))
    assert sso.me(after).status_code == 200


def test_acs_of_an_unknown_tenant_is_a_404_page(sso, alice, local_host):
    url = f"{sso.base_url}/api/sso/no-such-tenant-000/acs"
    assert_refused(sso.post_acs(sso.response_for(alice), acs_url=url), 404, log_text=local_host.log_text)


def test_acs_of_a_tenant_without_idp_says_sso_is_not_set_up(sso, alice, new_tenant):
    other = new_tenant("Not yet")
    url = f"{sso.base_url}/api/sso/{other.tenant_id}/acs"
    assert_refused(sso.post_acs(sso.response_for(alice), acs_url=url), 409, "SSO is not set up for this tenant")
