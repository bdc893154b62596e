"""The attack corpus replayed over HTTP against the ACS: every forged, replayed, misrouted or malformed sign-in
is a 4xx HTML page with a reason and a correlation id (also in the app's log), and never a session cookie."""
from __future__ import annotations

import base64
import datetime as dt
import threading
import uuid

import pytest
import requests

from tests.sso.conftest import LOGIN_BINDING, SsoTenant, assert_refused, session_of
from tests.support import idp as tidp
from tests.support.idp import TestIdp, encode, signing_identity

NOW = dt.datetime.now(dt.timezone.utc)
EVIL_NAME = "alice@acme.example.com.evil.example"


def _attacks():
    """(id, build(sso, alice) -> SAMLResponse text, expected status, words on the page)."""
    def genuine(sso, alice, **options):
        return sso.response_for(alice, **options)

    def other_employee(sso, alice):
        return sso.provision("mallory@acme.example.com")

    cases = []
    for variant in (1, 2):
        cases.append((f"xsw{variant}", lambda s, a, v=variant: encode(tidp.xsw(
            genuine(s, a, sign_assertion=False, sign_response=True), v, "mallory@acme.example.com")), 403,
            ("more than one assertion",)))
    for variant in range(3, 9):
        cases.append((f"xsw{variant}", lambda s, a, v=variant: encode(tidp.xsw(
            genuine(s, a), v, "mallory@acme.example.com")), 403, ("more than one assertion",)))
    cases += [
        ("signatures-stripped", lambda s, a: encode(tidp.strip_signatures(genuine(s, a))), 403, ("not signed",)),
        ("name-id-modified-after-signing",
         lambda s, a: encode(tidp.replace_name_id(genuine(s, a), "mallory@acme.example.com")), 403,
         ("signature is not valid",)),
        ("response-modified-after-signing",
         lambda s, a: encode(tidp.replace_name_id(genuine(s, a, sign_assertion=False, sign_response=True),
                                                  "mallory@acme.example.com")), 403, ("signature is not valid",)),
        ("re-signed-with-a-foreign-key-and-its-cert-in-keyinfo",
         lambda s, a: genuine(s, a, signer=signing_identity("sso-attacker")), 403, ("certificate",)),
        ("signed-by-an-impostor-idp-with-the-same-entity-id",
         lambda s, a: TestIdp(s.idp.entity_id, s.idp.entra_tenant_id, key_label="sso-impostor").response(
             s.sp_entity_id, s.acs_url, a["userName"], a["externalId"]), 403, ("certificate that is not in",)),
        ("comment-injected-into-name-id",
         lambda s, a: encode(tidp.inject_comment_in_name_id(
             s.idp.response(s.sp_entity_id, s.acs_url, EVIL_NAME, str(uuid.uuid4())), "alice@acme.example.com")),
         403, ("comment",)),
        ("wrong-audience", lambda s, a: genuine(s, a, audience="https://other-app.example/metadata"), 403,
         ("Identifier",)),
        ("wrong-recipient", lambda s, a: genuine(s, a, recipient="https://other-app.example/acs"), 403,
         ("Reply URL",)),
        ("wrong-destination", lambda s, a: genuine(s, a, destination="https://other-app.example/acs"), 403,
         ("Reply URL",)),
        ("wrong-issuer", lambda s, a: genuine(s, a, issuer="https://sts.windows.net/attacker/"), 403,
         ("another identity provider",)),
        ("expired", lambda s, a: genuine(s, a, issue_instant=NOW - dt.timedelta(hours=2)), 403, ("expired",)),
        ("not-yet-valid", lambda s, a: genuine(s, a, issue_instant=NOW + dt.timedelta(hours=1)), 403,
         ("not valid yet",)),
        ("xxe", lambda s, a: encode(tidp.with_doctype(genuine(s, a), tidp.XXE_DOCTYPE)), 400, ("DOCTYPE",)),
        ("external-dtd", lambda s, a: encode(tidp.with_doctype(genuine(s, a), tidp.EXTERNAL_DTD_DOCTYPE)), 400,
         ("DOCTYPE",)),
        ("billion-laughs", lambda s, a: encode(tidp.with_doctype(genuine(s, a), tidp.BILLION_LAUGHS_DOCTYPE)), 400,
         ("DOCTYPE",)),
        ("oversized", lambda s, a: base64.b64encode(b"<a>" + b"x" * 300_000 + b"</a>").decode(), 413,
         ("larger than",)),
        ("not-base64", lambda s, a: "this is not base64!", 400, ("base64",)),
        ("not-xml", lambda s, a: base64.b64encode(b"hello, this is not XML").decode(), 400, ("not XML",)),
        ("empty", lambda s, a: "", 400, ("No sign-in response",)),
        ("two-assertions", lambda s, a: encode(tidp.add_second_assertion(
            genuine(s, a), s.response_for(other_employee(s, a)))), 403, ("more than one assertion",)),
        ("encrypted-assertion", lambda s, a: encode(tidp.encrypt_assertion(genuine(s, a))), 403, ("encrypt",)),
        ("unsigned", lambda s, a: genuine(s, a, sign_assertion=False), 403, ("not signed",)),
        ("entra-refused-the-user", lambda s, a: s.idp.response(
            s.sp_entity_id, s.acs_url, status=tidp.STATUS_REQUESTER, sub_status=tidp.STATUS_REQUEST_DENIED,
            status_message="AADSTS50105: The signed in user is not assigned to a role for the application."),
         403, ("ask your administrator to add you as a user of this application",)),  # our words, not Entra's
        ("in-response-to-unknown", lambda s, a: genuine(s, a, in_response_to="id" + uuid.uuid4().hex * 2), 403,
         ("does not know",)),
        ("in-response-to-with-characters-no-request-id-has", lambda s, a: genuine(
            s, a, in_response_to="_x/../request:secret"), 403, ("does not know",)),
    ]
    return cases


ATTACKS = _attacks()


@pytest.mark.parametrize("build,status,words", [c[1:] for c in ATTACKS], ids=[c[0] for c in ATTACKS])
def test_attack_is_refused_with_a_page_and_no_session(sso, alice, local_host, build, status, words):
    response = sso.post_acs(build(sso, alice))
    assert_refused(response, status, *words, log_text=local_host.log_text)
    # ... and the employee it aimed at can still sign in normally afterwards.
    assert sso.answer_login(alice).status_code == 303


def _answered_login(sso, alice, **options) -> tuple[str, str, dict[str, str]]:
    """Entra's answer to a login this browser started: the response, its RelayState, the browser's cookie."""
    login = sso.login()
    return (sso.response_for(alice, in_response_to=login.request_id, **options), login.relay_state,
            login.cookies)


def test_a_replayed_response_is_refused_the_second_time(sso, alice, local_host):
    answer = _answered_login(sso, alice)
    assert sso.post_acs(*answer).status_code == 303
    assert_refused(sso.post_acs(*answer), 403, "used already", log_text=local_host.log_text)


def test_a_replayed_response_signed_only_on_the_response_is_refused_too(sso, alice):
    answer = _answered_login(sso, alice, sign_assertion=False, sign_response=True)
    assert sso.post_acs(*answer).status_code == 303
    assert_refused(sso.post_acs(*answer), 403, "used already")


def test_parallel_posts_of_one_assertion_sign_in_exactly_once(sso, alice):
    answer = _answered_login(sso, alice)
    barrier = threading.Barrier(12)
    statuses: list[int] = []

    def post() -> None:
        barrier.wait()
        statuses.append(sso.post_acs(*answer).status_code)

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303] + [403] * 11


def test_parallel_answers_to_one_login_request_sign_in_exactly_once(sso, alice):
    login = sso.login()
    responses = [sso.response_for(alice, in_response_to=login.request_id) for _ in range(8)]
    barrier = threading.Barrier(len(responses))
    statuses: list[int] = []

    def post(saml_response: str) -> None:
        barrier.wait()
        statuses.append(sso.post_acs(saml_response, login.relay_state, login.cookies).status_code)

    threads = [threading.Thread(target=post, args=(r,)) for r in responses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303] + [403] * 7


def test_a_second_answer_to_a_used_login_request_is_refused(sso, alice):
    login = sso.login()
    cookies = login.cookies
    first = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state, cookies)
    assert first.status_code == 303
    again = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state, cookies)
    assert_refused(again, 403, "used already")  # the browser may keep the cookie: the request row counts once


def test_an_answer_to_a_login_started_in_another_browser_is_refused(sso, alice):
    victim_login = sso.login()
    attacker_login = sso.login()
    # Login CSRF: the attacker's genuine answer, posted from a browser that did not start that login.
    saml_response = sso.response_for(alice, in_response_to=attacker_login.request_id)
    response = sso.post_acs(saml_response, attacker_login.relay_state,
                            {**attacker_login.pending_cookie, LOGIN_BINDING: victim_login.binding})
    assert_refused(response, 403, "another browser")


def test_an_answer_without_the_login_binding_cookie_is_refused(sso, alice):
    login = sso.login()
    response = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state)
    assert_refused(response, 403, "cookie")


def test_a_forged_login_binding_cookie_is_refused(sso, alice):
    login = sso.login()
    body, _, mac = login.binding.rpartition(".")
    forged = body + "." + base64.urlsafe_b64encode(b"\0" * 32).rstrip(b"=").decode()
    response = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state,
                            {LOGIN_BINDING: forged})
    assert_refused(response, 403, "cookie")


def test_an_answer_with_another_relay_state_is_refused(sso, alice):
    login = sso.login(target="/inbox")
    other = sso.login(cookies=login.cookies)
    both = {**login.cookies, **other.cookies}  # one browser, two logins: each cookie is genuine
    response = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), other.relay_state, both)
    assert_refused(response, 403, "state")
    missing = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), None,
                           login.cookies)
    assert_refused(missing, 403, "state")


def test_a_login_request_of_another_tenant_does_not_count_here(sso, alice, new_tenant, app_url):
    other = SsoTenant(new_tenant("Other co"), sso.idp, app_url)
    assert other.connect().status_code == 200
    login = other.login()
    response = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state,
                            login.cookies)
    assert_refused(response, 403, "does not know")


def test_a_response_for_another_tenant_with_its_own_idp_is_refused(sso, alice, new_tenant, app_url):
    other = SsoTenant(new_tenant("Globex"), TestIdp(key_label="sso-tests-globex"), app_url)
    assert other.connect().status_code == 200
    bob = other.provision("bob@globex.example.com")
    # Bob's genuine response for Globex, posted at Acme's ACS ...
    assert_refused(sso.post_acs(other.response_for(bob)), 403, "another identity provider")
    # ... and Globex's IdP issuing one addressed to Acme (audience, recipient, destination all Acme's).
    forged = other.idp.response(sso.sp_entity_id, sso.acs_url, alice["userName"], alice["externalId"])
    assert_refused(sso.post_acs(forged), 403, "another identity provider")
    assert other.me(session_of(other.answer_login(bob))).json()["id"] == bob["id"]  # at its own ACS: signed in


def test_two_tenants_sharing_one_entra_idp_cannot_use_each_others_responses(sso, alice, new_tenant, app_url):
    sister = SsoTenant(new_tenant("Acme Sister"), sso.idp, app_url)  # the same Entra tenant, another Enterprise app
    assert sister.connect().status_code == 200
    sister.provision(alice["userName"], object_id=alice["externalId"])
    for_acme = sso.response_for(alice)
    assert_refused(sister.post_acs(for_acme), 403, "sent to another address", sso.acs_url)
    for_sister = sister.response_for(alice)
    assert_refused(sso.post_acs(for_sister), 403, "sent to another address", sister.acs_url)
    # Each signs in at its own ACS (an answer to a login there: an unsolicited one only starts a login).
    assert sister.me(session_of(sister.answer_login(alice))).status_code == 200
    assert sso.me(session_of(sso.answer_login(alice))).status_code == 200


def test_a_session_from_a_refused_tenant_mix_up_never_appears(sso, alice, new_tenant, app_url):
    sister = SsoTenant(new_tenant("Acme Sister 2"), sso.idp, app_url)
    assert sister.connect().status_code == 200
    session = session_of(sso.answer_login(alice))
    assert sister.me(session).status_code == 401


def test_a_body_larger_than_the_cap_is_refused_before_parsing(sso):
    response = requests.post(sso.acs_url, data=b"SAMLResponse=" + b"A" * (1024 * 1024 + 10), timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
    assert_refused(response, 413, "larger than")


def test_a_body_that_is_not_a_form_is_refused(sso, alice):
    response = requests.post(sso.acs_url, json={"SAMLResponse": sso.response_for(alice)}, timeout=30,
                             allow_redirects=False)
    assert_refused(response, 400, "form")


def test_a_form_with_two_saml_responses_is_refused(sso, alice):
    body = [("SAMLResponse", sso.response_for(alice)), ("SAMLResponse", sso.response_for(alice))]
    response = requests.post(sso.acs_url, data=body, timeout=30, allow_redirects=False)
    assert_refused(response, 400, "twice")


def test_refusal_pages_never_show_what_an_unverified_response_said(sso):
    saml_response = sso.idp.response(sso.sp_entity_id, sso.acs_url, status=tidp.STATUS_RESPONDER,
                                     status_message='<script>alert("x")</script> AADSTS90000')
    response = sso.post_acs(saml_response)
    assert_refused(response, 403, "Entra could not complete the sign-in")
    body = response.text.split("<body", 1)[1]
    assert "script" not in body.lower()  # neither run nor quoted
    assert "AADSTS90000" not in body  # not even a code we do not know: unsigned text is never on our page
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_an_answer_to_a_login_older_than_ten_minutes_is_refused(sso, alice, app_settings):
    from shared_code.sign_in import service as sign_in, sessions

    nonce = sessions.new_browser_nonce()
    eleven_minutes_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=11)
    login = sign_in.start_login(sso.tenant_id, None, nonce, now=eleven_minutes_ago)
    request, relay_state = tidp.decode_authn_request(login.url)
    response = sso.post_acs(sso.response_for(alice, in_response_to=request.get("ID")), relay_state,
                            {LOGIN_BINDING: sessions.issue_login_binding(nonce),
                             f"__Host-gh_pending_{login.relay_id}": login.pending_cookie})
    assert_refused(response, 403, "longer than 10 minutes")
