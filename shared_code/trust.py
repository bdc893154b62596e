"""When trust ends, every session it vouched for ends: the reactions to an end of trust, a consumer of the log.

Trust ends when the tenant admin cancels the setup, an identity provider is replaced (by the admin before SSO is
enabled, by the operator after), the operator turns SSO off, a client (the product) is deleted, or an employee is
dismissed or deleted. The core that makes such a change stores it with its event, in one transaction — the
tenant's `sessions_valid_from` with `sessions.revoked` (internal, through the tenant table's outbox), the
employee's with `employee.dismissed` / `employee.deleted` — and that alone already makes every check refuse
what came before (the Gatehouse cookie, UserInfo, code redemption). The core calls nothing here.

`CONSUMER` reads each tenant's event log (shared_code/events/consumer.py: its own position, a lease per tenant,
at least once, woken by the `webhook-deliveries` message after the commit, found again by the sweep if that
message was lost) and ends the sessions the event ended, so the product hears it on each client's back channel
(OpenID Connect Back-Channel Logout). Idempotent by what it ends: only sessions that started before the event
(a replayed dismissal never ends the sessions of the rehired employee), the logout token queued before the
session is marked ended (a crash between the two sends it on the next run), one token row per session and
client (handling an event twice sends nothing new). A reaction never fails the change it follows.

A deleted client is the exception still called directly (`trust_ended`, from shared_code/oidc/clients.py):
its row is gone, and no event carries its back-channel URI yet.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from shared_code.errors import GatehouseError
from shared_code.events import shapes
from shared_code.events.consumer import LogConsumer
from shared_code.oidc import logout
from shared_code.storage.oidc import ClientRecord

log = logging.getLogger("gatehouse.trust")

CLIENT_DELETED = "client_deleted"


def _occurred(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def react(tenant_id: str, event: dict) -> int:
    """One event's reaction; returns how many sessions it ended."""
    if event["type"] in (shapes.EMPLOYEE_DISMISSED, shapes.EMPLOYEE_DELETED):
        ended = logout.employee_dismissed(tenant_id, event["data"]["id"], before=_occurred(event))
    else:
        ended = logout.tenant_sessions_ended(tenant_id, before=_occurred(event))
    log.info(json.dumps({"event": "trust_ended", "tenant": tenant_id, "type": event["type"],
                         "why": event["data"].get("why"), "event_id": event["id"], "sessions_ended": ended}))
    return ended


CONSUMER = LogConsumer("trust", frozenset({shapes.EMPLOYEE_DISMISSED, shapes.EMPLOYEE_DELETED,
                                           shapes.SESSIONS_REVOKED}), react)


@dataclass(frozen=True)
class TrustEnded:
    tenant_id: str
    why: str
    client: ClientRecord  # the deleted client, as it was (its back-channel URI)


def trust_ended(change: TrustEnded) -> int:
    """A deleted client: every session it holds tokens of ends, and it hears so. Never raises a GatehouseError."""
    try:
        ended = logout.client_sessions_ended(change.tenant_id, change.client)
    except GatehouseError as error:
        log.warning(json.dumps({"event": "trust_ended_reaction_failed", "tenant": change.tenant_id,
                                "why": change.why, "error": error.code}))
        return 0
    log.info(json.dumps({"event": "trust_ended", "tenant": change.tenant_id, "why": change.why,
                         "sessions_ended": ended}))
    return ended
