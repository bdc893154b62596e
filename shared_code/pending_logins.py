"""A pending SP-initiated login, kept in the browser that started it instead of in Table Storage.

`GET /sso/{t}/login` and the OpenID Connect authorization endpoint write no row: what the assertion consumer needs
later (the AuthnRequest ID, where to land, whether it is a self-check, the product's authorization request) is
sealed into a cookie of its own, `__Host-gh_pending_<relay id>`, named by the opaque relay id that travels to
Entra and back as RelayState. One cookie per login, so logins started in parallel tabs (or all at once by a
browser restoring its session) never overwrite each other; each lives 10 minutes and the assertion consumer
clears the one it used.

Sealing: AES-256-GCM (`cryptography`). The key is derived from `SESSION_SIGNING_KEY` with HKDF-SHA256 and the
purpose label `gatehouse/pending-login/v1`, so it is never the key of a session or of the login binding; each
cookie then gets a key of its own from a random 128-bit salt (HMAC-SHA256 of the salt under the purpose key),
so the random 96-bit GCM nonces never approach their collision bound however many sign-ins one key seals.
The relay id (the cookie's name) is associated data: a sealed login cannot be moved under another RelayState.
Inside: the tenant, the hash of the browser nonce of the login-binding cookie (`sessions`), the issue and expiry
times. The assertion consumer opens the cookie named by RelayState and requires the tenant to be its own, the
browser to be the one whose binding cookie came along, the login to be unexpired and the response's
InResponseTo to be the sealed AuthnRequest ID. What makes an answer count once is not the cookie (a browser
could send it again) but the insert-once row keyed by that AuthnRequest ID (`storage/sign_ins.py`).

Cookie attributes: `__Host-` (Secure, Path=/, no Domain: no sibling subdomain can plant one), HttpOnly,
SameSite=None (Entra's answer is a cross-site POST; see `sessions` for the binding cookie's same reasoning).
A cookie holds at most 4,096 bytes: a login whose sealed form would not fit (a product sending kilobytes of
`state`) is refused with a clear message instead of being cut.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared_code.errors import BadRequest
from shared_code.settings import get_settings

PURPOSE = b"gatehouse/pending-login/v1"
COOKIE_PREFIX = "__Host-gh_pending_"
LIFETIME_SECONDS = 10 * 60  # as long as the login binding, and Entra's sign-in page is open
MAX_COOKIE_BYTES = 4000  # name=value; browsers keep at most 4,096 bytes per cookie
_RELAY_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # secrets.token_urlsafe(18): 24 characters
_VERSION = "v1"


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


def cookie_name(relay_id: str) -> str | None:
    """The cookie that holds the login with this relay id; None for anything that cannot be one of ours."""
    return COOKIE_PREFIX + relay_id if isinstance(relay_id, str) and _RELAY_ID.match(relay_id) else None


def _purpose_key() -> bytes:
    secret = get_settings().session_signing_key
    if not secret:
        raise RuntimeError("SESSION_SIGNING_KEY is not set; sign-in state cannot be sealed")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(secret.encode("utf-8"))


def _cipher(salt: bytes) -> AESGCM:
    return AESGCM(hmac.new(_purpose_key(), salt, hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def seal(pending: PendingLogin) -> str:
    """The cookie value for `pending`; `PendingLoginTooLarge` when it would not fit into a cookie."""
    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps(asdict(pending), separators=(",", ":"), sort_keys=True).encode("utf-8")
    sealed = _cipher(salt).encrypt(nonce, plain, PURPOSE + b"|" + pending.relay_id.encode("ascii"))
    value = f"{_VERSION}.{_b64(salt + nonce + sealed)}"
    if len(COOKIE_PREFIX) + len(pending.relay_id) + 1 + len(value) > MAX_COOKIE_BYTES:
        raise PendingLoginTooLarge()
    return value


def unseal(relay_id: str, value: str | None) -> PendingLogin | None:
    """The login sealed in `value` under this relay id; None when absent, tampered with, sealed with another key
    or for another relay id. Expiry, tenant and browser are the caller's to check (each has its own message)."""
    if cookie_name(relay_id) is None or not isinstance(value, str) or len(value) > MAX_COOKIE_BYTES:
        return None
    version, _, body = value.partition(".")
    if version != _VERSION or not body:
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if len(raw) < 16 + 12 + 16:
            return None
        plain = _cipher(raw[:16]).decrypt(raw[16:28], raw[28:], PURPOSE + b"|" + relay_id.encode("ascii"))
        fields = json.loads(plain)
        pending = PendingLogin(**fields)
    except (binascii.Error, ValueError, InvalidTag, TypeError):
        return None
    if pending.relay_id != relay_id or not isinstance(pending.expires_at, int):
        return None
    return pending


def set_cookie(relay_id: str, value: str) -> str:
    return (f"{COOKIE_PREFIX}{relay_id}={value}; Path=/; Max-Age={LIFETIME_SECONDS}; HttpOnly; Secure; "
            "SameSite=None")


def clear_cookie(relay_id: str) -> str:
    """Tidy the browser once the login is answered (the insert-once row, not this, makes it count once)."""
    return f"{COOKIE_PREFIX}{relay_id}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=None"
