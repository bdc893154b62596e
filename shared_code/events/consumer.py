"""A consumer of a tenant's event log: what reacts to a change reads the log from a position it keeps, instead of
being called by the core that made the change (STYLE.md, "The event as the spine").

The core commits its change and the change's event together (log.py, outbox.py) and is done. A consumer —
webhook delivery (shared_code/webhooks/delivery.py) and the end-of-trust reactions (shared_code/sign_in/trust.py) —
runs later, from a queue message, and works through the events after its position:

* Woken by the same message: after every commit that wrote events, `webhooks/queue.py`'s notifier puts
  `{"tenant": …, "types": [...]}` on `webhook-deliveries`; its queue function runs the tenant's consumers that
  want one of those types (a message without types, a sweep's, runs every one). A lost
  message (the process died right after the commit) is found by a sweep: `wake_if_behind` compares the log's
  head with the consumer's position (two point reads) and enqueues the tenant again.
* Position and lease per tenant in one row (`webhooks` table, the tenant's partition, `consumer:<name>`;
  webhook delivery's is its endpoint row, position `delivered`), written with its ETag: only the lease holder
  handles events, one tenant's events in order. A worker killed mid-run leaves the lease to expire (`LEASE`);
  the next run handles again the event that was in flight.
* One loop for every consumer (`LogConsumer.run`): the trust consumer uses it as it is; webhook delivery
  subclasses it for what it adds (an endpoint that may be missing or disabled, a retry that is not due yet, a
  POST that fails and stops the run with a `Stop`, the position written after every event).
* Cheap when there is nothing to do: a run reads its row and the log's head and answers `idle` before taking
  the lease when the log is not ahead (two round trips); a batch shorter than BATCH ends the run with one write
  of the position and the lease handed back (one event behind: five round trips).
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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared_code.platform.errors import GatehouseError, StorageUnavailable
from shared_code.events import log as event_log
from shared_code.storage import tables
from shared_code.webhooks import queue  # the queue whose message wakes a tenant's consumers

TABLE = tables.WEBHOOKS  # the log consumers' positions: the webhook endpoint's row, and one row per other consumer
PREFIX = "consumer:"
LEASE = timedelta(seconds=30)  # extended at every checkpoint; a dead worker's lease ends within this
RUN_BUDGET = 15.0  # seconds of starting work per run: a webhook POST (10 s at most) started last ends inside LEASE
BATCH = 50
_log = logging.getLogger("gatehouse.events.consumer")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ConsumerRun:
    """`idle` (caught up), `more` (budget spent, events left), `busy` (another worker holds the lease, for
    `retry_in` s when known), `none` (the consumer's row was deleted mid-run: a webhook endpoint), or what a consumer's own `open` or `Stop` answers (webhook delivery: `retry` after
    `retry_in` s, `waiting`, `disabled`, `none`)."""

    outcome: str
    handled: int = 0
    position: int = 0
    retry_in: float | None = None


@dataclass
class Stop:
    """A step's answer for an event it could not handle yet: the run stops before it (the position stays), writes
    `fields` to the consumer's row as it hands the lease back, and answers `outcome` (`retry_in`)."""

    outcome: str
    fields: dict = field(default_factory=dict)
    retry_in: float | None = None


class _LostLease(Exception):
    """Another worker took the lease (ours expired): the run stops, answering `busy`."""


class _RowGone(Exception):
    """The consumer's row was deleted mid-run (a webhook endpoint): the run stops, answering `none`."""


@dataclass(frozen=True)
class LogConsumer:
    """A named reader of every tenant's log: `handle(tenant_id, event)` for each event whose type is in
    `types`; the others only move the position.

    `run` is the one loop every consumer shares. A consumer that needs more (webhook delivery) subclasses this
    and overrides the hooks: `row`/`read`/`write` (where its position and lease live; `column` names the
    position), `open` (whether to run at all, `caught_up` among it, before the lease is taken), `wants` and
    `step` (one event: the columns to write with its position, or a `Stop`), and `checkpoint_each` (write the
    position after every event rather than every batch, for a slow reaction). `now` is the clock the lease is reckoned in."""

    name: str
    types: frozenset[str] = frozenset()
    handle: Callable[[str, dict], object] | None = None
    column = "position"  # the row's column that holds the position
    checkpoint_each = False

    @property
    def row(self) -> str:
        return PREFIX + self.name

    def read(self, tenant_id: str) -> dict | None:
        """The consumer's row with its `etag`, or None."""
        entity = tables.get(TABLE, tenant_id, self.row)
        return {**entity, "etag": tables.etag_of(entity)} if entity else None

    def write(self, tenant_id: str, etag: str, fields: dict) -> str:
        """Merge columns into the row if unchanged since read (raises ResourceModifiedError); its new ETag."""
        return tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": self.row, **fields}, etag=etag).get("etag")

    def position(self, tenant_id: str) -> int:
        entity = tables.get(TABLE, tenant_id, self.row, select=[self.column])
        return int((entity or {}).get(self.column) or 0)

    def behind(self, tenant_id: str) -> bool:
        return event_log.last_sequence(tenant_id) > self.position(tenant_id)

    def wakes_for(self, types: frozenset[str] | None) -> bool:
        """Whether a wake-up message naming `types` (None: it names none, a sweep's) is one for this consumer."""
        return types is None or bool(self.types & types)

    def wake_if_behind(self, tenant_id: str) -> bool:
        """The sweep's check: the log moved past the position → a message that runs the consumers."""
        if not self.behind(tenant_id):
            return False
        queue.enqueue(tenant_id)
        return True

    def caught_up(self, tenant_id: str, row: dict | None) -> ConsumerRun | None:
        """`idle` when the log is not ahead of the position in the row just read (one point read of the log's
        head), else None. Checked before the lease is taken: a queue message wakes every consumer of its tenant
        and most carry nothing for this one, so a run then costs two point reads instead of the lease taken and
        handed back around an empty read. An event committed after this read sends its own message."""
        position = int((row or {}).get(self.column) or 0)
        return ConsumerRun("idle", 0, position) if event_log.last_sequence(tenant_id) <= position else None

    def open(self, tenant_id: str, owner: str, now: datetime) -> dict | ConsumerRun:
        """Take the tenant's lease: the row as taken (with its new `etag`), or what the run answers instead
        (`idle` when the log is not ahead of the position, `busy`)."""
        row = self.read(tenant_id)
        if idle := self.caught_up(tenant_id, row):
            return idle
        if row is None:
            lease = {"lease_owner": owner, "lease_until": event_log.iso(now + LEASE), self.column: 0}
            try:
                result = tables.insert(TABLE, {"PartitionKey": tenant_id, "RowKey": self.row, **lease})
            except ResourceExistsError:
                return ConsumerRun("busy")
            return {**lease, "etag": result.get("etag")}
        return self.take(tenant_id, row, owner, now)

    def take(self, tenant_id: str, row: dict, owner: str, now: datetime) -> dict | ConsumerRun:
        """The lease on a row just read: refused while another worker's is live, else written under its ETag."""
        until = event_log.parse_iso(row.get("lease_until"))
        if until and until > now and row.get("lease_owner") != owner:
            return ConsumerRun("busy", retry_in=(until - now).total_seconds())
        lease = {"lease_owner": owner, "lease_until": event_log.iso(now + LEASE)}
        try:
            etag = self.write(tenant_id, row["etag"], lease)
        except ResourceModifiedError:
            return ConsumerRun("busy")
        return {**row, **lease, "etag": etag}

    def wants(self, event: dict) -> bool:
        return event["type"] in self.types

    def step(self, tenant_id: str, event: dict, row: dict, now: Callable[[], datetime]) -> dict | Stop:
        """Handle one event the consumer wants: the columns to write with its position, or where to stop."""
        self._handle(tenant_id, event)
        return {}

    def run(self, tenant_id: str, *, budget: float = RUN_BUDGET, clock: Callable[[], float] = time.monotonic,
            now: Callable[[], datetime] = _now) -> ConsumerRun:
        """Handle what is pending for one tenant, in order, for up to `budget` seconds (of `clock`)."""
        owner = uuid.uuid4().hex
        row = self.open(tenant_id, owner, now())
        if isinstance(row, ConsumerRun):
            return row
        position, handled, deadline = int(row.get(self.column) or 0), 0, clock() + budget
        release = {"lease_owner": "", "lease_until": ""}

        def save(fields: dict) -> None:
            """Write as the lease holder; another writer's change meanwhile (a webhook PUT) is merged, not lost."""
            for _ in range(8):
                try:
                    row["etag"] = self.write(tenant_id, row["etag"], fields)
                    row.update(fields)
                    return
                except ResourceNotFoundError:
                    raise _RowGone() from None  # a webhook endpoint deleted mid-run
                except ResourceModifiedError:
                    fresh = self.read(tenant_id)
                    if fresh is None or fresh.get("lease_owner") != owner:
                        raise _LostLease() from None  # the lease expired and another worker took it
                    row.clear()
                    row.update(fresh)
            raise _LostLease()

        try:
            while True:
                events = event_log.read(tenant_id, position, BATCH)
                last = len(events) < BATCH  # a short batch: the log ran out, no read after it
                for index, event in enumerate(events):
                    if clock() >= deadline:
                        save({self.column: position, **release})
                        return ConsumerRun("more", handled, position)
                    done = {}
                    if self.wants(event):
                        done = self.step(tenant_id, event, row, now)
                        if isinstance(done, Stop):
                            save({**done.fields, **release})
                            return ConsumerRun(done.outcome, handled, position, done.retry_in)
                        handled += 1
                    if self.checkpoint_each:  # the log's last event: its checkpoint hands the lease back too
                        ending = release if last and index == len(events) - 1 else {}
                        save({self.column: event["sequence"], **done, "lease_until": event_log.iso(now() + LEASE), **ending})
                    position = event["sequence"]
                if last:
                    if not (self.checkpoint_each and events):
                        save({self.column: position, **release})  # the position and the lease back, one write
                    return ConsumerRun("idle", handled, position)
                if not self.checkpoint_each:
                    save({self.column: position, "lease_until": event_log.iso(now() + LEASE)})
        except _RowGone:
            return ConsumerRun("none", handled, position)  # nothing to consume for any more, nothing to retry
        except (_LostLease, ResourceModifiedError):
            return ConsumerRun("busy", handled, position)
        except BaseException:
            try:  # a handler or the store failed: keep what was handled, hand the lease back for the retry
                save({self.column: position, **release})
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
