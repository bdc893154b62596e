"""Setup links: the one live link per tenant (PartitionKey = tenant id, RowKey = "setup-link") in `setuplinks`.

A tenant has at most one link: issuing a new one replaces the row, so a lost or leaked link is revoked by
issuing another. Only the SHA-256 of the token is stored. Claiming is a conditional update on the row's ETag,
so two browsers racing with the same link cannot both win.
"""
from __future__ import annotations

from datetime import datetime

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared_code.storage import tables

SETUP_LINKS = "setuplinks"
ROW = "setup-link"


def put_link(tenant_id: str, token_hash: str, created_at: datetime, expires_at: datetime,
             generation: int = 0) -> None:
    """Store a tenant's new link, replacing (and so revoking) any earlier one. One round trip. `generation` is
    the tenant's wizard generation the session opened with this link will carry (setup_access)."""
    tables.upsert(SETUP_LINKS, {"PartitionKey": tenant_id, "RowKey": ROW, "token_hash": token_hash,
                                "created_at": created_at, "expires_at": expires_at, "generation": generation},
                  replace=True)


def get_link(tenant_id: str) -> dict | None:
    """The tenant's current link row (`token_hash`, `created_at`, `expires_at`, `used_at`, `etag`), or None."""
    entity = tables.get(SETUP_LINKS, tenant_id, ROW)
    if entity is None:
        return None
    return {"token_hash": entity.get("token_hash"), "created_at": entity.get("created_at"),
            "expires_at": entity.get("expires_at"), "used_at": entity.get("used_at"),
            "generation": entity.get("generation") or 0,
            "etag": tables.etag_of(entity)}


def mark_used(tenant_id: str, etag: str, used_at: datetime) -> bool:
    """Mark the link used if nobody changed the row since it was read; False when someone else won."""
    try:
        tables.update(SETUP_LINKS, {"PartitionKey": tenant_id, "RowKey": ROW, "used_at": used_at}, etag=etag)
    except (ResourceModifiedError, ResourceNotFoundError):
        return False
    return True
