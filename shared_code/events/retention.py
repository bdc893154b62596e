"""Events are kept 30 days; the daily job (jobs/catalog.py, one tenant at a time) deletes older ones, oldest
first, in transactions of 100 rows.

Deleting from the oldest end never makes a reader skip anything: a reader whose cursor points into the purged
range simply continues with the oldest event kept. The head row (`eventlog`) is never deleted, so sequence
numbers keep counting up even when every event of a quiet tenant has been purged.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared_code.events import log
from shared_code.storage import tables

KEEP = timedelta(days=30)


def cutoff(now: datetime | None = None) -> str:
    moment = (now or datetime.now(timezone.utc)) - KEEP
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def purge_tenant(tenant_id: str, *, now: datetime | None = None) -> int:
    """Delete this tenant's events older than 30 days (with their outbox markers); answers how many."""
    keys: list[str] = []
    for entity in log.iter_old(tenant_id, cutoff(now)):
        keys.append(entity["RowKey"])
        if entity.get("outbox"):
            keys.append(log.APPENDED + entity["id"])
    tables.delete_rows(log.TABLE, tenant_id, keys)
    return sum(1 for key in keys if key.startswith(log.EVENT))
