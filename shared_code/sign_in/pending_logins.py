"""A pending SP-initiated login, kept in the browser that started it instead of in Table Storage.

`GET /sso/{t}/login` and the OpenID Connect authorization endpoint write no row: what the assertion consumer needs
later (the AuthnRequest ID, where to land, whether it is a self-check, the product's authorization request) is
sealed into a cookie of its own, `__Host-gh_pending_<relay id>`, named by the opaque relay id that travels to
Entra and back as RelayState. One cookie per login, so logins started in parallel tabs (or all at once by a
browser restoring its session) never overwrite each other; each lives 10 minutes and the assertion consumer
clears the one it used.

Sealing (`sealing`): AES-256-GCM under a key derived from `SESSION_SIGNING_KEY` with HKDF-SHA256 and the
purpose label `gatehouse/pending-login/v1`, so it is never the key of a session, a code or the login binding.
The relay id (the cookie's name) is associated data: a sealed login cannot be moved under another RelayState.
Inside: the tenant, the hash of the browser nonce of the login-binding cookie (`sessions`), the issue and expiry
times. The assertion consumer opens the cookie named by RelayState and requires the tenant to be its own, the
browser to be the one whose binding cookie came along, the login to be unexpired and the response's
InResponseTo to be the sealed AuthnRequest ID. What makes an answer count once is not the cookie (a browser
could send it again) but the insert-once row keyed by that AuthnRequest ID (`storage/sign_ins.py`).

Cookie attributes: `__Host-` (Secure, Path=/, no Domain: no sibling subdomain can plant one), HttpOnly,
SameSite=None (Entra's answer is a cross-site POST; see `sessions` for the binding cookie's same reasoning).
A cookie holds at most 4,096 bytes: a login whose sealed form would not fit (a product sending kilobytes of
`state`) is refused with a clear message instead of being cut. Every pending cookie goes with every request
to this host for its 10 minutes, so a login start also expires all but the newest `MAX_PENDING - 1` a browser
holds already (a tab left on Entra's page longest ago starts again): the Cookie header stays a few KB.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime, timezone

from shared_code.platform import sealing
from shared_code.platform.errors import BadRequest

PURPOSE = b"gatehouse/pending-login/v1"
COOKIE_PREFIX = "__Host-gh_pending_"
LIFETIME_SECONDS = 10 * 60  # as long as the login binding, and Entra's sign-in page is open
MAX_COOKIE_BYTES = 4000  # name=value; browsers keep at most 4,096 bytes per cookie
MAX_PENDING = 5  # logins one browser may have waiting for Entra at once
_RELAY_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # secrets.token_urlsafe(18): 24 characters


@dataclass(frozen=True)
class PendingLogin:
    """An SP-initiated login waiting for the IdP's answer, as sealed into its cookie."""

    tenant_id: str
    request_id: str  # the AuthnRequest ID; the response's InResponseTo must be this
    relay_id: str  # the opaque RelayState we sent (≤ 80 bytes), also the cookie's name; never the target
    browser_hash: str  # sha256 of the nonce in the browser's login-binding cookie
    target: str | None  # the safe URL to land on afterwards; None means the tenant's app_url
    self_check: bool
    issued_at: int  # Unix seconds
    expires_at: int
    oidc: dict | None = None  # the OpenID Connect authorization request this login serves (shared_code/oidc)

    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, timezone.utc)


class PendingLoginTooLarge(BadRequest):
    """The login would not fit into a cookie (a product's `state`/`nonce` of kilobytes)."""

    def __init__(self):
        super().__init__("The sign-in request is too large to keep in this browser while you sign in (its state "
                         "and nonce together must stay under about 2 KB). Tell the app's support team.")
        self.title, self.reason = "The app's sign-in request is too large", "pending_login_too_large"


_FIELDS = {field.name for field in fields(PendingLogin)}


def cookie_name(relay_id: str) -> str | None:
    """The cookie that holds the login with this relay id; None for anything that cannot be one of ours."""
    return COOKIE_PREFIX + relay_id if isinstance(relay_id, str) and _RELAY_ID.match(relay_id) else None


def seal(pending: PendingLogin) -> str:
    """The cookie value for `pending`; `PendingLoginTooLarge` when it would not fit into a cookie."""
    document = {name: getattr(pending, name) for name in _FIELDS}  # dataclasses.asdict deep-copies: 10× slower
    value = sealing.seal(PURPOSE, pending.relay_id.encode("ascii"), document)
    if len(COOKIE_PREFIX) + len(pending.relay_id) + 1 + len(value) > MAX_COOKIE_BYTES:
        raise PendingLoginTooLarge()
    return value



def unseal(relay_id: str, value: str | None) -> PendingLogin | None:
    """The login sealed in `value` under this relay id; None when absent, tampered with, sealed with another key
    or for another relay id. Expiry, tenant and browser are the caller's to check (each has its own message)."""
    if cookie_name(relay_id) is None or not isinstance(value, str) or len(value) > MAX_COOKIE_BYTES:
        return None
    document = sealing.unseal(PURPOSE, relay_id.encode("ascii"), value)
    if document is None or set(document) != _FIELDS:
        return None
    pending = PendingLogin(**document)
    if pending.relay_id != relay_id or not isinstance(pending.expires_at, int):
        return None
    return pending


def crowding_out(cookie_header: str | None) -> list[str]:
    """The relay ids of the pending-login cookies a new login pushes out: all but the newest MAX_PENDING - 1
    genuine ones in this Cookie header (unreadable ones count as oldest)."""
    held = []
    for part in (cookie_header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.startswith(COOKIE_PREFIX):
            relay_id = name[len(COOKIE_PREFIX):]
            pending = unseal(relay_id, value.strip())
            held.append((pending.issued_at if pending else -1, relay_id))
    held.sort(reverse=True)
    return [relay_id for _, relay_id in held[MAX_PENDING - 1:] if cookie_name(relay_id)]


def set_cookie(relay_id: str, value: str) -> str:
    return (f"{COOKIE_PREFIX}{relay_id}={value}; Path=/; Max-Age={LIFETIME_SECONDS}; HttpOnly; Secure; "
            "SameSite=None")


def clear_cookie(relay_id: str) -> str:
    """Tidy the browser once the login is answered (the insert-once row, not this, makes it count once)."""
    return f"{COOKIE_PREFIX}{relay_id}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=None"
