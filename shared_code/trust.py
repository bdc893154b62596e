"""When trust ends, every session it vouched for ends: the reactions to an end of trust, in one place.

Trust ends when the tenant admin cancels the setup, an identity provider is replaced (by the admin before SSO is
enabled, by the operator after), the operator turns SSO off, a client (the product) is deleted, or an employee is
dismissed or deleted. The core that makes such a change stores it first — the tenant's `sessions_valid_from`, the
employee's, the client row gone — and that alone already makes every check refuse what came before (the Gatehouse
cookie, UserInfo, code redemption). Then it calls `trust_ended` with what ended, and the reactions here end the
sessions themselves, so the product hears it on each client's back channel (OpenID Connect Back-Channel Logout).

One function per reaction, chosen by `REACTIONS` and called only from `trust_ended`: issue 25 turns them into
consumers of the event log without touching the cores. A reaction never fails the change it follows: what it could
not do is logged, and the stored change still refuses the old sessions.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable

from shared_code.errors import GatehouseError
from shared_code.oidc import logout
from shared_code.storage.oidc import ClientRecord

log = logging.getLogger("gatehouse.trust")

SETUP_CANCELLED = "setup_cancelled"
IDP_CHANGED = "idp_changed"
SSO_DISABLED = "sso_disabled"
CLIENT_DELETED = "client_deleted"
EMPLOYEE_DISMISSED = "employee_dismissed"
EMPLOYEE_DELETED = "employee_deleted"


@dataclass(frozen=True)
class TrustEnded:
    tenant_id: str
    why: str
    employee_id: str | None = None
    client: ClientRecord | None = None  # the deleted client, as it was (its back-channel URI)


def end_tenant_sessions(change: TrustEnded) -> int:
    """Every OpenID Connect session of the tenant ends; each client with a back-channel URI hears it."""
    return logout.tenant_sessions_ended(change.tenant_id)


def end_client_sessions(change: TrustEnded) -> int:
    """Every session the deleted client holds tokens of ends; the client hears it on its back channel."""
    assert change.client is not None
    return logout.client_sessions_ended(change.tenant_id, change.client)


def end_employee_sessions(change: TrustEnded) -> int:
    """Every session of the employee ends (products by back-channel; the cookie by `sessions_valid_from`)."""
    assert change.employee_id is not None
    return logout.employee_dismissed(change.tenant_id, change.employee_id)


REACTIONS: dict[str, tuple[Callable[[TrustEnded], int], ...]] = {
    SETUP_CANCELLED: (end_tenant_sessions,),
    IDP_CHANGED: (end_tenant_sessions,),
    SSO_DISABLED: (end_tenant_sessions,),
    CLIENT_DELETED: (end_client_sessions,),
    EMPLOYEE_DISMISSED: (end_employee_sessions,),
    EMPLOYEE_DELETED: (end_employee_sessions,),
}


def trust_ended(change: TrustEnded) -> int:
    """Run the reactions to `change`; returns how many sessions they ended. Never raises a GatehouseError."""
    ended = 0
    for reaction in REACTIONS[change.why]:
        try:
            ended += reaction(change)
        except GatehouseError as error:
            log.warning(json.dumps({"event": "trust_ended_reaction_failed", "tenant": change.tenant_id,
                                    "why": change.why, "reaction": reaction.__name__, "error": error.code}))
    log.info(json.dumps({"event": "trust_ended", "tenant": change.tenant_id, "why": change.why,
                         "sessions_ended": ended}))
    return ended
