"""When trust ends, every session it vouched for ends: the reactions to an end of trust, a consumer of the log.

Trust ends when the tenant admin cancels the setup, an identity provider is replaced (by the admin before SSO is
enabled, by the operator after), the operator turns SSO off, a client (the product) is deleted, or an employee is
dismissed or deleted. The core that makes such a change stores it with its event, in one transaction — the
tenant's `sessions_valid_from` with `sessions.revoked` (internal, through the tenant table's outbox), the
employee's with `employee.dismissed` / `employee.deleted`, the client row's delete with `client.deleted` (internal,
through the oidc table's outbox). The stored change alone refuses the Gatehouse cookie and UserInfo at once. The
core calls nothing here and imports nothing of it (no import circle: trust → oidc.logout → sign_in → tenants
never leads back).

`CONSUMER` reads each tenant's event log (shared_code/events/consumer.py: its own position, a lease per tenant,
at least once) and ends the sessions the event ended, so the product hears it on each client's back channel
(OpenID Connect Back-Channel Logout). Idempotent by what it ends: only sessions that started before the event
(a replayed dismissal never ends the sessions of the rehired employee), the logout token queued before the
session is marked ended (a crash between the two sends it on the next run), one token row per session and
client (handling an event twice sends nothing new). A reaction never fails the change it follows.

Who runs it, fastest first:
1. The request that committed the event, before it answers (functions/_reactions.py, in the adapter layer): so
   when the SCIM PATCH of a dismissal, the cancel, the IdP change, SSO off or the client's deletion answers,
   the sessions are ended and the logout tokens queued. Best effort, within the request's storage deadline.
2. The `webhook-deliveries` message the commit puts on the queue (shared_code/webhooks/queue.py), whose function
   runs this consumer and then webhook delivery: the durable path when the request could not finish it.
3. The `trust_check` sweep (shared_code/jobs/catalog.py), every 10 minutes: a tenant whose log is ahead of this
   consumer's position gets a message again (the process died between the commit and its message).

Why the token endpoint needs no read of its own (a product sign-in stays at 7 round trips, bench/sign_in_cost.py):
a code carries the ETag its session row had at the ACS, and redeeming it touches that row under that ETag in the
same transaction as the grant (storage/oidc.py `redeem`). The consumer ends a session under the ETag it read too
(`end_session`, queuing the notices between its read and its write). So whatever the order:
- redeemed before the consumer's read: the grant row names the client, the consumer tells it and ends the session;
- redeemed between the consumer's read and its write: the write meets a new ETag, the consumer reads again, now
  sees the client, tells it and ends the session;
- redeemed after the consumer's write: the ETag is the ended row's, the redemption fails with invalid_grant.
No client ever holds tokens of an ended session without its logout token. In the window before the consumer has
run (only when path 1 failed), a code from before the change may still be redeemed; its client then hears the
end like every other. UserInfo refuses tokens issued before the change at once (it reads the stored change), and
every token of a session once the consumer has ended it.

A deleted client's `client.deleted` carries its back-channel URI, since its row is gone: every session it holds
tokens of ends, and it hears so.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from shared_code.events import log as event_log
from shared_code.events import shapes
from shared_code.events.consumer import LogConsumer
from shared_code.oidc import logout
from shared_code.storage import directory

log = logging.getLogger("gatehouse.trust")


def _occurred(event: dict) -> datetime:
    return event_log.parse_iso(event["occurred_at"])


def react(tenant_id: str, event: dict) -> int:
    """One event's reaction; returns how many sessions it ended."""
    if event["type"] in (shapes.EMPLOYEE_DISMISSED, shapes.EMPLOYEE_DELETED):
        employee_id = event["data"]["id"]

        def rehired() -> bool:  # read only if a session of unknown start turns up
            current = directory.get_user(tenant_id, employee_id) if event["type"] == shapes.EMPLOYEE_DISMISSED else None
            return current is not None and current.active

        ended = logout.employee_dismissed(tenant_id, employee_id, before=_occurred(event), rehired=rehired)
    elif event["type"] == shapes.CLIENT_DELETED:
        data = event["data"]
        ended = logout.client_sessions_ended(tenant_id, data["client_id"], data.get("backchannel_logout_uri"))
    else:  # the cut-off UserInfo and the cookie check use: a session begun in the second before it is refused too
        valid_from = datetime.fromtimestamp(int(event["data"].get("sessions_valid_from") or 0), timezone.utc)
        ended = logout.tenant_sessions_ended(tenant_id, before=max(_occurred(event), valid_from))
    log.info(json.dumps({"event": "trust_ended", "tenant": tenant_id, "type": event["type"],
                         "why": event["data"].get("why"), "event_id": event["id"], "sessions_ended": ended}))
    return ended


CONSUMER = LogConsumer("trust", shapes.ENDS_TRUST, react)
