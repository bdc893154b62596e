"""Fixtures for the OpenID Provider over real HTTP: a tenant connected to its TestIdp (tests/sso/conftest.py),
a client registered by the operator, and a browser-like walk through authorize → SAML → ACS → code that
keeps the login-binding cookie by hand (as tests/sso does)."""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.sso.conftest import SsoTenant, cookie_header, login_cookies, set_cookies
from tests.support.idp import TestIdp, decode_authn_request

REDIRECT_URI = "https://product.example.com/callback"
OP_BROWSER = "gh_op"  # the first-party cookie that ties an RP-initiated logout to this browser's session


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


@dataclass
class Authorized:
    code: str
    verifier: str
    redirect_uri: str
    state: str
    nonce: str
    location: str
    browser: str | None = None  # the gh_op cookie the ACS set: this browser's tie to the session (logout)


class OidcTenant:
    """A tenant's OpenID Provider as the product sees it, plus the operator's and the IdP's side."""

    def __init__(self, sso: SsoTenant, operator_key: str):
        self.sso = sso
        self.tenant_id = sso.tenant_id
        self.operator = {"Authorization": f"Bearer {operator_key}"}
        self.issuer = f"{sso.base_url}/api/oidc/{self.tenant_id}"
        self.clients_url = f"{sso.base_url}/api/tenants/{self.tenant_id}/oidc/clients"
        self.client: dict = {}

    def register(self, **body) -> requests.Response:
        return requests.post(self.clients_url, json=body, headers=self.operator, timeout=30)

    def discovery(self) -> dict:
        response = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def authorize(self, params: dict | list, cookies: dict | None = None) -> requests.Response:
        return requests.get(f"{self.issuer}/authorize", params=params, allow_redirects=False, timeout=30,
                            headers=cookie_header(cookies))

    def params(self, client: dict | None = None, **overrides) -> dict:
        client = client or self.client
        verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": client["redirect_uris"][0],
                  "scope": "openid email profile", "state": secrets.token_urlsafe(12),
                  "nonce": secrets.token_urlsafe(12), "code_challenge": challenge, "code_challenge_method": "S256"}
        params.update(overrides)
        params = {key: value for key, value in params.items() if value is not None}
        params["_verifier"] = verifier
        return params

    def sign_in(self, user: dict, client: dict | None = None, saml_options: dict | None = None,
                **overrides) -> Authorized:
        """authorize → the IdP's signed answer for `user` → ACS → the 303 to the client with a code."""
        params = self.params(client, **overrides)
        verifier = params.pop("_verifier")
        started = self.authorize(params)
        assert started.status_code == 302, started.text
        request, relay_state = decode_authn_request(started.headers["Location"])
        saml_response = self.sso.response_for(user, in_response_to=request.get("ID"), **(saml_options or {}))
        answer = self.sso.post_acs(saml_response, relay_state, login_cookies(started))
        assert answer.status_code == 303, answer.text
        location = answer.headers["Location"]
        got = query(location)
        assert "code" in got, location
        op_cookie = set_cookies(answer).get(OP_BROWSER)
        return Authorized(got["code"], verifier, params["redirect_uri"], params["state"], params.get("nonce"),
                          location, op_cookie.value if op_cookie else None)

    def token(self, form: dict, client: dict | None = None, *, auth: str = "basic") -> requests.Response:
        client = client or self.client
        form = dict(form)
        kwargs = {}
        if auth == "basic":
            kwargs["auth"] = (client["client_id"], client["client_secret"])
        elif auth == "post":
            form.update(client_id=client["client_id"], client_secret=client["client_secret"])
        return requests.post(f"{self.issuer}/token", data=form, timeout=30, **kwargs)

    def redeem(self, authorized: Authorized, client: dict | None = None, **overrides) -> requests.Response:
        form = {"grant_type": "authorization_code", "code": authorized.code, "redirect_uri": authorized.redirect_uri,
                "code_verifier": authorized.verifier}
        form.update(overrides)
        return self.token({k: v for k, v in form.items() if v is not None}, client)

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(f"{self.issuer}/userinfo", headers={"Authorization": f"Bearer {access_token}"},
                            timeout=30)


@pytest.fixture
def op(new_tenant, app_url, operator_key) -> OidcTenant:
    sso = SsoTenant(new_tenant("Acme OIDC", "https://acme.example.com"), TestIdp(key_label="oidc-tests"), app_url)
    assert sso.connect().status_code == 200
    tenant = OidcTenant(sso, operator_key)
    response = tenant.register(redirect_uris=[REDIRECT_URI, "http://127.0.0.1:8765/cb"],
                               post_logout_redirect_uris=["https://product.example.com/bye"])
    assert response.status_code == 201, response.text
    tenant.client = response.json()
    return tenant


@pytest.fixture
def employee(op: OidcTenant) -> dict:
    user = op.sso.provision("alice@acme.example.com", display_name="Alice Example")
    named = requests.patch(f"{op.sso.handle.scim_url}/Users/{user['id']}", timeout=30, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "name", "value": {"givenName": "Alice", "familyName": "Example"}}]},
        headers={"Authorization": f"Bearer {op.sso._scim_token}", "Content-Type": "application/scim+json"})
    assert named.status_code in (200, 204), named.text
    return user
