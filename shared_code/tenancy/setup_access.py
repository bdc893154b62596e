"""Access to the setup wizard without the admin key: one-time setup links and the wizard sessions they open.

The operator issues a link (`issue_setup_link`) whose token travels only in the URL fragment, so it never
reaches a server log. The page exchanges the token once (`open_session`) for a wizard session:

* the session is a cookie value `v1.<tenant>.<sid>.<expiry>.<mac>`, an HMAC over the rest under a key derived
  from `SESSION_SIGNING_KEY` for this purpose only (an employee's SSO session can never pass for it);
* the CSRF token is a second HMAC of the session id under another derived key: the page sends it as
  `X-CSRF-Token`, which a cross-site form cannot, and it needs no storage.

A session lasts `SESSION_LIFETIME`, and the server can end it earlier: each link carries the tenant's
`wizard_generation` at the time it was issued (a new link increments it), and so does the session opened with
it (its id starts `g<generation>-`). A session older than the tenant's generation is refused, so a new setup
link ends every wizard session opened before it, and "end session" (DELETE) increments the generation and
so ends this session on the server, not just its cookie. Checking a session reads the tenant row, which the
admin call reads anyway.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from shared_code.platform import credentials
from shared_code.tenancy import tenants
from shared_code.platform.errors import Forbidden, GatehouseError, Unauthorized
from shared_code.platform.settings import get_settings
from shared_code.storage import setup_links as store

LINK_LIFETIME = timedelta(hours=24)
SESSION_LIFETIME = timedelta(hours=12)  # a working day: Entra provisions every 40 minutes, people wait
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_VERSION = "v1"
_ASK_FOR_A_NEW_LINK = "Ask your operator for a new setup link, or paste your tenant admin key instead."
NO_TOKEN = "The setup link carries no token. " + _ASK_FOR_A_NEW_LINK
_GENERATION = re.compile(r"^g(\d{1,9})-")


class SetupNotConfigured(GatehouseError):
    """SESSION_SIGNING_KEY is missing: no session can be signed, so no link is worth handing out."""

    status, code = 503, "not_configured"


class SetupLinkRefused(GatehouseError):
    """A setup link that cannot open a session: unknown, replaced, used already, or expired."""

    status, code = 403, "setup_link_refused"


@dataclass(frozen=True)
class WizardSession:
    tenant_id: str
    session_id: str
    expires_at: datetime
    cookie_value: str

    @property
    def generation(self) -> int:
        """The tenant's wizard generation when this session's link was issued (0 for sessions without one)."""
        match = _GENERATION.match(self.session_id)
        return int(match.group(1)) if match else 0

    @property
    def csrf_token(self) -> str:
        return _mac(b"csrf", self.session_id)

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf_token.encode())

    @property
    def max_age(self) -> int:
        return max(0, int((self.expires_at - _now()).total_seconds()))

    def public(self) -> dict:
        """What the page may see: never the cookie value (it stays HttpOnly)."""
        return {"tenant_id": self.tenant_id, "csrf_token": self.csrf_token,
                "expires_at": self.expires_at.isoformat()}


def _now() -> datetime:
    return tenants.utcnow()


def _key(purpose: bytes) -> bytes:
    signing_key = get_settings().session_signing_key
    if not signing_key:
        raise SetupNotConfigured("Setup sessions are not configured on this server (SESSION_SIGNING_KEY is empty).")
    return hmac.new(signing_key.encode(), b"gatehouse/setup-wizard/" + purpose, hashlib.sha256).digest()


def _mac(purpose: bytes, message: str) -> str:
    digest = hmac.new(_key(purpose), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# ---- links ---------------------------------------------------------------------------------------------

def issue_setup_link(tenant_id: str) -> tuple[str, datetime]:
    """A new one-time link to the wizard (replacing the tenant's previous link and ending every wizard session
    opened before it) and when it expires."""
    _key(b"session")  # refuse early when sessions could not be signed anyway
    tenant = tenants.end_wizard_sessions(tenant_id)
    token = credentials.new_secret("setup")
    now = _now()
    expires_at = now + LINK_LIFETIME
    store.put_link(tenant.tenant_id, credentials.hash_secret(token), now, expires_at,
                   generation=tenant.wizard_generation or 0)
    return f"{tenant.urls()['setup_url']}#t={token}", expires_at


def open_session(tenant_id: str, token: object) -> WizardSession:
    """Spend a setup link's token on a new wizard session; every refusal says what to do next."""
    if not isinstance(token, str) or not token:
        raise SetupLinkRefused(NO_TOKEN, field="token")
    link = store.get_link(tenant_id) if tenants.TENANT_ID.match(tenant_id or "") else None
    if not credentials.secret_matches(token, (link or {}).get("token_hash")) or link is None:
        raise SetupLinkRefused("This setup link is not valid: it may be mistyped or replaced by a newer link. "
                               + _ASK_FOR_A_NEW_LINK, field="token")
    now = _now()
    if link.get("used_at"):
        raise SetupLinkRefused("This setup link has already been used; a link opens the wizard only once. "
                               + _ASK_FOR_A_NEW_LINK, field="token")
    if link["expires_at"] <= now:
        raise SetupLinkRefused(f"This setup link expired at {link['expires_at']:%Y-%m-%d %H:%M} UTC. "
                               + _ASK_FOR_A_NEW_LINK, field="token")
    if not store.mark_used(tenant_id, link["etag"], now):
        raise SetupLinkRefused("This setup link has already been used; a link opens the wizard only once. "
                               + _ASK_FOR_A_NEW_LINK, field="token")
    return _new_session(tenant_id, now + SESSION_LIFETIME, link.get("generation") or 0)


def _new_session(tenant_id: str, expires_at: datetime, generation: int = 0) -> WizardSession:
    session_id = f"g{generation}-{secrets.token_urlsafe(24)}"
    unsigned = f"{_VERSION}.{tenant_id}.{session_id}.{int(expires_at.timestamp())}"
    return WizardSession(tenant_id, session_id, expires_at, f"{unsigned}.{_mac(b'session', unsigned)}")


# ---- sessions ------------------------------------------------------------------------------------------

def read_session(tenant_id: str, cookie_value: str | None) -> WizardSession | None:
    """The session a cookie value proves for *this* tenant, or None (forged, expired, another tenant's)."""
    if not cookie_value or len(cookie_value) > 512:
        return None
    unsigned, _, mac = cookie_value.rpartition(".")
    parts = unsigned.split(".")
    if len(parts) != 4 or parts[0] != _VERSION:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(b"session", unsigned).encode()):
        return None
    _, session_tenant, session_id, expiry = parts
    if session_tenant != tenant_id or not expiry.isdigit():
        return None
    expires_at = datetime.fromtimestamp(int(expiry), timezone.utc)
    if expires_at <= _now():
        return None
    return WizardSession(session_tenant, session_id, expires_at, cookie_value)


def authenticate_session(tenant_id: str, cookie_value: str, *, method: str, csrf_header: str | None) -> tenants.Tenant:
    """The tenant a wizard session may administer; state-changing methods must also carry the CSRF token."""
    session = read_session(tenant_id, cookie_value)
    if session is None:
        raise Unauthorized("Your setup session has expired or is not valid for this tenant. " + _ASK_FOR_A_NEW_LINK)
    if method.upper() not in SAFE_METHODS and not session.csrf_matches(csrf_header):
        raise Forbidden("The X-CSRF-Token header is missing or does not match this setup session. Reload the page.")
    tenant = tenants.find_tenant(tenant_id)
    if tenant is None:
        raise Forbidden("This setup session's tenant no longer exists.")
    if session.generation < (tenant.wizard_generation or 0):
        raise Unauthorized("This setup session has ended: it was closed, or a newer setup link was issued. "
                           + _ASK_FOR_A_NEW_LINK)
    return tenant


def current_session(tenant_id: str, cookie_value: str | None) -> WizardSession | None:
    """The session of this cookie if it is valid and has not been ended on the server (one tenant read)."""
    session = read_session(tenant_id, cookie_value)
    if session is None:
        return None
    tenant = tenants.find_tenant(tenant_id)
    if tenant is None or session.generation < (tenant.wizard_generation or 0):
        return None
    return session


def end_session(tenant_id: str, cookie_value: str | None) -> None:
    """"End session": a current session of this tenant is ended on the server, not only in the browser."""
    session = current_session(tenant_id, cookie_value)
    if session is not None:
        tenants.end_wizard_sessions(tenant_id, before=session.generation + 1)


def cookie_name(tenant_id: str) -> str:
    """One cookie per tenant, so an operator can have several tenants' wizards open at once.

    Over HTTPS the `__Host-` prefix pins the cookie to this exact host (no Domain, Path=/, Secure).
    """
    return ("__Host-" if get_settings().is_https else "") + f"gh_setup_{tenant_id}"


def set_cookie_header(session: WizardSession) -> str:
    secure = "; Secure" if get_settings().is_https else ""
    return (f"{cookie_name(session.tenant_id)}={session.cookie_value}; Path=/; Max-Age={session.max_age}; "
            f"HttpOnly; SameSite=Strict{secure}")


def clear_cookie_header(tenant_id: str) -> str:
    secure = "; Secure" if get_settings().is_https else ""
    return f"{cookie_name(tenant_id)}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
