"""What certified client libraries do by default, over real HTTP: PKCE as RFC 9700 §2.1.1 puts it (and both
downgrades refused), no `state`, the authorization request as a POST, UserInfo with the token in the form body
and claims by scope, logout without an ID token, RFC 8414 metadata, CORS for a single-page app, and a correct
client secret that nobody else's wrong guesses can lock out."""
from __future__ import annotations

import base64
import json

import requests

from tests.oidc.conftest import pkce_pair, query
from tests.sso.conftest import assert_refused, login_cookies
from tests.support.idp import decode_authn_request


def _code(op, employee, params: dict) -> str:
    """The code the ACS sends back for an authorization request made with exactly `params`."""
    started = op.authorize(params)
    assert started.status_code == 302, started.text
    request, relay_state = decode_authn_request(started.headers["Location"])
    answer = op.sso.post_acs(op.sso.response_for(employee, in_response_to=request.get("ID")), relay_state,
                             login_cookies(started))
    assert answer.status_code == 303, answer.text
    got = query(answer.headers["Location"])
    assert "code" in got, got
    return got["code"]


def _base(op, client=None, **extra) -> dict:
    client = client or op.client
    return {"response_type": "code", "client_id": client["client_id"], "redirect_uri": client["redirect_uris"][0],
            "scope": "openid email profile", **extra}


def _redeem(op, code: str, client=None, **extra) -> requests.Response:
    client = client or op.client
    return op.token({"grant_type": "authorization_code", "code": code, "redirect_uri": client["redirect_uris"][0],
                     **extra}, client)


# ---- PKCE and state ---------------------------------------------------------------------------------------------

def test_a_confidential_client_with_a_nonce_and_no_state_needs_no_pkce(op, employee):
    code = _code(op, employee, _base(op, nonce="n-0S6_WzA2Mj"))
    response = _redeem(op, code)
    assert response.status_code == 200, response.text
    claims = json.loads(base64.urlsafe_b64decode(response.json()["id_token"].split(".")[1] + "=="))
    assert claims["nonce"] == "n-0S6_WzA2Mj"  # what stops code injection without PKCE


def test_no_state_is_fine_and_none_comes_back(op, employee):
    verifier, challenge = pkce_pair()
    started = op.authorize(_base(op, code_challenge=challenge, code_challenge_method="S256"))
    request, relay_state = decode_authn_request(started.headers["Location"])
    answer = op.sso.post_acs(op.sso.response_for(employee, in_response_to=request.get("ID")), relay_state,
                             login_cookies(started))
    got = query(answer.headers["Location"])
    assert "code" in got and "state" not in got and got["iss"] == op.issuer
    assert _redeem(op, got["code"], code_verifier=verifier).status_code == 200


def test_pkce_downgrade_is_refused_both_ways(op, employee):
    # A code issued with a challenge is never redeemed without its verifier ...
    verifier, challenge = pkce_pair()
    code = _code(op, employee, _base(op, nonce="n1", code_challenge=challenge, code_challenge_method="S256"))
    refused = _redeem(op, code)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    assert _redeem(op, code, code_verifier=verifier).status_code == 200  # (the refusal did not spend it)
    # ... and a verifier for a code issued without a challenge is refused (it was never committed to).
    code = _code(op, employee, _base(op, nonce="n2"))
    refused = _redeem(op, code, code_verifier=pkce_pair()[0])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text


def test_a_native_client_must_use_s256(op):
    native = op.register(application_type="native", redirect_uris=["http://127.0.0.1:9999/cb"]).json()
    for extra in ({"nonce": "n"}, {"nonce": "n", "code_challenge": "a" * 43, "code_challenge_method": "plain"}):
        response = op.authorize(_base(op, native, **extra))
        assert response.status_code == 303
        got = query(response.headers["Location"])
        assert got["error"] == "invalid_request", got
    assert "native" in query(op.authorize(_base(op, native, nonce="n")).headers["Location"])["error_description"]


# ---- the authorization request as a POST ---------------------------------------------------------------------------

def test_authorize_takes_a_form_post(op, employee):
    verifier, challenge = pkce_pair()
    params = _base(op, state="s1", nonce="n1", code_challenge=challenge, code_challenge_method="S256")
    started = requests.post(f"{op.issuer}/authorize", data=params, allow_redirects=False, timeout=30)
    assert started.status_code == 302, started.text
    request, relay_state = decode_authn_request(started.headers["Location"])
    answer = op.sso.post_acs(op.sso.response_for(employee, in_response_to=request.get("ID")), relay_state,
                             login_cookies(started))
    got = query(answer.headers["Location"])
    assert got["state"] == "s1"
    assert _redeem(op, got["code"], code_verifier=verifier).status_code == 200
    # A POST answers errors like a GET: to the client when the client and redirect URI are good ...
    bad = requests.post(f"{op.issuer}/authorize", data={**params, "response_type": "token"}, allow_redirects=False,
                        timeout=30)
    assert bad.status_code == 303 and query(bad.headers["Location"])["error"] == "unsupported_response_type"
    # ... and a page otherwise; a body that is not a form is a page too.
    assert_refused(requests.post(f"{op.issuer}/authorize", data={**params, "redirect_uri": "https://evil.example/"},
                                 allow_redirects=False, timeout=30), 400)
    assert_refused(requests.post(f"{op.issuer}/authorize", json=params, allow_redirects=False, timeout=30), 400)


# ---- UserInfo ------------------------------------------------------------------------------------------------------

def test_userinfo_takes_the_token_in_a_form_body_and_refuses_two_tokens(op, employee):
    tokens = op.redeem(op.sign_in(employee)).json()
    posted = requests.post(f"{op.issuer}/userinfo", data={"access_token": tokens["access_token"]}, timeout=30)
    assert posted.status_code == 200, posted.text
    assert posted.json()["sub"] == employee["id"] and posted.json()["email"] == "alice@acme.example.com"
    header = requests.post(f"{op.issuer}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                           timeout=30)  # oidcc-userinfo-post-header
    assert header.status_code == 200 and header.json()["sub"] == employee["id"], header.text
    both = requests.post(f"{op.issuer}/userinfo", data={"access_token": tokens["access_token"]}, timeout=30,
                         headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    forged = requests.post(f"{op.issuer}/userinfo", data={"access_token": tokens["access_token"][:-4] + "AAAA"},
                           timeout=30)
    assert forged.status_code == 401 and forged.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_userinfo_releases_claims_by_scope(op, employee):
    tokens = op.redeem(op.sign_in(employee, scope="openid")).json()
    claims = op.userinfo(tokens["access_token"]).json()
    assert claims["sub"] == employee["id"]
    assert not {"email", "email_verified", "name", "given_name", "family_name", "preferred_username"} & set(claims)
    tokens = op.redeem(op.sign_in(employee, scope="openid email")).json()
    claims = op.userinfo(tokens["access_token"]).json()
    assert claims["email"] == "alice@acme.example.com" and "name" not in claims and "given_name" not in claims
    tokens = op.redeem(op.sign_in(employee, scope="openid profile")).json()
    claims = op.userinfo(tokens["access_token"]).json()
    assert claims["name"] == "Alice Example" and claims["given_name"] == "Alice" and "email" not in claims


# ---- logout without an ID token ------------------------------------------------------------------------------------

def test_logout_with_client_id_and_a_registered_return_address_goes_back_with_state(op):
    response = requests.get(f"{op.issuer}/logout", allow_redirects=False, timeout=30, params={
        "client_id": op.client["client_id"], "post_logout_redirect_uri": "https://product.example.com/bye",
        "state": "bye-1"})
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "https://product.example.com/bye?state=bye-1"


def test_logout_without_hint_or_state_and_with_an_added_query(op):
    base = {"client_id": op.client["client_id"], "post_logout_redirect_uri": "https://product.example.com/bye"}
    response = requests.get(f"{op.issuer}/logout", params=base, allow_redirects=False, timeout=30)
    assert response.status_code == 303 and response.headers["Location"] == "https://product.example.com/bye"
    added = {**base, "post_logout_redirect_uri": "https://product.example.com/bye?extra=1"}
    assert_refused(requests.get(f"{op.issuer}/logout", params=added, allow_redirects=False, timeout=30), 400,
                   "not registered")
    only_state = requests.get(f"{op.issuer}/logout", params={"state": "s"}, allow_redirects=False, timeout=30)
    assert only_state.status_code == 200 and "signed out" in only_state.text  # nowhere to return to: our page


def test_logout_with_no_parameters_is_a_signed_out_page(op):
    for response in (requests.get(f"{op.issuer}/logout", timeout=30, allow_redirects=False),
                     requests.post(f"{op.issuer}/logout", data={}, timeout=30, allow_redirects=False,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})):
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/html") and "signed out" in response.text


# ---- discovery at the RFC 8414 place, and CORS -----------------------------------------------------------------------

def test_rfc_8414_metadata_is_the_discovery_document(op):
    metadata = requests.get(f"{op.issuer}/.well-known/oauth-authorization-server", timeout=30)
    assert metadata.status_code == 200 and metadata.json() == op.discovery()
    assert metadata.json()["issuer"] == op.issuer
    assert "none" in metadata.json()["prompt_values_supported"] and "amr" in metadata.json()["claims_supported"]


def test_cors_preflight_and_headers_on_what_a_browser_app_calls(op, employee):
    origin = {"Origin": "https://spa.example.net"}
    endpoints = {"/.well-known/openid-configuration": "GET", "/.well-known/oauth-authorization-server": "GET",
                 "/jwks": "GET", "/token": "POST", "/userinfo": "POST"}
    for path, method in endpoints.items():
        preflight = requests.options(f"{op.issuer}{path}", timeout=30, headers={
            **origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 204, (path, preflight.status_code, preflight.text)
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert method in preflight.headers["Access-Control-Allow-Methods"]
        allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed
        assert "Access-Control-Allow-Credentials" not in preflight.headers  # no cookies cross origins
    for path in ("/.well-known/openid-configuration", "/jwks"):
        response = requests.get(f"{op.issuer}{path}", headers=origin, timeout=30)
        assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    # A public client's whole token exchange from the browser's point of view, errors readable too.
    tokens = op.redeem(op.sign_in(employee))
    assert tokens.headers["Access-Control-Allow-Origin"] == "*"
    info = requests.get(f"{op.issuer}/userinfo", timeout=30,
                        headers={**origin, "Authorization": f"Bearer {tokens.json()['access_token']}"})
    assert info.status_code == 200 and info.headers["Access-Control-Allow-Origin"] == "*"
    refused = requests.get(f"{op.issuer}/userinfo", headers={**origin, "Authorization": "Bearer nope"}, timeout=30)
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]
    # The browser-facing endpoints are not opened to other origins.
    for path in ("/authorize", "/logout"):
        assert "Access-Control-Allow-Origin" not in requests.get(f"{op.issuer}{path}", headers=origin, timeout=30,
                                                                 allow_redirects=False).headers


# ---- a correct secret is never refused ------------------------------------------------------------------------------

def test_a_correct_client_secret_gets_through_after_others_guessed_wrong_from_the_same_address(op, employee):
    same_address = {"X-Forwarded-For": "203.0.113.77"}
    authorized = op.sign_in(employee)
    wrong = (op.client["client_id"], op.client["client_secret"][:-3] + "xyz")
    form = {"grant_type": "authorization_code", "code": authorized.code, "redirect_uri": authorized.redirect_uri,
            "code_verifier": authorized.verifier}
    statuses = [requests.post(f"{op.issuer}/token", data=form, auth=wrong, headers=same_address, timeout=30).status_code
                for _ in range(25)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}  # the guesser is limited ...
    right = requests.post(f"{op.issuer}/token", data=form, headers=same_address, timeout=30,
                          auth=(op.client["client_id"], op.client["client_secret"]))
    assert right.status_code == 200, right.text  # ... the client with its secret is not


def test_parameters_we_do_not_act_on_are_ignored_not_refused(op, employee):
    """display, ui_locales, claims_locales, acr_values, claims and unknown parameters (OIDC Core §3.1.2.1; the
    oidcc-display-*, -ui-locales, -claims-locales, -acr-values, -unknown-parameter modules) still sign in."""
    code = _code(op, employee, _base(op, nonce="n", state="s", display="popup", ui_locales="de-CH en",
                                     claims_locales="fr", acr_values="urn:mace:incommon:iap:silver", foo="bar",
                                     claims='{"userinfo":{"name":{"essential":true}}}', scope="profile openid"))
    assert _redeem(op, code).status_code == 200
