"""The development IdP: an identity provider shaped like Microsoft Entra ID, served by Gatehouse itself so the
whole product can be tried on one machine without an Entra tenant (`make run`, then `make demo`).

For each Gatehouse tenant it publishes App Federation Metadata (`/api/dev-idp/{tenant}/metadata`), signs in the
tenant's provisioned employees with assertion-signed SAML responses carrying Entra's claims, answers single
logout with signed messages, and publishes an Entra-v2.0-shaped key set and ID tokens for the mobile exchange.
`documents.py` makes the Entra-shaped documents (also the tests' IdP), `keys.py` the key, `service.py` the rest.

It exists only where `enabled()`: DEV_IDP=true on an http:// PUBLIC_BASE_URL. Elsewhere function_app.py does
not register its routes, and `refuse_unless_enabled` keeps the IdP connection from accepting its metadata.
`infra/` never sets DEV_IDP. Nothing heavy is imported here (the connection code imports this module).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from shared_code.saml.errors import MetadataError
from shared_code.platform.settings import Settings, get_settings

ROUTE_PREFIX = "dev-idp"  # under the Functions route prefix: /api/dev-idp/{tenant}/...
_PATH_MARK = f"/api/{ROUTE_PREFIX}/"


def enabled(settings: Settings | None = None) -> bool:
    """DEV_IDP=true, and never with an https:// PUBLIC_BASE_URL (a deployment someone else can reach)."""
    settings = settings or get_settings()
    return settings.dev_idp and not settings.is_https


def names_dev_idp(url: str | None) -> bool:
    """Whether a URL points at a development IdP (this one or another Gatehouse's)."""
    if not isinstance(url, str):
        return False
    try:
        return _PATH_MARK in urlsplit(url.strip()).path
    except ValueError:
        return False


def refuse_unless_enabled(*urls: str | None) -> None:
    """A 422 when any of `urls` (a metadata URL, the SSO or logout URL inside metadata) is a development IdP's
    and the development IdP is not enabled here."""
    if enabled() or not any(names_dev_idp(url) for url in urls):
        return
    raise MetadataError(
        "This is the metadata of Gatehouse's development IdP, which signs in anyone who picks a name: it is "
        "accepted only by a local Gatehouse with DEV_IDP=true and an http:// PUBLIC_BASE_URL. Here, paste the "
        "App Federation Metadata Url of the application in Microsoft Entra instead.")
