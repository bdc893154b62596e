"""The fan-out machinery: walk a job's tenants onto the queue, and do one message's unit of work.

Messages on `gatehouse-jobs` (JSON, base64 on the wire):

* `{"job", "run", "walk": {"after": <tenant id>, "left": <n or null>, "walked": n, "messages": n}}` — go on
  walking after `after` (the last tenant already enqueued; "" for the first); `left` bounds a rotating job's
  shard.
* `{"job", "run", "tenants": [...], "retry": n, "failed_before": [...]}` — do the job's work for these
  tenants; `retry` counts the times a tenant was put back after failing inside a shard; `failed_before`
  names those with a failure record, deleted when their work succeeds.

The walk reads `PartitionKey gt @after` in key order, so the tenant id *is* the table's continuation token:
a continuation message survives any deploy, and what was enqueued before a cut is never enqueued again.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from shared_code.platform import queues
from shared_code.platform.errors import GatehouseError
from shared_code.storage import jobs as job_store
from shared_code.storage import tables
from shared_code.tenancy.tenants import TENANT_ID

QUEUE = "gatehouse-jobs"
POISON = QUEUE + queues.POISON_SUFFIX
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (tests/test_host_json.py keeps them equal)
WALK_SECONDS = 60.0  # one walk step (a timer, or a continuation message) enqueues for at most this long
UNIT_SECONDS = 60.0  # one message's work starts no new tenant after this; the rest goes back on the queue
STORAGE_SECONDS = 240.0  # the storage deadline of one timer or queue invocation (functionTimeout is 10 min)
PAGE = 1000  # rows per page of a walk (Table Storage's maximum)
MAX_TENANTS_PER_MESSAGE = 100
_log = logging.getLogger("gatehouse.jobs")


@dataclass(frozen=True)
class Source:
    """Where a job finds its tenants: rows of `table` in PartitionKey order, `PartitionKey gt @after` first
    in `filter`; `wanted` keeps the tenants that have work (e.g. a metadata URL)."""

    table: str
    filter: str
    parameters: dict = field(default_factory=dict)
    select: tuple[str, ...] = ("PartitionKey",)
    wanted: Callable[[dict], bool] = lambda row: True


@dataclass(frozen=True)
class Job:
    """A background job: its source of tenants, one tenant's work, and how many tenants one message carries
    (small enough that a message's work ends well inside its budget; 1 where the work waits on the network)."""

    name: str
    source: Source
    work: Callable[[str, datetime], object]
    per_message: int = 25
    on_end: Callable[[str, bool, int], None] | None = None  # told where a walk ended (rotating jobs)


@dataclass
class WalkResult:
    run_id: str
    walked: int
    messages: int
    done: bool
    after: str


class UnitFailed(Exception):
    """A one-tenant message whose work failed: raised so that the host retries it (then the poison queue)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _send(message: dict) -> None:
    queues.send(QUEUE, message)


# ---- the walk ---------------------------------------------------------------------------------------------------

def start(job: Job, *, limit: int | None = None, after: str = "", budget: float = WALK_SECONDS,
          clock: Callable[[], float] = time.monotonic) -> WalkResult:
    """A new run of `job` (its timer): record it, then walk from `after` (default: the first tenant)."""
    run_id = uuid.uuid4().hex[:12]
    job_store.start_run(job.name, run_id, walked=0, messages=0, walk_done=False)
    return walk(job, run_id, after=after, left=limit, budget=budget, clock=clock, hand_over_on_failure=True)


def walk(job: Job, run_id: str, *, after: str = "", left: int | None = None, walked: int = 0, messages: int = 0,
         budget: float = WALK_SECONDS, clock: Callable[[], float] = time.monotonic,
         hand_over_on_failure: bool = False) -> WalkResult:
    """Enqueue the tenants after `after`, `job.per_message` to a message, until the source ends, `left`
    tenants were walked, or `budget` seconds are spent (then a continuation message goes on from here).
    `job.on_end(after, wrapped, walked)` is told where the walk ended: `after` the tenant a bounded walk
    stopped at, or "" with `wrapped` when it reached the end of the source.

    A walk step in a queue message that fails is retried by the host from the message's `after`. The timer's
    own step has no such retry (`hand_over_on_failure`): when it fails midway it leaves a continuation
    message from the last tenant it enqueued, so that the run goes on instead of waiting for the next timer."""
    started = clock()
    source = job.source
    shard: list[str] = []
    last = enqueued = after  # the last tenant seen; the last one whose message is sent
    cut = limited = False

    def flush() -> None:
        nonlocal shard, messages, enqueued
        if shard:
            message = {"job": job.name, "run": run_id, "tenants": shard}
            if failing.intersection(shard):  # their failure records go when their work succeeds
                message["failed_before"] = sorted(failing.intersection(shard))
            _send(message)
            messages += 1
            shard = []
        enqueued = last

    try:
        failing = {failure.tenant_id for failure in job_store.failures(job.name)}  # usually none: one read
        rows = tables.query(source.table, source.filter, {**source.parameters, "after": after},
                            select=list(source.select), page_size=PAGE)
        for row in rows:
            tenant_id = row["PartitionKey"]
            if tenant_id == last:
                continue  # several rows of one tenant (a scan over RowKeys): one tenant
            last = tenant_id
            walked += 1
            if source.wanted(row):
                shard.append(tenant_id)
                if len(shard) >= job.per_message:
                    flush()
            if left is not None:
                left -= 1
                if left <= 0:
                    limited = True
                    break
            if clock() - started >= budget:
                cut = True
                break
        flush()
    except Exception:
        if hand_over_on_failure:
            _send({"job": job.name, "run": run_id,
                   "walk": {"after": enqueued, "left": left, "walked": walked, "messages": messages}})
        raise
    done = not cut
    if cut:  # everything up to `last` is on the queue: the next step starts after it
        _send({"job": job.name, "run": run_id,
               "walk": {"after": last, "left": left, "walked": walked, "messages": messages}})
    elif job.on_end is not None:
        job.on_end(last if limited else "", not limited, walked)
    job_store.record_run(job.name, run_id, walked=walked, messages=messages, walk_done=done, walk_after=last)
    _log.info(json.dumps({"event": "job_walk", "job": job.name, "run": run_id, "walked": walked,
                          "messages": messages, "done": done, "after": last}))
    return WalkResult(run_id, walked, messages, done, last)


# ---- a unit of work ---------------------------------------------------------------------------------------------

@dataclass
class UnitResult:
    done: list[str]
    failed: list[str]
    put_back: list[str]


def describe(error: BaseException) -> str:
    """What an operator reads about a failure: the domain error's own message, else the error's type."""
    if isinstance(error, GatehouseError):
        return error.message
    return getattr(error, "message", None) or type(error).__name__


def work(job: Job, message: dict, *, dequeue_count: int = 1, now: datetime | None = None,
         budget: float = UNIT_SECONDS, clock: Callable[[], float] = time.monotonic) -> UnitResult:
    """Do `job`'s work for the message's tenants. Tenants not started within `budget` go back on the queue
    as a new message; a failing tenant of a shard goes back alone; a failing lone tenant raises UnitFailed."""
    started = clock()
    tenants = message["tenants"]
    retry = _count(message.get("retry"))
    failed_before = message.get("failed_before") or []
    result = UnitResult([], [], [])
    errors: dict[str, str] = {}
    for index, tenant_id in enumerate(tenants):
        if index and clock() - started >= budget:
            result.put_back = tenants[index:]
            _send({"job": job.name, "run": message.get("run"), "tenants": result.put_back, "retry": retry,
                   "failed_before": [t for t in failed_before if t in result.put_back]})
            break
        try:
            job.work(tenant_id, now or _now())
        except Exception as error:  # noqa: BLE001 - one tenant's failure must not stop the others
            errors[tenant_id] = describe(error)
            result.failed.append(tenant_id)
            _log.warning(json.dumps({"event": "job_tenant_failed", "job": job.name, "tenant": tenant_id,
                                     "attempt": dequeue_count + retry, "error": errors[tenant_id]}))
        else:
            result.done.append(tenant_id)
    for tenant_id in result.done:  # a tenant that failed before succeeded: its failure row is history now
        if dequeue_count > 1 or retry or tenant_id in failed_before:
            job_store.clear_failure(job.name, tenant_id)
    if not result.failed:
        return result
    if len(tenants) == 1:
        tenant_id = tenants[0]
        poisoned = dequeue_count >= MAX_DEQUEUE_COUNT
        job_store.record_failure(job.name, tenant_id, attempt=dequeue_count + retry, error=errors[tenant_id],
                                 poisoned=poisoned)
        raise UnitFailed(f"{job.name} failed for {tenant_id}: {errors[tenant_id]}"
                         + (f" (moved to {POISON})" if poisoned else ""))
    for tenant_id in result.failed:  # each alone now: its retries and its poison message are its own
        job_store.record_failure(job.name, tenant_id, attempt=1 + retry, error=errors[tenant_id], poisoned=False)
        _send({"job": job.name, "run": message.get("run"), "tenants": [tenant_id], "retry": retry + 1})
    return result


# ---- a message --------------------------------------------------------------------------------------------------

def _count(value) -> int:
    """A count from a message: a non-negative int, else 0 (a message is input like any other)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def valid_tenants(value) -> list[str] | None:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_TENANTS_PER_MESSAGE:
        return None
    if not all(isinstance(item, str) and TENANT_ID.match(item) for item in value):
        return None
    return value


def handle(jobs: dict[str, Job], body: bytes | str, *, dequeue_count: int = 1, budget: float | None = None,
           clock: Callable[[], float] = time.monotonic) -> str:
    """One message of `gatehouse-jobs`: a walk step or a unit of work. A message that is not ours is dropped
    (logged), never retried. Answers what it was ("walk", "work", "dropped")."""
    message = queues.decode(body)
    job = jobs.get(message.get("job")) if message and isinstance(message.get("job"), str) else None
    if job is None:
        _log.warning("a gatehouse-jobs message that names no known job was dropped")
        return "dropped"
    step = message.get("walk")
    if isinstance(step, dict):
        after, left = step.get("after"), step.get("left")
        if not isinstance(after, str) or not (left is None or isinstance(left, int)):
            _log.warning("a malformed %s walk message was dropped", job.name)
            return "dropped"
        walk(job, str(message.get("run") or "")[:32], after=after, left=left, walked=_count(step.get("walked")),
             messages=_count(step.get("messages")), budget=WALK_SECONDS if budget is None else budget,
             clock=clock)
        return "walk"
    tenants = valid_tenants(message.get("tenants"))
    if tenants is None:
        _log.warning("a malformed %s work message was dropped", job.name)
        return "dropped"
    failed_before = message.get("failed_before")
    failed_before = valid_tenants(failed_before) if failed_before else []
    run = str(message.get("run") or "")[:32]
    work(job, {**message, "run": run, "tenants": tenants, "failed_before": failed_before or []},
         dequeue_count=dequeue_count,
         budget=UNIT_SECONDS if budget is None else budget, clock=clock)
    return "work"
