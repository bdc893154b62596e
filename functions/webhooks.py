"""Webhooks for the product (operator key): the endpoint, its secret, a test delivery; and delivery itself.

    PUT    /api/tenants/{tenant}/webhook                 {"url": …} → 200 {"url", "secret": "whsec_…"}
    GET    /api/tenants/{tenant}/webhook                 → 200 status, delivery position, last attempts
    DELETE /api/tenants/{tenant}/webhook                 → 204
    POST   /api/tenants/{tenant}/webhook/rotate-secret   → 200 a new secret; the old one signs too for 24 h
    POST   /api/tenants/{tenant}/webhook/test            → 200 {"delivered", "attempt"}
    queue  webhook_delivery on `webhook-deliveries` (connection GATEHOUSE_QUEUES): one tenant's log consumers,
           the end-of-trust reactions (shared_code/sign_in/trust.py) and the delivery run
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
from functions._openapi import describe
from shared_code.tenancy import tenants
from shared_code.openapi.operations import OPERATOR, errors, models, no_content, ok
from shared_code.webhooks import queue

bp = func.Blueprint()
log = logging.getLogger("gatehouse")
WEBHOOK = "tenants/{tenant}/webhook"
webhook = models("shared_code.webhooks.endpoint")  # named for the OpenAPI document, imported only when it is built
ERRORS = errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")
DELIVERY = ("Each event of the Events API is POSTed as its JSON (the `Event` schema), in sequence order, at least once "
            "(dedupe by `webhook-id`, the event id), signed per Standard Webhooks 1.0: headers `webhook-id`, "
            "`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` (two, "
            "space-separated, for 24 h after a rotation). A 2xx is delivered; anything else is retried with "
            "exponential backoff and jitter (a 429/503 Retry-After is honoured) for up to 3 days, then the endpoint is "
            "disabled; a 410 disables it at once. A PUT re-enables it and delivery resumes where it stopped. Timeout "
            "10 s per attempt.")

queue.install()  # after a commit that wrote events, wake delivery (off the request path)


def _tenant_id(req: func.HttpRequest) -> str:
    tenants.authenticate_operator(bearer_token(req))
    return tenants.get_tenant(req.route_params.get("tenant", "")).tenant_id


@bp.function_name("put_webhook")
@bp.route(route=WEBHOOK, methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Set the tenant's webhook endpoint (creates it with a new secret, or changes its URL and "
                  "re-enables it)", tag="Events", security=OPERATOR, request=webhook.WebhookRequest,
          responses={**ok(webhook.WebhookSecret, "The endpoint and its signing secret."),
                     **errors("NotFound", "Unprocessable")},
          description=DELIVERY)
@handler()
def put_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    tenant_id = _tenant_id(req)
    return json_response(endpoint.put(tenant_id, read_json(req)).model_dump(mode="json", exclude_none=True))


@bp.function_name("get_webhook")
@bp.route(route=WEBHOOK, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The webhook: enabled or why not, delivery position, the last attempts", tag="Events",
          security=OPERATOR, responses={**ok(webhook.WebhookStatus, "The endpoint's state (never its secret)."),
                                        **ERRORS})
@handler()
def get_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    return json_response(endpoint.status(_tenant_id(req)).model_dump(mode="json"))


@bp.function_name("delete_webhook")
@bp.route(route=WEBHOOK, methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Remove the webhook (the Events API keeps every event)", tag="Events", security=OPERATOR,
          responses={**no_content("Removed."), **ERRORS})
@handler()
def delete_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    endpoint.delete(_tenant_id(req))
    return func.HttpResponse(status_code=204)


@bp.function_name("rotate_webhook_secret")
@bp.route(route=WEBHOOK + "/rotate-secret", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="A new signing secret; the previous one keeps signing too for 24 h", tag="Events",
          security=OPERATOR,
          responses={**ok(webhook.WebhookSecret, "The new secret and when the old one stops signing."), **ERRORS})
@handler()
def rotate_webhook_secret(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import endpoint

    return json_response(endpoint.rotate_secret(_tenant_id(req)).model_dump(mode="json", exclude_none=True))


@bp.function_name("test_webhook")
@bp.route(route=WEBHOOK + "/test", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Send one signed `webhook.test` delivery now", tag="Events", security=OPERATOR,
          responses={**ok(webhook.TestDelivery, "What the receiver answered."), **ERRORS})
@handler()
def test_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.webhooks import delivery

    return json_response(delivery.test_delivery(_tenant_id(req)).model_dump(mode="json", exclude_none=True))


@bp.function_name("webhook_delivery")
@bp.queue_trigger(arg_name="message", queue_name=queue.QUEUE, connection="GATEHOUSE_QUEUES")
@background()
def webhook_delivery(message: func.QueueMessage) -> None:
    """One tenant's log consumers: the end-of-trust reactions (shared_code/sign_in/trust.py), then the delivery run,
    which a failure of the reactions does not hold up (webhooks would otherwise stop with them). An
    exception leaves the message to the host's retries (then the poison queue, and the sweeps); a retry or
    leftover work is a new message, delayed until it is due."""
    from shared_code.sign_in import trust
    from shared_code.webhooks import delivery

    tenant_id, types = queue.wake_of(message.get_body())
    if tenant_id is None:
        log.warning("webhook delivery message without a tenant; dropped")
        return
    # Sessions to end come before webhooks to post. A consumer the message's types are not for stays asleep: the
    # trust_check sweep moves the end of trust past such events in one run, not one run per commit.
    failed: Exception | None = None
    try:
        reacted = trust.CONSUMER.run(tenant_id) if trust.CONSUMER.wakes_for(types) else None
    except Exception as error:  # noqa: BLE001 - raised below, once the webhooks had their run
        reacted, failed = None, error
    result = delivery.run(tenant_id) if delivery.CONSUMER.wakes_for(types) else None
    log.info(json.dumps({"event": "webhook_delivery", "tenant": tenant_id,
                         "outcome": result.outcome if result else "asleep", "delivered": result.handled if result else 0,
                         "retry_in": result.retry_in if result else None,
                         "trust": reacted.outcome if reacted else "asleep",
                         "trust_handled": reacted.handled if reacted else 0}))
    # Each consumer's follow-up stands alone, so one's never hides the other's (a due retry is not dropped).
    if reacted and reacted.outcome == "more":
        queue.enqueue(tenant_id)
    elif reacted and reacted.outcome == "busy":
        queue.enqueue(tenant_id, 5)  # another run holds the reactions' lease: look again once it may be done
    if result and result.outcome == "more":
        queue.enqueue(tenant_id)
    elif result and result.outcome == "retry":
        queue.enqueue(tenant_id, result.retry_in or 0)
    elif result and result.outcome == "waiting" and (result.retry_in or 0) <= 5:
        # The retry's own message came a moment early (another instance's clock): keep it. Earlier ones are
        # other messages (a new event during the wait); the retry has its message, and the sweep backs it up.
        queue.enqueue(tenant_id, result.retry_in or 0)
    if failed is not None:
        raise failed  # the host retries the message (then the poison queue); the reactions' position stayed put


@bp.function_name("webhook_sweep")
@bp.timer_trigger(schedule="%WEBHOOK_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False)
@background()
def webhook_sweep(timer: func.TimerRequest) -> None:
    """The next shard of endpoints (all of them within 45 runs) onto `gatehouse-jobs`; each message's work
    enqueues a delivery for every endpoint behind its log, whatever happened to its earlier messages."""
    from shared_code.jobs import catalog

    result = catalog.start_webhook_check()
    log.info(json.dumps({"event": "webhook_sweep", "endpoints": result.walked, "messages": result.messages}))
