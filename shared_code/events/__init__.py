"""Directory events for the product that embeds Gatehouse: an ordered, per-tenant event log.

Every change the product cares about is written as an event in the same entity-group transaction as the change
(`log.py` says how, and why a reader polling with a cursor can never skip one); tenant-level changes reach the
same log through an outbox (`outbox.py`). The Events API (`api.py`) reads the log with an opaque cursor;
webhooks (`shared_code/webhooks/`) deliver the same events, with the same ids, in the same order. Whatever
reacts to a change inside Gatehouse is a consumer of the log too (`consumer.py`; the end-of-trust reactions,
`shared_code/sign_in/trust.py`): the core that made the change never calls it.
"""
from shared_code.events.shapes import EVENT_TYPES, Change  # noqa: F401 - the package's vocabulary
