"""Webhook signing secrets: `whsec_` + base64 of 24 random bytes (the Standard Webhooks format), stored
encrypted with AES-GCM under a key derived (HKDF-SHA256) from SESSION_SIGNING_KEY: the service must sign with
them, so a hash would not do. Changing SESSION_SIGNING_KEY makes stored secrets unreadable: the operator then
PUTs the endpoint again and gets a new secret (GET says so)."""
from __future__ import annotations

import base64
import os
import secrets as _random

from shared_code.platform.errors import StorageUnavailable
from shared_code.platform.settings import get_settings

PREFIX = "whsec_"
_INFO = b"gatehouse webhook secrets v1"


def new_secret() -> str:
    return PREFIX + base64.b64encode(_random.token_bytes(24)).decode()


def _cipher():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    master = get_settings().session_signing_key
    if not master:
        raise StorageUnavailable("SESSION_SIGNING_KEY is not set: webhook secrets cannot be stored or used.")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master.encode())
    return AESGCM(key)


def seal(secret: str, tenant_id: str) -> str:
    nonce = os.urandom(12)
    sealed = _cipher().encrypt(nonce, secret.encode(), tenant_id.encode())  # bound to its tenant
    return base64.b64encode(nonce + sealed).decode()


def unseal(sealed: str, tenant_id: str) -> str | None:
    """The secret, or None when it cannot be read (the key changed, or the row was tampered with)."""
    from cryptography.exceptions import InvalidTag

    raw = base64.b64decode(sealed)
    try:
        return _cipher().decrypt(raw[:12], raw[12:], tenant_id.encode()).decode()
    except InvalidTag:
        return None
