"""A sign-in writes only what must count once: the pending login lives in a sealed, browser-bound cookie
(shared_code/sign_in/pending_logins.py), so a login start and an authorization request leave every table as it was,
and the assertion consumer refuses a cookie of another browser, one tampered with, moved, or expired."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from shared_code.sign_in import pending_logins, service as sign_in, sessions
from tests.conftest import create_tenant, private_app, timers_off
from tests.oidc.conftest import REDIRECT_URI, OidcTenant, query
from tests.sso.conftest import (LOGIN_BINDING, PENDING_PREFIX, SsoTenant, assert_refused, login_cookies,
                                set_cookies)
from tests.support.idp import TestIdp, decode_authn_request


def every_row(connection_string: str) -> dict[str, set]:
    """Every row of every table, with its ETag (a changed row has a new one), to compare before and after."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(connection_string)
    rows = {table.name: {(entity["PartitionKey"], entity["RowKey"], entity.metadata.get("etag"))
                         for entity in service.get_table_client(table.name).list_entities()}
            for table in service.list_tables()}
    return {name: found for name, found in rows.items() if found}  # a timer creating an empty table writes no row


def settled_rows(connection_string: str, quiet_for: float = 3.0, at_most: float = 60.0) -> dict[str, set]:
    """Every row, once the background work that the setup's own requests started has finished: the log's consumers
    (woken by a queue message, polled at most every 2 s) write their positions a moment after the request answers.
    Settled means no row changed for `quiet_for` seconds."""
    deadline = time.monotonic() + at_most
    rows, since = every_row(connection_string), time.monotonic()
    while time.monotonic() - since < quiet_for:
        assert time.monotonic() < deadline, "the background work never settled"
        time.sleep(0.25)
        now = every_row(connection_string)
        if now != rows:
            rows, since = now, time.monotonic()
    return rows


@pytest.fixture(scope="module")
def quiet_app(app_settings, test_output):
    """The app on an Azurite of its own and with its timers off, so that no other test's rows, and no timer's run
    record, change while a test compares every table before and after (queue-woken consumers still run: what the
    setup's own requests started is waited for by `settled_rows`)."""
    with private_app(app_settings, test_output, "pending-login", **timers_off()) as app:
        yield app


@pytest.fixture
def op(sso, operator_key) -> OidcTenant:
    product = OidcTenant(sso, operator_key)
    registered = product.register(redirect_uris=[REDIRECT_URI])
    assert registered.status_code == 201, registered.text
    product.client = {**registered.json(), "redirect_uris": [REDIRECT_URI]}
    return product


def test_a_login_start_and_an_authorization_request_leave_every_table_unchanged(quiet_app, operator_key):
    azurite, host, _ = quiet_app
    sso = SsoTenant(create_tenant(host.url, operator_key, "Quiet Co", "https://quiet.example"),
                    TestIdp(key_label="sso-tests"), host.url)
    assert sso.connect().status_code == 200
    op = OidcTenant(sso, operator_key)
    registered = op.register(redirect_uris=[REDIRECT_URI])
    assert registered.status_code == 201, registered.text
    op.client = {**registered.json(), "redirect_uris": [REDIRECT_URI]}
    sso.login()  # the first start may create tables; what matters is that no start writes a row
    before = settled_rows(azurite.connection_string)
    assert before  # the tenant, its IdP and the client are there to compare
    login = sso.login(target="/projects/7")
    again = sso.login(cookies=login.cookies)  # a second tab in the same browser
    authorized = op.authorize({k: v for k, v in op.params().items() if k != "_verifier"})
    assert authorized.status_code == 302, authorized.text
    assert every_row(azurite.connection_string) == before
    assert login.pending and again.pending and PENDING_PREFIX + decode_authn_request(
        authorized.headers["Location"])[1] in set_cookies(authorized)


def test_the_pending_login_cookie_is_host_only_secure_http_only_and_crosses_sites(sso):
    login = sso.login()
    cookie = set_cookies(login.response)[PENDING_PREFIX + login.relay_state]
    assert cookie.attributes["samesite"] == "None"  # Entra's answer is a cross-site POST
    assert "secure" in cookie.attributes and "httponly" in cookie.attributes
    assert cookie.attributes["path"] == "/" and "domain" not in cookie.attributes
    assert int(cookie.attributes["max-age"]) == pending_logins.LIFETIME_SECONDS
    assert "projects" not in cookie.value and login.request_id not in cookie.value  # sealed, not just signed


def test_a_full_sign_in_writes_one_row_and_a_replay_of_it_is_refused(sso, alice, local_host):
    login = sso.login()
    answer = sso.response_for(alice, in_response_to=login.request_id)
    assert sso.post_acs(answer, login.relay_state, login.cookies).status_code == 303
    assert_refused(sso.post_acs(answer, login.relay_state, login.cookies), 403, "used already",
                   log_text=local_host.log_text)


def test_a_pending_login_cookie_from_another_browser_is_refused(sso, alice):
    in_a = sso.login()
    in_b = sso.login()  # browser B: a binding cookie of its own
    stolen = {**in_a.pending_cookie, LOGIN_BINDING: in_b.binding}
    response = sso.post_acs(sso.response_for(alice, in_response_to=in_a.request_id), in_a.relay_state, stolen)
    assert_refused(response, 403, "another browser")
    assert sso.post_acs(sso.response_for(alice, in_response_to=in_a.request_id), in_a.relay_state,
                        in_a.cookies).status_code == 303  # browser A itself still signs in


@pytest.mark.parametrize("tamper", ["flip", "truncate", "other-relay", "signed-not-sealed"])
def test_a_tampered_pending_login_cookie_is_refused(sso, alice, tamper):
    login = sso.login(target="/inbox")
    cookies = dict(login.cookies)
    name = PENDING_PREFIX + login.relay_state
    value = cookies[name]
    if tamper == "flip":  # one bit of the ciphertext
        body = value[3:]
        flipped = body[:40] + ("A" if body[40] != "A" else "B") + body[41:]
        cookies[name] = "v1." + flipped
    elif tamper == "truncate":
        cookies[name] = value[:-6]
    elif tamper == "other-relay":  # a genuine cookie of another login, moved under this login's name
        other = sso.login(cookies={LOGIN_BINDING: login.binding})
        cookies[name] = other.pending
    else:  # what an attacker could build without the key: the same claims, HMAC-signed with a guessed key
        cookies[name] = sessions.sign("pending-login", {"request_id": login.request_id}, 600)
    response = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state, cookies)
    assert_refused(response, 403, "does not know")


def test_an_expired_pending_login_is_refused_by_the_injected_clock(sso, alice, app_settings):
    nonce = sessions.new_browser_nonce()
    started_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=pending_logins.LIFETIME_SECONDS + 1)
    login = sign_in.start_login(sso.tenant_id, None, nonce, now=started_at)
    request, relay_state = decode_authn_request(login.url)
    cookies = {LOGIN_BINDING: sessions.issue_login_binding(nonce), PENDING_PREFIX + relay_state: login.pending_cookie}
    response = sso.post_acs(sso.response_for(alice, in_response_to=request.get("ID")), relay_state, cookies)
    assert_refused(response, 403, "longer than 10 minutes")
    # The same login one second inside its lifetime is accepted (the clock, not the cookie's age, decides).
    fresh = sign_in.start_login(sso.tenant_id, None, nonce,
                                now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60))
    request, relay_state = decode_authn_request(fresh.url)
    cookies[PENDING_PREFIX + relay_state] = fresh.pending_cookie
    assert sso.post_acs(sso.response_for(alice, in_response_to=request.get("ID")), relay_state,
                        cookies).status_code == 303


def test_the_cookie_is_checked_against_the_clock_of_the_consumer(sso, alice):
    """complete_sign_in takes `now`: one second before expiry the login is pending, at expiry it is not."""
    nonce = sessions.new_browser_nonce()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    started = now - dt.timedelta(seconds=pending_logins.LIFETIME_SECONDS - 1)
    login = sign_in.start_login(sso.tenant_id, None, nonce, now=started)
    request, relay_state = decode_authn_request(login.url)
    saml_response = sso.response_for(alice, in_response_to=request.get("ID"))
    with pytest.raises(sign_in.SignInRefused) as refused:
        sign_in.complete_sign_in(sso.tenant_id, saml_response, relay_state, nonce, login.pending_cookie,
                                 now=now + dt.timedelta(seconds=1))
    assert refused.value.reason == "request_expired"
    outcome = sign_in.complete_sign_in(sso.tenant_id, saml_response, relay_state, nonce, login.pending_cookie,
                                       now=now)
    assert outcome.kind == sign_in.SESSION and outcome.employee.id == alice["id"]


def test_an_authorization_request_too_large_for_a_cookie_is_answered_invalid_request(op):
    params = {k: v for k, v in op.params(state="s" * 2048, nonce="n" * 512).items() if k != "_verifier"}
    answer = op.authorize(params)
    assert answer.status_code == 303, answer.text
    got = query(answer.headers["Location"])
    assert got["error"] == "invalid_request" and "too large" in got["error_description"]
    assert not [name for name in set_cookies(answer) if name.startswith(PENDING_PREFIX)]


def test_an_oidc_sign_in_carries_its_context_in_the_cookie_and_clears_it(op, alice):
    params = op.params()
    params.pop("_verifier")
    started = op.authorize(params)
    request, relay_state = decode_authn_request(started.headers["Location"])
    cookies = login_cookies(started)
    answer = op.sso.post_acs(op.sso.response_for(alice, in_response_to=request.get("ID")), relay_state, cookies)
    assert answer.status_code == 303, answer.text
    back = query(answer.headers["Location"])
    assert back["state"] == params["state"] and back["code"]
    assert set_cookies(answer)[PENDING_PREFIX + relay_state].attributes["max-age"] == "0"


def test_a_product_sign_ins_answer_counts_once_even_posted_in_parallel(op, alice, local_host):
    """A product's sign-in accepts its SAML answer in the transaction that starts its session: a replay gets a
    page (never a second code), and of parallel posts exactly one gets a code."""
    from concurrent.futures import ThreadPoolExecutor

    params = {k: v for k, v in op.params().items() if k != "_verifier"}
    started = op.authorize(params)
    request, relay_state = decode_authn_request(started.headers["Location"])
    answer = op.sso.response_for(alice, in_response_to=request.get("ID"))
    cookies = login_cookies(started)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: op.sso.post_acs(answer, relay_state, cookies), range(6)))
    assert sorted(a.status_code for a in answers) == [303] + [403] * 5, [a.text[:200] for a in answers]
    for refused in (a for a in answers if a.status_code == 403):
        assert_refused(refused, 403, "used already")
    assert_refused(op.sso.post_acs(answer, relay_state, cookies), 403, "used already", log_text=local_host.log_text)


def test_a_browser_keeps_at_most_a_handful_of_pending_logins(sso):
    """Every pending cookie goes with every request for ten minutes: a new login expires the oldest beyond
    MAX_PENDING (a forged one first), so tabs left on Entra's page cannot grow the Cookie header without bound."""
    nonce = sessions.new_browser_nonce()
    now = dt.datetime.now(dt.timezone.utc)
    held, cookies = {}, {LOGIN_BINDING: sessions.issue_login_binding(nonce)}
    for age in (50, 40, 30, 20, 10):  # seconds ago; the oldest is pushed out
        login = sign_in.start_login(sso.tenant_id, None, nonce, now=now - dt.timedelta(seconds=age))
        held[age] = login.relay_id
        cookies[PENDING_PREFIX + login.relay_id] = login.pending_cookie
    newest = sso.login(cookies=cookies)
    cleared = {name for name, cookie in set_cookies(newest.response).items()
               if name.startswith(PENDING_PREFIX) and cookie.attributes.get("max-age") == "0"}
    assert cleared == {PENDING_PREFIX + held[50]}
    assert newest.pending  # and the new login has its own
    forged = {**cookies, PENDING_PREFIX + "f" * 24: "v1.AAAA"}
    cleared = {name for name, cookie in set_cookies(sso.login(cookies=forged).response).items()
               if cookie.attributes.get("max-age") == "0"}
    assert cleared == {PENDING_PREFIX + "f" * 24, PENDING_PREFIX + held[50]}
