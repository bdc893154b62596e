"""Tenant rows: one row per tenant (PartitionKey = tenant id, RowKey = "tenant") in the `tenants` table."""
from __future__ import annotations

import json
from typing import Any, Callable, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableTransactionError, UpdateMode

from shared_code.errors import Conflict, StorageUnavailable
from shared_code.events import outbox, shapes
from shared_code.storage import tables

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
            from shared_code.errors import NotFound

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


def iter_tenant_records(select: list[str] | None = None) -> Iterator[dict]:
    """Every tenant (the timer's walk over all tenants)."""
    for entity in tables.query(tables.TENANTS, "RowKey eq @row", {"row": ROW}, select=select):
        yield _decode(entity)
