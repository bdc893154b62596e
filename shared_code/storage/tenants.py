"""Tenant rows: one row per tenant (PartitionKey = tenant id, RowKey = "tenant") in the `tenants` table.

With shards (`TABLES_SHARDS`), a tenant's row lives in its own account like every other row of it; a new
tenant's id names the account it is placed on (`insert_new_tenant_record`, storage/accounts.py).
`iter_tenant_records` is THE walk over every tenant of every account (timers and fan-out jobs use it), in
tenant-id order.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableTransactionError, UpdateMode

from shared_code.platform.errors import Conflict, NotFound, StorageUnavailable
from shared_code.events import outbox, shapes
from shared_code.storage import accounts, tables

ROW = "tenant"
# Columns holding JSON documents (Table Storage has no nested types).
JSON_COLUMNS = ("idp", "domains", "mobile", "steps", "certificate_changes", "verified_domains")


def _decode(entity: dict) -> dict:
    record = {key: value for key, value in entity.items() if key not in ("PartitionKey", "RowKey")}
    for column in JSON_COLUMNS:
        if isinstance(record.get(column), str):
            record[column] = json.loads(record[column])
    record["tenant_id"] = entity["PartitionKey"]
    record["etag"] = tables.etag_of(entity)
    return record


def _encode(tenant_id: str, fields: dict[str, Any]) -> dict:
    entity: dict[str, Any] = {"PartitionKey": tenant_id, "RowKey": ROW}
    for key, value in fields.items():
        if key in ("tenant_id", "etag"):
            continue
        entity[key] = json.dumps(value, separators=(",", ":")) if key in JSON_COLUMNS and value is not None else value
    return entity


def insert_new_tenant_record(base_id: str, fields: dict[str, Any]) -> str:
    """Place a new tenant on an account (at random; its id, `base_id` marked with that account, says which
    forever) and write its row there; answers the id. An account that cannot take it now (unreachable,
    throttled) is left for another, so one shard's outage does not refuse new tenants; Conflict when the id
    exists already."""
    failed: set[int] = set()
    while True:
        tenant_id = accounts.place(base_id, avoid=frozenset(failed))
        try:
            insert_tenant_record(tenant_id, fields)
            return tenant_id
        except StorageUnavailable:
            failed.add(accounts.index_of(tenant_id))
            if len(failed) >= accounts.count():
                raise


def get_tenant_record(tenant_id: str) -> dict | None:
    entity = tables.get(tables.TENANTS, tenant_id, ROW)
    return _decode(entity) if entity else None


def insert_tenant_record(tenant_id: str, fields: dict[str, Any]) -> None:
    try:
        tables.insert(tables.TENANTS, _encode(tenant_id, fields))
    except ResourceExistsError as error:
        raise Conflict("A tenant with this id exists already.") from error


def modify_tenant_record(tenant_id: str, change: Callable[[dict], dict[str, Any]], attempts: int = 8) -> dict:
    """Read, apply `change` (which returns the columns to set, or raises), write with the ETag; retry on races."""
    for _ in range(attempts):
        record = get_tenant_record(tenant_id)
        if record is None:
            raise NotFound("No such tenant.")
        changes = change(record)
        if not changes:
            return record
        before = dict(record)
        record.update(changes)
        # Replace the whole row so that a column set to None is removed, not left behind by a merge.
        row = _encode(tenant_id, {key: value for key, value in record.items() if value is not None})
        events = shapes.tenant_changes(before, record)
        try:
            if events:  # the row and its events' outbox rows in one transaction (shared_code/events/outbox.py)
                result = tables.transact(tables.TENANTS, [
                    ("update", row, {"mode": UpdateMode.REPLACE, "etag": record["etag"],
                                     "match_condition": MatchConditions.IfNotModified}),
                    *outbox.stage(tenant_id, events)])[0]
            else:
                result = tables.update(tables.TENANTS, row, etag=record["etag"], replace=True)
        except ResourceModifiedError:
            continue
        except TableTransactionError as error:
            if "ConditionNotMet" in str(error.error_code) or "UpdateConditionNotSatisfied" in str(error.error_code):
                continue
            raise
        record["etag"] = (result or {}).get("etag", record["etag"])
        if events:
            outbox.flush_after_change(tables.TENANTS, tenant_id)
        return record
    raise StorageUnavailable("The tenant is being changed by several requests at once; please retry.", retry_after=1)


def iter_tenant_records(select: list[str] | None = None, after: str | None = None) -> Iterator[dict]:
    """Every tenant on every storage account, in tenant-id order (the walk of timers and fan-out jobs); with
    `after`, only tenants whose id sorts after it (to resume a walk where it stopped). One query per account,
    merged (storage/tables.py): no tenant list to keep in step, and a tenant on any shard is found."""
    if after is None:
        rows = tables.query(tables.TENANTS, "RowKey eq @row", {"row": ROW}, select=select)
    else:
        rows = tables.query(tables.TENANTS, "RowKey eq @row and PartitionKey gt @after", {"row": ROW, "after": after},
                            select=select)
    for entity in rows:
        yield _decode(entity)
