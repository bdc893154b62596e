"""The demo product's web app (see the package docstring): a real HTTP server in its own thread."""
from __future__ import annotations

import json
import secrets
import threading
import time
import warnings
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from standardwebhooks import Webhook, WebhookVerificationError

with warnings.catch_warnings():
    # authlib's ID-token claims classes still live on authlib.jose, which warns that joserfc is its future.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_BODY_BYTES = 1 << 20
MAX_EVENTS = 500
_STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:56rem;margin:1.5rem auto;padding:0 1rem;color:#1b1f24}"
          "header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #d0d7de}"
          "h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.6rem}table{border-collapse:collapse;width:100%}"
          "td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}"
          "code{font-size:.85rem}.button{display:inline-block;padding:.4rem .9rem;background:#1f6feb;color:#fff;"
          "border-radius:6px;text-decoration:none}.hint{color:#57606a;font-size:.9rem}.ok{color:#1a7f37}")


def _page(title: str, body: str) -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{_STYLE}</style></head><body><header><h1>Demo product</h1>'
            f'<span class="hint">a SaaS product signing in with Gatehouse</span></header>{body}</body></html>').encode()


class DemoProduct:
    """The product for one tenant of the Gatehouse at `gatehouse` (its base URL); a context manager."""

    def __init__(self, gatehouse: str, tenant_id: str, *, port: int = 0):
        self.gatehouse = gatehouse.rstrip("/")
        self.tenant_id = tenant_id  # may be set after the server starts (the tenant's app_url is this product)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.redirect_uri = f"{self.url}/callback"
        self.client_id = self.client_secret = ""
        self.webhook_secret = ""
        self.pending: dict[str, dict] = {}  # state → verifier, nonce
        self.sessions: dict[str, dict] = {}  # our cookie → claims, id_token
        self.ended_sids: set[str] = set()
        self.events: list[dict] = []  # verified webhook deliveries, in arrival order
        self.rejected_deliveries = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._http = requests.Session()
        self._http.trust_env = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        return f"{self.gatehouse}/api/oidc/{self.tenant_id}"

    def _handler(self):
        return _handler_for(self)

    def __enter__(self) -> "DemoProduct":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- registration (the product's operator, with the operator key)

    def register(self, operator_key: str) -> None:
        """Register as an OIDC client of the tenant and point the tenant's webhook here."""
        operator = {"Authorization": f"Bearer {operator_key}"}
        client = self._http.post(f"{self.gatehouse}/api/tenants/{self.tenant_id}/oidc/clients", headers=operator,
                                 timeout=30, json={
                                     "client_name": "Demo product",
                                     "redirect_uris": [self.redirect_uri],
                                     "post_logout_redirect_uris": [f"{self.url}/signed-out"],
                                     "initiate_login_uri": f"{self.url}/start",
                                     "backchannel_logout_uri": f"{self.url}/backchannel-logout"})
        if client.status_code != 201:
            raise RuntimeError(f"registering the OIDC client failed: {client.status_code} {client.text[:300]}")
        self.client_id, self.client_secret = client.json()["client_id"], client.json()["client_secret"]
        hook = self._http.put(f"{self.gatehouse}/api/tenants/{self.tenant_id}/webhook", headers=operator,
                              timeout=30, json={"url": f"{self.url}/webhooks"})
        if hook.status_code != 200:
            raise RuntimeError(f"setting the webhook failed: {hook.status_code} {hook.text[:300]}")
        self.webhook_secret = hook.json()["secret"]

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

    def callback(self, query: str) -> tuple[int, bytes, dict]:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if params.get("iss") != self.issuer:  # RFC 9207: the answer comes from the issuer we asked
            return 400, _page("Wrong issuer", "<p>The answer did not come from the tenant's issuer.</p>"), {}
        if "error" in params:
            return 403, _page("Sign-in refused", f"<p id='error'>{escape(params['error'])}: "
                                                 f"{escape(params.get('error_description', ''))}</p>"), {}
        with self._lock:
            pending = self.pending.pop(params.get("state", ""), None)
        if pending is None:
            return 400, _page("Unknown state", "<p>Start again from <a href='/'>the home page</a>.</p>"), {}
        token = self._oauth().fetch_token(self.metadata["token_endpoint"], code_verifier=pending["verifier"],
                                          authorization_response=f"{self.redirect_uri}?{query}")
        claims = self._verify(token["id_token"], {"iss": {"essential": True, "value": self.issuer},
                                                  "aud": {"essential": True, "value": self.client_id}},
                              CodeIDToken, {"nonce": pending["nonce"], "access_token": token["access_token"]})
        cookie = secrets.token_urlsafe(24)
        with self._lock:
            self.sessions[cookie] = {"claims": dict(claims), "id_token": token["id_token"]}
        return 303, b"", {"Location": f"{self.url}/", "Set-Cookie": f"demo={cookie}; Path=/; HttpOnly; SameSite=Lax"}

    def session(self, cookie: str | None) -> dict | None:
        session = self.sessions.get(cookie or "")
        if session is None or session["claims"].get("sid") in self.ended_sids:
            return None
        return session

    def logout_redirect(self, cookie: str | None) -> str:
        with self._lock:
            session = self.sessions.pop(cookie or "", None) or {}
        return self.metadata["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": session.get("id_token", ""), "post_logout_redirect_uri": f"{self.url}/signed-out",
            "state": secrets.token_urlsafe(8), "client_id": self.client_id})

    def backchannel(self, body: bytes) -> int:
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        try:
            claims = self._verify(form.get("logout_token", ""), {
                "iss": {"essential": True, "value": self.issuer}, "aud": {"essential": True, "value": self.client_id},
                "events": {"essential": True}})
        except Exception:  # noqa: BLE001 - a bad token is a 400, as the spec asks
            return 400
        if BACKCHANNEL_EVENT not in claims["events"] or "nonce" in claims or not (claims.get("sid") or claims.get("sub")):
            return 400
        if claims.get("sid"):
            with self._lock:
                self.ended_sids.add(claims["sid"])
        return 200

    # ---- webhooks

    def receive_webhook(self, body: bytes, headers: dict[str, str]) -> int:
        """Verify a Standard Webhooks delivery with the secret Gatehouse gave; keep each event once."""
        try:
            event = Webhook(self.webhook_secret).verify(body, headers)
        except WebhookVerificationError:
            self.rejected_deliveries += 1
            return 401
        with self._lock:
            if headers.get("webhook-id") not in self._seen:
                self._seen.add(headers.get("webhook-id", ""))
                self.events.append({**event, "received_at": time.strftime("%H:%M:%S")})
                del self.events[:-MAX_EVENTS]
        return 204

    # ---- pages

    def home(self, cookie: str | None) -> bytes:
        session = self.session(cookie)
        if session is None:
            who = (f"<p id='who'>Nobody is signed in.</p><p><a class='button' id='sign-in' href='/login'>Sign in "
                   f"with your company account</a></p><p class='hint'>Signs in through Gatehouse tenant "
                   f"<code>{escape(self.tenant_id)}</code>: its issuer is <code>{escape(self.issuer)}</code>.</p>")
        else:
            claims = session["claims"]
            rows = "".join(f"<tr><th>{escape(name)}</th><td><code>{escape(json.dumps(value))}</code></td></tr>"
                           for name, value in sorted(claims.items()))
            who = (f"<p>Signed in as <strong id='who'>{escape(str(claims.get('email') or claims.get('sub')))}"
                   f"</strong> <a class='button' id='sign-out' href='/logout'>Sign out</a></p>"
                   f"<h2>The ID token's claims</h2><table id='claims'>{rows}</table>")
        with self._lock:
            events = list(reversed(self.events))
        rows = "".join(
            f"<tr><td>{escape(str(e.get('sequence')))}</td><td class='type'>{escape(str(e.get('type')))}</td>"
            f"<td>{escape(str(e.get('occurred_at')))}</td><td><code>{escape(_summary(e))}</code></td></tr>"
            for e in events[:100])
        table = (f"<table id='events'><tr><th>#</th><th>type</th><th>occurred</th><th>what</th></tr>{rows}</table>"
                 if rows else "<p id='events' class='hint'>No webhook delivery yet.</p>")
        return _page("Demo product", f"{who}<h2>Events from Gatehouse (webhooks, signatures verified)</h2>"
                                     f"<p class='hint'>{len(events)} received.</p>{table}")


def _summary(event: dict) -> str:
    data = event.get("data") or {}
    if not isinstance(data, dict):
        return ""
    for key in ("userName", "user_name", "displayName", "display_name", "email", "name"):
        if isinstance(data.get(key), str):
            return data[key]
    employee = data.get("employee") if isinstance(data.get("employee"), dict) else None
    if employee:
        return str(employee.get("userName") or employee.get("user_name") or employee.get("id") or "")
    return ", ".join(sorted(data))[:80]


def _cookie(headers) -> str | None:
    for part in (headers.get("Cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "demo":
            return value
    return None


def _handler_for(product: DemoProduct):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

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
            query = parse_qs(parts.query)
            try:
                if parts.path == "/":
                    return self._send(200, product.home(_cookie(self.headers)))
                if parts.path == "/login":
                    return self._send(302, headers={"Location": product.login_redirect(
                        query.get("login_hint", [None])[0])})
                if parts.path == "/start":
                    if query.get("iss", [""])[0] != product.issuer:
                        return self._send(400, _page("Unknown issuer", ""))
                    return self._send(302, headers={"Location": product.login_redirect()})
                if parts.path == "/callback":
                    return self._send(*product.callback(parts.query))
                if parts.path == "/logout":
                    return self._send(302, headers={"Location": product.logout_redirect(_cookie(self.headers))})
                if parts.path == "/signed-out":
                    return self._send(200, _page("Signed out", "<p id='signed-out'>You are signed out of the demo "
                                                               "product and of Gatehouse.</p><p><a href='/'>Home</a></p>"))
                if parts.path == "/events.json":
                    with product._lock:  # noqa: SLF001 - the product's own handler
                        events = list(product.events)
                    return self._send(200, json.dumps({"events": events}).encode(),
                                      {"Content-Type": "application/json"})
            except requests.RequestException as error:
                return self._send(502, _page("Gatehouse did not answer", f"<p>{escape(type(error).__name__)}: is "
                                                                         "<code>make run</code> still running?</p>"))
            self._send(404, _page("Not found", ""))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._send(413)
            body = self.rfile.read(length)
            path = urlsplit(self.path).path
            if path == "/backchannel-logout":
                return self._send(product.backchannel(body), b"", {"Cache-Control": "no-store"})
            if path == "/webhooks":
                headers = {name.lower(): value for name, value in self.headers.items()}
                return self._send(product.receive_webhook(body, headers))
            self._send(404, _page("Not found", ""))

    return Handler

