"""A sample SaaS product that signs its users in with Gatehouse, built only on authlib's OAuth 2.0 / OpenID
Connect client: it knows Gatehouse's issuer URL and its client credentials, nothing else (every endpoint comes
from discovery). A real HTTP server in the test process, on 127.0.0.1 (loopback http is allowed for clients).

Routes:
  /login                  starts the authorization request (PKCE S256, state, nonce), as any product does
  /start?iss=…            initiate_login_uri: a third-party-initiated login (OIDC Core §4) from My Apps
  /callback               RFC 9207 iss check, code → tokens (client_secret_basic), ID token verified by authlib
  /logout                 RP-initiated logout: to end_session with id_token_hint, post_logout_redirect_uri, state
  /bye                    where Gatehouse returns after logout
  /backchannel-logout     receives logout tokens (OIDC Back-Channel Logout 1.0), verified by authlib

`PyoidcProduct` is the same product on a second library that is not authlib: pyoidc (`oic`), used exactly as its
documentation's relying-party example does — `provider_config(issuer)`, `construct_AuthorizationRequest` with
state and nonce and no PKCE (a confidential client), `do_access_token_request(authn_method="client_secret_basic")`,
which verifies the ID token against the JWKS, and `do_user_info_request`, which POSTs the access token in the form
body — and, with `send_state=False`, without `state` (openid-client's README default). Its logout sends
`client_id` and `post_logout_redirect_uri` and no `id_token_hint`.
"""
from __future__ import annotations

import secrets
import threading
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import warnings

import requests
from authlib.integrations.requests_client import OAuth2Session
from oic import rndstr
from oic.oic import Client
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

with warnings.catch_warnings():
    # authlib's ID-token claims classes (CodeIDToken) still live on authlib.jose, which warns that joserfc
    # is its future; it is what authlib's OIDC client documents today.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>").encode()


class SampleProduct:
    def __init__(self, issuer: str):
        self.issuer = issuer
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.redirect_uri = f"{self.url}/callback"
        self.client_id = self.client_secret = ""
        self.pending: dict[str, dict] = {}  # state → verifier, nonce
        self.sessions: dict[str, dict] = {}  # our cookie → claims, id_token
        self.logout_tokens: list[dict] = []  # verified back-channel logout tokens
        self.ended_sids: set[str] = set()
        self.refuse_backchannel = 0  # answer this many back-channel deliveries 503 (a product that is down)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "SampleProduct":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def metadata(self) -> dict:
        return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()

    def _oauth(self) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, scope="openid email profile",
                             redirect_uri=self.redirect_uri, code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_basic")

    def _verify(self, token: str, claims_options: dict, claims_cls=None, claims_params=None):
        jwks = JsonWebKey.import_key_set(requests.get(self.metadata["jwks_uri"], timeout=10).json())
        claims = jwt.decode(token, jwks, claims_cls=claims_cls, claims_options=claims_options,
                            claims_params=claims_params)
        claims.validate(leeway=5)
        if claims.header.get("alg") != "RS256":
            raise ValueError("unexpected alg")
        return claims

    # -- the routes

    def login_redirect(self) -> str:
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, state = self._oauth().create_authorization_url(self.metadata["authorization_endpoint"],
                                                            code_verifier=verifier, nonce=nonce)
        self.pending[state] = {"verifier": verifier, "nonce": nonce}
        return url

    def callback(self, query: str) -> tuple[int, bytes, dict]:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if params.get("iss") != self.issuer:  # RFC 9207: the answer comes from the issuer we asked
            return 400, page("Wrong issuer", ""), {}
        if "error" in params:
            return 403, page("Sign-in refused", f"<p id='error'>{escape(params['error'])}</p>"), {}
        pending = self.pending.pop(params.get("state", ""), None)
        if pending is None:
            return 400, page("Unknown state", ""), {}
        oauth = self._oauth()
        token = oauth.fetch_token(self.metadata["token_endpoint"], code_verifier=pending["verifier"],
                                  authorization_response=f"{self.redirect_uri}?{query}")
        claims = self._verify(token["id_token"], {"iss": {"essential": True, "value": self.issuer},
                                                  "aud": {"essential": True, "value": self.client_id}},
                              CodeIDToken, {"nonce": pending["nonce"], "access_token": token["access_token"]})
        cookie = secrets.token_urlsafe(16)
        self.sessions[cookie] = {"claims": dict(claims), "id_token": token["id_token"]}
        return 303, b"", {"Location": f"{self.url}/home", "Set-Cookie": f"product={cookie}; Path=/; HttpOnly"}

    def home(self, cookie: str | None) -> tuple[int, bytes, dict]:
        session = self.sessions.get(cookie or "")
        if session is None or session["claims"].get("sid") in self.ended_sids:
            return 401, page("Signed out", "<p id='who'>nobody</p>"), {}
        return 200, page("Product home", f"<p id='who'>{escape(session['claims']['email'])}</p>"), {}

    def logout_redirect(self, cookie: str | None) -> str:
        session = self.sessions.pop(cookie or "", None) or {}
        return self.metadata["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": session.get("id_token", ""), "post_logout_redirect_uri": f"{self.url}/bye",
            "state": "bye-state", "client_id": self.client_id})

    def backchannel(self, body: bytes) -> int:
        if self.refuse_backchannel > 0:
            self.refuse_backchannel -= 1
            return 503
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        try:
            claims = self._verify(form.get("logout_token", ""), {
                "iss": {"essential": True, "value": self.issuer}, "aud": {"essential": True, "value": self.client_id},
                "events": {"essential": True}})
        except Exception:  # noqa: BLE001 - a bad token is a 400, as the spec asks
            return 400
        if BACKCHANNEL_EVENT not in claims["events"] or "nonce" in claims:
            return 400
        if not (claims.get("sid") or claims.get("sub")):
            return 400
        self.logout_tokens.append(dict(claims))
        if claims.get("sid"):
            self.ended_sids.add(claims["sid"])
        return 200

    def _handler(self):
        product = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _cookie(self) -> str | None:
                for part in (self.headers.get("Cookie") or "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == "product":
                        return value
                return None

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                headers = dict(headers or {})
                headers.setdefault("Content-Type", "text/html; charset=utf-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/login":
                    return self._send(302, headers={"Location": product.login_redirect()})
                if parts.path == "/start":
                    iss = parse_qs(parts.query).get("iss", [""])[0]
                    if iss != product.issuer:
                        return self._send(400, page("Unknown issuer", ""))
                    return self._send(302, headers={"Location": product.login_redirect()})
                if parts.path == "/callback":
                    return self._send(*product.callback(parts.query))
                if parts.path == "/home":
                    return self._send(*product.home(self._cookie()))
                if parts.path == "/logout":
                    return self._send(302, headers={"Location": product.logout_redirect(self._cookie())})
                if parts.path == "/bye":
                    state = parse_qs(parts.query).get("state", [""])[0]
                    return self._send(200, page("Signed out of the product", f"<p id='state'>{escape(state)}</p>"))
                self._send(404, page("Not found", ""))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if urlsplit(self.path).path == "/backchannel-logout":
                    status = product.backchannel(body)
                    return self._send(status, b"", {"Cache-Control": "no-store"})
                self._send(404, page("Not found", ""))

        return Handler


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

    def login_redirect(self) -> str:
        client = self.client()
        state, nonce = rndstr(), rndstr()
        args = {"client_id": client.client_id, "response_type": "code", "scope": ["openid", "email", "profile"],
                "nonce": nonce, "redirect_uri": self.redirect_uri}
        if self.send_state:
            args["state"] = state
        self.pending[state if self.send_state else ""] = {"nonce": nonce}
        url = client.construct_AuthorizationRequest(request_args=args).request(client.authorization_endpoint)
        self.authorization_requests.append({k: v[0] for k, v in parse_qs(urlsplit(url).query).items()})
        return url

    def callback(self, query: str) -> tuple[int, bytes, dict]:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if params.get("iss") != self.issuer:
            return 400, page("Wrong issuer", ""), {}
        if "error" in params:
            return 403, page("Sign-in refused", f"<p id='error'>{escape(params['error'])}</p>"), {}
        client = self.client()
        answer = client.parse_response(AuthorizationResponse, info=query, sformat="urlencoded")
        state = answer.get("state", "")
        pending = self.pending.pop(state, None)
        if pending is None or (not self.send_state and "state" in answer):
            return 400, page("Unknown state", ""), {}
        tokens = client.do_access_token_request(
            state=state, request_args={"code": answer["code"], "redirect_uri": self.redirect_uri},
            authn_method="client_secret_basic")
        id_token = tokens["id_token"]  # verified by pyoidc: signature (JWKS), iss, aud, exp
        if id_token["nonce"] != pending["nonce"]:
            return 400, page("Nonce mismatch", ""), {}
        info = client.do_user_info_request(state=state) if state else \
            client.do_user_info_request(access_token=tokens["access_token"])
        self.userinfo.append(info.to_dict())
        cookie = secrets.token_urlsafe(16)
        self.sessions[cookie] = {"claims": id_token.to_dict(), "id_token": id_token.jwt}
        return 303, b"", {"Location": f"{self.url}/home", "Set-Cookie": f"product={cookie}; Path=/; HttpOnly"}

    def logout_redirect(self, cookie: str | None) -> str:
        self.sessions.pop(cookie or "", None)
        return self.metadata["end_session_endpoint"] + "?" + urlencode({
            "client_id": self.client_id, "post_logout_redirect_uri": f"{self.url}/bye", "state": "bye-state"})
