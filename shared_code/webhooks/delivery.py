"""One tenant's webhook delivery run: the events after the endpoint's position, POSTed one at a time, in
sequence order, each until the receiver answers 2xx (at least once: a receiver dedupes by `webhook-id`).

A log consumer (`Delivery`, on shared_code/events/consumer.py's loop). Order per tenant: a run first takes the
endpoint row's lease (`lease_owner`, `lease_until`, written with the row's ETag, so two workers cannot both take
it); only the holder posts, and it moves `delivered` forward after each 2xx, conditionally again. A worker killed
mid-run leaves the lease to expire (LEASE): the next run re-sends the event that was in flight, never one after it.

A failure (no answer within 10 s, a refused address, any non-2xx) stops the run: the event is tried again
after an exponential backoff with jitter (5 s doubling to 1 h, each delay drawn from its upper half), or
after the `Retry-After` of a 429/503. A 410 Gone disables the endpoint (GET …/webhook says so); so do three
days of failures of one event. Re-enabling (PUT) resumes from the same position, so nothing is skipped while
the events are kept (30 days).
"""
from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Callable
from email.utils import parsedate_to_datetime

from azure.core.exceptions import ResourceModifiedError

from shared_code.platform import outbound
from shared_code.events import log as event_log
from shared_code.events.consumer import RUN_BUDGET, ConsumerRun, LogConsumer, Stop
from shared_code.events.shapes import INTERNAL_TYPES
from shared_code.storage import tables
from shared_code.webhooks import endpoint, queue
from shared_code.webhooks.endpoint import DeliveryAttempt, now_iso, parse_iso

TIMEOUT = 10.0  # a POST started at the end of the run's budget (RUN_BUDGET) still ends inside the lease (LEASE)
BASE_DELAY, MAX_DELAY = 5.0, 3600.0
MAX_RETRY_AFTER = 6 * 3600.0
GIVE_UP_AFTER = timedelta(days=3)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def backoff(attempts: int) -> float:
    delay = min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempts - 1))
    return delay / 2 + random.random() * delay / 2


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(MAX_RETRY_AFTER, max(1.0, seconds))


def post(row: dict, tenant_id: str, event: dict) -> DeliveryAttempt:
    """POST one event, signed with every secret that signs now (two during a rotation)."""
    from standardwebhooks import Webhook

    started, at = time.perf_counter(), _utcnow()
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    common = {"at": now_iso(at), "event_id": event["id"], "sequence": event.get("sequence")}
    signing = endpoint.signing_secrets(row, tenant_id, at)
    if not signing:
        return DeliveryAttempt(**common, outcome="failed", ms=0, message=(
            "The webhook secret cannot be read (SESSION_SIGNING_KEY changed?): PUT the webhook again for a new one."))
    headers = {"Content-Type": "application/json", "User-Agent": "Gatehouse-Webhooks/1",
               "webhook-id": event["id"], "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": " ".join(Webhook(s).sign(event["id"], at, body) for s in signing)}
    try:
        answer = outbound.request("POST", row["url"], what="The webhook URL", timeout=TIMEOUT,
                                  body=body.encode(), headers=headers)
    except outbound.OutboundError as error:
        return DeliveryAttempt(**common, outcome="retrying", message=error.message,
                               ms=round((time.perf_counter() - started) * 1000))
    attempt = DeliveryAttempt(**common, status=answer.status, ms=round((time.perf_counter() - started) * 1000),
                              outcome="delivered" if 200 <= answer.status < 300 else "retrying")
    attempt._retry_after = answer.headers.get("retry-after") if answer.status in (429, 503) else None  # type: ignore[attr-defined]
    return attempt


def record_attempts(tenant_id: str, attempts: list[DeliveryAttempt]) -> None:
    """Add attempts to the row's recent list (the test delivery, outside a run)."""
    for _ in range(8):
        row = endpoint.read(tenant_id)
        if row is None:
            return
        try:
            endpoint.merge(tenant_id, row["etag"], {"last_attempts": _recent(row, attempts)})
            return
        except ResourceModifiedError:
            continue


def test_delivery(tenant_id: str) -> endpoint.TestDelivery:
    """One signed `webhook.test` event now (not in the event log; no sequence), and what the receiver said."""
    row = endpoint.existing(tenant_id)
    event = {"id": event_log.new_event_id(), "type": "webhook.test", "tenant": tenant_id,
             "occurred_at": now_iso(), "sequence": None, "data": {"message": "A test delivery from Gatehouse."}}
    attempt = post(row, tenant_id, event)
    record_attempts(tenant_id, [attempt])
    return endpoint.TestDelivery(delivered=attempt.outcome == "delivered", attempt=attempt)


def _recent(row: dict, attempts: list[DeliveryAttempt]) -> list[dict]:
    newest = [a.model_dump(exclude_none=True) for a in reversed(attempts)]
    return (newest + list(row.get("last_attempts") or []))[:endpoint.KEPT_ATTEMPTS]


class Delivery(LogConsumer):
    """Webhook delivery as a log consumer (shared_code/events/consumer.py runs the loop): its position is the
    endpoint row's `delivered` and its lease is on that row; it runs only for an enabled endpoint whose retry is
    due; it POSTs every event but the internal ones and writes `delivered` after each 2xx; a failed POST stops
    the run until the retry (`_failed`)."""

    column = "delivered"
    checkpoint_each = True  # each POST may take 10 s: a 2xx is never sent again because a later one failed

    @property
    def row(self) -> str:
        return endpoint.ROW

    def read(self, tenant_id: str) -> dict | None:
        return endpoint.read(tenant_id)

    def write(self, tenant_id: str, etag: str, fields: dict) -> str:
        return endpoint.merge(tenant_id, etag, fields)

    def open(self, tenant_id: str, owner: str, now: datetime) -> dict | ConsumerRun:
        row = self.read(tenant_id)
        if row is None:
            return ConsumerRun("none")
        if not row.get("enabled"):
            return ConsumerRun("disabled")
        due = parse_iso(row.get("next_attempt_at"))
        if due and due > now:
            return ConsumerRun("waiting", retry_in=(due - now).total_seconds())
        return self.caught_up(tenant_id, row) or self.take(tenant_id, row, owner, now)

    def wants(self, event: dict) -> bool:
        return event["type"] not in INTERNAL_TYPES  # the log's own consumers' (shapes.py): never posted

    def wakes_for(self, types: frozenset[str] | None) -> bool:
        return types is None or bool(types - INTERNAL_TYPES)

    def step(self, tenant_id: str, event: dict, row: dict, now: Callable[[], datetime]) -> dict | Stop:
        attempt = post(row, tenant_id, event)
        if attempt.outcome == "delivered":
            return {"attempts": 0, "failing_since": None, "next_attempt_at": None,
                    "last_attempts": _recent(row, [attempt])}
        return _failed(row, attempt, now())


CONSUMER = Delivery("webhooks")


def run(tenant_id: str, *, budget: float = RUN_BUDGET, clock: Callable[[], datetime] = _utcnow) -> ConsumerRun:
    """Deliver what is pending for one tenant, in order, for up to `budget` seconds. `clock` is the time the
    lease, the retry schedule and the give-up are reckoned in (tests pass their own). `handled` counts the
    events delivered."""
    return CONSUMER.run(tenant_id, budget=budget, now=clock)


def _failed(row: dict, attempt: DeliveryAttempt, now: datetime) -> Stop:
    if attempt.status == 410 or attempt.outcome == "failed":
        reason = ("The receiver answered 410 Gone." if attempt.status == 410 else attempt.message)
        attempt.outcome = "disabled"
        return Stop("disabled", {"enabled": False, "disabled_reason": reason, "disabled_at": now_iso(now),
                                 "next_attempt_at": None, "last_attempts": _recent(row, [attempt])})
    failing_since = parse_iso(row.get("failing_since")) or now
    if now - failing_since >= GIVE_UP_AFTER:
        attempt.outcome = "disabled"
        return Stop("disabled", {
            "enabled": False, "disabled_at": now_iso(now), "next_attempt_at": None,
            "disabled_reason": "Deliveries failed for 3 days. PUT the webhook again to resume from event "
                               f"{attempt.sequence} (events are kept 30 days).",
            "last_attempts": _recent(row, [attempt])})
    attempts = int(row.get("attempts") or 0) + 1
    delay = retry_after(getattr(attempt, "_retry_after", None), now) or backoff(attempts)
    return Stop("retry", {"attempts": attempts, "failing_since": now_iso(failing_since),
                          "next_attempt_at": now_iso(now + timedelta(seconds=delay)),
                          "last_attempts": _recent(row, [attempt])}, retry_in=delay)


def waiting(row: dict, now: datetime | None = None) -> bool:
    """Whether an endpoint row has a live lease or a retry scheduled later (its own message will come)."""
    now = now or _utcnow()
    lease_until, next_at = parse_iso(row.get("lease_until")), parse_iso(row.get("next_attempt_at"))
    return bool((lease_until and lease_until > now) or (next_at and next_at > now))


def wake_if_behind(tenant_id: str, now: datetime | None = None) -> bool:
    """The sweep's check of one endpoint (two point reads): enabled, not waiting, and behind the tenant's log
    → a delivery message, whatever happened to the earlier ones. Answers whether it enqueued one."""
    row = tables.get(endpoint.TABLE, tenant_id, endpoint.ROW,
                     select=["enabled", "delivered", "next_attempt_at", "lease_until"])
    if row is None or not row.get("enabled") or waiting(row, now):
        return False
    if event_log.last_sequence(tenant_id) <= int(row.get("delivered") or 0):
        return False
    queue.enqueue(tenant_id)
    return True
