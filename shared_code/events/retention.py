"""Events are kept 30 days; the daily timer deletes older ones, oldest first, in transactions of 100 rows.

Deleting from the oldest end never makes a reader skip anything: a reader whose cursor points into the purged
range simply continues with the oldest event kept. The head row (`eventlog`) is never deleted, so sequence
numbers keep counting up even when every event of a quiet tenant has been purged.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from azure.data.tables import TableTransactionError

from shared_code.errors import GatehouseError
from shared_code.events import log
from shared_code.storage import tables

KEEP = timedelta(days=30)
_PER_TRANSACTION = 100
_log = logging.getLogger("gatehouse")


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
    for start in range(0, len(keys), _PER_TRANSACTION):
        tables.transact(log.TABLE, [("delete", {"PartitionKey": tenant_id, "RowKey": key})
                                    for key in keys[start:start + _PER_TRANSACTION]])
    return sum(1 for key in keys if key.startswith(log.EVENT))


def purge_every_tenant(*, now: datetime | None = None) -> dict:
    from shared_code.storage.tenants import iter_tenant_records

    purged, failed = 0, 0
    for record in iter_tenant_records(select=["PartitionKey", "RowKey"]):
        try:
            purged += purge_tenant(record["tenant_id"], now=now)
        except (GatehouseError, TableTransactionError) as error:  # the next day's run finishes the job
            failed += 1
            _log.warning("purging the events of %s failed: %s", record["tenant_id"], error)
    return {"purged": purged, "failed_tenants": failed}
