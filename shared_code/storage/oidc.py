"""The OpenID Provider's state in the `oidc` table, one partition per tenant.

RowKeys:
  client:<client_id>                  a registered client (the product): its secret's hash, redirect URIs, …
  answered:<sha256 of AuthnRequest ID>  a product sign-in's SAML answer, accepted once (written with its session)
  code:<sha256 of the code's id>      the grant a redeemed code became, written when the code is redeemed (the
                                      code itself is sealed, oidc/authorization.py): the access token's id is
                                      this key, so revoking the grant = one column
  session:<employee id>:<sid>         a sign-in session the product holds tokens for (ended_at once ended), or a
                                      Gatehouse cookie session (sid "gh.…", save_browser_session)
  slo:<LogoutRequest ID>              a logout we sent to Entra, waiting for its LogoutResponse

A product sign-in writes three rows: `answered:` and `session:` in one transaction at the ACS, `code:` at the
token endpoint in one transaction with a merge of the session row under the ETag the ACS got (so a code is
redeemed only while its session lives: a sign-out or a dismissal in between changes the ETag). An Entra
LogoutRequest finds its sessions by a filtered read of the tenant's `session:` range (rare) instead of index
rows written with every sign-in.

Table `oidclogouts` (partition = tenant), RowKey <employee id>:<sid>:<client id>: a back-channel logout
waiting to be accepted by a client, with its next attempt; the retry timer queries it across tenants.

"Once" is enforced by Table Storage: a code is redeemed by inserting its grant row (a second, concurrent
redeemer gets 409), a SAML answer by inserting its `answered:` row; never by a read followed by a plain write,
and never by a delete (azure-data-tables answers a 404 as success, see storage/tables.py). Rows carry
`expires_at` for the purge.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared_code.platform.errors import StorageUnavailable
from shared_code.events import outbox, shapes
from shared_code.storage import tables

TABLE = tables.OIDC
CLIENT, CODE, SESSION, SLO, ANSWERED = "client:", "code:", "session:", "slo:", "answered:"
LOGOUTS = tables.OIDC_LOGOUTS


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- clients ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    application_type: str
    secret_hash: str | None
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    initiate_login_uri: str | None
    backchannel_logout_uri: str | None
    client_name: str | None
    created_at: str
    secret_rotated_at: str | None = None


def _client_entity(tenant_id: str, client: ClientRecord) -> dict:
    entity = {"PartitionKey": tenant_id, "RowKey": CLIENT + client.client_id, "kind": "client",
              "application_type": client.application_type, "secret_hash": client.secret_hash,
              "redirect_uris": json.dumps(client.redirect_uris),
              "post_logout_redirect_uris": json.dumps(client.post_logout_redirect_uris),
              "initiate_login_uri": client.initiate_login_uri, "backchannel_logout_uri": client.backchannel_logout_uri,
              "client_name": client.client_name, "created_at": client.created_at,
              "secret_rotated_at": client.secret_rotated_at}
    return {key: value for key, value in entity.items() if value is not None}


def _client_from(entity: dict) -> ClientRecord:
    return ClientRecord(
        client_id=entity["RowKey"][len(CLIENT):], application_type=entity.get("application_type") or "web",
        secret_hash=entity.get("secret_hash"), redirect_uris=json.loads(entity.get("redirect_uris") or "[]"),
        post_logout_redirect_uris=json.loads(entity.get("post_logout_redirect_uris") or "[]"),
        initiate_login_uri=entity.get("initiate_login_uri"),
        backchannel_logout_uri=entity.get("backchannel_logout_uri"), client_name=entity.get("client_name"),
        created_at=entity.get("created_at") or "", secret_rotated_at=entity.get("secret_rotated_at"))


def insert_client(tenant_id: str, client: ClientRecord) -> None:
    tables.insert(TABLE, _client_entity(tenant_id, client))


def get_client(tenant_id: str, client_id: str) -> ClientRecord | None:
    if not isinstance(client_id, str) or not client_id.isalnum() or len(client_id) > 64:
        return None  # cannot be one of ours (and must not reach a RowKey)
    entity = tables.get(TABLE, tenant_id, CLIENT + client_id)
    return _client_from(entity) if entity is not None else None


def list_clients(tenant_id: str) -> list[ClientRecord]:
    return [_client_from(entity) for entity in tables.partition_range(TABLE, tenant_id, CLIENT)]


def delete_client(tenant_id: str, client_id: str) -> bool:
    """Delete the client row and stage its `client.deleted` event in one transaction (the outbox), then append
    it to the log: the end-of-trust consumer ends the client's sessions (shared_code/sign_in/trust.py)."""
    entity = tables.get(TABLE, tenant_id, CLIENT + client_id)
    if entity is None:
        return False
    event = shapes.client_deleted(client_id, entity.get("backchannel_logout_uri"))
    try:
        # unconditional: only the back-channel URI is read, which nothing changes; a secret rotated meanwhile
        # must not turn the delete into "no such client"
        tables.transact(TABLE, [("delete", {"PartitionKey": tenant_id, "RowKey": CLIENT + client_id}),
                                *outbox.stage(tenant_id, [event])])
    except TableTransactionError:
        return False  # deleted meanwhile: the other request's delete is the one that counts
    outbox.flush_after_change(TABLE, tenant_id)
    return True


def set_client_secret(tenant_id: str, client_id: str, secret_hash: str, rotated_at: str) -> bool:
    try:
        tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": CLIENT + client_id, "secret_hash": secret_hash,
                              "secret_rotated_at": rotated_at}, etag=None)
    except ResourceNotFoundError:
        return False
    return True


# ---- authorization codes and the grants they become -----------------------------------------------------------

@dataclass(frozen=True)
class CodeRecord:
    key: str  # sha256 of the code: also the grant id an access token names
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    employee_id: str
    sid: str
    auth_time: int
    code_expires_at: int  # Unix time: the code itself (60 s)
    expires_at: datetime  # the row: the longest-lived token of the grant
    spent_at: datetime | None = None
    revoked: bool = False
    etag: str | None = field(default=None, compare=False, repr=False)
    amr: list[str] | None = None  # RFC 8176 values from Entra's authnmethodsreferences (ID token `amr`)


def _code_entity(tenant_id: str, code: CodeRecord) -> dict:
    entity = {"PartitionKey": tenant_id, "RowKey": CODE + code.key, "kind": "code", "client_id": code.client_id,
              "redirect_uri": code.redirect_uri, "code_challenge": code.code_challenge, "nonce": code.nonce,
              "scope": code.scope, "employee_id": code.employee_id, "sid": code.sid, "auth_time": code.auth_time,
              "code_expires_at": code.code_expires_at, "expires_at": _utc(code.expires_at),
              "amr": json.dumps(code.amr) if code.amr else None}
    return {key: value for key, value in entity.items() if value is not None}


class AlreadyAnswered(Exception):
    """The SAML answer this session would come from was accepted before (a replay)."""


def save_answered_session(tenant_id: str, request_id: str, keep_until: datetime, employee_id: str, sid: str, *,
                          name_id: str | None, session_index: str | None, session_expires_at: datetime,
                          name_id_format: str | None = None) -> str:
    """Accept a product sign-in's SAML answer once and start its session, in one transaction (one round trip,
    all or nothing); returns the session row's ETag. `AlreadyAnswered` when the answer was accepted before."""
    answered = {"PartitionKey": tenant_id, "RowKey": ANSWERED + digest(request_id), "kind": "answered",
                "expires_at": _utc(keep_until)}
    try:
        results = tables.transact(TABLE, [
            ("create", answered),
            ("create", _session_entity(tenant_id, employee_id, sid, name_id=name_id, session_index=session_index,
                                       expires_at=session_expires_at, name_id_format=name_id_format))])
    except TableTransactionError as error:
        if error.index == 0 and error.error_code in ("EntityAlreadyExists", "entityalreadyexists"):
            raise AlreadyAnswered() from None
        raise
    return results[1]["etag"]


REDEEMED, REPLAYED, SESSION_ENDED = "redeemed", "replayed", "session_ended"


def redeem(tenant_id: str, grant: "CodeRecord", session_etag: str, now: datetime) -> str:
    """Redeem a code once, in one transaction: insert its grant row (born spent) and touch its session under
    the ETag the sign-in got. REDEEMED; REPLAYED when the grant exists (redeemed before); SESSION_ENDED when the
    session changed since the sign-in (signed out, the employee dismissed) or is gone."""
    entity = {**_code_entity(tenant_id, grant), "spent_at": _utc(now)}
    session = {"PartitionKey": tenant_id, "RowKey": f"{SESSION}{grant.employee_id}:{grant.sid}",
               "redeemed_at": _utc(now)}
    try:
        tables.transact(TABLE, [("create", entity),
                                ("update", session, {"mode": UpdateMode.MERGE, "etag": session_etag,
                                                     "match_condition": MatchConditions.IfNotModified})])
    except TableTransactionError as error:
        # By what the service said, not by the SDK's index (it falls back to 0 when the message names none).
        code = str(error.error_code or "").lower()
        if code == "entityalreadyexists":
            return REPLAYED
        if code in ("updateconditionnotsatisfied", "resourcenotfound"):
            return SESSION_ENDED
        raise
    return REDEEMED


def save_exchanged_grant(tenant_id: str, grant: CodeRecord, *, session_expires_at: datetime) -> None:
    """A token exchange's grant (a code row born spent: nothing can redeem it, the access token names its key) and
    its session, in one transaction: the mobile sign-in is revocable and ends by back-channel like any other."""
    entity = {**_code_entity(tenant_id, grant), "spent_at": _utc(grant.spent_at or grant.expires_at)}
    tables.transact(TABLE, [("create", entity),
                            ("create", _session_entity(tenant_id, grant.employee_id, grant.sid, name_id=None,
                                                       session_index=None, expires_at=session_expires_at))])


def revoke_grant(tenant_id: str, key: str) -> None:
    """Revoke what a code was redeemed for (its access token stops working at once)."""
    try:
        tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": CODE + key, "revoked": True}, etag=None)
    except ResourceNotFoundError:
        pass


def grant_is_live(tenant_id: str, key: str) -> bool:
    entity = tables.get(TABLE, tenant_id, CODE + key, select=["spent_at", "revoked"])
    return entity is not None and entity.get("spent_at") is not None and not entity.get("revoked")


# ---- sessions the product holds tokens for ---------------------------------------------------------------------

@dataclass(frozen=True)
class SessionRecord:
    employee_id: str
    sid: str
    name_id: str | None
    session_index: str | None
    ended_at: datetime | None
    expires_at: datetime
    name_id_format: str | None = None
    started_at: datetime | None = None  # None: started before the column was written (treated as old)
    etag: str | None = field(default=None, compare=False, repr=False)  # as read: `end_session` writes under it


def _session_entity(tenant_id: str, employee_id: str, sid: str, *, name_id: str | None,
                    session_index: str | None, expires_at: datetime, name_id_format: str | None = None) -> dict:
    entity = {"PartitionKey": tenant_id, "RowKey": f"{SESSION}{employee_id}:{sid}", "kind": "session",
              "name_id": name_id, "name_id_format": name_id_format, "session_index": session_index,
              "expires_at": _utc(expires_at), "started_at": datetime.now(timezone.utc)}
    return {key: value for key, value in entity.items() if value is not None}


def _session_from(entity: dict) -> SessionRecord:
    employee_id, _, sid = entity["RowKey"][len(SESSION):].partition(":")
    return SessionRecord(employee_id, sid, entity.get("name_id"), entity.get("session_index"),
                         entity.get("ended_at"), _utc(entity["expires_at"]), entity.get("name_id_format"),
                         _utc(entity["started_at"]) if entity.get("started_at") else None, tables.etag_of(entity))


def get_session(tenant_id: str, employee_id: str, sid: str) -> SessionRecord | None:
    entity = tables.get(TABLE, tenant_id, f"{SESSION}{employee_id}:{sid}")
    return _session_from(entity) if entity is not None else None


def session_clients(tenant_id: str, sid: str) -> set[str]:
    """The clients that redeemed a code of this session (whom to tell when it ends): a filtered range scan,
    run only when a session ends, so that the token endpoint writes nothing extra."""
    rows = tables.query(TABLE, "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi and sid eq @sid",
                        {"pk": tenant_id, "lo": CODE, "hi": CODE + "\uffff", "sid": sid},
                        select=["client_id", "spent_at"])
    return {row["client_id"] for row in rows if row.get("spent_at") is not None}


def client_sessions(tenant_id: str, client_id: str) -> set[tuple[str, str]]:
    """(employee id, sid) of every session a client redeemed a code of (whom to log out when it is deleted): a
    filtered range scan, run only when a client is deleted."""
    rows = tables.query(TABLE, "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi and client_id eq @client",
                        {"pk": tenant_id, "lo": CODE, "hi": CODE + "\uffff", "client": client_id},
                        select=["employee_id", "sid", "spent_at"])
    return {(row["employee_id"], row["sid"]) for row in rows if row.get("spent_at") is not None}


def save_browser_session(tenant_id: str, employee_id: str, sid: str, *, name_id: str | None,
                         session_index: str | None, expires_at: datetime) -> None:
    """A Gatehouse cookie session (`gh_session`) with Entra's NameID and SessionIndex: a LogoutRequest from Entra
    then finds (`find_sessions_by_session_index`) and ends it like the product's sessions (no client holds tokens
    of it: no back-channel)."""
    tables.insert(TABLE, _session_entity(tenant_id, employee_id, sid, name_id=name_id, session_index=session_index,
                                         expires_at=expires_at))


def live_sessions(tenant_id: str, employee_id: str) -> list[SessionRecord]:
    return [session for session in map(_session_from, tables.partition_range(TABLE, tenant_id,
                                                                              f"{SESSION}{employee_id}:"))
            if session.ended_at is None]


def all_live_sessions(tenant_id: str) -> list[SessionRecord]:
    return [s for s in map(_session_from, tables.partition_range(TABLE, tenant_id, SESSION)) if s.ended_at is None]


def session_is_live(tenant_id: str, employee_id: str, sid: str) -> bool:
    entity = tables.get(TABLE, tenant_id, f"{SESSION}{employee_id}:{sid}", select=["ended_at"])
    return entity is not None and entity.get("ended_at") is None


def purge_expired(tenant_id: str, now: datetime) -> int:
    """Delete this tenant's codes, sessions and pending logouts past their expiry (100 per transaction);
    returns how many."""
    rows = tables.query(TABLE, "PartitionKey eq @pk and expires_at lt @now", {"pk": tenant_id, "now": _utc(now)},
                        select=["RowKey"], page_size=1000)
    return tables.delete_rows(TABLE, tenant_id, [row["RowKey"] for row in rows])


END_ATTEMPTS = 5


def end_session(tenant_id: str, employee_id: str, sid: str, now: datetime, *,
                before_ending: Callable[[], object] | None = None,
                session: SessionRecord | None = None) -> SessionRecord | None:
    """Mark a session ended under the ETag it was read with; returns it if this call ended it (None when unknown
    or already ended). `session`: the row as the caller just read it (a range query, `get_session`), with its
    `etag`: its first read is skipped. `before_ending` runs between the read and the write (the back-channel
    notices are queued there). A code redeemed in between touches the row in its own transaction (`redeem`), so
    the write meets a new ETag: the row is read again and `before_ending` runs again, and now sees the client
    that redeemed. A redemption after the write meets the ended row's ETag and fails. Either way no client holds
    tokens of an ended session without being told."""
    key = f"{SESSION}{employee_id}:{sid}"
    known = session if session is not None and session.etag else None
    for _ in range(END_ATTEMPTS):
        if known is None:
            entity = tables.get(TABLE, tenant_id, key)
            known = _session_from(entity) if entity is not None else None
        if known is None or known.ended_at is not None:
            return None
        if before_ending is not None:
            before_ending()
        try:
            tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": key, "ended_at": _utc(now)}, etag=known.etag)
        except ResourceNotFoundError:
            return None
        except ResourceModifiedError:
            known = None  # redeemed (or ended) meanwhile: read it again
            continue
        return known
    raise StorageUnavailable("This session is being changed by several requests at once; please retry.",
                             retry_after=1)


def find_sessions_by_session_index(tenant_id: str, name_id: str | None, session_index: str | None
                                   ) -> list[SessionRecord]:
    """Live sessions of an Entra sign-in (for a LogoutRequest from Entra): by SessionIndex, else NameID. A
    filtered read of the tenant's session range: a LogoutRequest is rare, a sign-in is not, so no sign-in
    writes index rows for it."""
    if session_index:
        column, value = "session_index", session_index
    elif name_id:
        column, value = "name_id", name_id
    else:
        return []
    rows = tables.query(TABLE, f"PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi and {column} eq @value",
                        {"pk": tenant_id, "lo": SESSION, "hi": SESSION + "\uffff", "value": value})
    sessions = [_session_from(row) for row in rows]
    return [session for session in sessions if session.ended_at is None]


# ---- logouts we sent to Entra, waiting for its LogoutResponse ----------------------------------------------------

def save_pending_slo(tenant_id: str, request_id: str, post_logout_redirect_uri: str | None, state: str | None,
                     expires_at: datetime) -> None:
    entity = {"PartitionKey": tenant_id, "RowKey": SLO + request_id, "kind": "slo",
              "post_logout_redirect_uri": post_logout_redirect_uri, "state": state, "expires_at": _utc(expires_at)}
    tables.insert(TABLE, {key: value for key, value in entity.items() if value is not None})


def take_pending_slo(tenant_id: str, request_id: str | None, now: datetime) -> dict | None:
    """The pending logout a LogoutResponse answers (once: spent by an ETag update), unless unknown or expired."""
    if not request_id or not request_id.replace("_", "").replace("-", "").isalnum() or len(request_id) > 128:
        return None
    entity = tables.get(TABLE, tenant_id, SLO + request_id)
    if entity is None or entity.get("spent_at") is not None or _utc(entity["expires_at"]) <= now:
        return None
    try:
        tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": SLO + request_id, "spent_at": _utc(now)},
                      etag=tables.etag_of(entity))
    except (ResourceNotFoundError, ResourceModifiedError):
        return None
    return {"post_logout_redirect_uri": entity.get("post_logout_redirect_uri"), "state": entity.get("state")}


# ---- back-channel logout deliveries (table oidclogouts, partition = tenant) -------------------------------------

@dataclass(frozen=True)
class PendingLogout:
    tenant_id: str
    key: str  # <employee id>:<sid>:<client id>: one delivery per session and client
    client_id: str
    uri: str
    sub: str
    sid: str
    attempts: int
    next_attempt_at: datetime
    give_up_at: datetime
    etag: str | None = field(default=None, compare=False, repr=False)


def save_pending_logout(logout: PendingLogout) -> bool:
    """Queue a delivery; False when it is queued already (the same session ended twice)."""
    try:
        tables.insert(LOGOUTS, {"PartitionKey": logout.tenant_id, "RowKey": logout.key, "client_id": logout.client_id,
                                "uri": logout.uri, "sub": logout.sub, "sid": logout.sid, "attempts": logout.attempts,
                                "next_attempt_at": _utc(logout.next_attempt_at),
                                "give_up_at": _utc(logout.give_up_at)})
    except ResourceExistsError:
        return False
    return True


def _logout_from(entity: dict) -> PendingLogout:
    return PendingLogout(entity["PartitionKey"], entity["RowKey"], entity["client_id"], entity["uri"], entity["sub"],
                         entity["sid"], int(entity.get("attempts") or 0), _utc(entity["next_attempt_at"]),
                         _utc(entity["give_up_at"]), tables.etag_of(entity))


def get_pending_logout(tenant_id: str, key: str) -> PendingLogout | None:
    entity = tables.get(LOGOUTS, tenant_id, key)
    return _logout_from(entity) if entity is not None else None


def due_logouts(now: datetime) -> Iterator[PendingLogout]:
    """Deliveries of every tenant whose next attempt is due (a small table: only undelivered tokens live here)."""
    return map(_logout_from, tables.query(LOGOUTS, "next_attempt_at le @now", {"now": _utc(now)}))


def claim_logout(logout: PendingLogout, next_attempt_at: datetime) -> PendingLogout | None:
    """Take a delivery for one attempt: its next attempt moves on, with the ETag, so one sender at a time."""
    try:
        result = tables.update(LOGOUTS, {"PartitionKey": logout.tenant_id, "RowKey": logout.key,
                                         "attempts": logout.attempts + 1,
                                         "next_attempt_at": _utc(next_attempt_at)}, etag=logout.etag)
    except (ResourceNotFoundError, ResourceModifiedError):
        return None
    return PendingLogout(logout.tenant_id, logout.key, logout.client_id, logout.uri, logout.sub, logout.sid,
                         logout.attempts + 1, next_attempt_at, logout.give_up_at, (result or {}).get("etag"))


def delete_logout(logout: PendingLogout) -> None:
    try:
        tables.delete(LOGOUTS, logout.tenant_id, logout.key)
    except ResourceNotFoundError:
        pass
