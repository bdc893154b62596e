"""Domain audit runs, in the `audits` table.

One partition per tenant (PartitionKey = tenant id), newest run first:
  run:<inverted ms>-<random>             a run's header: trigger, status (running → complete | failed), times,
                                         the domains it judged by, counts, the reason of a failure
  outside:<run id>:<00000>               the run's outside employees, a JSON array per row, in email order

A run is stored before it starts (`running`) and completed afterwards, so a run cut short stays visible as
unfinished instead of vanishing. The header is completed in the same transaction as the last outside rows
(after any earlier ones): a reader trusts only the `outside_rows` rows a completed header names, so a
half-written list is never shown.

Table Storage holds at most 64 KiB in one property and 1 MiB in one entity (4 MiB in one transaction): each
`outside` row carries one array of at most ~60 KB (UTF-16, how the service counts), rows are written 25 to a
transaction, and a run keeps at most `MAX_STORED_OUTSIDE` entries (the header keeps the true count).
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from azure.data.tables import UpdateMode

from shared_code.events import outbox, shapes
from shared_code.storage import tables

TABLE = tables.AUDITS
RUN, OUTSIDE = "run:", "outside:"

RUNNING, COMPLETE, FAILED = "running", "complete", "failed"

MAX_STORED_OUTSIDE = 10_000
# The service counts string properties in UTF-16 and refuses one over 64 KiB (65,536 bytes); stay a
# little below, so no rounding in how a row is measured can push it over.
ROW_LIMIT_UTF16_BYTES = 60_000
ROWS_PER_TRANSACTION = 25  # 25 rows of <= 60 KB stay well inside a transaction's 4 MiB
_MAX_TEXT = 256  # one outside entry's texts are cut to this, so any entry fits a row with room to spare
_DELETES_PER_TRANSACTION = 100  # Table Storage's limit of operations in one transaction
_INVERSION_BASE = 10 ** 13  # milliseconds since 1970 stay below this until the year 2286


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_key(moment: datetime) -> str:
    """`<inverted ms>-<random>`: the newest sorts first; the random part separates runs of the same millisecond."""
    inverted = _INVERSION_BASE - 1 - int(moment.timestamp() * 1000)
    return f"{inverted:013d}-{secrets.token_hex(4)}"


@dataclass
class AuditRun:
    """One audit of one tenant, as stored. `outside` is loaded only for completed runs."""

    tenant_id: str
    run_id: str
    trigger: str
    status: str
    started_at: str
    domains: dict
    finished_at: str | None = None
    checked: int | None = None
    allowed: int | None = None
    outside_count: int | None = None
    outside_rows: int = 0
    outside: list[dict] | None = field(default=None, repr=False)
    reason: str | None = None


# ---- runs ------------------------------------------------------------------------------------------------

def start_run(tenant_id: str, trigger: str, domains: dict, *, started_at: datetime | None = None) -> AuditRun:
    """Store a new run as `running` (before any work, so an interrupted run is still on record)."""
    moment = started_at or _now()
    run = AuditRun(tenant_id=tenant_id, run_id=_new_key(moment), trigger=trigger, status=RUNNING,
                   started_at=_iso(moment), domains=dict(domains))
    tables.insert(TABLE, {
        "PartitionKey": tenant_id, "RowKey": RUN + run.run_id, "run_id": run.run_id, "trigger": trigger,
        "status": RUNNING, "started_at": run.started_at,
        "domains": json.dumps(run.domains, separators=(",", ":"), ensure_ascii=False),
    })
    return run


def complete_run(run: AuditRun, *, checked: int, allowed: int, outside: list[dict]) -> AuditRun:
    """Write the outside list and mark the run complete. The header's update rides in the transaction of the
    last rows (one round trip for a typical tenant), so the run reads as complete only with its whole list."""
    stored = [_bounded(entry) for entry in outside[:MAX_STORED_OUTSIDE]]
    rows = [("upsert", {"PartitionKey": run.tenant_id, "RowKey": f"{OUTSIDE}{run.run_id}:{index:05d}",
                        "entries": text}) for index, text in enumerate(_pack(stored))]
    finished = _iso(_now())
    header = ("update", {
        "PartitionKey": run.tenant_id, "RowKey": RUN + run.run_id, "status": COMPLETE, "finished_at": finished,
        "checked": checked, "allowed": allowed, "outside_count": len(outside), "outside_rows": len(rows),
    }, {"mode": UpdateMode.MERGE})
    batches = [rows[start:start + ROWS_PER_TRANSACTION] for start in range(0, len(rows), ROWS_PER_TRANSACTION)]
    if not batches:
        batches.append([])
    batches[-1].append(header)  # one small operation more than the rows' share of a transaction
    completed = shapes.Change(shapes.DOMAIN_AUDIT_COMPLETED, {
        "run_id": run.run_id, "trigger": run.trigger, "finished_at": finished,
        "domains": run.domains.get("domains", []), "checked": checked, "allowed": allowed,
        "outside_count": len(outside),
        # The first 500 (by email): an event is one 64 KiB property; GET .../domain-audit has them all.
        "outside_ids": [entry.get("id") for entry in stored[:500] if isinstance(entry, dict)],
        "outside_ids_truncated": len(outside) > 500})
    batches[-1] += outbox.stage(run.tenant_id, [completed])  # its event, in the header's transaction
    for batch in batches:
        tables.transact(TABLE, batch)
    outbox.flush_after_change(TABLE, run.tenant_id)
    run.status, run.finished_at = COMPLETE, finished
    run.checked, run.allowed, run.outside_count, run.outside_rows = checked, allowed, len(outside), len(rows)
    run.outside = stored
    return run


def fail_run(run: AuditRun, reason: str) -> AuditRun:
    finished = _iso(_now())
    tables.update(TABLE, {"PartitionKey": run.tenant_id, "RowKey": RUN + run.run_id, "status": FAILED,
                          "finished_at": finished, "reason": reason[:2000]}, etag=None)
    run.status, run.finished_at, run.reason = FAILED, finished, reason[:2000]
    return run


def latest_run(tenant_id: str) -> AuditRun | None:
    """The newest run (the first row of a range read), with its outside list when it is complete."""
    header = next(iter(tables.partition_range(TABLE, tenant_id, RUN, page_size=1)), None)
    if header is None:
        return None
    run = _run_from(tenant_id, header)
    if run.status == COMPLETE:
        run.outside = _read_outside(tenant_id, run.run_id, run.outside_rows)
    return run


def prune_runs(tenant_id: str, keep: int) -> int:
    """Delete all but the newest `keep` runs of a tenant (headers and outside rows); returns how many went."""
    headers = [row["RowKey"] for row in tables.partition_range(TABLE, tenant_id, RUN, select=["RowKey"])]
    old = headers[keep:]
    for key in old:
        run_id = key[len(RUN):]
        keys = [row["RowKey"] for row in tables.partition_range(TABLE, tenant_id, f"{OUTSIDE}{run_id}:",
                                                                 select=["RowKey"])]
        # Outside rows first: a header is never left pointing at rows that are gone.
        _delete(tenant_id, keys + [key])
    return len(old)


def _read_outside(tenant_id: str, run_id: str, rows: int) -> list[dict]:
    if not rows:
        return []
    entries: list[dict] = []
    for index, row in enumerate(tables.partition_range(TABLE, tenant_id, f"{OUTSIDE}{run_id}:",
                                                       select=["entries"], page_size=1000)):
        if index >= rows:
            break
        entries.extend(json.loads(row["entries"]))
    return entries


def _run_from(tenant_id: str, row: dict) -> AuditRun:
    return AuditRun(
        tenant_id=tenant_id, run_id=row["run_id"], trigger=row.get("trigger") or "", status=row.get("status") or "",
        started_at=row.get("started_at") or "", domains=json.loads(row.get("domains") or "{}"),
        finished_at=row.get("finished_at"), checked=row.get("checked"), allowed=row.get("allowed"),
        outside_count=row.get("outside_count"), outside_rows=int(row.get("outside_rows") or 0),
        reason=row.get("reason"))


def _bounded(entry: dict) -> dict:
    return {key: value[:_MAX_TEXT] if isinstance(value, str) else value for key, value in entry.items()}


def _utf16_bytes(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass"))


def _pack(entries: list[dict]) -> Iterable[str]:
    """JSON arrays of whole entries, each within ROW_LIMIT_UTF16_BYTES."""
    chunk: list[str] = []
    size = 4  # the brackets, in UTF-16
    for entry in entries:
        text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
        cost = _utf16_bytes(text) + 2  # and its comma
        if chunk and size + cost > ROW_LIMIT_UTF16_BYTES:
            yield "[" + ",".join(chunk) + "]"
            chunk, size = [], 4
        chunk.append(text)
        size += cost
    if chunk:
        yield "[" + ",".join(chunk) + "]"


def _delete(partition: str, keys: list[str]) -> None:
    for start in range(0, len(keys), _DELETES_PER_TRANSACTION):
        tables.transact(TABLE, [("delete", {"PartitionKey": partition, "RowKey": key})
                                for key in keys[start:start + _DELETES_PER_TRANSACTION]])


def raw_rows(tenant_id: str) -> list[dict[str, Any]]:
    """Every row of a tenant's audit partition as stored (tests and the benchmark check the size limits)."""
    return list(tables.query(TABLE, "PartitionKey eq @pk", {"pk": tenant_id}))
