"""The Events API for the product that embeds Gatehouse.

    GET /api/tenants/{tenant}/events?after=<cursor>&limit=<n>   (operator key or the tenant's admin key)
        → 200 {"events": [...], "next": "<cursor>"}, oldest first, limit 1-500 (default 100)
    timer events_purge (daily): deletes events older than 30 days
"""
from __future__ import annotations

import json
import logging

import azure.functions as func

from functions._http import admin_tenant, handler, json_response

bp = func.Blueprint()
log = logging.getLogger("gatehouse")


@bp.function_name("list_events")
@bp.route(route="tenants/{tenant}/events", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def list_events(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.events import api

    tenant = admin_tenant(req, operator_too=True)
    page = api.page(tenant.tenant_id, req.params.get("after"), req.params.get("limit"))
    return json_response(page.model_dump(mode="json"))


@bp.function_name("events_purge")
@bp.timer_trigger(schedule="0 20 4 * * *", arg_name="timer", run_on_startup=False)
def events_purge(timer: func.TimerRequest) -> None:
    from shared_code.events import retention

    log.info(json.dumps({"event": "events_purge", **retention.purge_every_tenant()}))
