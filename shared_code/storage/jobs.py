"""The background jobs' own rows (`jobs` table; platform rows, not a tenant's): what an operator reads.

* `run` / `<job>`: the job's latest run: when it started, how far its walk over tenants got, how many
  messages it enqueued, when the walk finished (a walk cut by its budget goes on from a queue message).
* `failure` / `<job>:<tenant>`: a tenant whose unit of work failed: attempts, the last error (a message for a
  person, never a stack trace), whether its message went to the poison queue. Deleted when a retry succeeds.
* `cursor` / `<job>`: where a rotating job (the webhook sweep's endpoint check) goes on next time.

Every write here is one round trip, and none is on a tenant's unit-of-work path unless that unit failed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from azure.core.exceptions import ResourceNotFoundError

from shared_code.storage import tables

TABLE = "jobs"
RUN, FAILURE, CURSOR = "run", "failure", "cursor"


def _utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _clean(entity: dict) -> dict:
    return {key: value for key, value in entity.items() if key not in ("PartitionKey", "RowKey")}


# ---- runs -------------------------------------------------------------------------------------------------------

def start_run(job: str, run_id: str, **fields) -> None:
    """A new run of the job: its row starts afresh, stamped now (in the format of every other time here)."""
    record_run(job, run_id, started_at=_utc(), **fields)


def record_run(job: str, run_id: str, **fields) -> None:
    """Merge `fields` into the job's latest-run row (a new run_id starts it afresh)."""
    entity = {"PartitionKey": RUN, "RowKey": job, "run_id": run_id, "updated_at": _utc(), **fields}
    tables.upsert(TABLE, entity, replace="started_at" in fields)


def runs() -> list[dict]:
    return [{"job": row["RowKey"], **_clean(row)} for row in tables.query(TABLE, "PartitionKey eq @pk", {"pk": RUN})]


# ---- failures ------------------------------------------------------------------------------------------------------

@dataclass
class JobFailure:  # the operator reads these as they are: GET /api/jobs (shared_code/bodies/jobs.py)
    """A tenant whose work failed and has not succeeded since; `poisoned` once its message is in
    `gatehouse-jobs-poison` (no more automatic retries: the job's next run tries the tenant again)."""

    job: str
    tenant_id: str
    attempts: int
    error: str
    failed_at: str
    poisoned: bool


def record_failure(job: str, tenant_id: str, *, attempt: int, error: str, poisoned: bool) -> None:
    tables.upsert(TABLE, {"PartitionKey": FAILURE, "RowKey": f"{job}:{tenant_id}", "job": job, "tenant": tenant_id,
                          "attempts": attempt, "error": error[:500], "failed_at": _utc(), "poisoned": poisoned},
                  replace=True)


def clear_failure(job: str, tenant_id: str) -> None:
    try:
        tables.delete(TABLE, FAILURE, f"{job}:{tenant_id}")
    except ResourceNotFoundError:
        pass


def failures(job: str | None = None) -> list[JobFailure]:
    if job:
        rows = tables.partition_range(TABLE, FAILURE, job + ":")
    else:
        rows = tables.query(TABLE, "PartitionKey eq @pk", {"pk": FAILURE})
    return [JobFailure(row["job"], row["tenant"], int(row.get("attempts") or 0), row.get("error") or "",
                       row.get("failed_at") or "", bool(row.get("poisoned"))) for row in rows]


# ---- cursors -------------------------------------------------------------------------------------------------------

def cursor(job: str) -> dict:
    return _clean(tables.get(TABLE, CURSOR, job) or {})


def save_cursor(job: str, **fields) -> None:
    tables.upsert(TABLE, {"PartitionKey": CURSOR, "RowKey": job, **fields}, replace=True)
