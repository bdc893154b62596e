"""Third-party-initiated login (OpenID Connect Core §4): a sign-in started from Entra's My Apps reaches us as
an unsolicited SAML response. It must not become a session in a browser that never asked for one, so the
browser goes to the product's `initiate_login_uri` with our `iss`, and the product starts its own
authorization request (which leads back through Entra, where the employee is already signed in).
"""
from __future__ import annotations

from shared_code.oidc import discovery
from shared_code.oidc.discovery import with_query
from shared_code.storage import oidc as store


def initiate_login_url(tenant_id: str) -> str | None:
    """The product's login URL with `iss`, if a client of this tenant registered one (the oldest such client)."""
    clients = sorted((c for c in store.list_clients(tenant_id) if c.initiate_login_uri), key=lambda c: c.created_at)
    if not clients:
        return None
    return with_query(clients[0].initiate_login_uri, {"iss": discovery.issuer(tenant_id)})
