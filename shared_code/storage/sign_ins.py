"""Sign-in state in the `signins` table, one partition per tenant: the replay cache of accepted assertions,
the pending SP-initiated AuthnRequests, and the one-time self-check links.

RowKeys:
  assertion:<sha256 of the assertion ID>   an assertion accepted once; kept until it expires (`expires_at`)
  request:<AuthnRequest ID>                a login waiting for Entra's answer: the relay id we sent as
                                           RelayState, the hash of the browser's binding nonce, where to go
                                           afterwards, whether it is a self-check, `expires_at`, `spent_at`
  selfcheck:<sha256 of the link token>     a self-check link, `expires_at`, `spent_at` once used
  entratoken:<sha256 of the token's uti>   an Entra ID token exchanged once at the token endpoint (mobile sign-in);
                                           kept until the token expires (`expires_at`)

"Once" is enforced by Table Storage itself, never by a read followed by a write: an assertion is accepted by
inserting its row (the insert of a second use fails), and a pending request or self-check link is spent by an
update of `spent_at` with the ETag that was read (a second, concurrent spender gets 412). Not by a delete: the
SDK's delete_entity answers a 404 as success, so two concurrent deletes with one ETag would both "win".

Table Storage has no TTL: `purge_expired` (run by the daily timer) deletes rows past `expires_at`.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared_code.storage import tables

TABLE = tables.SIGN_INS
ASSERTION, REQUEST, SELF_CHECK, ENTRA_TOKEN = "assertion:", "request:", "selfcheck:", "entratoken:"
# Our AuthnRequest IDs are "id" + 40 hex; anything else cannot name a pending request (and could not be a key).
_REQUEST_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class PendingRequest:
    """An SP-initiated login waiting for the IdP's answer."""

    request_id: str
    relay_state: str  # the opaque id we sent as RelayState (≤ 80 bytes), never the target itself
    browser_hash: str  # sha256 of the nonce in the browser's login-binding cookie
    target: str | None  # the safe URL to land on afterwards; None means the tenant's app_url
    self_check: bool
    expires_at: datetime
    oidc: dict | None = None  # an OpenID Connect authorization request this login serves (shared_code/oidc)
    etag: str | None = field(default=None, compare=False, repr=False)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


# ---- replay cache ------------------------------------------------------------------------------------------

def _accept_once(tenant_id: str, row_key: str, kind: str, keep_until: datetime) -> bool:
    """Record a one-time credential as used; False when it was used before (the insert is the atomic check)."""
    try:
        tables.insert(TABLE, {"PartitionKey": tenant_id, "RowKey": row_key, "kind": kind,
                              "expires_at": _utc(keep_until)})
    except ResourceExistsError:
        return False
    return True


def accept_assertion_once(tenant_id: str, assertion_id: str, keep_until: datetime) -> bool:
    """Record the assertion as used; False when it was used before."""
    return _accept_once(tenant_id, ASSERTION + _digest(assertion_id), "assertion", keep_until)


def accept_entra_token_once(tenant_id: str, token_id: str, keep_until: datetime) -> bool:
    """Record an Entra ID token (by its `uti`) as exchanged; False when it was exchanged before."""
    return _accept_once(tenant_id, ENTRA_TOKEN + _digest(token_id), "entratoken", keep_until)


# ---- pending AuthnRequests ---------------------------------------------------------------------------------

def save_pending_request(tenant_id: str, pending: PendingRequest) -> None:
    entity = {"PartitionKey": tenant_id, "RowKey": REQUEST + pending.request_id, "kind": "request",
              "relay_state": pending.relay_state, "browser_hash": pending.browser_hash,
              "target": pending.target, "self_check": pending.self_check, "expires_at": _utc(pending.expires_at),
              "oidc": json.dumps(pending.oidc) if pending.oidc is not None else None}
    tables.insert(TABLE, {key: value for key, value in entity.items() if value is not None})


def get_pending_request(tenant_id: str, request_id: str) -> PendingRequest | None:
    """The pending request, unless it does not exist or was spent."""
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        return None
    entity = tables.get(TABLE, tenant_id, REQUEST + request_id)
    if entity is None or entity.get("spent_at") is not None:
        return None
    return PendingRequest(request_id=request_id, relay_state=entity.get("relay_state") or "",
                          browser_hash=entity.get("browser_hash") or "", target=entity.get("target"),
                          self_check=bool(entity.get("self_check")), expires_at=_utc(entity["expires_at"]),
                          oidc=json.loads(entity["oidc"]) if entity.get("oidc") else None, etag=tables.etag_of(entity))


def spend_pending_request(tenant_id: str, pending: PendingRequest, now: datetime) -> bool:
    """Mark the pending request spent, as it was read; False when someone else spent or changed it first."""
    return _spend(tenant_id, REQUEST + pending.request_id, pending.etag, now)


def _spend(tenant_id: str, key: str, etag: str | None, now: datetime) -> bool:
    if not etag:
        return False
    try:
        tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": key, "spent_at": _utc(now)}, etag=etag)
    except (ResourceNotFoundError, ResourceModifiedError):
        return False
    return True


# ---- self-check links ----------------------------------------------------------------------------------------

def save_self_check_link(tenant_id: str, token: str, expires_at: datetime) -> None:
    tables.insert(TABLE, {"PartitionKey": tenant_id, "RowKey": SELF_CHECK + _digest(token), "kind": "selfcheck",
                          "expires_at": _utc(expires_at)})


def spend_self_check_link(tenant_id: str, token: str, now: datetime) -> datetime | None:
    """Use up a self-check link: its expiry if it existed unused and this call spent it, else None."""
    key = SELF_CHECK + _digest(token)
    entity = tables.get(TABLE, tenant_id, key)
    if entity is None or entity.get("spent_at") is not None:
        return None
    if not _spend(tenant_id, key, tables.etag_of(entity), now):
        return None
    return _utc(entity["expires_at"])


# ---- upkeep ------------------------------------------------------------------------------------------------

def purge_expired(tenant_id: str, now: datetime) -> int:
    """Delete this tenant's sign-in rows past their expiry (100 per transaction); returns how many."""
    rows = tables.query(TABLE, "PartitionKey eq @pk and expires_at lt @now", {"pk": tenant_id, "now": _utc(now)},
                        select=["RowKey"], page_size=1000)
    return tables.delete_rows(TABLE, tenant_id, [row["RowKey"] for row in rows])
