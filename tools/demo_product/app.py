"""The demo product's web app (see the package docstring): the relying party of relying_party.py with the demo's
pages, registration and a Standard Webhooks receiver; a real HTTP server in its own thread."""
from __future__ import annotations

import json
import time
from html import escape

from standardwebhooks import Webhook, WebhookVerificationError

from tools.demo_product.relying_party import Answer, RelyingParty

MAX_EVENTS = 500
_STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:56rem;margin:1.5rem auto;padding:0 1rem;color:#1b1f24}"
          "header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #d0d7de}"
          "h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.6rem}table{border-collapse:collapse;width:100%}"
          "td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}"
          "code{font-size:.85rem}.button{display:inline-block;padding:.4rem .9rem;background:#1f6feb;color:#fff;"
          "border-radius:6px;text-decoration:none}.hint{color:#57606a;font-size:.9rem}.ok{color:#1a7f37}")


class DemoProduct(RelyingParty):
    """The product for one tenant of the Gatehouse at `gatehouse` (its base URL); a context manager."""

    cookie_name = "demo"
    cookie_attributes = "Path=/; HttpOnly; SameSite=Lax"

    def __init__(self, gatehouse: str, tenant_id: str, *, port: int = 0):
        super().__init__(port=port)
        self.gatehouse = gatehouse.rstrip("/")
        self.tenant_id = tenant_id  # may be set after the server starts (the tenant's app_url is this product)
        self.webhook_secret = ""
        self.events: list[dict] = []  # verified webhook deliveries, in arrival order
        self.rejected_deliveries = 0
        self._seen: set[str] = set()

    @property
    def issuer(self) -> str:
        return f"{self.gatehouse}/api/oidc/{self.tenant_id}"

    def page(self, title: str, body: str) -> bytes:
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
                f'<style>{_STYLE}</style></head><body><header><h1>Demo product</h1>'
                f'<span class="hint">a SaaS product signing in with Gatehouse</span></header>{body}</body></html>'
                ).encode()

    def get(self, path: str, query: dict[str, list[str]], cookie: str | None) -> Answer | None:
        if path == "/":
            return 200, self.home(cookie), {}
        if path == self.signed_out_path:
            return 200, self.page("Signed out", "<p id='signed-out'>You are signed out of the demo product and of "
                                                "Gatehouse.</p><p><a href='/'>Home</a></p>"), {}
        if path == "/events.json":
            with self._lock:
                events = list(self.events)
            return 200, json.dumps({"events": events}).encode(), {"Content-Type": "application/json"}
        return None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer | None:
        if path == "/webhooks":
            return self.receive_webhook(body, headers), b"", {}
        return None

    # ---- registration (the product's operator, with the operator key)

    def register(self, operator_key: str) -> None:
        """Register as an OIDC client of the tenant and point the tenant's webhook here."""
        operator = {"Authorization": f"Bearer {operator_key}"}
        client = self._http.post(f"{self.gatehouse}/api/tenants/{self.tenant_id}/oidc/clients", headers=operator,
                                 timeout=30, json={
                                     "client_name": "Demo product",
                                     "redirect_uris": [self.redirect_uri],
                                     "post_logout_redirect_uris": [f"{self.url}{self.signed_out_path}"],
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
        return self.page("Demo product", f"{who}<h2>Events from Gatehouse (webhooks, signatures verified)</h2>"
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
