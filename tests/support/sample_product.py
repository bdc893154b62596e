"""A sample SaaS product that signs its users in with Gatehouse, built only on authlib's OAuth 2.0 / OpenID
Connect client: it knows Gatehouse's issuer URL and its client credentials, nothing else (every endpoint comes
from discovery). A real HTTP server in the test process, on 127.0.0.1 (loopback http is allowed for clients).
It is the demo product's relying party (tools/demo_product/relying_party.py) with a minimal home page, the tests'
`/bye` and a back-channel that can be told to be down; what it adds is only what the tests need.

Routes:
  /login                  starts the authorization request (PKCE S256, state, nonce), as any product does
  /start?iss=…            initiate_login_uri: a third-party-initiated login (OIDC Core §4) from My Apps
  /callback               RFC 9207 iss check, code → tokens (client_secret_basic), ID token verified by authlib
  /logout                 RP-initiated logout: to end_session with id_token_hint, post_logout_redirect_uri, state
  /home                   who is signed in (#who): the ID token's email, or 401 "nobody"
  /bye                    where Gatehouse returns after logout (#state: the logout's state)
  /backchannel-logout     receives logout tokens (OIDC Back-Channel Logout 1.0), verified by authlib

`PyoidcProduct` is the same product on a second library that is not authlib: pyoidc (`oic`), used exactly as its
documentation's relying-party example does — `provider_config(issuer)`, `construct_AuthorizationRequest` with
state and nonce and no PKCE (a confidential client), `do_access_token_request(authn_method="client_secret_basic")`,
which verifies the ID token against the JWKS, and `do_user_info_request`, which POSTs the access token in the form
body — and, with `send_state=False`, without `state` (openid-client's README default). Its logout sends
`client_id` and `post_logout_redirect_uri` and no `id_token_hint`.
"""
from __future__ import annotations

from html import escape
from urllib.parse import parse_qs, urlencode, urlsplit

from oic import rndstr
from oic.oic import Client
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from tools.demo_product.relying_party import Answer, RelyingParty

__all__ = ["PyoidcProduct", "SampleProduct"]


class SampleProduct(RelyingParty):
    """The demo product's relying party with a minimal home page and a back-channel that can be down."""

    cookie_name = "product"
    home_path = "/home"
    signed_out_path = "/bye"
    logout_state = "bye-state"

    def __init__(self, issuer: str):
        self.issuer = issuer
        self.refuse_backchannel = 0  # answer this many back-channel deliveries 503 (a product that is down)
        super().__init__()

    def home(self, cookie: str | None) -> Answer:
        session = self.session(cookie)
        if session is None:
            return 401, self.page("Signed out", "<p id='who'>nobody</p>"), {}
        return 200, self.page("Product home", f"<p id='who'>{escape(session['claims']['email'])}</p>"), {}

    def get(self, path: str, query: dict[str, list[str]], cookie: str | None) -> Answer | None:
        if path == "/home":
            return self.home(cookie)
        if path == "/bye":
            state = query.get("state", [""])[0]
            return 200, self.page("Signed out of the product", f"<p id='state'>{escape(state)}</p>"), {}
        return None

    def backchannel(self, body: bytes) -> int:
        if self.refuse_backchannel > 0:
            self.refuse_backchannel -= 1
            return 503
        return super().backchannel(body)


class PyoidcProduct(SampleProduct):
    """The sample product on pyoidc (see the module docstring); `userinfo` keeps what UserInfo answered."""

    def __init__(self, issuer: str, *, send_state: bool = True):
        super().__init__(issuer)
        self.send_state = send_state
        self.userinfo: list[dict] = []
        self.authorization_requests: list[dict] = []  # what pyoidc sent, as the authorization endpoint read it
        self._client = None

    def client(self):
        if self._client is None:
            client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
            client.provider_config(self.issuer)
            client.store_registration_info(RegistrationResponse(
                client_id=self.client_id, client_secret=self.client_secret, redirect_uris=[self.redirect_uri]))
            self._client = client
        return self._client

    def login_redirect(self, login_hint: str | None = None) -> str:
        client = self.client()
        state, nonce = rndstr(), rndstr()
        args = {"client_id": client.client_id, "response_type": "code", "scope": ["openid", "email", "profile"],
                "nonce": nonce, "redirect_uri": self.redirect_uri}
        if self.send_state:
            args["state"] = state
        if login_hint:
            args["login_hint"] = login_hint[:256]
        self.pending[state if self.send_state else ""] = {"nonce": nonce}
        url = client.construct_AuthorizationRequest(request_args=args).request(client.authorization_endpoint)
        self.authorization_requests.append({k: v[0] for k, v in parse_qs(urlsplit(url).query).items()})
        return url

    def callback(self, query: str) -> tuple[int, bytes, dict]:
        refused = self.refused({k: v[0] for k, v in parse_qs(query).items()})
        if refused:
            return refused
        client = self.client()
        answer = client.parse_response(AuthorizationResponse, info=query, sformat="urlencoded")
        state = answer.get("state", "")
        pending = self.pending.pop(state, None)
        if pending is None or (not self.send_state and "state" in answer):
            return 400, self.page("Unknown state", ""), {}
        tokens = client.do_access_token_request(
            state=state, request_args={"code": answer["code"], "redirect_uri": self.redirect_uri},
            authn_method="client_secret_basic")
        id_token = tokens["id_token"]  # verified by pyoidc: signature (JWKS), iss, aud, exp
        if id_token["nonce"] != pending["nonce"]:
            return 400, self.page("Nonce mismatch", ""), {}
        info = client.do_user_info_request(state=state) if state else \
            client.do_user_info_request(access_token=tokens["access_token"])
        self.userinfo.append(info.to_dict())
        return self.signed_in(id_token.to_dict(), id_token.jwt)

    def logout_redirect(self, cookie: str | None) -> str:
        self.sessions.pop(cookie or "", None)
        return self.metadata["end_session_endpoint"] + "?" + urlencode({
            "client_id": self.client_id, "post_logout_redirect_uri": f"{self.url}{self.signed_out_path}",
            "state": self.logout_state})
