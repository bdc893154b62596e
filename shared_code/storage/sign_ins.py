"""Sign-in state in the `signins` table, one partition per tenant: what must count once — the answered
AuthnRequests (the SAML replay cache), the one-time self-check links and exchanged Entra ID tokens. A login
waiting for Entra's answer is not here: it waits in the browser's cookie (shared_code/sign_in/pending_logins.py).

RowKeys:
  answered:<sha256 of the AuthnRequest ID> an SP-initiated login answered once: the one row a sign-in writes
                                           here; kept while an answer to it could still be accepted
                                           (`expires_at`). Every accepted response names its request in signed
                                           XML, so this is also the assertion replay cache. (A product's
                                           sign-in writes its answered row with its session, storage/oidc.py.)
  assertion:, request:                     rows of the earlier design (replay cache, pending requests): only
                                           purged now
  selfcheck:<sha256 of the link token>     a self-check link, `expires_at`, `spent_at` once used
  logoutconfirm:<sha256 of its nonce>      a sign-out confirmation page's one-time token, spent (`expires_at`)
  logoutrequest:<sha256 of its ID>         a LogoutRequest from the IdP acted on once; kept while a replay of it
                                           would still be fresh enough to pass (`expires_at`)
  entratoken:<sha256 of the token's uti>   an Entra ID token exchanged once at the token endpoint (mobile sign-in);
                                           kept until the token expires (`expires_at`). These rows live in one
                                           platform partition, `_entratokens`, not the tenant's: once in all.

"Once" is enforced by Table Storage itself, never by a read followed by a write: an answer is accepted by
inserting its row (the insert of a second use fails), and a self-check link is spent by an update of
`spent_at` with the ETag that was read (a second, concurrent spender gets 412). Not by a delete: the SDK's
delete_entity answers a 404 as success, so two concurrent deletes with one ETag would both "win".

Table Storage has no TTL: `purge_expired` (run by the daily timer) deletes rows past `expires_at`.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared_code.storage import tables

TABLE = tables.SIGN_INS
ANSWERED, SELF_CHECK, ENTRA_TOKEN = "answered:", "selfcheck:", "entratoken:"
LOGOUT_REQUEST, LOGOUT_CONFIRMATION = "logoutrequest:", "logoutconfirm:"
# Not a tenant id (those match ^[a-z0-9][a-z0-9-]{2,62}$): the replay rows of exchanged Entra tokens, for every tenant.
EXCHANGED_TOKENS = "_entratokens"


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


def accept_request_once(tenant_id: str, request_id: str, keep_until: datetime) -> bool:
    """Record the AuthnRequest as answered; False when it was answered before (a replayed response, or a
    second response to one request)."""
    return _accept_once(tenant_id, ANSWERED + _digest(request_id), "answered", keep_until)


def accept_logout_request_once(tenant_id: str, request_id: str, keep_until: datetime) -> bool:
    """Record the IdP's LogoutRequest as acted on; False when it was seen before (a replay)."""
    return _accept_once(tenant_id, LOGOUT_REQUEST + _digest(request_id), "logoutrequest", keep_until)


def accept_logout_confirmation_once(tenant_id: str, nonce: str, keep_until: datetime) -> bool:
    """Spend the one-time token of an RP-initiated logout's confirmation page; False when it was used before."""
    return _accept_once(tenant_id, LOGOUT_CONFIRMATION + _digest(nonce), "logoutconfirm", keep_until)


def accept_entra_token_once(tenant_id: str, token_id: str, keep_until: datetime) -> bool:
    """Record an Entra ID token (by its `uti`) as exchanged; False when it was exchanged before, at this tenant or
    at any other: the row lives in the platform partition `EXCHANGED_TOKENS`, so one Entra token (one app
    registration may be trusted by several of our tenants) is accepted once in all."""
    try:
        tables.insert(TABLE, {"PartitionKey": EXCHANGED_TOKENS, "RowKey": ENTRA_TOKEN + _digest(token_id),
                              "kind": "entratoken", "tenant": tenant_id, "expires_at": _utc(keep_until)})
    except ResourceExistsError:
        return False
    return True


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
