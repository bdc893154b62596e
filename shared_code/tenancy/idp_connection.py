"""A tenant's connection to its identity provider: the admin's "Check now" with Entra's App Federation Metadata
URL (or the pasted XML), and the daily refresh that picks up Entra's certificate rollovers.

What is stored on the tenant: `idp` = the parsed metadata (entity ID, SSO URL, every signing certificate, the
Entra tenant ID) plus `checked_at`, and `metadata_url` when the metadata came from a URL (only those are
refreshed). Rules:
- once SSO is enabled for all employees, the tenant admin can no longer change who may sign everyone in: the
  signing certificates change only through metadata fetched from the metadata URL on record (the admin's
  "Check now" with that URL, or the daily refresh), or by the operator. Pasted XML with other certificates,
  another metadata URL and another entity ID are refused (409, a support case). Otherwise a same-entity-ID
  document pasted with the attacker's certificate could sign in as anyone, and clearing the URL would keep the
  daily refresh from ever restoring the real one;
- every change of the signing certificates (and of the IdP) is kept in `certificate_changes` on the tenant:
  when, by whom (tenant admin, operator, daily refresh), from what, which certificates came and went; the
  latest `MAX_CERTIFICATE_CHANGES` show in GET /tenants/{t}/sso;
- connecting another IdP (another entity ID) ends every employee session of the tenant (they were signed in
  by the old one);
- before that, connecting another IdP (another entity ID) forgets a passed self-check: the self-check proved
  the old connection, not the new one, so the tenant returns to draft;
- the refresh never changes the entity ID: a tenant whose metadata now names another IdP is skipped (logged);
- one slow or failing tenant never stalls the others: the daily job (`refresh_idp_metadata` in
  shared_code/jobs/catalog.py) gives every tenant a queue message of its own, each fetch has its deadline
  (`REFRESH_FETCH_SECONDS`), and a failure is retried, then poisoned and listed at GET /api/jobs.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from shared_code import dev_idp, saml
from shared_code.tenancy import tenants as tenant_service
from shared_code.platform.errors import Conflict
from shared_code.platform.settings import get_settings
from shared_code.tenancy.tenants import DRAFT, ENABLED, TESTING, Tenant

log = logging.getLogger("gatehouse.idp")

MAX_URL_CHARS = 2048
REFRESH_FETCH_SECONDS = 10.0
MAX_CERTIFICATE_CHANGES = 50
# Who changed the connection (the `by` of a certificate change record).
TENANT_ADMIN, OPERATOR, DAILY_REFRESH = "tenant_admin", "operator", "daily_refresh"


def certificate_change(tenant: Tenant, metadata, *, by: str, source: str, at: str) -> list[dict] | None:
    """The tenant's certificate change records with this change appended, or None when nothing changes."""
    old = tenant.idp or {}
    before = [c["sha256"] for c in old.get("certificates", [])]
    after = [c.sha256 for c in metadata.certificates]
    if set(before) == set(after) and old.get("entity_id") == metadata.entity_id:
        return None
    record = {"at": at, "by": by, "source": source, "idp_entity_id": metadata.entity_id,
              "added": [c for c in after if c not in before], "removed": [c for c in before if c not in after]}
    if old.get("entity_id") not in (None, metadata.entity_id):
        record["previous_idp_entity_id"] = old["entity_id"]
    return [*(tenant.certificate_changes or []), record][-MAX_CERTIFICATE_CHANGES:]


@dataclass(frozen=True)
class Connection:
    """The IdP a tenant is now connected to (what the admin's "Check now" shows)."""

    tenant: Tenant
    metadata: Any  # saml.IdpMetadata
    checked_at: str

    def summary(self) -> dict[str, Any]:
        return {
            "connection": "established",
            "idp_entity_id": self.metadata.entity_id,
            "sso_url": self.metadata.sso_url,
            "entra_tenant_id": self.metadata.entra_tenant_id,
            "certificates": [{"sha256": c.sha256, "not_after": c.not_after.isoformat()}
                             for c in self.metadata.certificates],
            "checked_at": self.checked_at,
            "status": self.tenant.status,
        }


def read_metadata(metadata_url: Any = None, metadata_xml: Any = None, now: datetime | None = None, *,
                  timeout: float = 10.0):
    """Fetch (SSRF-checked, within `timeout` seconds) or take the pasted XML, and parse it; MetadataError (422)
    says what to fix."""
    now = now or datetime.now(timezone.utc)
    url = metadata_url.strip() if isinstance(metadata_url, str) else metadata_url
    xml = metadata_xml if isinstance(metadata_xml, str) and metadata_xml.strip() else metadata_xml
    if url and xml:
        raise saml.MetadataError("Give either metadata_url (the App Federation Metadata Url) or metadata_xml (the "
                                 "downloaded Federation Metadata XML), not both.")
    if xml:
        if not isinstance(xml, str):
            raise saml.MetadataError("metadata_xml must be the text of the Federation Metadata XML file.")
        return _https_sso_url(_not_a_disabled_dev_idp(saml.parse_idp_metadata(xml.encode("utf-8"), now))), None
    if not url:
        raise saml.MetadataError("Paste the App Federation Metadata Url from the Single sign-on page of the "
                                 "application in Entra (or the downloaded Federation Metadata XML).")
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise saml.MetadataError("metadata_url must be the App Federation Metadata Url, a https:// address.")
    dev_idp.refuse_unless_enabled(url)  # before fetching: its routes do not exist here anyway
    data = saml.fetch_idp_metadata(url, allow_private=get_settings().allow_private_metadata_urls, timeout=timeout)
    return _https_sso_url(_not_a_disabled_dev_idp(saml.parse_idp_metadata(data, now))), url


def _not_a_disabled_dev_idp(metadata):
    """Metadata whose sign-in or logout URL is a development IdP's is refused unless the development IdP is on
    here (pasted XML, or a URL that redirects there, say the same as the URL itself)."""
    dev_idp.refuse_unless_enabled(metadata.sso_url, metadata.slo_url)
    return metadata


def _https_sso_url(metadata):
    """The IdP's sign-in URL is where /login sends browsers: http:// there is an open redirect (and a request
    readable on the way), so only https:// outside local development."""
    if not sso_url_allowed(metadata.sso_url):
        raise saml.MetadataError(f"The single sign-on URL {metadata.sso_url[:200]!r} must use https://.")
    return metadata


def sso_url_allowed(sso_url: str) -> bool:
    return sso_url.lower().startswith("https://") or get_settings().allow_private_metadata_urls


def connect_idp(tenant_id: str, metadata_url: Any = None, metadata_xml: Any = None,
                now: datetime | None = None, *, by: str = TENANT_ADMIN) -> Connection:
    """The admin's (or, with `by=OPERATOR`, support's) "Check now": read the metadata and store it on the tenant
    (see the module rules)."""
    now = now or datetime.now(timezone.utc)
    metadata, url = read_metadata(metadata_url, metadata_xml, now)
    checked_at = now.isoformat()

    def change(tenant: Tenant) -> dict:
        old_entity_id = (tenant.idp or {}).get("entity_id")
        changes = certificate_change(tenant, metadata, by=by, source="metadata_url" if url else "metadata_xml",
                                     at=checked_at)
        kept_url = url
        if tenant.status == ENABLED and by != OPERATOR:
            if old_entity_id != metadata.entity_id:
                raise Conflict(f"SSO is enabled for all employees with the identity provider {old_entity_id}, and "
                               f"this metadata belongs to another one ({metadata.entity_id}). Contact support to "
                               "move to another identity provider.", field="metadata")
            if url is not None and url != tenant.metadata_url:
                raise Conflict("SSO is enabled for all employees: the App Federation Metadata URL on record "
                               "cannot be replaced now. Click Check now with the URL on record, or contact "
                               "support to change it.", field="metadata_url")
            if url is None and changes is not None:
                raise Conflict("SSO is enabled for all employees: new signing certificates are accepted only from "
                               "the App Federation Metadata URL on record (click Check now with it; the daily "
                               "refresh also picks them up), or by support. Pasted metadata cannot change them.",
                               field="metadata_xml")
            kept_url = url or tenant.metadata_url  # pasted XML that changes nothing keeps the URL being refreshed
        columns: dict[str, Any] = {"idp": {**metadata.to_dict(), "checked_at": checked_at}, "metadata_url": kept_url}
        if changes is not None:
            columns["certificate_changes"] = changes
        if old_entity_id not in (None, metadata.entity_id):
            columns["sessions_valid_from"] = int(now.timestamp()) + 1  # signed in by the old IdP: sign in again
        if old_entity_id != metadata.entity_id and tenant.status == TESTING:
            columns.update(status=DRAFT, self_check_at=None)  # the passed self-check was of the old IdP
        elif old_entity_id != metadata.entity_id:
            columns["self_check_at"] = None
        return columns

    # Whoever the old IdP signed in is signed out everywhere, the product included: the `sessions.revoked`
    # event written with the new `sessions_valid_from` is handled by shared_code/sign_in/trust.py.
    tenant = tenant_service.modify(tenant_id, change)
    return Connection(tenant, metadata, checked_at)


# ---- the daily refresh ----------------------------------------------------------------------------------------

def refresh_tenant(tenant_id: str, now: datetime | None = None) -> str:
    """"refreshed", or "skipped" when the stored connection is not the one fetched (left for the admin)."""
    now = now or datetime.now(timezone.utc)
    tenant = tenant_service.get_tenant(tenant_id)
    if not tenant.metadata_url:
        return "skipped"
    metadata, _ = read_metadata(metadata_url=tenant.metadata_url, now=now, timeout=REFRESH_FETCH_SECONDS)
    why_skipped: list[str] = []

    def change(current: Tenant) -> dict:
        why_skipped.clear()
        if current.metadata_url != tenant.metadata_url:
            why_skipped.append("the admin connected other metadata meanwhile")
        elif (current.idp or {}).get("entity_id") != metadata.entity_id:
            why_skipped.append(f"the metadata URL now describes another identity provider ({metadata.entity_id}); "
                               "the stored connection was kept for the admin to decide")
        if why_skipped:
            return {}
        columns: dict[str, Any] = {"idp": {**metadata.to_dict(), "checked_at": now.isoformat()}}
        changes = certificate_change(current, metadata, by=DAILY_REFRESH, source="metadata_url", at=now.isoformat())
        if changes is not None:
            columns["certificate_changes"] = changes
        return columns

    tenant_service.modify(tenant_id, change)
    if why_skipped:
        log.warning(json.dumps({"event": "idp_metadata_refresh", "tenant": tenant_id, "outcome": "skipped",
                                "message": why_skipped[0]}))
        return "skipped"
    log.info(json.dumps({"event": "idp_metadata_refresh", "tenant": tenant_id, "outcome": "refreshed",
                         "certificates": [c.sha256[:16] for c in metadata.certificates]}))
    return "refreshed"
