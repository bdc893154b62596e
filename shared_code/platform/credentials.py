"""Secrets we hand out (admin keys, SCIM tokens, setup links): generated with 256 bits, stored only as hashes.

The secrets are random, so a fast SHA-256 is enough (no password-stretching needed); comparisons run in
constant time. A `kind` prefix tells a person which secret they hold without revealing anything.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

_DUMMY_HASH = hashlib.sha256(b"gatehouse-no-such-secret").hexdigest()


def new_secret(kind: str) -> str:
    """A new secret such as `gh_admin_…`; 43 url-safe characters carry 256 bits."""
    return f"gh_{kind}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(presented: str | None, stored_hash: str | None) -> bool:
    """Constant-time check of a presented secret against a stored hash (also when nothing is stored)."""
    candidate = hash_secret(presented or "")
    expected = stored_hash or _DUMMY_HASH
    return hmac.compare_digest(candidate, expected) and bool(presented) and bool(stored_hash)


def same_secret(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two plain secrets (the operator key lives in app settings)."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(hash_secret(presented), hash_secret(expected))
