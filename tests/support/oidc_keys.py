"""Signing keys for the OpenID Provider in tests: fresh RSA-2048 keys in the PEM form OIDC_SIGNING_KEYS holds.

Test keys only; made once per process (~50 ms each)."""
from __future__ import annotations

import json
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@lru_cache(maxsize=None)
def signing_key_pem(label: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def setting(*labels: str) -> str:
    """The OIDC_SIGNING_KEYS value for these keys, the first signing (the others: retired, still published)."""
    return json.dumps([signing_key_pem(label) for label in labels])
