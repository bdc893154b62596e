"""Webhooks for the product (operator key): the endpoint, its secret, a test delivery; and delivery itself.

    PUT    /api/tenants/{tenant}/webhook                 {"url": …} → 200 {"url", "secret": "whsec_…"}
    GET    /api/tenants/{tenant}/webhook                 → 200 status, delivery position, last attempts
    DELETE /api/tenants/{tenant}/webhook                 → 204
    POST   /api/tenants/{tenant}/webhook/rotate-secret   → 200 a new secret; the old one signs too for 24 h
    POST   /api/tenants/{tenant}/webhook/test            → 200 {"delivered", "attempt"}
    queue  webhook_delivery on `webhook-deliveries` (connection GATEHOUSE_QUEUES): one tenant's log consumers,
           the end-of-trust reactions (shared_code/trust.py) and the delivery run
    timer  webhook_sweep on %WEBHOOK_SWEEP_SCHEDULE%: a rotating shard of the endpoints (each at least hourly)
           checked on `gatehouse-jobs`: a message for every tenant whose endpoint is behind (whatever happened
           to its messages)
"""
from __future__ import annotations

import json
import logging

import azure.functions as func

from functions._background import background
from functions._http import bearer_token, handler, json_response, read_json
from shared_code import tenants
from shared_code.webhooks import queue

bp = func.Blueprint()
log = logging.getLogger("gatehouse")
WEBHOOK = "tenants/{tenant}/webhook"

queue.install()  # after a commit that wrote events, wake delivery (off the request path)


def _tenant_id(req: func.HttpRequest) -> str:
    tenants.authenticate_operator(bearer_token(req))
    return tenants.get_tenant(req.route_params.get("tenant", "")).tenant_id


@bp.function_name("put_webhook")
@bp.route(route=WEBHOOK, methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def put_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    tenant_id = _tenant_id(req)
    return json_response(endpoint.put(tenant_id, read_json(req)).model_dump(mode="json", exclude_none=True))


@bp.function_name("get_webhook")
@bp.route(route=WEBHOOK, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def get_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    return json_response(endpoint.status(_tenant_id(req)).model_dump(mode="json"))


@bp.function_name("delete_webhook")
@bp.route(route=WEBHOOK, methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def delete_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    endpoint.delete(_tenant_id(req))
    return func.HttpResponse(status_code=204)


@bp.function_name("rotate_webhook_secret")
@bp.route(route=WEBHOOK + "/rotate-secret", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def rotate_webhook_secret(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    return json_response(endpoint.rotate_secret(_tenant_id(req)).model_dump(mode="json", exclude_none=True))


@bp.function_name("test_webhook")
@bp.route(route=WEBHOOK + "/test", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def test_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import delivery

    return json_response(delivery.test_delivery(_tenant_id(req)).model_dump(mode="json", exclude_none=True))


@bp.function_name("webhook_delivery")
@bp.queue_trigger(arg_name="message", queue_name=queue.QUEUE, connection="GATEHOUSE_QUEUES")
@background()
def webhook_delivery(message: func.QueueMessage) -> None:
    """One tenant's log consumers: the end-of-trust reactions (shared_code/trust.py), then the delivery run. An
    exception leaves the message to the host's retries (then the poison queue, and the sweeps); a retry or
    leftover work is a new message, delayed until it is due."""
    from shared_code import trust
    from shared_code.webhooks import delivery

    tenant_id = queue.tenant_of(message.get_body())
    if tenant_id is None:
        log.warning("webhook delivery message without a tenant; dropped")
        return
    reacted = trust.CONSUMER.run_if_behind(tenant_id)  # sessions to end come before webhooks to post
    result = delivery.run(tenant_id)
    log.info(json.dumps({"event": "webhook_delivery", "tenant": tenant_id, "outcome": result.outcome,
                         "delivered": result.delivered, "retry_in": result.retry_in,
                         "trust": reacted.outcome, "trust_handled": reacted.handled}))
    if reacted.outcome == "busy" and result.outcome != "more":
        queue.enqueue(tenant_id, 5)  # another run holds the reactions' lease: look again once it may be done
    if result.outcome == "more" or reacted.outcome == "more":
        queue.enqueue(tenant_id)
    elif result.outcome == "retry":
        queue.enqueue(tenant_id, result.retry_in or 0)
    elif result.outcome == "waiting" and (result.retry_in or 0) <= 5:
        # The retry's own message came a moment early (another instance's clock): keep it. Earlier ones are
        # other messages (a new event during the wait); the retry has its message, and the sweep backs it up.
        queue.enqueue(tenant_id, result.retry_in or 0)


@bp.function_name("webhook_sweep")
@bp.timer_trigger(schedule="%WEBHOOK_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False)
@background()
def webhook_sweep(timer: func.TimerRequest) -> None:
    """The next shard of endpoints (all of them within 45 runs) onto `gatehouse-jobs`; each message's work
    enqueues a delivery for every endpoint behind its log, whatever happened to its earlier messages."""
    from shared_code.jobs import catalog

    result = catalog.start_webhook_check()
    log.info(json.dumps({"event": "webhook_sweep", "endpoints": result.walked, "messages": result.messages}))
