"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a session ends — the product's logout,
Entra's logout, a dismissal, SSO turned off — every client that holds tokens of that session and registered a
`backchannel_logout_uri` receives a signed logout token, until it accepts it (2xx) or a day has passed.

Durable: each delivery is a row in `oidclogouts` first (one per session and client, so ending a session twice
queues nothing new), then a first attempt right away in the background; the retry timer (`sweep`) takes due
rows with an ETag update (one sender at a time), backing off 1, 2, 4 … 60 minutes. Each attempt signs a fresh
token (iat/exp/jti new; sub and sid the same), because a token must be short-lived and a day is long.
Calls out go through `shared_code.platform.outbound.request` (https, public addresses only, a real deadline; loopback
only with ALLOW_PRIVATE_METADATA_URLS=true).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from shared_code.oidc import discovery, keys
from shared_code.storage import oidc as store

EVENT = "http://schemas.openid.net/event/backchannel-logout"
GIVE_UP_AFTER = timedelta(days=1)
TIMEOUT_SECONDS = 5.0
TOKEN_SECONDS = 120
log = logging.getLogger("gatehouse.oidc.backchannel")
_senders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="backchannel")


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


def logout_token(tenant_id: str, client_id: str, sub: str, sid: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"iss": discovery.issuer(tenant_id), "aud": client_id, "iat": issued, "exp": issued + TOKEN_SECONDS,
              "jti": secrets.token_urlsafe(16), "sub": sub, "sid": sid, "events": {EVENT: {}}}
    return keys.sign(claims, typ="logout+jwt")


def session_ended(tenant_id: str, employee_id: str, sid: str, *, now: datetime | None = None,
                  back_channels: dict[str, str | None] | None = None) -> int:
    """Queue a logout token for each client of this session with a back-channel URI; start sending now.
    `back_channels` (client id → URI) names the clients when they can no longer be read (a client being deleted).
    Returns how many deliveries were queued."""
    now = now or datetime.now(timezone.utc)
    queued = []
    for client_id in sorted(back_channels if back_channels is not None else store.session_clients(tenant_id, sid)):
        if back_channels is not None:
            uri = back_channels[client_id]
        else:
            client = store.get_client(tenant_id, client_id)
            uri = client.backchannel_logout_uri if client is not None else None
        if not uri:
            continue
        delivery = store.PendingLogout(tenant_id, f"{employee_id}:{sid}:{client_id}", client_id, uri, employee_id,
                                       sid, 0, now + _backoff(1), now + GIVE_UP_AFTER)
        if store.save_pending_logout(delivery):
            queued.append(delivery)
    for delivery in queued:
        _senders.submit(_attempt_soon, delivery)  # the first attempt right away; the row is the guarantee
    return len(queued)


def _attempt_soon(delivery: store.PendingLogout) -> None:
    try:
        fresh = store.get_pending_logout(delivery.tenant_id, delivery.key)
        if fresh is not None and fresh.attempts == 0:
            attempt(fresh)
    except Exception:  # noqa: BLE001 - the timer retries; never let a background failure escape
        log.exception("back-channel logout: first attempt failed")


def attempt(delivery: store.PendingLogout, now: datetime | None = None) -> bool:
    """One delivery attempt (claimed first); True when the client accepted the token."""
    now = now or datetime.now(timezone.utc)
    claimed = store.claim_logout(delivery, now + _backoff(delivery.attempts + 1))
    if claimed is None:
        return False  # another sender has it
    token = logout_token(delivery.tenant_id, delivery.client_id, delivery.sub, delivery.sid, now.timestamp())
    accepted, detail = _send(delivery.uri, token)
    if accepted:
        store.delete_logout(claimed)
    elif now >= delivery.give_up_at:
        store.delete_logout(claimed)
        detail += " (given up: a day has passed)"
    log.info(json.dumps({"event": "backchannel_logout", "tenant": delivery.tenant_id, "client": delivery.client_id,
                         "attempt": claimed.attempts, "accepted": accepted, "detail": detail}))
    return accepted


def _send(uri: str, token: str) -> tuple[bool, str]:
    from shared_code.platform import outbound

    try:
        answer = outbound.request("POST", uri, what="back-channel logout URI", timeout=TIMEOUT_SECONDS,
                                  body=urlencode({"logout_token": token}).encode("ascii"),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"}, max_bytes=64 * 1024)
    except outbound.OutboundError as error:
        return False, error.message
    return 200 <= answer.status < 300, f"HTTP {answer.status}"


def sweep(now: datetime | None = None) -> dict[str, int]:
    """The retry timer: every due delivery of every tenant gets one attempt."""
    now = now or datetime.now(timezone.utc)
    sent = failed = 0
    for delivery in store.due_logouts(now):
        if attempt(delivery, now):
            sent += 1
        else:
            failed += 1
    return {"accepted": sent, "not_accepted": failed}
