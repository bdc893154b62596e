"""Domain verification state in the `domainclaims` table.

RowKeys:
  PartitionKey <tenant id>, RowKey verification:<ASCII domain>   the tenant's TXT token for that domain
                                                                 (`token`, `created_at`, `verified_at` once proven)
  PartitionKey "claim", RowKey <ASCII domain>                    the one tenant that verified the domain
                                                                 (`tenant_id`, `verified_at`)

The claim row is what makes "a domain verified by one tenant cannot be verified by another" atomic: it is
inserted once (Table Storage refuses a second insert of the same key), never read-then-written. A tenant whose
id happens to be "claim" cannot collide with the claim rows either: its rows start with `verification:`, and a
domain never contains a colon.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from azure.core.exceptions import ResourceExistsError

from shared_code.storage import tables

TABLE = tables.DOMAIN_CLAIMS
CLAIMS = "claim"
VERIFICATION = "verification:"


@dataclass(frozen=True)
class Verification:
    domain: str  # ASCII form
    token: str
    created_at: datetime
    verified_at: datetime | None = None


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _from(entity: dict) -> Verification:
    verified = entity.get("verified_at")
    return Verification(entity["RowKey"][len(VERIFICATION):], entity["token"], _utc(entity["created_at"]),
                        _utc(verified) if verified is not None else None)


def get_verification(tenant_id: str, domain: str) -> Verification | None:
    entity = tables.get(TABLE, tenant_id, VERIFICATION + domain)
    return _from(entity) if entity is not None else None


def list_verifications(tenant_id: str) -> list[Verification]:
    return [_from(entity) for entity in tables.partition_range(TABLE, tenant_id, VERIFICATION)]


def start_verification(tenant_id: str, domain: str, token: str, now: datetime) -> Verification:
    """The tenant's token for `domain`: the one stored already (so the DNS record never has to change), else
    `token`, stored now (an insert: of two concurrent starts, both answer the first one's token)."""
    try:
        tables.insert(TABLE, {"PartitionKey": tenant_id, "RowKey": VERIFICATION + domain, "token": token,
                              "created_at": _utc(now)})
    except ResourceExistsError:
        existing = get_verification(tenant_id, domain)
        if existing is not None:
            return existing
        raise
    return Verification(domain, token, _utc(now))


def mark_verified(tenant_id: str, domain: str, now: datetime) -> None:
    tables.upsert(TABLE, {"PartitionKey": tenant_id, "RowKey": VERIFICATION + domain, "verified_at": _utc(now)})


def claim(tenant_id: str, domain: str, now: datetime) -> str:
    """Claim `domain` for the tenant, once for the whole platform; returns the tenant that holds the claim (this
    one, or the one that claimed it first)."""
    try:
        tables.insert(TABLE, {"PartitionKey": CLAIMS, "RowKey": domain, "tenant_id": tenant_id,
                              "verified_at": _utc(now)})
        return tenant_id
    except ResourceExistsError:
        entity = tables.get(TABLE, CLAIMS, domain, select=["tenant_id"])
        return (entity or {}).get("tenant_id") or ""


def claim_holder(domain: str) -> str | None:
    """The tenant that verified `domain`, or None when no tenant has."""
    entity = tables.get(TABLE, CLAIMS, domain, select=["tenant_id"])
    return (entity or {}).get("tenant_id") if entity is not None else None
