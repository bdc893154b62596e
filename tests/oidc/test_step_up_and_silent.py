"""Authentication time, step-up and silent sign-in over real HTTP, with the test IdP's own pages and session
(tests/support/idp_server.py: it keeps an Entra-like session per browser, honours ForceAuthn and IsPassive, and
lets a test choose the AuthnInstant).

The browser is walked by hand: authorize → the IdP's SSO URL (with its ESTSAUTH cookie, when the test gives the
browser an Entra session) → the IdP's auto-posting form → ACS (with the login-binding cookie) → the product's
redirect URI. Editing the AuthnRequest on the way is what a person can do in their own browser: it is unsigned.
"""
from __future__ import annotations

import base64
import datetime as dt
import re
import zlib
from html import unescape
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from lxml import etree

from tests.oidc.conftest import OP_BROWSER, query
from tests.sso.conftest import login_cookies, set_cookies
from tests.support.idp_server import SESSION_COOKIE, IdpServer

MFA = "http://schemas.microsoft.com/claims/multipleauthn"
PASSWORD = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"
FIVE_HOURS_AGO = dt.timedelta(hours=5)


@pytest.fixture
def entra(op, employee) -> Iterator[IdpServer]:
    """The tenant's IdP on a real port: its metadata (SSO URL = this server) is connected again, and it signs in
    the provisioned employee."""
    with IdpServer(op.sso.idp) as server:
        assert op.sso.connect().status_code == 200
        server.sign_in_as(employee["userName"], employee["externalId"])
        yield server


def _edit_authn_request(url: str, edit: Callable[[etree._Element], None]) -> str:
    """The SSO URL with its AuthnRequest edited (what a person can do to an unsigned request in the browser)."""
    parts = urlsplit(url)
    params = {name: values[0] for name, values in parse_qs(parts.query).items()}
    request = etree.fromstring(zlib.decompress(base64.b64decode(params["SAMLRequest"]), -15))
    edit(request)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    params["SAMLRequest"] = base64.b64encode(deflater.compress(etree.tostring(request)) + deflater.flush()).decode()
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(params)}"


def _walk(op, params: dict, *, estsauth: str | None = None,
          edit: Callable[[etree._Element], None] | None = None) -> tuple[requests.Response, requests.Response]:
    """authorize → IdP → ACS. Returns (the IdP's answer, the ACS's answer)."""
    started = op.authorize(params)
    assert started.status_code == 302, started.text
    cookies = login_cookies(started)
    sso_url = started.headers["Location"]
    if edit is not None:
        sso_url = _edit_authn_request(sso_url, edit)
    at_idp = requests.get(sso_url, timeout=30, allow_redirects=False,
                          headers={"Cookie": f"{SESSION_COOKIE}={estsauth}"} if estsauth else {})
    assert at_idp.status_code == 200, at_idp.text
    form = dict(re.findall(r'name="(SAMLResponse|RelayState)" value="([^"]*)"', at_idp.text))
    answer = op.sso.post_acs(unescape(form["SAMLResponse"]), unescape(form["RelayState"]) if "RelayState" in form
                             else None, cookies)
    return at_idp, answer


def _params(op, **overrides) -> tuple[dict, str]:
    params = op.params(**overrides)
    return params, params.pop("_verifier")


def _id_token(op, code: str, verifier: str, redirect_uri: str) -> dict:
    tokens = op.token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                       "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    jwks = requests.get(op.discovery()["jwks_uri"], timeout=30).json()
    return jwt.decode(tokens.json()["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"]).claims


def _login_required(op, answer: requests.Response, params: dict) -> None:
    assert answer.status_code == 303, answer.text
    location = answer.headers["Location"]
    assert location.startswith(params["redirect_uri"] + "?"), location
    got = query(location)
    assert got["error"] == "login_required" and "code" not in got, got
    assert got["state"] == params["state"] and got["iss"] == op.issuer


# ---- auth_time and amr are Entra's ------------------------------------------------------------------------------

def test_auth_time_is_the_assertions_authn_instant_and_amr_comes_from_entra(op, entra):
    authenticated = (dt.datetime.now(dt.timezone.utc) - FIVE_HOURS_AGO).replace(microsecond=0)
    entra.sign_in_as(entra.user["name_id"], entra.user["object_id"], authn_methods=[PASSWORD, MFA])
    session = entra.start_session(authenticated)
    params, verifier = _params(op)
    _, answer = _walk(op, params, estsauth=session)
    assert answer.status_code == 303, answer.text
    claims = _id_token(op, query(answer.headers["Location"])["code"], verifier, params["redirect_uri"])
    assert claims["auth_time"] == int(authenticated.timestamp())  # not the moment the ACS ran
    assert claims["amr"] == ["pwd", "mfa"]


# ---- prompt=login and max_age: judged by AuthnInstant ------------------------------------------------------------

def test_max_age_0_with_a_five_hour_old_authn_instant_is_login_required(op, entra):
    # An IdP that answers ForceAuthn from its old session (AuthnInstant five hours ago).
    entra.sign_in_as(entra.user["name_id"], entra.user["object_id"],
                     authn_instant=dt.datetime.now(dt.timezone.utc) - FIVE_HOURS_AGO)
    params, _ = _params(op, max_age="0")
    _, answer = _walk(op, params)
    assert entra.received[-1].force_authn  # we asked for a fresh sign-in
    _login_required(op, answer, params)


def test_max_age_with_force_authn_removed_from_the_request_is_still_login_required(op, entra):
    session = entra.start_session(dt.datetime.now(dt.timezone.utc) - FIVE_HOURS_AGO)
    params, _ = _params(op, max_age="0")
    _, answer = _walk(op, params, estsauth=session, edit=lambda request: request.attrib.pop("ForceAuthn"))
    assert not entra.received[-1].force_authn  # the IdP never saw it: it answered from its session
    _login_required(op, answer, params)
    # The same for prompt=login.
    params, _ = _params(op, prompt="login")
    _, answer = _walk(op, params, estsauth=session, edit=lambda request: request.attrib.pop("ForceAuthn"))
    _login_required(op, answer, params)


def test_a_fresh_authentication_satisfies_max_age_and_prompt_login(op, entra):
    session = entra.start_session(dt.datetime.now(dt.timezone.utc) - FIVE_HOURS_AGO)
    for overrides in ({"max_age": "0"}, {"prompt": "login"}):
        params, verifier = _params(op, **overrides)
        _, answer = _walk(op, params, estsauth=session)  # ForceAuthn: the IdP authenticates again
        assert answer.status_code == 303 and "code" in query(answer.headers["Location"]), answer.text
        claims = _id_token(op, query(answer.headers["Location"])["code"], verifier, params["redirect_uri"])
        assert abs(claims["auth_time"] - dt.datetime.now(dt.timezone.utc).timestamp()) < 60
    # A session younger than max_age needs no new authentication.
    recent = entra.start_session(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    params, _ = _params(op, max_age="3600")
    _, answer = _walk(op, params, estsauth=recent, edit=lambda request: request.attrib.pop("ForceAuthn"))
    assert "code" in query(answer.headers["Location"])


# ---- prompt=none: IsPassive ------------------------------------------------------------------------------------

def test_prompt_none_with_an_entra_session_signs_in_without_a_page(op, entra, employee):
    authenticated = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).replace(microsecond=0)
    session = entra.start_session(authenticated)
    params, verifier = _params(op, prompt="none")
    at_idp, answer = _walk(op, params, estsauth=session)
    assert entra.received[-1].is_passive and not entra.received[-1].force_authn
    assert "Set-Cookie" not in at_idp.headers  # no new authentication happened at the IdP
    assert answer.status_code == 303, answer.text
    claims = _id_token(op, query(answer.headers["Location"])["code"], verifier, params["redirect_uri"])
    assert claims["sub"] == employee["id"] and claims["auth_time"] == int(authenticated.timestamp())


def test_prompt_none_without_an_entra_session_is_login_required_never_a_prompt(op, entra):
    params, _ = _params(op, prompt="none")
    at_idp, answer = _walk(op, params)
    assert entra.received[-1].is_passive
    assert "NoPassive" in base64.b64decode(unescape(
        re.search(r'name="SAMLResponse" value="([^"]*)"', at_idp.text).group(1))).decode()
    _login_required(op, answer, params)
    assert not answer.raw.headers.getlist("Set-Cookie")


def test_prompt_none_with_max_age_is_judged_on_the_entra_sessions_age(op, entra):
    session = entra.start_session(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    params, _ = _params(op, prompt="none", max_age="3600")
    _, answer = _walk(op, params, estsauth=session)
    assert entra.received[-1].is_passive and not entra.received[-1].force_authn
    assert "code" in query(answer.headers["Location"]), answer.headers["Location"]
    params, _ = _params(op, prompt="none", max_age="60")
    _, answer = _walk(op, params, estsauth=session)
    _login_required(op, answer, params)  # too old, and no page may be shown to refresh it


def test_a_no_passive_answer_from_another_browser_is_a_page_not_a_redirect(op, entra):
    """The status is unsigned: only the browser that started the silent sign-in hears login_required."""
    params, _ = _params(op, prompt="none")
    started = op.authorize(params)
    at_idp = requests.get(started.headers["Location"], timeout=30)
    form = dict(re.findall(r'name="(SAMLResponse|RelayState)" value="([^"]*)"', at_idp.text))
    answer = op.sso.post_acs(unescape(form["SAMLResponse"]), unescape(form["RelayState"]))  # no binding cookie
    assert answer.status_code in (400, 403) and "Location" not in answer.headers


def test_id_token_hint_names_who_must_come_back(op, entra, new_tenant):
    session = entra.start_session()
    params, verifier = _params(op)
    _, answer = _walk(op, params, estsauth=session)
    code = query(answer.headers["Location"])["code"]
    tokens = op.token({"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
                       "code_verifier": verifier}).json()
    params, _ = _params(op, prompt="none", id_token_hint=tokens["id_token"])
    _, answer = _walk(op, params, estsauth=session)
    assert "code" in query(answer.headers["Location"]), answer.headers["Location"]
    # Another employee's Entra session answers a hint naming Alice: login_required.
    bob = op.sso.provision("bob@acme.example.com")
    entra.sign_in_as(bob["userName"], bob["externalId"])
    params, _ = _params(op, prompt="none", id_token_hint=tokens["id_token"])
    _, answer = _walk(op, params, estsauth=entra.start_session())
    _login_required(op, answer, params)


def test_after_rp_initiated_logout_a_silent_sign_in_is_login_required(op, entra):
    """oidcc-rp-initiated-logout's last step: the logout went through Entra, whose session ended too."""
    session = entra.start_session()
    params, verifier = _params(op)
    _, answer = _walk(op, params, estsauth=session)
    tokens = op.token({"grant_type": "authorization_code", "code": query(answer.headers["Location"])["code"],
                       "redirect_uri": params["redirect_uri"], "code_verifier": verifier}).json()
    tie = set_cookies(answer)[OP_BROWSER].value  # this browser's first-party tie to the session: no confirmation
    logout = requests.get(f"{op.issuer}/logout", allow_redirects=False, timeout=30, params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://product.example.com/bye",
        "state": "bye"}, headers={"Cookie": f"{OP_BROWSER}={tie}"})
    at_entra = requests.get(logout.headers["Location"], allow_redirects=False, timeout=30,
                            headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    back = requests.get(at_entra.headers["Location"], allow_redirects=False, timeout=30)
    assert back.headers["Location"] == "https://product.example.com/bye?state=bye"
    params, _ = _params(op, prompt="none")
    _, answer = _walk(op, params, estsauth=session)
    _login_required(op, answer, params)
