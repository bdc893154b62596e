"""The Events API for the product that embeds Gatehouse.

    GET /api/tenants/{tenant}/events?after=<cursor>&limit=<n>   (operator key or the tenant's admin key)
        → 200 {"events": [...], "next": "<cursor>"}, oldest first, limit 1-500 (default 100)
    timer events_purge (daily): deletes events older than 30 days, fanned out over `gatehouse-jobs`
    timer events_outbox_sweep (every 10 min): outbox events a failed request left behind, into the log
"""
from __future__ import annotations

import azure.functions as func

from functions._background import background
from functions._http import admin_tenant, handler, json_response
from functions._openapi import describe
from shared_code.openapi.operations import ADMIN_OR_OPERATOR, errors, later, models, ok

bp = func.Blueprint()
event_api = models("shared_code.events.api")  # named for the OpenAPI document, imported only when it is built


def _api():
    from shared_code.events import api  # pydantic: loaded when the OpenAPI document is built, not at import

    return api


@bp.function_name("list_events")
@bp.route(route="tenants/{tenant}/events", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The tenant's directory events, oldest first, from a cursor", tag="Events",
          security=ADMIN_OR_OPERATOR,
          responses={**ok(event_api.EventPage, "Up to `limit` events after the cursor, and the cursor to read on."),
                     **errors("BadRequest", "NotFound", "Unprocessable")},
          parameters=later(lambda: [
              {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 64},
               "description": "A `next` this API returned; without it, reading starts at the oldest event kept "
                              "(events are kept 30 days)."},
              {"name": "limit", "in": "query",
               "schema": {"type": "integer", "minimum": 1, "maximum": _api().MAX_LIMIT,
                          "default": _api().DEFAULT_LIMIT}}]),
          description=later(lambda: "A reader that keeps `next` and polls sees every event exactly once, in "
                                    "`sequence` order, even while changes are being written (sequence numbers are "
                                    "handed out in commit order). Event types and their `data`: "
                                    + ", ".join(_api().EVENT_TYPES)
                                    + ". Webhooks deliver the same events with the same ids."))
@handler()
def list_events(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.events import api

    tenant = admin_tenant(req, operator_too=True)
    page = api.page(tenant.tenant_id, req.params.get("after"), req.params.get("limit"))
    return json_response(page.model_dump(mode="json"))


@bp.function_name("events_purge")
@bp.timer_trigger(schedule="0 20 4 * * *", arg_name="timer", run_on_startup=False)
@background()
def events_purge(timer: func.TimerRequest) -> None:
    """Daily: every tenant onto `gatehouse-jobs`; each message's work deletes events older than 30 days."""
    from shared_code.jobs import catalog

    catalog.start(catalog.EVENTS_PURGE)


@bp.function_name("events_outbox_sweep")
@bp.timer_trigger(schedule="0 */10 * * * *", arg_name="timer", run_on_startup=False)
@background()
def events_outbox_sweep(timer: func.TimerRequest) -> None:
    """Every 10 minutes: tenants whose outbox holds events a failed request left behind (events/outbox.py)
    onto `gatehouse-jobs`, to be appended to their log. Off the webhook sweep's per-minute path: the outbox
    is found by a scan over RowKeys, which costs more as tables grow."""
    from shared_code.jobs import catalog

    for job in catalog.OUTBOXES:  # one per table with an outbox
        catalog.start(job)
    catalog.start(catalog.TRUST_CHECK)  # a consumers' message lost after its commit (shared_code/sign_in/trust.py)
