"""One tenant's webhook delivery run: the events after the endpoint's position, POSTed one at a time, in
sequence order, each until the receiver answers 2xx (at least once: a receiver dedupes by `webhook-id`).

Order per tenant: a run first takes the endpoint row's lease (`lease_owner`, `lease_until`, written with the
row's ETag, so two workers cannot both take it); only the holder posts, and it moves `delivered` forward after
each 2xx, conditionally again. A worker killed mid-run leaves the lease to expire (LEASE): the next run
re-sends the event that was in flight, never one after it.

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
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable
from email.utils import parsedate_to_datetime

from azure.core.exceptions import ResourceModifiedError

from shared_code.platform import outbound
from shared_code.events import log as event_log
from shared_code.events.shapes import INTERNAL_TYPES
from shared_code.storage import tables
from shared_code.webhooks import endpoint, queue
from shared_code.webhooks.endpoint import DeliveryAttempt, now_iso, parse_iso

TIMEOUT = 10.0
LEASE = timedelta(seconds=30)  # extended after every delivery; a dead worker's lease ends within this
RUN_BUDGET = 15.0  # seconds of starting posts per run: the last one (10 s at most) still ends inside the lease
BATCH = 50
BASE_DELAY, MAX_DELAY = 5.0, 3600.0
MAX_RETRY_AFTER = 6 * 3600.0
GIVE_UP_AFTER = timedelta(days=3)


@dataclass
class RunResult:
    """`idle` (nothing left), `more` (budget spent, events left), `retry` (after `retry_in` s), `waiting`
    (a retry is already scheduled), `busy` (another worker holds the lease), `disabled`, `none` (no endpoint)."""

    outcome: str
    delivered: int = 0
    retry_in: float | None = None


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


class _LostLease(Exception):
    pass


def run(tenant_id: str, *, budget: float = RUN_BUDGET, clock: Callable[[], datetime] = _utcnow) -> RunResult:
    """Deliver what is pending for one tenant, in order, for up to `budget` seconds. `clock` is the time the
    lease, the retry schedule and the give-up are reckoned in (tests pass their own)."""
    row = endpoint.read(tenant_id)
    if row is None:
        return RunResult("none")
    if not row.get("enabled"):
        return RunResult("disabled")
    now = clock()
    due = parse_iso(row.get("next_attempt_at"))
    if due and due > now:
        return RunResult("waiting", retry_in=(due - now).total_seconds())
    lease_until = parse_iso(row.get("lease_until"))
    if lease_until and lease_until > now:
        return RunResult("busy", retry_in=(lease_until - now).total_seconds())
    owner = uuid.uuid4().hex
    try:
        row["etag"] = endpoint.merge(tenant_id, row["etag"], {"lease_owner": owner,
                                                              "lease_until": now_iso(now + LEASE)})
    except ResourceModifiedError:
        return RunResult("busy")
    row["lease_owner"] = owner

    def save(fields: dict) -> None:
        """Write delivery state as the lease holder; a config change meanwhile (PUT) is merged, not lost."""
        for _ in range(8):
            try:
                row["etag"] = endpoint.merge(tenant_id, row["etag"], fields)
                row.update(fields)
                return
            except ResourceModifiedError:
                fresh = endpoint.read(tenant_id)
                if fresh is None or fresh.get("lease_owner") != owner:
                    raise _LostLease() from None
                row.clear()
                row.update(fresh)
        raise _LostLease()

    deadline = time.monotonic() + budget
    delivered = 0
    try:
        while True:
            events = event_log.read(tenant_id, int(row.get("delivered") or 0), BATCH)
            if not events:
                save({"lease_owner": None, "lease_until": None})
                return RunResult("idle", delivered)
            for event in events:
                if time.monotonic() >= deadline:
                    save({"lease_owner": None, "lease_until": None})
                    return RunResult("more", delivered)
                if event["type"] in INTERNAL_TYPES:  # the log's own consumers' (shapes.py): never posted
                    save({"delivered": event["sequence"], "lease_until": now_iso(_utcnow() + LEASE)})
                    continue
                attempt = post(row, tenant_id, event)
                now = clock()
                if attempt.outcome == "delivered":
                    delivered += 1
                    save({"delivered": event["sequence"], "attempts": 0, "failing_since": None,
                          "next_attempt_at": None, "lease_until": now_iso(now + LEASE),
                          "last_attempts": _recent(row, [attempt])})
                    continue
                return _failed(row, save, attempt, now, delivered)
    except _LostLease:
        return RunResult("busy", delivered)
    except BaseException:
        try:  # storage failing mid-run: hand the lease back if it can be, so the next run need not wait it out
            save({"lease_owner": None, "lease_until": None})
        except Exception:  # noqa: BLE001 - it expires on its own
            pass
        raise


def _failed(row: dict, save, attempt: DeliveryAttempt, now: datetime, delivered: int) -> RunResult:
    release = {"lease_owner": None, "lease_until": None}
    if attempt.status == 410 or attempt.outcome == "failed":
        reason = ("The receiver answered 410 Gone." if attempt.status == 410 else attempt.message)
        attempt.outcome = "disabled"
        save({**release, "enabled": False, "disabled_reason": reason, "disabled_at": now_iso(now),
              "next_attempt_at": None, "last_attempts": _recent(row, [attempt])})
        return RunResult("disabled", delivered)
    failing_since = parse_iso(row.get("failing_since")) or now
    if now - failing_since >= GIVE_UP_AFTER:
        attempt.outcome = "disabled"
        save({**release, "enabled": False, "disabled_at": now_iso(now), "next_attempt_at": None,
              "disabled_reason": "Deliveries failed for 3 days. PUT the webhook again to resume from event "
                                 f"{attempt.sequence} (events are kept 30 days).",
              "last_attempts": _recent(row, [attempt])})
        return RunResult("disabled", delivered)
    attempts = int(row.get("attempts") or 0) + 1
    delay = retry_after(getattr(attempt, "_retry_after", None), now) or backoff(attempts)
    save({**release, "attempts": attempts, "failing_since": now_iso(failing_since),
          "next_attempt_at": now_iso(now + timedelta(seconds=delay)), "last_attempts": _recent(row, [attempt])})
    return RunResult("retry", delivered, retry_in=delay)


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
