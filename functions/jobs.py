"""The background jobs' queue function and the operator's view of them.

    queue  run_job on `gatehouse-jobs` (connection GATEHOUSE_QUEUES): one walk step or one unit of work
           (shared_code/jobs/); a failure is retried by the host, then moved to `gatehouse-jobs-poison`
    GET    /api/jobs (operator key) → 200 {"runs": [...], "failures": [...]}

The timers that start the jobs stay beside their features (sso_setup, events, domain_audit, webhooks); each
only walks its tenants onto the queue.
"""
from __future__ import annotations

import azure.functions as func

from functions._background import background
from functions._http import bearer_token, handler, json_response
from functions._openapi import describe
from shared_code.tenancy import tenants
from shared_code.openapi.operations import OPERATOR, errors, models, ok
from shared_code.jobs import fanout

bp = func.Blueprint()


@bp.function_name("run_job")
@bp.queue_trigger(arg_name="message", queue_name=fanout.QUEUE, connection="GATEHOUSE_QUEUES")
@background()
def run_job(message: func.QueueMessage) -> None:
    from shared_code.jobs import catalog

    catalog.handle(message.get_body(), dequeue_count=message.dequeue_count or 1)


@bp.function_name("list_jobs")
@bp.route(route="jobs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The background jobs: each job's latest run and every tenant whose work is failing",
          tag="Operator", security=OPERATOR,
          responses={**ok(models("shared_code.bodies.jobs").JobsReport, "Runs and open failures.")},
          description="Each job's timer walks the tenants onto the Storage Queue `gatehouse-jobs`; a failing tenant "
                      "is retried, then its message goes to `gatehouse-jobs-poison` (`poisoned`). A failure is "
                      "listed until the tenant's work succeeds again (docs/scaling.md).")
@handler()
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.jobs import JobRun, JobsReport
    from shared_code.storage import jobs as job_store

    tenants.authenticate_operator(bearer_token(req))
    runs = [JobRun(**run) for run in job_store.runs()]
    return json_response(JobsReport(runs=runs, failures=job_store.failures()))
