"""A consumer of a tenant's event log: what reacts to a change reads the log from a position it keeps, instead of
being called by the core that made the change (STYLE.md, "The event as the spine").

The core commits its change and the change's event together (log.py, outbox.py) and is done. A consumer —
webhook delivery (shared_code/webhooks/delivery.py) and the end-of-trust reactions (shared_code/sign_in/trust.py) —
runs later, from a queue message, and works through the events after its position:

* Woken by the same message: after every commit that wrote events, `webhooks/queue.py`'s notifier puts
  `{"tenant": …}` on `webhook-deliveries`; its queue function runs every consumer of that tenant. A lost
  message (the process died right after the commit) is found by a sweep: `wake_if_behind` compares the log's
  head with the consumer's position (two point reads) and enqueues the tenant again.
* Position and lease per tenant in one row (`webhooks` table, the tenant's partition, `consumer:<name>`),
  written with its ETag: only the lease holder handles events, one tenant's events in order. A worker killed
  mid-run leaves the lease to expire (`LEASE`); the next run handles again the event that was in flight.
* At least once: the position moves only after an event's handler returned, so an event may be handled twice
  and never skipped. Handlers are idempotent (by event id, or by what they end).
* A handler's `GatehouseError` (the reaction could not be done and never will be) is logged and the event
  passed; anything else (storage down, `StorageUnavailable` included) raises, leaves the position where it
  was and the message to the host's retries.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

from shared_code.platform.errors import GatehouseError, StorageUnavailable
from shared_code.events import log as event_log
from shared_code.storage import tables
from shared_code.webhooks import queue  # the queue whose message wakes a tenant's consumers

TABLE = "webhooks"  # the log consumers' positions: the webhook endpoint's row, and one row per other consumer
PREFIX = "consumer:"
LEASE = timedelta(seconds=30)
RUN_BUDGET = 15.0
BATCH = 50
_log = logging.getLogger("gatehouse.events.consumer")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class ConsumerRun:
    """`idle` (caught up), `more` (budget spent, events left), `busy` (another worker holds the lease)."""

    outcome: str
    handled: int = 0
    position: int = 0


@dataclass(frozen=True)
class LogConsumer:
    """A named reader of every tenant's log: `handle(tenant_id, event)` for each event whose type is in
    `types`; the others only move the position."""

    name: str
    types: frozenset[str]
    handle: Callable[[str, dict], object]

    @property
    def row(self) -> str:
        return PREFIX + self.name

    def position(self, tenant_id: str) -> int:
        entity = tables.get(TABLE, tenant_id, self.row, select=["position"])
        return int((entity or {}).get("position") or 0)

    def behind(self, tenant_id: str) -> bool:
        return event_log.last_sequence(tenant_id) > self.position(tenant_id)

    def wake_if_behind(self, tenant_id: str) -> bool:
        """The sweep's check: the log moved past the position → a message that runs the consumers."""
        if not self.behind(tenant_id):
            return False
        queue.enqueue(tenant_id)
        return True

    def run_if_behind(self, tenant_id: str, **options) -> ConsumerRun:
        """`run` when the log is ahead of the position, else `idle` at once: a queue message wakes every consumer
        of its tenant and most carry nothing for this one, so this costs two point reads instead of the lease
        taken and handed back around an empty read (four round trips)."""
        position = self.position(tenant_id)
        if event_log.last_sequence(tenant_id) <= position:
            return ConsumerRun("idle", 0, position)
        return self.run(tenant_id, **options)

    def _lease(self, tenant_id: str, owner: str, now: datetime) -> tuple[dict, str] | None:
        """Take the tenant's lease; answers (row, etag), or None when another worker holds it."""
        entity = tables.get(TABLE, tenant_id, self.row)
        fields = {"PartitionKey": tenant_id, "RowKey": self.row, "lease_owner": owner,
                  "lease_until": _iso(now + LEASE)}
        if entity is None:
            try:
                result = tables.insert(TABLE, {**fields, "position": 0})
            except ResourceExistsError:
                return None
            return {**fields, "position": 0}, result.get("etag")
        until = _parse(entity.get("lease_until"))
        if until and until > now and entity.get("lease_owner") != owner:
            return None
        try:
            result = tables.update(TABLE, fields, etag=tables.etag_of(entity))
        except ResourceModifiedError:
            return None
        return {**entity, **fields}, result.get("etag")

    def run(self, tenant_id: str, *, budget: float = RUN_BUDGET,
            clock: Callable[[], float] = time.monotonic) -> ConsumerRun:
        """Handle what is pending for one tenant, in order, for up to `budget` seconds (of `clock`)."""
        owner = uuid.uuid4().hex
        taken = self._lease(tenant_id, owner, _now())
        if taken is None:
            return ConsumerRun("busy")
        row, etag = taken
        position, handled, deadline = int(row.get("position") or 0), 0, clock() + budget

        def save(fields: dict) -> None:
            nonlocal etag
            result = tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": self.row, **fields}, etag=etag)
            etag = result.get("etag")

        try:
            while True:
                events = event_log.read(tenant_id, position, BATCH)
                if not events:
                    save({"position": position, "lease_owner": "", "lease_until": ""})
                    return ConsumerRun("idle", handled, position)
                for event in events:
                    if clock() >= deadline:
                        save({"position": position, "lease_owner": "", "lease_until": ""})
                        return ConsumerRun("more", handled, position)
                    if event["type"] in self.types:
                        self._handle(tenant_id, event)
                        handled += 1
                    position = event["sequence"]
                save({"position": position, "lease_until": _iso(_now() + LEASE)})
        except ResourceModifiedError:
            return ConsumerRun("busy", handled, position)  # the lease expired and another worker took it
        except BaseException:
            try:  # a handler or the store failed: keep what was handled, hand the lease back for the retry
                save({"position": position, "lease_owner": "", "lease_until": ""})
            except Exception:  # noqa: BLE001 - the lease expires on its own; the batch is handled again
                pass
            raise

    def _handle(self, tenant_id: str, event: dict) -> None:
        try:
            self.handle(tenant_id, event)
        except StorageUnavailable:
            raise  # not the reaction's fault: the event comes again
        except GatehouseError as error:
            _log.warning(json.dumps({"event": "log_consumer_failed", "consumer": self.name, "tenant": tenant_id,
                                     "event_id": event["id"], "type": event["type"], "error": error.code}))
