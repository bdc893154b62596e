"""The operator's view of the background jobs (`GET /api/jobs`): each job's latest run and every open failure."""
from __future__ import annotations

from shared_code.bodies import Answer


class JobRun(Answer):
    """A job's latest run: its walk over tenants onto the queue (the work itself follows on the queue)."""

    job: str
    run_id: str
    started_at: str | None = None
    walked: int = 0
    messages: int = 0
    walk_done: bool = False
    walk_after: str | None = None
    updated_at: str | None = None


class JobFailure(Answer):
    """A tenant whose work failed and has not succeeded since; `poisoned` once its message is in
    `gatehouse-jobs-poison` (no more automatic retries: the job's next run tries the tenant again)."""

    job: str
    tenant_id: str
    attempts: int
    error: str
    failed_at: str
    poisoned: bool


class JobsReport(Answer):
    runs: list[JobRun]
    failures: list[JobFailure]
