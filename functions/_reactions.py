"""Right after a request whose core committed events, the tenant's end-of-trust reactions run in this process.

A core that changes something commits the change and its event together and returns; it never calls what reacts
to it (shared_code/sign_in/trust.py, shared_code/events/consumer.py). The reactions are consumers of the event log: a
queue message after the commit wakes them (shared_code/webhooks/queue.py), and the sweeps find a tenant whose
message was lost with its process. That is the durable path, and it takes seconds. This module closes the window
in the common case, from the adapter side:

* `install()` adds a collector to `events.log.after_commit`: for the request running in this context, it notes
  which tenants' logs moved and with which event types (commits in other threads are left to the queue).
* `after_request()` wraps the core in functions/_http.py's `handler`; once the core has returned (or raised after
  a commit), every consumer of `_consumers()` whose types were committed runs for those tenants here, within what is
  left of the request's storage deadline. So when the SCIM PATCH that dismissed an employee answers, the
  employee's sessions are ended and the product's logout tokens queued (sent in the background).

Best effort: a failure, or a deadline spent, is logged and left to the queue message; at least once holds because
a consumer moves its position only past what it handled. Another worker holding the tenant's lease (the queue
message that came first) is waited for, up to `INLINE_SECONDS`, so the answer still comes after the reaction.
Webhook delivery is not run here: posting to the product's endpoint stays off the request path.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from shared_code.events import log as event_log
from shared_code.events import shapes
from shared_code.storage import tables

INLINE_SECONDS = 5.0  # at most this long after the core, and never past the request's storage deadline
BUSY_PAUSE = 0.1
RELEASE_SECONDS = 1.0
log = logging.getLogger("gatehouse")
_committed: ContextVar[dict[str, set[str]] | None] = ContextVar("gatehouse_committed", default=None)


def _collect(tenant_id: str, types: frozenset[str] = frozenset()) -> None:
    committed = _committed.get()
    if committed is not None:
        committed.setdefault(tenant_id, set()).update(types)


def install() -> None:
    if _collect not in event_log.after_commit:
        event_log.after_commit.append(_collect)


@contextmanager
def after_request() -> Iterator[None]:
    """Collect what the wrapped core commits; then run the reactions to it (never raises)."""
    token = _committed.set({})
    try:
        yield
    finally:
        committed = _committed.get() or {}
        _committed.reset(token)
        if committed:
            run(committed)


def _consumers() -> tuple:
    """The consumers a request runs before it answers."""
    from shared_code.sign_in import trust  # the OpenID Provider's logout code loads only when trust ended (cold start)

    return (trust.CONSUMER,)


def run(committed: dict[str, set[str]], *, seconds: float = INLINE_SECONDS) -> None:
    if not any(shapes.ENDS_TRUST & types for types in committed.values()):
        return  # the only consumer run here would not wake: nothing to import, nothing to read
    left = tables.time_left()  # the request's storage time: keep a second of it for the lease's release write
    seconds = seconds if left is None else min(seconds, left - RELEASE_SECONDS)
    if seconds <= 0:
        return  # no time left here: the queue message does it
    deadline = time.monotonic() + seconds
    for consumer in _consumers():
        for tenant_id in sorted(tenant for tenant, types in committed.items() if consumer.wakes_for(frozenset(types))):
            try:
                while True:
                    left = deadline - time.monotonic()
                    done = consumer.run(tenant_id, budget=max(0.0, left))
                    if done.outcome != "busy" or left <= BUSY_PAUSE:
                        break
                    time.sleep(BUSY_PAUSE)  # another worker holds the lease: it hands it back when done
            except Exception as error:  # noqa: BLE001 - the queue message and the sweep do it instead
                log.warning(json.dumps({"event": "reaction_after_request_failed", "consumer": consumer.name,
                                        "tenant": tenant_id, "error": type(error).__name__}))
