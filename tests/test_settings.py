"""Settings fail closed: an unresolved Key Vault reference is never a usable key."""
from __future__ import annotations

import pytest

from shared_code.platform import credentials
from shared_code.platform.settings import get_settings


@pytest.fixture
def fresh_settings(monkeypatch):
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_unresolved_key_vault_reference_is_not_an_operator_key(fresh_settings):
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/platform-admin-key/)"
    fresh_settings.setenv("PLATFORM_ADMIN_KEY", reference)
    fresh_settings.setenv("SESSION_SIGNING_KEY", reference)
    settings = get_settings()
    assert settings.platform_admin_key == ""
    assert settings.session_signing_key == ""
    assert not credentials.same_secret(reference, settings.platform_admin_key)


def test_private_metadata_urls_are_off_unless_explicitly_true(fresh_settings):
    fresh_settings.delenv("ALLOW_PRIVATE_METADATA_URLS", raising=False)
    assert get_settings().allow_private_metadata_urls is False
    get_settings.cache_clear()
    fresh_settings.setenv("ALLOW_PRIVATE_METADATA_URLS", "TRUE")
    assert get_settings().allow_private_metadata_urls is True
