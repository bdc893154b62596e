"""Entra's published ID-token signing keys, cached per Entra tenant in the `entrakeys` table.

One row per Entra tenant (PartitionKey = the Entra tenant GUID, RowKey = "jwks"): these rows belong to no single
Gatehouse tenant (two of ours connected to one Entra tenant share them), so they live in their own table.

Columns: `keys` (JSON list of the public JWKs we use: kid, kty, use, n, e), `fetched_at` (last successful fetch),
`claimed_at` (the last time an instance took the right to fetch) and `unknown_kid_claimed_at` (the last time a fetch
was taken because a token named a kid we did not have), `failed_at` (the last failed fetch: other instances answer
503 at once for a moment instead of trying again). Claims are updates with the ETag read (or the insert of the
first row): of several instances racing to fetch, exactly one wins, so a flood of tokens is never a flood of fetches.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared_code.storage import tables

TABLE = tables.ENTRA_KEYS
ROW = "jwks"


@dataclass(frozen=True)
class CachedKeys:
    entra_tenant_id: str
    keys: list[dict] = field(default_factory=list)
    fetched_at: datetime | None = None
    claimed_at: datetime | None = None
    unknown_kid_claimed_at: datetime | None = None
    failed_at: datetime | None = None
    etag: str | None = field(default=None, compare=False, repr=False)

    def key(self, kid: str) -> dict | None:
        return next((jwk for jwk in self.keys if jwk.get("kid") == kid), None)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(timezone.utc) if value is not None else None


def read(entra_tenant_id: str) -> CachedKeys | None:
    entity = tables.get(TABLE, entra_tenant_id, ROW)
    if entity is None:
        return None
    return CachedKeys(entra_tenant_id=entra_tenant_id, keys=json.loads(entity.get("keys") or "[]"),
                      fetched_at=_utc(entity.get("fetched_at")), claimed_at=_utc(entity.get("claimed_at")),
                      unknown_kid_claimed_at=_utc(entity.get("unknown_kid_claimed_at")),
                      failed_at=_utc(entity.get("failed_at")), etag=tables.etag_of(entity))


def claim_fetch(entra_tenant_id: str, current: CachedKeys | None, now: datetime, *, unknown_kid: bool) -> bool:
    """Take the right to fetch the keys now; False when another instance changed the row first (it is fetching, or
    has just fetched)."""
    columns = {"PartitionKey": entra_tenant_id, "RowKey": ROW, "claimed_at": _utc(now)}
    if unknown_kid:
        columns["unknown_kid_claimed_at"] = _utc(now)
    try:
        if current is None:
            tables.insert(TABLE, {**columns, "keys": "[]"})
        else:
            tables.update(TABLE, columns, etag=current.etag)
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def save(entra_tenant_id: str, keys: list[dict], now: datetime) -> None:
    """Store a successful fetch (a merge: the claim columns stay)."""
    tables.upsert(TABLE, {"PartitionKey": entra_tenant_id, "RowKey": ROW,
                          "keys": json.dumps(keys, separators=(",", ":")), "fetched_at": _utc(now)})


def record_failure(entra_tenant_id: str, now: datetime) -> None:
    """Note a failed fetch (a merge: the cached keys and claims stay)."""
    tables.upsert(TABLE, {"PartitionKey": entra_tenant_id, "RowKey": ROW, "failed_at": _utc(now)})
