"""Logout both ways over HTTP: RP-initiated logout (id_token_hint verified, exact post_logout_redirect_uri,
state) through Entra's SingleLogoutService and back via our SLO endpoint; Entra's own LogoutRequest; and the
back-channel logout token every client of an ended session receives (logout, Entra's logout, dismissal),
retried by the timer until accepted."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from joserfc.jwk import RSAKey

from shared_code.oidc import backchannel, logout
from shared_code.storage import oidc as store
from shared_code.storage import tables
from tests.oidc.conftest import OP_BROWSER, query
from tests.sso.conftest import assert_refused, cookie_header
from tests.support import oidc_keys
from tests.support.idp import decode_authn_request
from tests.support.idp_server import IdpServer
from tests.support.sample_product import SampleProduct
from tests.support.waiting import wait_until


@pytest.fixture
def product(op) -> Iterator[SampleProduct]:
    with SampleProduct(op.issuer) as product:
        response = op.register(redirect_uris=[product.redirect_uri], post_logout_redirect_uris=[f"{product.url}/bye"],
                               backchannel_logout_uri=f"{product.url}/backchannel-logout")
        assert response.status_code == 201, response.text
        product.client_id, product.client_secret = response.json()["client_id"], response.json()["client_secret"]
        product.client = response.json()
        yield product


@pytest.fixture
def entra(op) -> IdpServer:
    server = IdpServer(op.sso.idp)  # its signing helpers only; the tenant's metadata is already stored
    yield server
    server._server.server_close()


def _signed_in(op, product, employee, **saml_options) -> dict:
    authorized = op.sign_in(employee, client=product.client, saml_options=saml_options)
    response = op.redeem(authorized, client=product.client)
    assert response.status_code == 200, response.text
    tokens = response.json()
    tokens["claims"] = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    tokens["browser"] = {OP_BROWSER: authorized.browser}  # the cookie of the browser that signed in
    return tokens


def _b64(data: str | bytes) -> str:
    return base64.urlsafe_b64encode(data.encode() if isinstance(data, str) else data).rstrip(b"=").decode()


def _logout(op, browser: dict | None = None, **params) -> requests.Response:
    """The product's logout, from the browser that signed in when `browser` (its cookies) is given."""
    return requests.get(f"{op.issuer}/logout", params=params, allow_redirects=False, timeout=30,
                        headers=cookie_header(browser))


def test_rp_initiated_logout_goes_through_entra_and_back_to_the_product_with_state(op, product, employee, entra):
    tokens = _signed_in(op, product, employee)
    started = _logout(op, tokens["browser"], id_token_hint=tokens["id_token"],
                      post_logout_redirect_uri=f"{product.url}/bye", state="s-123")
    assert started.status_code == 303, started.text
    request, _ = decode_authn_request(started.headers["Location"])  # a LogoutRequest on the same binding
    assert request.tag.endswith("LogoutRequest")
    assert request.findtext("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer") == op.sso.sp_entity_id  # AADSTS50068
    assert request.findtext("{urn:oasis:names:tc:SAML:2.0:assertion}NameID") == employee["userName"]
    back = requests.get(entra._logout_answer(request, {}), allow_redirects=False, timeout=30)
    assert back.status_code == 303, back.text
    assert back.headers["Location"] == f"{product.url}/bye?state=s-123"
    # The session ended: its client hears it on the back channel, with the session's sid.
    token = wait_until(lambda: product.logout_tokens, what="a back-channel logout token")[0]
    # (the product keeps only a token that passed its checks: signed, events claim, no nonce — its arrival is that)
    assert token["sid"] == tokens["claims"]["sid"] and token["sub"] == employee["id"]
    # The same LogoutResponse again finishes nothing.
    assert_refused(requests.get(entra._logout_answer(request, {}), allow_redirects=False, timeout=30), 400)


def test_logout_refuses_unregistered_return_and_forged_hints(op, product, employee, new_tenant):
    tokens = _signed_in(op, product, employee)
    assert_refused(_logout(op, id_token_hint=tokens["id_token"], post_logout_redirect_uri="https://evil.example/"),
                   400, "not registered")
    header, payload, signature = tokens["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "someone-else"}).encode()).rstrip(b"=").decode()
    assert_refused(_logout(op, id_token_hint=f"{header}.{tampered}.{signature}"), 400)
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    assert_refused(_logout(op, id_token_hint=f"{none}.{payload}."), 400)
    # HS256 keyed with our own public key (the classic algorithm confusion).
    public_pem = RSAKey.import_key(oidc_keys.signing_key_pem("op-current")).as_pem(private=False)
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}))}.{payload}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{_b64(mac)}"
    assert_refused(_logout(op, id_token_hint=confused), 400)
    # An ID token of another tenant's issuer.
    other = new_tenant("Globex", "https://globex.example.com")
    assert_refused(requests.get(f"{op.sso.base_url}/api/oidc/{other.tenant_id}/logout", timeout=30,
                                params={"id_token_hint": tokens["id_token"]}, allow_redirects=False), 400)
    # Without a hint: a return address needs its client, and must be one that client registered.
    assert_refused(_logout(op, post_logout_redirect_uri="https://product.example.com/bye"), 400, "which app")
    assert_refused(_logout(op, client_id=op.client["client_id"], post_logout_redirect_uri="https://evil.example/"),
                   400, "not registered")
    assert_refused(_logout(op, client_id="0" * 32, post_logout_redirect_uri="https://product.example.com/bye"),
                   400, "not registered")
    assert not product.logout_tokens  # nothing ended


def test_entra_logout_request_ends_the_session_and_is_answered(op, product, employee, entra):
    tokens = _signed_in(op, product, employee)
    unsigned = requests.get(entra.logout_request_url(op.sso.sp_entity_id, employee["userName"], sign=False),
                            allow_redirects=False, timeout=30)
    assert_refused(unsigned, 403, "signed", "Sign-out")
    answer = requests.get(entra.logout_request_url(op.sso.sp_entity_id, employee["userName"]),
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text
    response, _ = decode_authn_request(answer.headers["Location"].replace("SAMLResponse=", "SAMLRequest="))
    assert response.tag.endswith("LogoutResponse")
    token = wait_until(lambda: product.logout_tokens, what="a back-channel logout token")[0]
    assert token["sid"] == tokens["claims"]["sid"]


def test_dismissal_over_scim_sends_the_logout_token(op, product, employee):
    tokens = _signed_in(op, product, employee)
    op.sso.set_active(employee, False)
    token = wait_until(lambda: product.logout_tokens, what="a back-channel logout token")[0]
    assert token["sub"] == employee["id"] and token["sid"] == tokens["claims"]["sid"]


def test_a_refused_delivery_is_retried_by_the_timer_until_accepted(op, product, employee, app_url):
    _signed_in(op, product, employee)
    product.refuse_backchannel = 1
    op.sso.set_active(employee, False)
    key = lambda: [row for row in tables.partition_range(store.LOGOUTS, op.tenant_id, "")]  # noqa: E731
    row = wait_until(lambda: [r for r in key() if int(r.get("attempts") or 0) >= 1], what="a first, refused attempt")[0]
    assert not product.logout_tokens
    # Make it due now (instead of waiting the minute of backoff), then run the timer as the host would.
    tables.update(store.LOGOUTS, {"PartitionKey": op.tenant_id, "RowKey": row["RowKey"],
                                  "next_attempt_at": datetime.now(timezone.utc)}, etag=None)
    ran = requests.post(f"{app_url}/admin/functions/oidc_backchannel_retry", json={}, timeout=30)
    assert ran.status_code in (200, 202), ran.text
    wait_until(lambda: product.logout_tokens, what="the retried delivery")
    wait_until(lambda: not key(), what="the delivered row is gone")


def test_after_logout_the_sessions_access_token_stops_working(op, product, employee):
    tokens = _signed_in(op, product, employee)
    assert op.userinfo(tokens["access_token"]).status_code == 200
    response = _logout(op, tokens["browser"], id_token_hint=tokens["id_token"])
    assert response.status_code == 303  # to Entra's SingleLogoutService
    refused = op.userinfo(tokens["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"


def test_sso_turned_off_by_the_operator_ends_every_session(op, product, employee):
    tokens = _signed_in(op, product, employee)
    tables.update(tables.TENANTS, {"PartitionKey": op.tenant_id, "RowKey": "tenant", "status": "enabled"}, etag=None)
    response = requests.post(f"{op.sso.base_url}/api/tenants/{op.tenant_id}/sso/disable", headers=op.operator,
                             timeout=30)
    assert response.status_code == 200, response.text
    token = wait_until(lambda: product.logout_tokens, what="a back-channel logout token")[0]
    assert token["sid"] == tokens["claims"]["sid"]


def test_expired_codes_and_sessions_are_purged(op, product, employee):
    _signed_in(op, product, employee)
    rows = lambda: list(tables.partition_range(store.TABLE, op.tenant_id, ""))  # noqa: E731
    assert any(r["RowKey"].startswith(store.CODE) for r in rows())
    # What the purge job (shared_code/jobs/catalog.py: purge_sign_in_state) runs for each tenant, a day later.
    store.purge_expired(op.tenant_id, datetime.now(timezone.utc) + timedelta(days=1))
    assert not [r for r in rows() if r["RowKey"].startswith((store.CODE, store.SESSION))]
    assert [r for r in rows() if r["RowKey"].startswith(store.CLIENT)]  # clients do not expire


def test_sp_metadata_lists_the_tenants_slo_endpoint(op):
    metadata = requests.get(f"{op.sso.base_url}/api/sso/{op.tenant_id}/metadata", timeout=30).text
    assert "SingleLogoutService" in metadata and f'Location="{op.sso.base_url}/api/sso/{op.tenant_id}/slo"' in metadata


def test_entra_logout_request_by_session_index_ends_only_that_sign_in(op, product, employee, entra):
    first = _signed_in(op, product, employee, session_index="_entra-session-1")
    second = _signed_in(op, product, employee, session_index="_entra-session-2")
    answer = requests.get(entra.logout_request_url(op.sso.sp_entity_id, employee["userName"], "_entra-session-1"),
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text
    token = wait_until(lambda: product.logout_tokens, what="a back-channel logout token")[0]
    assert token["sid"] == first["claims"]["sid"]
    assert op.userinfo(first["access_token"]).status_code == 401
    assert op.userinfo(second["access_token"]).status_code == 200  # the other sign-in goes on


def test_end_session_also_takes_a_form_post(op, product, employee):
    tokens = _signed_in(op, product, employee)
    response = requests.post(f"{op.issuer}/logout", allow_redirects=False, timeout=30,
                             headers=cookie_header(tokens["browser"]), data={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": f"{product.url}/bye", "state": "p"})
    assert response.status_code == 303 and "SAMLRequest=" in response.headers["Location"]


@pytest.fixture
def notices_while_live(monkeypatch) -> list[tuple[str, bool, int]]:
    """Every back-channel queuing, in this process, with whether its session was still live when the notice was
    queued: a logout that dies right after the queuing has told the product already; one that died after ending
    the session and before queuing would never tell it."""
    real, seen = backchannel.session_ended, []

    def recorded(tenant_id: str, employee_id: str, sid: str, **options) -> int:
        live = store.session_is_live(tenant_id, employee_id, sid)
        queued = real(tenant_id, employee_id, sid, **options)
        seen.append((sid, live, queued))
        return queued

    monkeypatch.setattr(backchannel, "session_ended", recorded)
    return seen


def test_both_logouts_queue_the_products_notice_before_they_end_the_session(op, product, employee, entra,
                                                                            notices_while_live):
    tokens = _signed_in(op, product, employee)  # RP-initiated, from the browser that signed in
    sid = tokens["claims"]["sid"]
    logout.end_session(op.tenant_id, {"id_token_hint": tokens["id_token"]}, browser_sid=sid)
    assert notices_while_live == [(sid, True, 1)] and not store.session_is_live(op.tenant_id, employee["id"], sid)
    assert wait_until(lambda: product.logout_tokens, what="a back-channel logout token")[0]["sid"] == sid

    tokens = _signed_in(op, product, employee)  # Entra's LogoutRequest: the employee signed out elsewhere
    sid = tokens["claims"]["sid"]
    url = entra.logout_request_url(op.sso.sp_entity_id, employee["userName"])
    assert logout.saml_logout(op.tenant_id, urlsplit(url).query) is not None  # the LogoutResponse
    assert notices_while_live[1:] == [(sid, True, 1)] and not store.session_is_live(op.tenant_id, employee["id"], sid)
