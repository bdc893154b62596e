"""Events of changes stored outside the directory table (the tenant row: SSO status, the IdP's certificates;
a domain audit run; a deleted client), brought into the tenant's one event log and its one sequence.

A transaction can span only one table and partition, and the sequence lives in the directory table (log.py).
So such a change writes its event into an outbox row *in its own transaction* (`outbox:<event id>`, same
table and partition as the change: no change without its event), and the outbox is then appended to the log:
at once by the request that made the change, and by the outbox sweep for anything a failure left behind (a
timer every 10 minutes that finds the tenants with outbox rows and fans their flush out over `gatehouse-jobs`:
`outbox_tenants`, `outbox_audits` and `outbox_oidc` in shared_code/jobs/catalog.py). Appending writes `eventid:<id>` in the log's transaction, so an outbox event appended twice (the
append succeeded, the outbox delete did not) is refused by the store instead of showing up twice. The event
keeps its id and `occurred_at` (when the change was written); its sequence is its place in the log.
"""
from __future__ import annotations

import json
import logging

from azure.data.tables import TableTransactionError

from shared_code.events import log
from shared_code.events.shapes import Change
from shared_code.storage import tables

OUTBOX = "outbox:"
TABLES = (tables.TENANTS, tables.AUDITS, tables.OIDC)
_log = logging.getLogger("gatehouse")


def stage(tenant_id: str, changes: list[Change]) -> list[tuple]:
    """Operations that put `changes` into the outbox of a transaction in another of the tenant's tables."""
    stamp = log.iso()
    return [("create", {"PartitionKey": tenant_id, "RowKey": OUTBOX + log.new_event_id(), "type": change.type,
                        "occurred_at": stamp, "data": json.dumps(change.data, separators=(",", ":"))})
            for change in changes]


def flush(table: str, tenant_id: str) -> int:
    """Append this tenant's outbox in `table` to its event log, oldest first; answers how many were appended."""
    appended = 0
    for row in tables.partition_range(table, tenant_id, OUTBOX):
        event_id = row["RowKey"][len(OUTBOX):]
        marker = ("create", {"PartitionKey": tenant_id, "RowKey": log.APPENDED + event_id, "kind": "eventmarker"})
        try:
            log.transact(tenant_id, [marker], [Change(row["type"], json.loads(row["data"]))],
                         occurred_at=row["occurred_at"], ids=[event_id])
            appended += 1
        except TableTransactionError as error:
            if "EntityAlreadyExists" not in str(getattr(error, "error_code", "")):
                raise  # anything but "appended before" is retried by the next flush
        tables.delete(table, tenant_id, row["RowKey"])
    return appended


def flush_after_change(table: str, tenant_id: str) -> None:
    """The request's own flush: a failure here is left to the sweep (the event is safe in the outbox)."""
    try:
        flush(table, tenant_id)
    except Exception as error:  # noqa: BLE001 - the change is written; the sweep appends its event
        _log.warning("events of %s wait in the outbox of %s for the sweep: %s", tenant_id, table, error)
