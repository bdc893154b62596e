"""The Storage Queue `webhook-deliveries` that wakes a tenant's delivery run, and the notifier that feeds it.

A message is `{"tenant": "<id>"}`, base64-encoded (what the Functions queue trigger expects): "this tenant
may have events to deliver". Messages carry no events, so a duplicate, a late or a lost message costs nothing
but a wasted or a later run: the order is kept by the delivery lease, and the sweep timer re-enqueues every
tenant whose endpoint is behind, whatever happened to its messages (a poison message included).

A message sent after a commit also names the types of the events committed (`"types": [...]`), so a consumer
that handles none of them need not run for it (the end-of-trust consumer wants four types of all; the
`trust_check` sweep moves it past the rest in one run per tenant). A message without `types` (a sweep's, a
retry's, an older deployment's) wakes every consumer.

The notifier puts a message after each commit that wrote events, from a background thread: the request that
made the change does not wait for the queue (no extra round trip on its path), and a burst of changes of one
tenant becomes one message. If the process dies before the message is sent, the sweep finds the tenant.

The queue's client and message encoding are `shared_code/platform/queues.py`'s (connection `GATEHOUSE_QUEUES`).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterable

from shared_code.platform import queues
from shared_code.events import log as event_log

QUEUE = "webhook-deliveries"
_log = logging.getLogger("gatehouse")
configured = queues.configured


def enqueue(tenant_id: str, delay_seconds: float = 0, types: Iterable[str] | None = None) -> None:
    """A message that wakes the tenant's consumers after `delay_seconds` (created queue on first use); `types`,
    when given, are the event types committed, and a consumer that wants none of them may stay asleep."""
    message: dict = {"tenant": tenant_id}
    if types is not None:
        message["types"] = sorted(types)
    queues.send(QUEUE, message, delay_seconds)


def wake_of(body: bytes | str) -> tuple[str | None, frozenset[str] | None]:
    """The tenant a message wakes (None: not one of ours), and the event types it names (None: it names none,
    so it is for every consumer)."""
    message = queues.decode(body) or {}
    tenant, types = message.get("tenant"), message.get("types")
    if not isinstance(types, list) or not all(isinstance(name, str) for name in types):
        types = None
    return (tenant if isinstance(tenant, str) and tenant else None), (frozenset(types) if types is not None else None)


class Notifier:
    """Collects tenants whose log moved and enqueues one message per tenant (with the types committed) from a
    daemon thread."""

    def __init__(self):
        self._pending: dict[str, set[str]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def __call__(self, tenant_id: str, types: frozenset[str] = frozenset()) -> None:
        with self._wake:
            self._pending.setdefault(tenant_id, set()).update(types)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="webhook-notifier", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _drain(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                tenants, self._pending = self._pending, {}
            for tenant_id, types in sorted(tenants.items()):
                try:
                    enqueue(tenant_id, types=types)
                except Exception as error:  # noqa: BLE001 - the sweep re-enqueues within a minute
                    _log.warning("could not enqueue webhook delivery for %s (the sweep will): %s", tenant_id, error)
                    time.sleep(0.5)


notifier = Notifier()


def install() -> None:
    """Wake delivery after every commit that wrote events (only where a queue is configured)."""
    if configured() and notifier not in event_log.after_commit:
        event_log.after_commit.append(notifier)
