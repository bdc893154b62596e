"""The event log: per tenant, in the tenant's partition of the `directory` table, so that an event is written
in the same entity-group transaction as the directory change it describes (all or nothing).

Rows (next to the directory's own, see shared_code/storage/directory.py):
  eventlog               the head: `sequence`, the last sequence number written
  event:<sequence>       one event (16 digits, so RowKey order is sequence order): id, type, occurred_at,
                         sequence, data (JSON)
  eventid:<event id>     marks an outbox event as appended (shared_code/events/outbox.py), so appending twice
                         is refused by the store

Why a reader can never skip an event. A transaction that writes events k+1 … k+n also replaces the head row
from k to k+n *on the condition that its ETag is still the one read when k was current* (If-Match). So the
transaction that writes sequence k+1 can commit only while the head says k, i.e. after the transaction that
wrote k committed and before any other writer's: sequence numbers are handed out in commit order, with no
gaps, and a number can never be committed "late" below one already visible. A reader that has seen event s
has therefore seen (or will never see, because it was purged) every event below s, and reading `RowKey > s`
next time misses nothing and repeats nothing. Writers that lose the race re-read the head and try again; the
directory change itself is in the same transaction, so it is retried with it, never written without it.

No extra round trip on the request path: the head's sequence and ETag are kept in memory per tenant and the
transaction answers the head's new ETag, so a writer reads the head only the first time this instance writes
for a tenant, or after another instance moved it (the conditional write fails, nothing is written, re-read).
Writers of one tenant on one instance take turns (a lock per tenant) instead of racing one another for it.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timezone
from typing import Any, Iterator

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode

from shared_code.platform.errors import StorageUnavailable
from shared_code.events.shapes import Change
from shared_code.storage import tables

TABLE = tables.DIRECTORY
HEAD = "eventlog"
EVENT = "event:"
APPENDED = "eventid:"
DIGITS = 16
ATTEMPTS = 8

# Called with the tenant id and the set of event types after a commit that wrote events (the webhook notifier,
# functions/_reactions.py's collector); must not block.
after_commit: list = []

_heads: dict[str, tuple[int, str | None]] = {}  # tenant → (last sequence, head ETag; None: no head row yet)
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def event_key(sequence: int) -> str:
    return f"{EVENT}{sequence:0{DIGITS}d}"


def new_event_id() -> str:
    """`evt_` + creation time in microseconds + 72 random bits: unique, and the same on every delivery."""
    return f"evt_{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def iso(moment: datetime | None = None) -> str:
    """A time as the log and its consumers write it: UTC, milliseconds, `Z` (now, unless given)."""
    return (moment or datetime.now(timezone.utc)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """A time `iso` wrote (None for none)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _lock(tenant_id: str) -> threading.Lock:
    lock = _locks.get(tenant_id)
    if lock is None:
        with _locks_guard:
            lock = _locks.setdefault(tenant_id, threading.Lock())
    return lock


def read_head(tenant_id: str) -> tuple[int, str | None]:
    entity = tables.get(TABLE, tenant_id, HEAD, select=["sequence"])
    if not entity:
        return 0, None
    return int(entity["sequence"]), tables.etag_of(entity)


def last_sequence(tenant_id: str) -> int:
    return read_head(tenant_id)[0]


def _event_row(tenant_id: str, sequence: int, change: Change, occurred_at: str, event_id: str | None) -> dict:
    row = {"PartitionKey": tenant_id, "RowKey": event_key(sequence), "kind": "event",
           "id": event_id or new_event_id(), "type": change.type, "occurred_at": occurred_at,
           "sequence": sequence, **data_columns(change.data)}
    if event_id:
        row["outbox"] = True  # came through the outbox: its `eventid:` marker goes when it is purged
    return row


DATA_CHUNK = 30000  # characters per column: a string property holds at most 32K UTF-16 characters
DATA_COLUMNS = ["data"] + [f"data_{n}" for n in range(1, 16)]  # an employee in thousands of groups fits


def data_columns(data: dict) -> dict[str, str]:
    """An event's data as JSON, split over `data`, `data_1`, … when longer than one column holds."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    parts = [text[i:i + DATA_CHUNK] for i in range(0, len(text), DATA_CHUNK)] or [""]
    if len(parts) > len(DATA_COLUMNS):
        raise ValueError("event data too large")
    return {column: part for column, part in zip(DATA_COLUMNS, parts)}


def _operations(tenant_id: str, head: tuple[int, str | None], changes: list[Change], occurred_at: str,
                ids: list[str | None]) -> list[tuple]:
    sequence, etag = head
    ops: list[tuple] = [("create", _event_row(tenant_id, sequence + i, change, occurred_at, ids[i - 1]))
                        for i, change in enumerate(changes, 1)]
    new_head = {"PartitionKey": tenant_id, "RowKey": HEAD, "kind": "eventlog", "sequence": sequence + len(changes)}
    if etag is None:
        ops.append(("create", new_head))
    else:
        ops.append(("update", new_head, {"mode": UpdateMode.REPLACE, "etag": etag,
                                         "match_condition": MatchConditions.IfNotModified}))
    return ops


def transact(tenant_id: str, ops: list[tuple], changes: list[Change], *, occurred_at: str | None = None,
             ids: list[str | None] | None = None) -> list:
    """One transaction in the tenant's directory partition: `ops` plus the events of `changes` and the head.
    Answers the results of `ops` only. A failure of `ops` themselves raises as `tables.transact` does (the
    caller maps it); a head moved by another instance is re-read and the whole transaction tried again."""
    if not changes:
        return tables.transact(TABLE, ops)
    occurred_at = occurred_at or iso()
    ids = ids or [None] * len(changes)
    with _lock(tenant_id):
        for _ in range(ATTEMPTS):
            head = _heads.get(tenant_id)
            if head is None:
                head = read_head(tenant_id)
            try:
                results = tables.transact(TABLE, ops + _operations(tenant_id, head, changes, occurred_at, ids))
            except TableTransactionError as error:
                # Nothing was written. The caller's own operation failed (the caller maps it), or the head
                # moved because another instance wrote: then re-read it and try again.
                if _failed_index(error) in range(len(ops)):
                    raise
                fresh = read_head(tenant_id)
                _heads[tenant_id] = fresh
                if fresh != head:
                    continue
                raise
            except BaseException:
                _heads.pop(tenant_id, None)  # an answer lost in transit: the write may have happened
                raise
            _heads[tenant_id] = (head[0] + len(changes), (results[-1] or {}).get("etag"))
            types = frozenset(change.type for change in changes)
            for hook in after_commit:
                hook(tenant_id, types)
            return results[:len(ops)]
    raise StorageUnavailable("This tenant's events are being written by several instances at once; please retry.",
                             retry_after=1)


def _failed_index(error: TableTransactionError) -> int | None:
    """The index of the operation the service refused ("<index>:" starts its message), None if unsaid
    (the SDK's own `index` falls back to 0, which would blame the caller's first operation)."""
    head, colon, _ = str(getattr(error, "message", "") or "").partition(":")
    return int(head) if colon and head.strip().isdigit() else None


def prime(tenant_id: str) -> None:
    """Read the tenant's head now (what an instance's first write for a tenant does anyway)."""
    _heads[tenant_id] = read_head(tenant_id)


def prime_known() -> None:
    """Re-read the heads of every tenant this instance has written for (tests that count round trips)."""
    for tenant_id in list(_heads):
        prime(tenant_id)


def forget_heads() -> None:
    """Drop the cached heads (tests that rewrite storage behind the app's back)."""
    _heads.clear()


# --- reading ------------------------------------------------------------------------------------------------

def event_from(entity: dict, tenant_id: str) -> dict[str, Any]:
    """An event as the Events API and webhooks show it."""
    return {"id": entity["id"], "type": entity["type"], "tenant": tenant_id, "occurred_at": entity["occurred_at"],
            "sequence": int(entity["sequence"]),
            "data": json.loads("".join(entity.get(column) or "" for column in DATA_COLUMNS))}


_COLUMNS = ["id", "type", "occurred_at", "sequence", *DATA_COLUMNS]


def read(tenant_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` events with a sequence above `after`, oldest first (one range query)."""
    rows = tables.query(TABLE, "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi",
                        {"pk": tenant_id, "lo": event_key(after), "hi": EVENT + "\uffff"},
                        select=_COLUMNS, page_size=limit)
    events = []
    for entity in rows:
        events.append(event_from(entity, tenant_id))
        if len(events) >= limit:
            break
    return events


def iter_old(tenant_id: str, before: str) -> Iterator[dict]:
    """Events that occurred before `before` (ISO time), oldest first; stops at the first younger one."""
    rows = tables.partition_range(TABLE, tenant_id, EVENT, select=["RowKey", "occurred_at", "id", "outbox"],
                                  page_size=1000)
    for entity in rows:
        if entity["occurred_at"] >= before:
            return
        yield entity
