"""Signed browser state: the employee's session after a sign-in, and the login binding that ties an
SP-initiated AuthnRequest to the browser that started it. Both are cookies whose value is signed with
`SESSION_SIGNING_KEY`; nothing here touches storage.

Token format: `v1.<base64url JSON>.<base64url HMAC-SHA256>`. Each purpose signs with its own key derived from
`SESSION_SIGNING_KEY` (HMAC of the purpose name), so a login binding can never be presented as a session and
vice versa. Every token carries its expiry; the cookie's Max-Age only tidies the browser.

Cookies (the why of each attribute):
- session `gh_session` (`__Secure-gh_session` over HTTPS): HttpOnly (no script reads it), Secure over HTTPS,
  SameSite=Lax (not sent on cross-site subrequests or POSTs: no CSRF on our endpoints), Path scoped to
  `/api/sso/{tenant}/` so each tenant's session is its own cookie, and the tenant is also signed inside it;
  8 hours, like a working day: a dismissal is re-checked on every use anyway, and ends every session issued
  before it for good (a rehired employee signs in afresh; see sign_in.signed_in_employee).
- login binding `__Host-gh_login`: the ACS POST arrives cross-site from login.microsoftonline.com, and browsers
  send only SameSite=None cookies with such a POST; SameSite=None requires Secure, and `__Host-` forbids a
  Domain attribute and requires Path=/, so a sibling subdomain cannot toss in its own binding. Browsers treat
  http://127.0.0.1 and http://localhost as secure contexts, so this works in local runs too (verified with
  Chromium); a plain-http deployment on another host name cannot do SP-initiated sign-in (use HTTPS).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from shared_code.platform.settings import get_settings

SESSION_SECONDS = 8 * 3600
LOGIN_BINDING_SECONDS = 10 * 60  # as long as a pending login lives (pending_logins.LIFETIME_SECONDS)
MAX_TOKEN_CHARS = 2048  # a cookie value we would ever issue is far shorter

LOGIN_BINDING_COOKIE = "__Host-gh_login"
_SESSION, _LOGIN_BINDING = "session", "login-binding"


@dataclass(frozen=True)
class Session:
    """A signed-in employee of one tenant, as the session cookie says."""

    tenant_id: str
    employee_id: str
    issued_at: int
    expires_at: int
    sid: str = ""
    recorded: bool = False  # a row in storage says whether it has ended (storage/oidc.save_browser_session)

    @property
    def stored_sid(self) -> str:
        """The sid of its row among the tenant's sessions (prefixed: never one of the product's sids)."""
        return f"gh.{self.sid}"


# ---- tokens -----------------------------------------------------------------------------------------------

def _key(purpose: str) -> bytes:
    secret = get_settings().session_signing_key
    if not secret:
        # A server without the key must not hand out sessions anyone could forge with the empty key.
        raise RuntimeError("SESSION_SIGNING_KEY is not set; sessions cannot be signed")
    return hmac.new(secret.encode("utf-8"), f"gatehouse/{purpose}/v1".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(purpose: str, claims: dict, lifetime_seconds: int, now: float | None = None) -> str:
    """A token carrying `claims` for `purpose`, valid for `lifetime_seconds`."""
    issued = int(now if now is not None else time.time())
    body = _b64(json.dumps({**claims, "iat": issued, "exp": issued + lifetime_seconds},
                           separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(_key(purpose), f"v1.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"v1.{body}.{_b64(mac)}"


def verify(purpose: str, token: str | None, now: float | None = None) -> dict | None:
    """The claims of a genuine, unexpired token for `purpose`; None for anything else (never raises)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    version, _, rest = token.partition(".")
    body, _, mac = rest.partition(".")
    if version != "v1" or not body or not mac:
        return None
    expected = hmac.new(_key(purpose), f"v1.{body}".encode("ascii", "replace"), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        claims = json.loads(_unb64(body))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        return None
    if claims["exp"] <= int(now if now is not None else time.time()):
        return None
    return claims


# ---- the employee's session ----------------------------------------------------------------------------------

def session_cookie_name() -> str:
    return "__Secure-gh_session" if get_settings().is_https else "gh_session"


def session_cookie_path(tenant_id: str) -> str:
    return f"/api/sso/{tenant_id}/"


def issue_session(tenant_id: str, employee_id: str, now: float | None = None) -> tuple[str, Session]:
    """A session token; `r` says the caller records it in storage (so Entra's single logout can end it)."""
    token = sign(_SESSION, {"t": tenant_id, "u": employee_id, "sid": secrets.token_urlsafe(12), "r": 1},
                 SESSION_SECONDS, now)
    claims = verify(_SESSION, token, now)
    assert claims is not None
    return token, Session(tenant_id, employee_id, claims["iat"], claims["exp"], claims["sid"], True)


def read_session(token: str | None, tenant_id: str, now: float | None = None) -> Session | None:
    """The session in `token` if it is genuine, unexpired and of this tenant."""
    claims = verify(_SESSION, token, now)
    if claims is None or claims.get("t") != tenant_id or not isinstance(claims.get("u"), str):
        return None
    sid = claims.get("sid") if isinstance(claims.get("sid"), str) else ""
    return Session(claims["t"], claims["u"], claims["iat"], claims["exp"], sid, claims.get("r") == 1 and bool(sid))


def session_set_cookie(tenant_id: str, token: str) -> str:
    secure = "; Secure" if get_settings().is_https else ""
    return (f"{session_cookie_name()}={token}; Path={session_cookie_path(tenant_id)}; Max-Age={SESSION_SECONDS}; "
            f"HttpOnly{secure}; SameSite=Lax")


# ---- the browser's OpenID Connect sign-in ---------------------------------------------------------------------
# `gh_op` (`__Secure-gh_op` over HTTPS): set with the code at the end of the product's sign-in, it names the
# session (sid) this browser signed in to the product with. RP-initiated logout ends a session without asking only
# when the request carries this first-party cookie for the hint's sid (shared_code/oidc/logout.py); anything else
# (a link on another site, a stolen ID token) gets a confirmation page first. Path /api/oidc/{tenant}/ (sent to
# the logout endpoint only), HttpOnly, SameSite=Lax (a top-level GET from the product carries it; a cross-site
# POST does not). The ACS is reached by a cross-site POST, which carries no Lax cookie, so each sign-in replaces it.
_OP_BROWSER = "op-browser"


def op_browser_cookie_name() -> str:
    return "__Secure-gh_op" if get_settings().is_https else "gh_op"


def issue_op_browser(tenant_id: str, sid: str, now: float | None = None) -> str:
    return sign(_OP_BROWSER, {"t": tenant_id, "sid": sid}, SESSION_SECONDS, now)


def read_op_browser(token: str | None, tenant_id: str, now: float | None = None) -> str | None:
    """The sid this browser signed in to the product with, if `token` is genuine, unexpired and of this tenant."""
    claims = verify(_OP_BROWSER, token, now)
    if claims is None or claims.get("t") != tenant_id or not isinstance(claims.get("sid"), str):
        return None
    return claims["sid"]


OP_CONFIRM_COOKIE = "gh_op_confirm"  # the nonce of the logout confirmation page shown to this browser


def op_confirm_set_cookie(tenant_id: str, nonce: str, seconds: int) -> str:
    """SameSite=Strict: only a POST from our own page carries it (an auto-submitting form elsewhere does not)."""
    secure = "; Secure" if get_settings().is_https else ""
    return (f"{OP_CONFIRM_COOKIE}={nonce}; Path=/api/oidc/{tenant_id}/; Max-Age={seconds}; HttpOnly{secure}; "
            "SameSite=Strict")


def op_browser_set_cookie(tenant_id: str, token: str) -> str:
    secure = "; Secure" if get_settings().is_https else ""
    return (f"{op_browser_cookie_name()}={token}; Path=/api/oidc/{tenant_id}/; Max-Age={SESSION_SECONDS}; "
            f"HttpOnly{secure}; SameSite=Lax")


# ---- the login binding ---------------------------------------------------------------------------------------

def new_browser_nonce() -> str:
    return secrets.token_urlsafe(24)


def browser_nonce_hash(nonce: str) -> str:
    """What the sealed pending login carries: the nonce itself lives only in the login-binding cookie."""
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


def issue_login_binding(nonce: str, now: float | None = None) -> str:
    return sign(_LOGIN_BINDING, {"n": nonce}, LOGIN_BINDING_SECONDS, now)


def read_login_binding(token: str | None, now: float | None = None) -> str | None:
    """The browser nonce in a genuine, unexpired login binding; None otherwise."""
    claims = verify(_LOGIN_BINDING, token, now)
    nonce = (claims or {}).get("n")
    return nonce if isinstance(nonce, str) and nonce else None


def login_binding_set_cookie(token: str) -> str:
    return f"{LOGIN_BINDING_COOKIE}={token}; Path=/; Max-Age={LOGIN_BINDING_SECONDS}; HttpOnly; Secure; SameSite=None"


# ---- reading cookies -----------------------------------------------------------------------------------------

def cookie_value(cookie_header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header; None if absent or sent more than once (ambiguous)."""
    found = [value.strip() for key, _, value in
             (part.strip().partition("=") for part in (cookie_header or "").split(";")) if key == name]
    return found[0] if len(found) == 1 and found[0] else None
