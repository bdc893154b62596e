"""The authorization code flow with PKCE over real HTTP: authorize → Entra (the TestIdp's signed SAML) → ACS →
303 to the client with code, state and iss → token → ID token and UserInfo. And every refusal with its RFC
error: at the authorization endpoint (RFC 6749 §4.1.2.1; a bad client or redirect URI is a page, never a
redirect) and at the token endpoint (§5.2 JSON, Cache-Control: no-store)."""
from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.oidc.conftest import pkce_pair, query
from tests.sso.conftest import assert_refused
from tests.support import oidc_keys
from tests.support.idp import decode_authn_request


def _verified_id_token(op, token: str) -> dict:
    jwks = requests.get(op.discovery()["jwks_uri"], timeout=30).json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    return decoded.claims


def _assert_oauth_error(response: requests.Response, error: str, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    return body


# ---- the happy path ------------------------------------------------------------------------------------------

def test_employee_signs_in_and_the_product_gets_a_verified_id_token_and_userinfo(op, employee):
    authorized = op.sign_in(employee)
    got = query(authorized.location)
    assert authorized.location.startswith(authorized.redirect_uri + "?")
    assert got["state"] == authorized.state and got["iss"] == op.issuer  # RFC 9207

    response = op.redeem(authorized)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    claims = _verified_id_token(op, tokens["id_token"])
    header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
    # Signed by the first configured key; the retired one stays published but signs nothing.
    current = RSAKey.import_key(oidc_keys.signing_key_pem("op-current"))
    assert header["alg"] == "RS256" and header["kid"] == current.thumbprint()
    now = time.time()
    assert claims["iss"] == op.issuer and claims["aud"] == op.client["client_id"]
    assert claims["sub"] == employee["id"] and claims["nonce"] == authorized.nonce
    assert claims["iat"] <= now + 5 < claims["exp"] and claims["auth_time"] <= now + 5
    assert claims["email"] == "alice@acme.example.com" and claims["preferred_username"] == "alice@acme.example.com"
    assert claims["name"] == "Alice Example" and claims["is_admin"] is False and claims["tenant"] == op.tenant_id
    assert claims["given_name"] == "Alice" and claims["family_name"] == "Example"
    assert claims["sid"]

    info = op.userinfo(tokens["access_token"])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == employee["id"] and info.json()["email"] == "alice@acme.example.com"
    assert info.json()["given_name"] == "Alice"


def test_client_secret_post_works_too_and_sub_is_stable(op, employee):
    first = op.redeem(op.sign_in(employee)).json()
    authorized = op.sign_in(employee)
    form = {"grant_type": "authorization_code", "code": authorized.code, "redirect_uri": authorized.redirect_uri,
            "code_verifier": authorized.verifier}
    second = op.token(form, auth="post")
    assert second.status_code == 200, second.text
    assert _verified_id_token(op, first["id_token"])["sub"] == _verified_id_token(op, second.json()["id_token"])["sub"]


def test_prompt_login_forces_a_fresh_entra_sign_in_and_login_hint_is_passed_on(op):
    params = op.params(prompt="login", login_hint="alice@acme.example.com")
    params.pop("_verifier")
    started = op.authorize(params)
    assert started.status_code == 302, started.text
    request, _ = decode_authn_request(started.headers["Location"])
    assert request.get("ForceAuthn") == "true"
    assert query(started.headers["Location"])["login_hint"] == "alice@acme.example.com"
    plain = op.params()
    plain.pop("_verifier")
    request, _ = decode_authn_request(op.authorize(plain).headers["Location"])
    assert request.get("ForceAuthn") is None


def test_native_client_redeems_with_pkce_alone(op, employee):
    native = op.register(application_type="native", redirect_uris=["http://127.0.0.1:9999/cb"]).json()
    authorized = op.sign_in(employee, client=native)
    response = requests.post(f"{op.issuer}/token", timeout=30, data={
        "grant_type": "authorization_code", "code": authorized.code, "redirect_uri": authorized.redirect_uri,
        "code_verifier": authorized.verifier, "client_id": native["client_id"]})
    assert response.status_code == 200, response.text


# ---- the authorization endpoint's refusals --------------------------------------------------------------------

def test_unknown_client_or_unregistered_redirect_uri_is_a_page_never_a_redirect(op, new_tenant):
    unknown_client = "is not registered for this company"
    unregistered_return = "to return to an address it has not registered"
    for overrides, reason in (({"client_id": "0" * 32}, unknown_client),
                              ({"redirect_uri": "https://evil.example/callback"}, unregistered_return),
                              # exact match: not a prefix
                              ({"redirect_uri": "https://product.example.com/callback/"}, unregistered_return),
                              ({"redirect_uri": "https://product.example.com/callback?x=1"}, unregistered_return),
                              ({"client_id": None}, "does not name the app (client_id is missing)")):
        params = op.params(**overrides)
        params.pop("_verifier")
        assert_refused(op.authorize(params), 400, reason)
    # Another tenant's client is unknown at this issuer.
    other = op.register(redirect_uris=["https://other.example/cb"]).json()
    tenant = new_tenant("Globex", "https://globex.example.com")
    params = op.params(client=other)
    params.pop("_verifier")
    response = requests.get(f"{op.sso.base_url}/api/oidc/{tenant.tenant_id}/authorize", params=params,
                            allow_redirects=False, timeout=30)
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize("overrides, error", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": None}, "unsupported_response_type"),  # oidcc-response-type-missing
    ({"scope": "email"}, "invalid_scope"),
    ({"code_challenge": None, "code_challenge_method": None, "nonce": None}, "invalid_request"),  # neither
    ({"code_challenge": None}, "invalid_request"),  # a method without a challenge
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),  # no method means plain (RFC 7636 §4.3)
    ({"code_challenge": "short"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "unheard_of"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"id_token_hint": "eyJhbGciOiJub25lIn0.e30."}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
])
def test_other_authorization_errors_go_back_to_the_client(op, overrides, error):
    params = op.params(**overrides)
    params.pop("_verifier")
    response = op.authorize(params)
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert location.startswith(op.client["redirect_uris"][0] + "?")
    got = query(location)
    assert got["error"] == error and got["iss"] == op.issuer
    assert got.get("state") == params.get("state")


def test_duplicate_parameters_are_refused(op):
    params = op.params()
    params.pop("_verifier")
    pairs = list(params.items()) + [("scope", "openid")]
    response = op.authorize(pairs)
    assert response.status_code == 303 and query(response.headers["Location"])["error"] == "invalid_request"


def _sign_in_answered_by_the_acs(op, user):
    """An authorization request, then Entra's signed answer for `user` posted to the ACS from the same browser;
    returns the ACS's answer and the request's parameters."""
    from tests.sso.conftest import login_cookies

    params = op.params()
    params.pop("_verifier")
    started = op.authorize(params)
    request, relay_state = decode_authn_request(started.headers["Location"])
    answer = op.sso.post_acs(op.sso.response_for(user, in_response_to=request.get("ID")), relay_state,
                             login_cookies(started))
    return answer, params


def test_dismissed_employee_is_sent_back_with_access_denied_and_never_gets_a_code(op):
    user = op.sso.provision("bob@acme.example.com", active=False)
    answer, params = _sign_in_answered_by_the_acs(op, user)
    assert answer.status_code == 303
    got = query(answer.headers["Location"])
    assert got["error"] == "access_denied" and "code" not in got and got["state"] == params["state"]
    assert not answer.raw.headers.getlist("Set-Cookie")


# ---- the token endpoint's refusals ------------------------------------------------------------------------------

def test_a_code_is_spent_once_and_a_second_redemption_revokes_the_first(op, employee):
    authorized = op.sign_in(employee)
    first = op.redeem(authorized)
    assert first.status_code == 200
    assert op.userinfo(first.json()["access_token"]).status_code == 200
    _assert_oauth_error(op.redeem(authorized), "invalid_grant")
    revoked = op.userinfo(first.json()["access_token"])
    assert revoked.status_code == 401 and 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]


def test_ten_parallel_redemptions_exactly_one_succeeds(op, employee):
    authorized = op.sign_in(employee)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: op.redeem(authorized), range(10)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [400] * 9, [a.text for a in answers]
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code == 400)


def test_an_expired_code_is_refused(op, employee):
    from shared_code.oidc import tokens
    from shared_code.oidc.errors import OAuthError

    authorized = op.sign_in(employee)
    form = {"grant_type": "authorization_code", "code": authorized.code, "redirect_uri": authorized.redirect_uri,
            "code_verifier": authorized.verifier}
    basic = "Basic " + base64.b64encode(f"{op.client['client_id']}:{op.client['client_secret']}".encode()).decode()
    # The token endpoint as the clock will see it in 61 seconds (the code is sealed: its expiry is inside it).
    with pytest.raises(OAuthError) as late:
        tokens.token_request(op.tenant_id, basic, form, now=time.time() + 61)
    assert late.value.error == "invalid_grant" and "expired" in late.value.description
    assert op.redeem(authorized).status_code == 200  # within its minute the same code is good (and spent now)


def test_code_bound_to_its_redirect_uri_and_pkce_verifier(op, employee):
    authorized = op.sign_in(employee)
    _assert_oauth_error(op.redeem(authorized, redirect_uri="http://127.0.0.1:8765/cb"), "invalid_grant")
    authorized = op.sign_in(employee)
    _assert_oauth_error(op.redeem(authorized, code_verifier=None), "invalid_grant")  # the challenge needs it
    authorized = op.sign_in(employee)
    _assert_oauth_error(op.redeem(authorized, code_verifier=pkce_pair()[0]), "invalid_grant")
    # "plain": the challenge itself as verifier.
    verifier, challenge = pkce_pair()
    authorized = op.sign_in(employee, code_challenge=challenge)
    _assert_oauth_error(op.redeem(authorized, code_verifier=challenge), "invalid_grant")


def test_wrong_secret_and_unknown_client_are_invalid_client(op, employee):
    authorized = op.sign_in(employee)
    wrong = dict(op.client, client_secret=op.client["client_secret"][:-2] + "xx")
    response = op.redeem(authorized, client=wrong)
    _assert_oauth_error(response, "invalid_client", 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    # The code survives a failed client authentication: the right client can still redeem it.
    assert op.redeem(authorized).status_code == 200


def test_another_clients_or_another_tenants_code_is_invalid(op, employee, new_tenant):
    other = op.register(redirect_uris=[op.client["redirect_uris"][0]]).json()
    authorized = op.sign_in(employee)
    _assert_oauth_error(op.redeem(authorized, client=other), "invalid_grant")
    # The same client id and secret at another tenant's issuer: unknown there.
    tenant = new_tenant("Globex", "https://globex.example.com")
    response = requests.post(f"{op.sso.base_url}/api/oidc/{tenant.tenant_id}/token", timeout=30,
                             auth=(op.client["client_id"], op.client["client_secret"]),
                             data={"grant_type": "authorization_code", "code": authorized.code,
                                   "redirect_uri": authorized.redirect_uri, "code_verifier": authorized.verifier})
    _assert_oauth_error(response, "invalid_client", 401)
    # That tenant's own client cannot redeem this tenant's code either: codes live in their tenant's partition.
    theirs = requests.post(f"{op.sso.base_url}/api/tenants/{tenant.tenant_id}/oidc/clients", headers=op.operator,
                           json={"redirect_uris": [authorized.redirect_uri]}, timeout=30).json()
    response = requests.post(f"{op.sso.base_url}/api/oidc/{tenant.tenant_id}/token", timeout=30,
                             auth=(theirs["client_id"], theirs["client_secret"]),
                             data={"grant_type": "authorization_code", "code": authorized.code,
                                   "redirect_uri": authorized.redirect_uri, "code_verifier": authorized.verifier})
    _assert_oauth_error(response, "invalid_grant")
    assert op.redeem(authorized).status_code == 200  # still unspent at home


def test_unsupported_grant_and_malformed_requests(op):
    _assert_oauth_error(op.token({"grant_type": "password", "username": "a", "password": "b"}),
                        "unsupported_grant_type")
    _assert_oauth_error(op.token({}), "invalid_request")
    duplicated = requests.post(f"{op.issuer}/token", data="grant_type=authorization_code&code=a&code=b",
                               headers={"Content-Type": "application/x-www-form-urlencoded"},
                               auth=(op.client["client_id"], op.client["client_secret"]), timeout=30)
    _assert_oauth_error(duplicated, "invalid_request")


def test_dismissed_employee_loses_userinfo_at_once_and_cannot_redeem(op, employee):
    tokens = op.redeem(op.sign_in(employee)).json()
    pending = op.sign_in(employee)
    op.sso.set_active(employee, False)
    response = op.userinfo(tokens["access_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    _assert_oauth_error(op.redeem(pending), "invalid_grant")


def test_userinfo_refuses_forged_and_other_tenants_tokens(op, employee, new_tenant):
    tokens = op.redeem(op.sign_in(employee)).json()
    tenant = new_tenant("Globex", "https://globex.example.com")
    other = requests.get(f"{op.sso.base_url}/api/oidc/{tenant.tenant_id}/userinfo", timeout=30,
                         headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert other.status_code == 401
    assert op.userinfo(tokens["id_token"]).status_code == 401  # an ID token is not an access token
    assert op.userinfo(tokens["access_token"][:-3] + "AAA").status_code == 401
    assert requests.get(f"{op.issuer}/userinfo", timeout=30).status_code == 401


def test_once_sso_is_enforced_an_address_outside_the_corporate_domains_is_access_denied(op):
    from tests.sso.test_who_may_sign_in import _enforce_sso

    insider = op.sso.provision("carol@acme.example.com")
    _enforce_sso(op.sso, insider, ["acme.example.com"])
    outsider = op.sso.provision("dave@gmail.example")
    answer, _ = _sign_in_answered_by_the_acs(op, outsider)
    got = query(answer.headers["Location"])
    assert answer.status_code == 303 and got["error"] == "access_denied" and "code" not in got
    assert op.redeem(op.sign_in(insider)).status_code == 200


def test_a_tenant_without_entra_connected_answers_temporarily_unavailable(new_tenant, app_url, operator_key):
    from tests.oidc.conftest import OidcTenant
    from tests.sso.conftest import SsoTenant
    from tests.support.idp import TestIdp

    tenant = OidcTenant(SsoTenant(new_tenant("Not Yet", "https://notyet.example.com"), TestIdp(), app_url),
                        operator_key)
    tenant.client = tenant.register(redirect_uris=["https://product.example.com/callback"]).json()
    params = tenant.params()
    params.pop("_verifier")
    response = tenant.authorize(params)
    assert response.status_code == 303
    assert query(response.headers["Location"])["error"] == "temporarily_unavailable"
