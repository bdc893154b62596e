"""The OpenID Provider's signing keys: read from `OIDC_SIGNING_KEYS`, published as a JWKS, used for RS256.

The setting is a JSON array of PEM-encoded RSA private keys (PKCS#8). The FIRST key signs; every key is
published, so during a rollover the retired key stays in the JWKS until tokens it signed have expired
(put the new key first, keep the old one second for a day, then drop it). `kid` is the RFC 7638 SHA-256
thumbprint, so it is the same on every instance without being configured.

joserfc is imported here and only here, on the first OIDC request: a SCIM request on a cold instance never
loads it. Parsed keys are cached for the life of the process (parsing a PEM costs milliseconds).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from shared_code.platform.errors import StorageUnavailable
from shared_code.oidc.errors import OAuthError
from shared_code.platform.settings import get_settings

ALGORITHM = "RS256"  # OpenID Connect Discovery requires RS256; it is the only one we sign or accept


class NotConfigured(StorageUnavailable):
    """The keys are missing or unreadable: an operator's problem, answered as 503 (never a token signed with
    something else)."""

    def __init__(self, why: str):
        super().__init__(f"The OpenID Provider is not configured on this server ({why}); the operator must set "
                         "OIDC_SIGNING_KEYS. Please retry later.", retry_after=60)


@dataclass(frozen=True)
class SigningKeys:
    signing: Any  # joserfc RSAKey (the first)
    kid: str
    key_set: Any  # joserfc KeySet of every key (public halves verify)
    jwks: dict


_lock = threading.Lock()
_cache: tuple[str, SigningKeys] | None = None


def current() -> SigningKeys:
    """The keys of the current setting value (parsed once per value)."""
    global _cache
    raw = get_settings().oidc_signing_keys
    cached = _cache
    if cached is not None and cached[0] == raw:
        return cached[1]
    with _lock:
        if _cache is None or _cache[0] != raw:
            _cache = (raw, _parse(raw))
        return _cache[1]


def _parse(raw: str) -> SigningKeys:
    from joserfc.jwk import KeySet, RSAKey

    if not raw:
        raise NotConfigured("OIDC_SIGNING_KEYS is empty")
    try:
        pems = json.loads(raw)
    except json.JSONDecodeError:
        raise NotConfigured("OIDC_SIGNING_KEYS is not a JSON array") from None
    if not isinstance(pems, list) or not pems or not all(isinstance(p, str) for p in pems):
        raise NotConfigured("OIDC_SIGNING_KEYS must be a non-empty JSON array of PEM strings")
    keys = []
    for index, pem in enumerate(pems):
        try:
            key = RSAKey.import_key(pem)
        except Exception:  # noqa: BLE001 - never echo key material
            raise NotConfigured(f"key {index} of OIDC_SIGNING_KEYS is not a PEM RSA key") from None
        if not key.is_private or key.raw_value.key_size < 2048:
            raise NotConfigured(f"key {index} of OIDC_SIGNING_KEYS must be a private RSA key of 2048 bits or more")
        kid = key.thumbprint()
        keys.append(RSAKey.import_key(key.as_dict(private=True), {"kid": kid, "use": "sig", "alg": ALGORITHM}))
    jwks = {"keys": [{**k.as_dict(private=False), "kid": k.kid, "use": "sig", "alg": ALGORITHM} for k in keys]}
    return SigningKeys(signing=keys[0], kid=keys[0].kid, key_set=KeySet(keys), jwks=jwks)


def jwks() -> dict:
    return current().jwks


def sign(claims: dict, *, typ: str = "JWT") -> str:
    """A compact JWS (RS256) over `claims` with the first key; `typ` e.g. "logout+jwt" for logout tokens."""
    from joserfc import jwt

    keys = current()
    return jwt.encode({"alg": ALGORITHM, "kid": keys.kid, "typ": typ}, claims, keys.signing)


def verify(token: str, *, error: str = "invalid_request", what: str = "token") -> dict:
    """The claims of a JWT we signed (any published key, RS256 only: `alg: none`, HS256 with our public key
    as secret and every other algorithm are refused). Raises OAuthError(`error`) otherwise. Claims are not
    checked here (exp, iss, aud are the caller's)."""
    from joserfc import jwt
    from joserfc.errors import JoseError

    if not isinstance(token, str) or not token or len(token) > 8192:
        raise OAuthError(error, f"The {what} is missing or too long.")
    keys = current()
    try:
        decoded = jwt.decode(token, keys.key_set, algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError, KeyError):
        raise OAuthError(error, f"The {what} is not a token this server signed.") from None
    if decoded.header.get("alg") != ALGORITHM:
        raise OAuthError(error, f"The {what} is not a token this server signed.")
    return dict(decoded.claims)
