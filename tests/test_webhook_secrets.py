"""shared_code/webhooks/secrets.py without storage: the Standard Webhooks secret format, and the AES-GCM seal that
binds a stored secret to its tenant and to SESSION_SIGNING_KEY. Fast on purpose: `make mutants` runs it once per
mutant of the module (docs/mutation-testing.md)."""
from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks import Webhook

from shared_code.platform.errors import StorageUnavailable
from shared_code.platform.settings import get_settings
from shared_code.webhooks import secrets

KEY = "webhook-secrets-test-key-0123456789"


@pytest.fixture(autouse=True)
def settings(monkeypatch):
    def use(key: str = KEY) -> None:
        monkeypatch.setenv("SESSION_SIGNING_KEY", key)
        get_settings.cache_clear()
    use()
    yield use
    get_settings.cache_clear()


def test_a_new_secret_is_whsec_and_24_random_bytes_that_standard_webhooks_accepts():
    secret = secrets.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert secret != secrets.new_secret()
    Webhook(secret)  # the receivers' library reads it


def test_a_sealed_secret_is_aes_gcm_under_a_key_derived_from_the_setting_and_bound_to_its_tenant():
    secret = secrets.new_secret()
    sealed = secrets.seal(secret, "tenant-a")
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    raw = base64.b64decode(sealed)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"gatehouse webhook secrets v1").derive(KEY.encode())
    assert AESGCM(key).decrypt(raw[:12], raw[12:], b"tenant-a").decode() == secret  # an independent open
    assert len(raw) == 12 + len(secret) + 16
    assert secrets.unseal(sealed, "tenant-a") == secret
    assert secrets.unseal(sealed, "tenant-b") is None  # copied into another tenant's row: unreadable
    assert secrets.seal(secret, "tenant-a") != sealed  # a fresh nonce each time


def test_a_tampered_seal_or_another_signing_key_reads_as_none(settings):
    sealed = secrets.seal("whsec_" + base64.b64encode(b"x" * 24).decode(), "tenant-a")
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 1
    assert secrets.unseal(base64.b64encode(bytes(raw)).decode(), "tenant-a") is None
    raw = bytearray(base64.b64decode(sealed))
    raw[0] ^= 1  # the nonce
    assert secrets.unseal(base64.b64encode(bytes(raw)).decode(), "tenant-a") is None
    settings("another-key-" + hashlib.sha256(b"k").hexdigest())
    assert secrets.unseal(sealed, "tenant-a") is None


def test_without_a_signing_key_nothing_is_sealed_or_read(settings):
    sealed = secrets.seal("whsec_abc", "tenant-a")
    settings("")
    with pytest.raises(StorageUnavailable) as refused:
        secrets.seal("whsec_abc", "tenant-a")
    assert refused.value.message == ("SESSION_SIGNING_KEY is not set: webhook secrets cannot be stored or used.")
    with pytest.raises(StorageUnavailable):
        secrets.unseal(sealed, "tenant-a")
