"""The operator's view of the background jobs (`GET /api/jobs`): each job's latest run and every open failure."""
from __future__ import annotations

from shared_code.bodies import Answer
from shared_code.storage.jobs import JobFailure  # a stored failure is what the operator reads


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


class JobsReport(Answer):
    runs: list[JobRun]
    failures: list[JobFailure]
