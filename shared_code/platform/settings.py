"""Settings read once from the environment (app settings on Azure, `local.settings.json` Values locally)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

# Every name the code reads. infra/, local.settings.sample.json and the README list the same names
# (tests/test_settings_consistency.py keeps the four in step).
SETTING_NAMES = (
    "TABLES_CONNECTION_STRING",
    "TABLES_ENDPOINT",
    "TABLES_SHARDS",
    "PLATFORM_ADMIN_KEY",
    "SESSION_SIGNING_KEY",
    "PUBLIC_BASE_URL",
    "DOMAIN_AUDIT_SCHEDULE",
    "IDP_METADATA_REFRESH_SCHEDULE",
    "ALLOW_PRIVATE_METADATA_URLS",
    "DEV_IDP",  # local development only; infra/ never sets it (tests/test_settings_consistency.py)
    "DNS_NAMESERVERS",
    "MOBILE_IOS_BUNDLE_ID",
    "MOBILE_ANDROID_PACKAGE_NAME",
    "MOBILE_ANDROID_SIGNATURE_HASH",
    "ENTRA_LOGIN_URL",
    "OIDC_SIGNING_KEYS",
    "ENTRA_LOGIN_URL",
    "GATEHOUSE_QUEUES",
    "WEBHOOK_SWEEP_SCHEDULE",
    "PRODUCT_ROLES",
    "OIDC_BACKCHANNEL_RETRY_SCHEDULE",
    "GATEHOUSE_QUEUES__queueServiceUri",  # the identity-based form on Azure (webhook deliveries)
    "GATEHOUSE_QUEUES__credential",
    "GATEHOUSE_QUEUES__clientId",
)


@dataclass(frozen=True)
class Settings:
    tables_connection_string: str
    tables_endpoint: str
    platform_admin_key: str
    session_signing_key: str
    public_base_url: str
    domain_audit_schedule: str
    allow_private_metadata_urls: bool
    mobile_ios_bundle_id: str
    mobile_android_package_name: str
    mobile_android_signature_hash: str
    entra_login_url: str = "https://login.microsoftonline.com"
    oidc_signing_keys: str = ""  # JSON array of PEM RSA private keys; read by shared_code.oidc.keys
    gatehouse_queues: str = ""
    gatehouse_queues_service_uri: str = ""
    gatehouse_queues_credential: str = ""
    gatehouse_queues_client_id: str = ""
    dev_idp: bool = False  # DEV_IDP: serve the development IdP (only ever on an http:// PUBLIC_BASE_URL)
    tables_shards: str = ""  # JSON array of further Table Storage accounts; read by shared_code.storage.accounts
    dns_nameservers: str = ""  # comma-separated ip[:port] for domain verification; empty: the system resolver
    product_roles: str = "admin,member"  # comma-separated; tenant admins map Entra groups to these

    @property
    def is_https(self) -> bool:
        return self.public_base_url.startswith("https://")


def _secret(value: str | None) -> str:
    """A secret setting, or "" when absent or when Azure left an unresolved Key Vault reference in its place
    (App Service passes the literal `@Microsoft.KeyVault(...)` text until it resolves: never a usable key)."""
    value = (value or "").strip()
    return "" if value.startswith("@Microsoft.KeyVault(") else value


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    env = os.environ
    return Settings(
        tables_connection_string=env.get("TABLES_CONNECTION_STRING", "").strip(),
        tables_endpoint=env.get("TABLES_ENDPOINT", "").strip(),
        platform_admin_key=_secret(env.get("PLATFORM_ADMIN_KEY")),
        session_signing_key=_secret(env.get("SESSION_SIGNING_KEY")),
        public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:7071").strip().rstrip("/"),
        domain_audit_schedule=env.get("DOMAIN_AUDIT_SCHEDULE", "0 0 3 * * *"),
        allow_private_metadata_urls=_flag(env.get("ALLOW_PRIVATE_METADATA_URLS")),
        mobile_ios_bundle_id=env.get("MOBILE_IOS_BUNDLE_ID", "com.example.gatehouse").strip(),
        mobile_android_package_name=env.get("MOBILE_ANDROID_PACKAGE_NAME", "com.example.gatehouse").strip(),
        mobile_android_signature_hash=env.get("MOBILE_ANDROID_SIGNATURE_HASH", "").strip(),
        entra_login_url=(env.get("ENTRA_LOGIN_URL", "").strip() or "https://login.microsoftonline.com").rstrip("/"),
        oidc_signing_keys=_secret(env.get("OIDC_SIGNING_KEYS")),
        gatehouse_queues=env.get("GATEHOUSE_QUEUES", "").strip(),
        gatehouse_queues_service_uri=env.get("GATEHOUSE_QUEUES__queueServiceUri", "").strip(),
        gatehouse_queues_credential=env.get("GATEHOUSE_QUEUES__credential", "").strip(),
        gatehouse_queues_client_id=env.get("GATEHOUSE_QUEUES__clientId", "").strip(),
        dev_idp=_flag(env.get("DEV_IDP")),
        tables_shards=env.get("TABLES_SHARDS", "").strip(),
        dns_nameservers=env.get("DNS_NAMESERVERS", "").strip(),
        product_roles=env.get("PRODUCT_ROLES", "").strip() or "admin,member",
    )
