"""Sealed tokens: small JSON documents that only this app can read and that nobody can change, for state that
travels through a browser or a client instead of living in a table (a pending login, an authorization code).

AES-256-GCM from `cryptography`. Each purpose has its own key, derived from `SESSION_SIGNING_KEY` with
HKDF-SHA256 and the purpose as its label, so a token sealed for one purpose never opens for another; each token
then gets a key of its own from a random 128-bit salt (HMAC-SHA256 of the salt under the purpose key), so the
random 96-bit GCM nonces never approach their collision bound however many tokens one key seals. The caller's
associated data (a tenant, a cookie name) is authenticated with it: a token moved elsewhere does not open.

Format: `v1.<base64url(salt ‖ nonce ‖ ciphertext ‖ tag)>`. What a token does not carry is its expiry check:
callers put their own times inside and compare them with their own (injectable) clock.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared_code.platform.settings import get_settings

_VERSION = "v1"
_SALT, _NONCE, _TAG = 16, 12, 16
MAX_TOKEN_CHARS = 8192


@functools.lru_cache(maxsize=16)
def _purpose_key(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode("utf-8"))


def _cipher(purpose: bytes, salt: bytes) -> AESGCM:
    secret = get_settings().session_signing_key
    if not secret:
        raise RuntimeError("SESSION_SIGNING_KEY is not set; state cannot be sealed")
    return AESGCM(hmac.new(_purpose_key(secret, purpose), salt, hashlib.sha256).digest())


def seal(purpose: bytes, associated: bytes, document: dict) -> str:
    """`document` sealed for `purpose`, bound to `associated`."""
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    plain = json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")
    sealed = _cipher(purpose, salt).encrypt(nonce, plain, purpose + b"|" + associated)
    return f"{_VERSION}." + base64.urlsafe_b64encode(salt + nonce + sealed).rstrip(b"=").decode("ascii")


def unseal(purpose: bytes, associated: bytes, token: str | None) -> dict | None:
    """The document of a genuine token sealed for `purpose` and `associated`; None for anything else (absent,
    changed, truncated, sealed with another key, purpose or associated data). Never raises."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    version, _, body = token.partition(".")
    if version != _VERSION or not body:
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if len(raw) < _SALT + _NONCE + _TAG:
            return None
        plain = _cipher(purpose, raw[:_SALT]).decrypt(raw[_SALT:_SALT + _NONCE], raw[_SALT + _NONCE:],
                                                      purpose + b"|" + associated)
        document = json.loads(plain)
    except (binascii.Error, ValueError, InvalidTag):
        return None
    return document if isinstance(document, dict) else None
