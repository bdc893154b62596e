"""A SaaS product's side of one Gatehouse tenant, without its pages: an OpenID Connect relying party on authlib
(every endpoint from discovery; PKCE S256, state, nonce, RFC 9207 `iss`; ID and logout tokens verified against
the tenant's JWKS), the OIDC Back-Channel Logout 1.0 receiver and RP-initiated logout, served by a real HTTP server
on 127.0.0.1 in its own thread. The demo product (app.py) puts pages and a webhook receiver around it; the tests'
sample product (tests/support/sample_product.py) is a thin user of it too.

A product subclasses `RelyingParty`, gives it `issuer` and `page()`, and answers its own routes in `get()` and
`post()`; `/login[?login_hint=]`, `/start?iss=…`, `/callback`, `/logout` and `/backchannel-logout` are served here.
"""
from __future__ import annotations

import secrets
import threading
import warnings
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session

with warnings.catch_warnings():
    # authlib's ID-token claims classes still live on authlib.jose, which warns that joserfc is its future.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_BODY_BYTES = 1 << 20
MAX_KEPT = 500  # verified logout tokens kept, newest last
Answer = tuple[int, bytes, dict]  # status, body, headers


class RelyingParty:
    """One OIDC client of one tenant, with its HTTP server; a context manager. `issuer` is the subclass's (an
    attribute or a property); `client_id` and `client_secret` are set once the product is registered."""

    issuer: str
    cookie_name = "session"
    cookie_attributes = "Path=/; HttpOnly"
    home_path = "/"  # where a completed sign-in lands
    signed_out_path = "/signed-out"  # the post_logout_redirect_uri
    logout_state: str | None = None  # the logout's state; None: a fresh random one each time

    def __init__(self, *, port: int = 0):
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.redirect_uri = f"{self.url}/callback"
        self.client_id = self.client_secret = ""
        self.pending: dict[str, dict] = {}  # state → verifier, nonce
        self.sessions: dict[str, dict] = {}  # our cookie → claims, id_token
        self.ended_sids: set[str] = set()
        self.logout_tokens: list[dict] = []  # verified back-channel logout tokens, in arrival order
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._http = requests.Session()
        self._http.trust_env = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- what a product adds

    def page(self, title: str, body: str) -> bytes:
        """An HTML page in the product's look."""
        return (f"<!doctype html><html><head><title>{escape(title)}</title></head>"
                f"<body><h1>{escape(title)}</h1>{body}</body></html>").encode()

    def get(self, path: str, query: dict[str, list[str]], cookie: str | None) -> Answer | None:
        """The product's own GET routes; None: not one of them (404)."""
        return None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer | None:
        """The product's own POST routes (headers with lower-case names); None: not one of them (404)."""
        return None

    # ---- OpenID Connect

    @property
    def metadata(self) -> dict:
        if self._metadata is None:
            self._metadata = self._http.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()
        return self._metadata

    def _oauth(self) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, scope="openid email profile",
                             redirect_uri=self.redirect_uri, code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_basic")

    def _verify(self, token: str, claims_options: dict, claims_cls=None, claims_params=None):
        """A JWT from the tenant, verified against its JWKS (RS256 only) and validated with `claims_options`."""
        jwks = JsonWebKey.import_key_set(self._http.get(self.metadata["jwks_uri"], timeout=10).json())
        claims = jwt.decode(token, jwks, claims_cls=claims_cls, claims_options=claims_options,
                            claims_params=claims_params)
        claims.validate(leeway=5)
        if claims.header.get("alg") != "RS256":
            raise ValueError("unexpected alg")
        return claims

    def login_redirect(self, login_hint: str | None = None) -> str:
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        extra = {"login_hint": login_hint[:256]} if login_hint else {}
        url, state = self._oauth().create_authorization_url(self.metadata["authorization_endpoint"],
                                                            code_verifier=verifier, nonce=nonce, **extra)
        with self._lock:
            self.pending[state] = {"verifier": verifier, "nonce": nonce}
        return url

    def refused(self, params: dict[str, str]) -> Answer | None:
        """The authorization response's own refusals: not from our issuer (RFC 9207), or an error."""
        if params.get("iss") != self.issuer:
            return 400, self.page("Wrong issuer", "<p>The answer did not come from the tenant's issuer.</p>"), {}
        if "error" in params:
            return 403, self.page("Sign-in refused", f"<p id='error'>{escape(params['error'])}: "
                                                     f"{escape(params.get('error_description', ''))}</p>"), {}
        return None

    def callback(self, query: str) -> Answer:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        refused = self.refused(params)
        if refused:
            return refused
        with self._lock:
            pending = self.pending.pop(params.get("state", ""), None)
        if pending is None:
            return 400, self.page("Unknown state", "<p>Start again from <a href='/'>the home page</a>.</p>"), {}
        token = self._oauth().fetch_token(self.metadata["token_endpoint"], code_verifier=pending["verifier"],
                                          authorization_response=f"{self.redirect_uri}?{query}")
        claims = self._verify(token["id_token"], {"iss": {"essential": True, "value": self.issuer},
                                                  "aud": {"essential": True, "value": self.client_id}},
                              CodeIDToken, {"nonce": pending["nonce"], "access_token": token["access_token"]})
        return self.signed_in(dict(claims), token["id_token"])

    def signed_in(self, claims: dict, id_token: str) -> Answer:
        """A session for the verified ID token: its cookie, and to the product's home."""
        cookie = secrets.token_urlsafe(24)
        with self._lock:
            self.sessions[cookie] = {"claims": claims, "id_token": id_token}
        return 303, b"", {"Location": f"{self.url}{self.home_path}",
                          "Set-Cookie": f"{self.cookie_name}={cookie}; {self.cookie_attributes}"}

    def session(self, cookie: str | None) -> dict | None:
        """The session of this cookie, unless there is none or a back-channel logout ended it."""
        session = self.sessions.get(cookie or "")
        if session is None or session["claims"].get("sid") in self.ended_sids:
            return None
        return session

    def logout_redirect(self, cookie: str | None) -> str:
        """RP-initiated logout: to end_session with id_token_hint, post_logout_redirect_uri and state."""
        with self._lock:
            session = self.sessions.pop(cookie or "", None) or {}
        return self.metadata["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": session.get("id_token", ""),
            "post_logout_redirect_uri": f"{self.url}{self.signed_out_path}",
            "state": self.logout_state or secrets.token_urlsafe(8), "client_id": self.client_id})

    def backchannel(self, body: bytes) -> int:
        """A logout token (OIDC Back-Channel Logout 1.0): 200 and its sid's sessions end, or 400."""
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
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
        with self._lock:
            self.logout_tokens.append(dict(claims))
            del self.logout_tokens[:-MAX_KEPT]
            if claims.get("sid"):
                self.ended_sids.add(claims["sid"])
        return 200

    def answer_get(self, path: str, query: str, cookie: str | None) -> Answer:
        params = parse_qs(query)
        if path == "/login":
            return 302, b"", {"Location": self.login_redirect(params.get("login_hint", [None])[0])}
        if path == "/start":  # initiate_login_uri: a sign-in started from Entra's My Apps (OIDC Core §4)
            if params.get("iss", [""])[0] != self.issuer:
                return 400, self.page("Unknown issuer", ""), {}
            return 302, b"", {"Location": self.login_redirect()}
        if path == "/callback":
            return self.callback(query)
        if path == "/logout":
            return 302, b"", {"Location": self.logout_redirect(cookie)}
        return self.get(path, params, cookie) or (404, self.page("Not found", ""), {})

    def answer_post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        if path == "/backchannel-logout":
            return self.backchannel(body), b"", {}
        return self.post(path, body, headers) or (404, self.page("Not found", ""), {})


def _handler_for(product: RelyingParty):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _cookie(self) -> str | None:
            for part in (self.headers.get("Cookie") or "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == product.cookie_name:
                    return value
            return None

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "text/html; charset=utf-8")
            headers.setdefault("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            try:
                return self._send(*product.answer_get(parts.path, parts.query, self._cookie()))
            except requests.RequestException as error:
                return self._send(502, product.page("Gatehouse did not answer", f"<p>{escape(type(error).__name__)}: "
                                                    "is <code>make run</code> still running?</p>"))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._send(413)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._send(*product.answer_post(urlsplit(self.path).path, body, headers))

    return Handler
