"""The directory: a tenant's employees (SCIM Users), groups, memberships and the index rows that make every
lookup a point read. One partition per tenant in the `directory` table.

RowKeys (key parts are escaped, see `_part`):
  user:<id>                     the employee: SCIM data as JSON (`scim`) plus its own columns for the audit
                                and sign-in (`user_name`, `external_id`, `work_email`, `display_name`, `active`,
                                `department`, and Gatehouse-internal `is_admin`, `allowed_outside_domain`)
  username:<casefolded userName>   a copy of the user row: uniqueness of userName, and `userName eq` in one read
  externalid:<externalId>          a copy of the user row: uniqueness of externalId (Entra's objectId)
  email:<casefolded email>:<id>    a copy of the user row per work email (not unique)
  group:<id>                    a group's data (without members)
  groupname:<casefolded name>   a copy of the group row: uniqueness of displayName, `displayName eq` in one read
  member:<groupId>:<userId>     one row per membership ...
  memberof:<userId>:<groupId>   ... and its reverse, so deleting a user finds its groups without a scan

Index rows are copies, not pointers, so a lookup by userName, externalId or id is one round trip. Every
change of a user or group writes its row and its copies in one entity-group transaction (all or nothing).
Ids start with the creation time in microseconds, so listing in RowKey order is stable while users are added.

Every transaction that changes what the product sees also writes its events (shared_code/events/log.py:
`event:<sequence>` rows and the `eventlog` head in this same partition), so no change is without its event.

Changes that touch more than 100 rows (a group of thousands, a user in dozens of groups) cannot be one
transaction; they are ordered so an interrupted request leaves a state its retry converges from:
- adding members: batches of (member row, reverse row, a touch of the user row that fails when the user does
  not exist); adding an existing member rewrites the same rows, so a retry finishes the job;
- removing members: only rows read back as present are deleted, so a retry skips what is gone;
- deleting a group: the group is first marked `deleting` (invisible to reads, its name freed), then its
  membership rows go in batches, then the group row; a retried DELETE continues where it stopped;
- deleting a user: memberships first, then the user and its copies in one transaction.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode

from shared_code.errors import BadRequest, Conflict, NotFound, StorageUnavailable
from shared_code.events import log as event_log
from shared_code.events import shapes as events
from shared_code.storage import tables

TABLE = tables.DIRECTORY
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BATCH = 100  # Table Storage's limit of operations in one entity-group transaction
ATTEMPTS = 8  # optimistic-concurrency retries before answering 503

USER, USERNAME, EXTERNAL_ID, EMAIL = "user:", "username:", "externalid:", "email:"
GROUP, GROUP_NAME, MEMBER, MEMBER_OF = "group:", "groupname:", "member:", "memberof:"

_USER_COLUMNS = ["id", "scim", "created", "last_modified", "version", "is_admin", "allowed_outside_domain",
                 "sessions_valid_from"]
_EMPLOYEE_COLUMNS = ["id", "user_name", "external_id", "work_email", "display_name", "active", "is_admin",
                     "department", "allowed_outside_domain", "sessions_valid_from"]


# --- errors ---------------------------------------------------------------------------------------------------

class Taken(Conflict):
    """A unique attribute (userName, externalId, group displayName) belongs to another resource."""

    def __init__(self, attribute: str, value: str, holder: str | None = None):
        super().__init__(f"{attribute} {value!r} is already used by another resource of this tenant.",
                         field=attribute, scim_type="uniqueness")
        self.attribute, self.value, self.holder = attribute, value, holder


class Changed(Exception):
    """The row changed since it was read (optimistic concurrency); the caller re-reads and retries."""


class _Missing(Exception):
    """A row a transaction deletes is already gone."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class NotAUser(BadRequest):
    def __init__(self, user_id: str):
        super().__init__(f"{user_id!r} is not the id of a user in this tenant: only users can be members.",
                         field="members", scim_type="invalidValue")
        self.user_id = user_id


# --- records ----------------------------------------------------------------------------------------------------

@dataclass
class UserRecord:
    """A user as stored: SCIM data plus what the server owns."""

    id: str
    data: dict
    created: str
    last_modified: str
    version: int
    is_admin: bool = False
    allowed_outside_domain: bool = False
    # Unix time of the last dismissal: sessions issued before it stay invalid after a rehire.
    sessions_valid_from: int = 0
    etag: str | None = field(default=None, repr=False)  # of the user:<id> row; None when read from a copy


@dataclass
class GroupRecord:
    id: str
    data: dict
    created: str
    last_modified: str
    version: int
    deleting: bool = False
    etag: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Employee:
    """What sign-in and the domain audit need to know about an employee (not the SCIM view)."""

    id: str
    user_name: str
    external_id: str | None
    work_email: str | None
    display_name: str | None
    active: bool
    is_admin: bool
    department: str | None
    allowed_outside_domain: bool
    sessions_valid_from: int = 0  # sessions issued before this Unix time were ended by a dismissal
    etag: str | None = None  # of the employee's row; changes on every write to it


# --- keys and columns ---------------------------------------------------------------------------------------------

def _part(text: str) -> str:
    """A RowKey part: `/ \\ # ?` and control characters are forbidden in keys, `:` separates parts, `%` escapes;
    very long values are shortened with a digest (RowKeys hold at most 1 KiB)."""
    out = []
    for ch in text:
        if ch in "%/\\#?:" or ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f:
            out.append("%%%02X" % ord(ch) if ord(ch) < 0x100 else ch)
        else:
            out.append(ch)
    escaped = "".join(out)
    if len(escaped) > 400:
        escaped = escaped[:200] + "~" + hashlib.sha256(escaped.encode()).hexdigest()
    return escaped


def user_name_key(user_name: str) -> str:
    return USERNAME + _part(user_name.casefold())


def external_id_key(external_id: str) -> str:
    return EXTERNAL_ID + _part(external_id)  # externalId is caseExact (RFC 7643 §3.1)


def email_prefix(email: str) -> str:
    return EMAIL + _part(email.casefold()) + ":"


def group_name_key(name: str) -> str:
    return GROUP_NAME + _part(name.casefold())


def new_id() -> str:
    """32 hex characters: creation time in microseconds (14) + 72 random bits (18); sorts by creation."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def work_email(data: dict) -> str | None:
    """The employee's work email: the (primary) email of type "work", else the primary email."""
    emails = [e for e in data.get("emails") or [] if isinstance(e, dict) and isinstance(e.get("value"), str)]
    work = [e for e in emails if str(e.get("type", "")).lower() == "work"]
    for group in (work, [e for e in emails if e.get("primary") is True]):
        if group:
            return next((e for e in group if e.get("primary") is True), group[0])["value"]
    return None


def _user_columns(record: UserRecord) -> dict[str, Any]:
    data = record.data
    return {
        "kind": "user",
        "id": record.id,
        "scim": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        "user_name": data.get("userName"),
        "external_id": data.get("externalId"),
        "work_email": work_email(data),
        "display_name": data.get("displayName"),
        # An employee is active unless told otherwise; dismissal is an explicit active=false.
        "active": data.get("active") is not False,
        "department": (data.get(ENTERPRISE) or {}).get("department"),
        "is_admin": record.is_admin,
        "allowed_outside_domain": record.allowed_outside_domain,
        "sessions_valid_from": record.sessions_valid_from,
        "created": record.created,
        "last_modified": record.last_modified,
        "version": record.version,
    }


def _user_rows(tenant_id: str, record: UserRecord) -> dict[str, dict]:
    """The user row and its copies, by RowKey."""
    columns = _user_columns(record)
    keys = [USER + record.id, user_name_key(record.data["userName"])]
    if record.data.get("externalId"):
        keys.append(external_id_key(record.data["externalId"]))
    if columns["work_email"]:
        keys.append(email_prefix(columns["work_email"]) + record.id)
    return {key: {"PartitionKey": tenant_id, "RowKey": key, **columns} for key in keys}


def _user_from(entity: dict, from_copy: bool = False) -> UserRecord:
    return UserRecord(
        id=entity["id"], data=json.loads(entity["scim"]), created=entity["created"],
        last_modified=entity["last_modified"], version=int(entity["version"]),
        is_admin=bool(entity.get("is_admin")), allowed_outside_domain=bool(entity.get("allowed_outside_domain")),
        sessions_valid_from=int(entity.get("sessions_valid_from") or 0),
        etag=None if from_copy else tables.etag_of(entity))


def _employee_from(entity: dict) -> Employee:
    return Employee(
        id=entity["id"], user_name=entity.get("user_name") or "", external_id=entity.get("external_id"),
        work_email=entity.get("work_email"), display_name=entity.get("display_name"),
        active=bool(entity.get("active")), is_admin=bool(entity.get("is_admin")),
        department=entity.get("department"), allowed_outside_domain=bool(entity.get("allowed_outside_domain")),
        sessions_valid_from=int(entity.get("sessions_valid_from") or 0), etag=tables.etag_of(entity))


def _group_columns(record: GroupRecord) -> dict[str, Any]:
    return {
        "kind": "group",
        "id": record.id,
        "scim": json.dumps(record.data, separators=(",", ":"), ensure_ascii=False),
        "display_name": record.data.get("displayName"),
        "external_id": record.data.get("externalId"),
        "created": record.created,
        "last_modified": record.last_modified,
        "version": record.version,
        "deleting": record.deleting,
    }


def _group_rows(tenant_id: str, record: GroupRecord) -> dict[str, dict]:
    columns = _group_columns(record)
    keys = [GROUP + record.id]
    if not record.deleting:
        keys.append(group_name_key(record.data["displayName"]))
    return {key: {"PartitionKey": tenant_id, "RowKey": key, **columns} for key in keys}


def _group_from(entity: dict, from_copy: bool = False) -> GroupRecord:
    return GroupRecord(
        id=entity["id"], data=json.loads(entity["scim"]), created=entity["created"],
        last_modified=entity["last_modified"], version=int(entity["version"]),
        deleting=bool(entity.get("deleting")), etag=None if from_copy else tables.etag_of(entity))


# --- transactions ---------------------------------------------------------------------------------------------------

def _conditional(etag: str | None) -> dict:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}


def _replace_rows(old: dict[str, dict], new: dict[str, dict], primary: str, etag: str | None) -> list[tuple]:
    """Operations that turn the rows `old` into `new`: the primary row only if unchanged since read (ETag);
    copies that stay are overwritten, new ones are created (a clash means the value is taken), stale ones go."""
    ops: list[tuple] = []
    for key, entity in new.items():
        if key == primary and key in old:
            ops.append(("update", entity, {"mode": UpdateMode.REPLACE, **_conditional(etag)}))
        elif key in old:
            ops.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
        else:
            ops.append(("create", entity))
    for key, entity in old.items():
        if key not in new:
            ops.append(("delete", {"PartitionKey": entity["PartitionKey"], "RowKey": key}))
    return ops


def _submit(tenant_id: str, ops: list[tuple], *, taken: dict[str, tuple[str, str]] | None = None,
            touched_users: dict[str, str] | None = None, gone_ok: set[str] | None = None,
            changes: list[events.Change] | None = None) -> list:
    """One transaction, with the events of `changes`. Maps its failures: a created index row that exists →
    Taken; a conditional write that lost the race → Changed; a touch of a missing user row → NotAUser."""
    try:
        return event_log.transact(tenant_id, ops, changes or [])
    except TableTransactionError as error:
        code = str(getattr(error, "error_code", "") or "")
        index = getattr(error, "index", 0) or 0
        key = ops[index][1]["RowKey"] if 0 <= index < len(ops) else ""
        if "EntityAlreadyExists" in code and taken and key in taken:
            raise Taken(*taken[key]) from None
        if "UpdateConditionNotSatisfied" in code or "ConditionNotMet" in code:
            raise Changed() from None
        if "ResourceNotFound" in code and touched_users and key in touched_users:
            raise NotAUser(touched_users[key]) from None
        if "ResourceNotFound" in code and gone_ok and key in gone_ok:
            raise _Missing(key) from None
        if "ResourceNotFound" in code or "EntityAlreadyExists" in code:
            raise Changed() from None  # a row moved under us (a concurrent delete or create): re-read
        raise


def _delete_all(tenant_id: str, ops: list[tuple], primary: str, changes: list[events.Change] | None = None) -> None:
    """One transaction that deletes `primary` (conditionally) and rows derived from it; a derived row that is
    already gone (a concurrent delete, or a copy lost to an earlier failure) is dropped from it, not fatal."""
    derived = {op[1]["RowKey"] for op in ops} - {primary}
    while True:
        try:
            _submit(tenant_id, ops, gone_ok=derived, changes=changes)
            return
        except _Missing as missing:
            ops = [op for op in ops if op[1]["RowKey"] != missing.key]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _delete_rows(tenant_id: str, keys: list[str]) -> None:
    """Delete rows that are derived state (memberships), in batches; rows already gone are skipped."""
    for chunk in _chunks(keys, BATCH):
        ops = [("delete", {"PartitionKey": tenant_id, "RowKey": key}) for key in chunk]
        try:
            tables.transact(TABLE, ops)
        except TableTransactionError:
            # One of them was deleted meanwhile (a concurrent delete of the user or group): one at a time.
            for key in chunk:
                try:
                    tables.delete(TABLE, tenant_id, key)
                except Exception as error:  # noqa: BLE001 - only "not found" is expected here
                    if "ResourceNotFound" not in str(getattr(error, "error_code", "")) and \
                            type(error).__name__ != "ResourceNotFoundError":
                        raise


_point_reads = ThreadPoolExecutor(max_workers=16, thread_name_prefix="directory-point-read")


def _existing(tenant_id: str, keys: list[str], select: list[str] | None = None) -> dict[str, dict]:
    """Which of these rows exist: one point read per key, 16 at a time. (A filter of `RowKey eq … or …` would
    be one request, but Table Storage answers it with a scan of the whole partition.)"""
    unique = sorted(set(keys))
    if len(unique) == 1:
        entity = tables.get(TABLE, tenant_id, unique[0], select=select)
        return {unique[0]: entity} if entity else {}
    found = _point_reads.map(lambda key: tables.get(TABLE, tenant_id, key, select=select), unique)
    return {key: entity for key, entity in zip(unique, found) if entity}


def _retrying(operation):
    """Run a read-modify-write until it wins the race (or give up with an honest 503)."""
    for _ in range(ATTEMPTS):
        try:
            return operation()
        except Changed:
            continue
    raise StorageUnavailable("This resource is being changed by several requests at once; please retry.",
                             retry_after=1)


# --- users ----------------------------------------------------------------------------------------------------------

def create_user(tenant_id: str, data: dict) -> UserRecord:
    """Insert a user with its copies in one transaction: of concurrent creates with the same userName
    (or externalId), exactly one wins; the others raise Taken."""
    stamp = now()
    record = UserRecord(new_id(), data, stamp, stamp, 1)
    rows = _user_rows(tenant_id, record)
    taken = {user_name_key(data["userName"]): ("userName", data["userName"])}
    if data.get("externalId"):
        taken[external_id_key(data["externalId"])] = ("externalId", data["externalId"])
    results = _submit(tenant_id, [("create", row) for row in rows.values()], taken=taken,
                      changes=events.employee_changes(None, rows[USER + record.id]))
    record.etag = (results[0] or {}).get("etag") if results else None
    return record


def get_user_record(tenant_id: str, user_id: str) -> UserRecord | None:
    entity = tables.get(TABLE, tenant_id, USER + user_id, select=_USER_COLUMNS)
    return _user_from(entity) if entity else None


def find_user_record(tenant_id: str, attribute: str, value: str) -> UserRecord | None:
    """A point read of the copy for `userName` or `externalId` (or of the row itself for `id`)."""
    if attribute == "id":
        return get_user_record(tenant_id, value)
    key = user_name_key(value) if attribute == "userName" else external_id_key(value)
    entity = tables.get(TABLE, tenant_id, key, select=_USER_COLUMNS)
    return _user_from(entity, from_copy=True) if entity else None


def iter_user_records(tenant_id: str) -> Iterator[UserRecord]:
    """Every user in id order (creation order): a range scan of one partition."""
    for entity in tables.partition_range(TABLE, tenant_id, USER, select=_USER_COLUMNS, page_size=1000):
        yield _user_from(entity, from_copy=True)


def save_user(tenant_id: str, old: UserRecord, data: dict, *, bump: bool = True,
              is_admin: bool | None = None, allowed_outside_domain: bool | None = None) -> UserRecord:
    """Write new data for a user read as `old` (raises Changed when it changed meanwhile, Taken when a new
    userName/externalId is someone else's). Dismissal is enforced here, for every caller: a user whose
    `active` is false is never an admin, and the moment of a dismissal ends every session issued before it
    (also once the employee is rehired: a rehire means a new sign-in)."""
    admin = old.is_admin if is_admin is None else is_admin
    sessions_valid_from = old.sessions_valid_from
    if data.get("active") is False:
        admin = False
        if old.data.get("active") is not False:
            # Rounded up: a session issued in the same second as the dismissal is ended too.
            sessions_valid_from = math.ceil(time.time())
    record = UserRecord(old.id, data, old.created, now() if bump else old.last_modified,
                        old.version + (1 if bump else 0), admin,
                        old.allowed_outside_domain if allowed_outside_domain is None else allowed_outside_domain,
                        sessions_valid_from)
    old_rows = _user_rows(tenant_id, old)
    new_rows = _user_rows(tenant_id, record)
    taken = {}
    if old.data["userName"].casefold() != data["userName"].casefold():
        taken[user_name_key(data["userName"])] = ("userName", data["userName"])
    if data.get("externalId") and data.get("externalId") != old.data.get("externalId"):
        taken[external_id_key(data["externalId"])] = ("externalId", data["externalId"])
    results = _submit(tenant_id, _replace_rows(old_rows, new_rows, USER + old.id, old.etag), taken=taken,
                      changes=events.employee_changes(old_rows[USER + old.id], new_rows[USER + old.id]))
    record.etag = (results[0] or {}).get("etag") if results else None
    return record


def delete_user(tenant_id: str, user_id: str, check=None) -> bool:
    """Delete a user, its copies and its memberships; False when there is no such user. `check(record)` may
    raise (If-Match) before anything is deleted."""
    def attempt() -> bool:
        record = get_user_record(tenant_id, user_id)
        if record is None:
            return False
        if check is not None:
            check(record)
        groups = [e["RowKey"][len(MEMBER_OF) + len(user_id) + 1:] for e in tables.partition_range(
            TABLE, tenant_id, f"{MEMBER_OF}{user_id}:", select=["RowKey"], page_size=1000)]
        membership_keys = [k for g in groups for k in (f"{MEMBER}{g}:{user_id}", f"{MEMBER_OF}{user_id}:{g}")]
        rows = _user_rows(tenant_id, record)
        user_ops = [("delete", {"PartitionKey": tenant_id, "RowKey": key}, _conditional(record.etag)
                     if key == USER + user_id else {}) for key in rows]
        deleted = [events.Change(events.EMPLOYEE_DELETED, events.employee_data(rows[USER + user_id]))]
        if len(user_ops) + len(membership_keys) + 2 <= BATCH:  # + the event and the event log's head
            _delete_all(tenant_id, user_ops + [("delete", {"PartitionKey": tenant_id, "RowKey": k})
                                               for k in membership_keys], USER + user_id, deleted)
            return True
        # Too many groups for one transaction: memberships first (a retry finds fewer), then the user.
        _remove_memberships(tenant_id, [(g, user_id) for g in groups])
        _delete_all(tenant_id, user_ops, USER + user_id, deleted)  # Changed if a membership was added meanwhile
        return True
    return _retrying(attempt)


# --- groups ---------------------------------------------------------------------------------------------------------

_GROUP_COLUMNS = ["id", "scim", "created", "last_modified", "version", "deleting"]


def get_group_record(tenant_id: str, group_id: str, include_deleting: bool = False) -> GroupRecord | None:
    entity = tables.get(TABLE, tenant_id, GROUP + group_id, select=_GROUP_COLUMNS)
    if not entity:
        return None
    record = _group_from(entity)
    return None if record.deleting and not include_deleting else record


def find_group_by_name(tenant_id: str, display_name: str) -> GroupRecord | None:
    entity = tables.get(TABLE, tenant_id, group_name_key(display_name), select=_GROUP_COLUMNS)
    return _group_from(entity, from_copy=True) if entity else None


def iter_group_records(tenant_id: str) -> Iterator[GroupRecord]:
    for entity in tables.partition_range(TABLE, tenant_id, GROUP, select=_GROUP_COLUMNS, page_size=1000):
        record = _group_from(entity, from_copy=True)
        if not record.deleting:
            yield record


def iter_members(tenant_id: str, group_id: str) -> Iterator[dict]:
    """The group's members as SCIM member values ({"value": id[, "type": "User"]}), in user-id order."""
    for entity in tables.partition_range(TABLE, tenant_id, f"{MEMBER}{group_id}:", select=["RowKey", "type"],
                                         page_size=1000):
        member = {"value": entity["RowKey"][len(MEMBER) + len(group_id) + 1:]}
        if entity.get("type"):
            member["type"] = entity["type"]
        yield member


def find_members(tenant_id: str, group_id: str, user_ids: Iterable[str]) -> dict[str, dict]:
    """Which of these users are members (reads only their rows, not the group)."""
    keys = [f"{MEMBER}{group_id}:{u}" for u in user_ids]
    found = _existing(tenant_id, keys, select=["RowKey", "type"])
    out = {}
    for key, entity in found.items():
        member = {"value": key[len(MEMBER) + len(group_id) + 1:]}
        if entity.get("type"):
            member["type"] = entity["type"]
        out[member["value"]] = member
    return out


def _membership_ops(tenant_id: str, group_id: str, adds: list[dict], removes: list[str]) -> tuple[list, dict]:
    """Per added member: its row, the reverse row and a touch (an empty merge) of the user row, which fails
    the whole transaction if the user does not exist. Per removed member: both rows."""
    ops: list[tuple] = []
    touched: dict[str, str] = {}
    for member in adds:
        user_id = member["value"]
        columns = {"type": member["type"]} if member.get("type") else {}
        ops.append(("upsert", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER}{group_id}:{user_id}", **columns},
                    {"mode": UpdateMode.REPLACE}))
        ops.append(("upsert", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER_OF}{user_id}:{group_id}"},
                    {"mode": UpdateMode.REPLACE}))
        ops.append(("update", {"PartitionKey": tenant_id, "RowKey": USER + user_id}, {"mode": UpdateMode.MERGE}))
        touched[USER + user_id] = user_id
    for user_id in removes:
        ops.append(("delete", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER}{group_id}:{user_id}"}))
        ops.append(("delete", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER_OF}{user_id}:{group_id}"}))
    return ops, touched


def _check_users_exist(tenant_id: str, user_ids: list[str]) -> None:
    found = _existing(tenant_id, [USER + u for u in user_ids], select=["RowKey"])
    for user_id in user_ids:
        if USER + user_id not in found:
            raise NotAUser(user_id)


def create_group(tenant_id: str, data: dict, members: list[dict]) -> GroupRecord:
    """Insert a group (and its members, if any). The displayName is unique: a clash raises Taken."""
    stamp = now()
    record = GroupRecord(new_id(), data, stamp, stamp, 1)
    rows = _group_rows(tenant_id, record)
    taken = {group_name_key(data["displayName"]): ("displayName", data["displayName"])}
    group_ops = [("create", row) for row in rows.values()]
    members = list({m["value"]: m for m in members}.values())
    created = [events.Change(events.GROUP_CREATED, events.group_data(record.id, data))]
    if len(group_ops) + 3 * len(members) + 3 <= BATCH:  # + two events and the event log's head
        ops, touched = _membership_ops(tenant_id, record.id, members, [])
        if members:
            created.append(events.members_change(events.GROUP_MEMBERS_ADDED, record.id, data,
                                                 [m["value"] for m in members]))
        results = _submit(tenant_id, group_ops + ops, taken=taken, touched_users=touched, changes=created)
        record.etag = results[0].get("etag")
        return record
    # A large initial member list (Entra never sends one): check the users, create the group, then add
    # members in batches; an interruption leaves the group with part of its members (a PATCH completes it).
    _check_users_exist(tenant_id, [m["value"] for m in members])
    results = _submit(tenant_id, group_ops, taken=taken, changes=created)
    record.etag = results[0].get("etag")
    _write_members(tenant_id, record.id, members, [], data)
    return record


def _write_members(tenant_id: str, group_id: str, adds: list[dict], removes: list[str], data: dict) -> None:
    """Member changes too large for one transaction, in batches; each batch writes its own event."""
    _remove_memberships(tenant_id, [(group_id, u) for u in removes], {group_id: data})
    for chunk in _chunks(adds, (BATCH - 2) // 3):
        ops, touched = _membership_ops(tenant_id, group_id, chunk, [])
        _submit(tenant_id, ops, touched_users=touched, changes=[events.members_change(
            events.GROUP_MEMBERS_ADDED, group_id, data, [m["value"] for m in chunk])])


def _remove_memberships(tenant_id: str, pairs: list[tuple[str, str]], groups: dict[str, dict] | None = None) -> None:
    """Delete memberships (group id, user id) in batches, each with a group.members_removed event per group;
    a membership deleted meanwhile by someone else is left out (its event was theirs)."""
    if groups is None:
        found = _existing(tenant_id, [GROUP + g for g in {g for g, _ in pairs}], select=["id", "scim"])
        groups = {entity["id"]: json.loads(entity["scim"]) for entity in found.values()}
    for chunk in _chunks(pairs, (BATCH - 2) // 3):
        for _ in range(ATTEMPTS):
            ops = [("delete", {"PartitionKey": tenant_id, "RowKey": key}) for g, u in chunk
                   for key in (f"{MEMBER}{g}:{u}", f"{MEMBER_OF}{u}:{g}")]
            removed: dict[str, list[str]] = {}
            for g, u in chunk:
                removed.setdefault(g, []).append(u)
            changes = [events.members_change(events.GROUP_MEMBERS_REMOVED, g, groups.get(g) or {}, users)
                       for g, users in removed.items()]
            try:
                _submit(tenant_id, ops, changes=changes)
                break
            except Changed:  # one of them is gone: keep only memberships still there
                present = _existing(tenant_id, [f"{MEMBER}{g}:{u}" for g, u in chunk], select=["RowKey"])
                chunk = [(g, u) for g, u in chunk if f"{MEMBER}{g}:{u}" in present]
                if not chunk:
                    break
        else:
            raise StorageUnavailable("These memberships are being changed by several requests at once; please retry.",
                                     retry_after=1)


def save_group(tenant_id: str, old: GroupRecord, data: dict, adds: dict[str, dict], removes: set[str],
               *, known_members: dict[str, dict] | None = None) -> GroupRecord:
    """Write a group's new data and member changes. Work is proportional to the members named: removals
    read back only the rows of the members named (unless `known_members` already says who is in)."""
    if known_members is None and removes:
        present = find_members(tenant_id, old.id, removes)
    else:
        present = {u: m for u, m in (known_members or {}).items() if u in removes}
    removing = sorted(u for u in removes if u in present)
    adding = sorted(adds.values(), key=lambda m: m["value"])
    changed = data != old.data or bool(adding) or bool(removing)
    if not changed:
        return old
    record = GroupRecord(old.id, data, old.created, now(), old.version + 1, etag=old.etag)
    old_rows, new_rows = _group_rows(tenant_id, old), _group_rows(tenant_id, record)
    taken = {}
    if old.data["displayName"].casefold() != data["displayName"].casefold():
        taken[group_name_key(data["displayName"])] = ("displayName", data["displayName"])
    group_ops = _replace_rows(old_rows, new_rows, GROUP + old.id, old.etag)
    updated = [events.Change(events.GROUP_UPDATED, events.group_data(old.id, data))] if data != old.data else []
    if len(group_ops) + 3 * len(adding) + 2 * len(removing) + 4 <= BATCH:  # + three events and the head
        ops, touched = _membership_ops(tenant_id, old.id, adding, removing)
        changes = list(updated)
        if adding:
            changes.append(events.members_change(events.GROUP_MEMBERS_ADDED, old.id, data,
                                                 [m["value"] for m in adding]))
        if removing:
            changes.append(events.members_change(events.GROUP_MEMBERS_REMOVED, old.id, data, removing))
        results = _submit(tenant_id, group_ops + ops, taken=taken, touched_users=touched, changes=changes)
        record.etag = results[0].get("etag")
        return record
    # More than one transaction: check the users first, so bad input fails before anything is written;
    # then the group row (which also claims the version), then the membership batches.
    _check_users_exist(tenant_id, [m["value"] for m in adding])
    results = _submit(tenant_id, group_ops, taken=taken, changes=updated)
    record.etag = results[0].get("etag")
    _write_members(tenant_id, old.id, adding, removing, data)
    return record


def delete_group(tenant_id: str, group_id: str, check=None) -> bool:
    """Delete a group and its memberships; False when there is no such group. A retried DELETE of a group
    whose deletion was interrupted finishes it."""
    def attempt() -> bool:
        record = get_group_record(tenant_id, group_id, include_deleting=True)
        if record is None:
            return False
        if check is not None and not record.deleting:
            check(record)
        users = [m["value"] for m in iter_members(tenant_id, group_id)]
        membership_keys = [k for u in users for k in (f"{MEMBER}{group_id}:{u}", f"{MEMBER_OF}{u}:{group_id}")]
        rows = _group_rows(tenant_id, record)
        group_ops = [("delete", {"PartitionKey": tenant_id, "RowKey": key},
                      _conditional(record.etag) if key == GROUP + group_id else {}) for key in rows]
        # A hidden group's deletion was announced when it was hidden; the rest is cleaning up.
        deleted = [] if record.deleting else [events.Change(events.GROUP_DELETED,
                                                            events.group_data(group_id, record.data))]
        if len(group_ops) + len(membership_keys) + 2 <= BATCH:
            _delete_all(tenant_id, group_ops + [("delete", {"PartitionKey": tenant_id, "RowKey": k})
                                                for k in membership_keys], GROUP + group_id, deleted)
            return True
        if not record.deleting:
            # Hide the group and free its name first: from here on, only finishing the delete is possible.
            hidden = GroupRecord(record.id, record.data, record.created, now(), record.version + 1, deleting=True)
            results = _submit(tenant_id, _replace_rows(rows, _group_rows(tenant_id, hidden), GROUP + group_id,
                                                       record.etag), changes=deleted)
            record = hidden
            record.etag = results[0].get("etag")
        _delete_rows(tenant_id, membership_keys)
        _submit(tenant_id, [("delete", {"PartitionKey": tenant_id, "RowKey": GROUP + group_id},
                             _conditional(record.etag))])
        return True
    return _retrying(attempt)


# --- the employee interface (sign-in, domain audit, admin) -------------------------------------------------------------

def _employee_entity(tenant_id: str, key: str) -> dict | None:
    return tables.get(TABLE, tenant_id, key, select=_EMPLOYEE_COLUMNS)


def get_user(tenant_id: str, user_id: str) -> Employee | None:
    """The employee with this SCIM id (one point read)."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > 64:
        return None
    entity = _employee_entity(tenant_id, USER + _part(user_id))
    return _employee_from(entity) if entity else None


def get_user_and_names(tenant_id: str, user_id: str) -> tuple[Employee, dict[str, str]] | None:
    """The employee and their SCIM name parts (givenName, familyName) in one point read (ID token claims)."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > 64:
        return None
    entity = tables.get(TABLE, tenant_id, USER + _part(user_id), select=_EMPLOYEE_COLUMNS + ["scim"])
    if not entity:
        return None
    name = json.loads(entity.get("scim") or "{}").get("name")
    parts = {key: name[key] for key in ("givenName", "familyName")
             if isinstance(name, dict) and isinstance(name.get(key), str) and name[key]}
    return _employee_from(entity), parts


def find_user_by_external_id(tenant_id: str, external_id: str) -> Employee | None:
    """The employee whose externalId (Entra objectId) is exactly this (one point read)."""
    if not isinstance(external_id, str) or not external_id:
        return None
    entity = _employee_entity(tenant_id, external_id_key(external_id))
    return _employee_from(entity) if entity else None


def find_user_by_user_name(tenant_id: str, user_name: str) -> Employee | None:
    """The employee whose userName matches case-insensitively (one point read)."""
    if not isinstance(user_name, str) or not user_name:
        return None
    entity = _employee_entity(tenant_id, user_name_key(user_name))
    return _employee_from(entity) if entity else None


def iter_active_people(tenant_id: str) -> Iterator[Employee]:
    """Every active employee (id, user_name, work_email, display_name, ...) without reading SCIM documents:
    a range scan of the user rows selecting only the employee columns."""
    rows = tables.query(TABLE, "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi and active eq true",
                        {"pk": tenant_id, "lo": USER, "hi": USER + "\uffff"}, select=_EMPLOYEE_COLUMNS,
                        page_size=1000)
    for entity in rows:
        yield _employee_from(entity)


def _change_user(tenant_id: str, user_id: str, change) -> Employee:
    def attempt() -> Employee:
        record = get_user_record(tenant_id, user_id) if isinstance(user_id, str) and len(user_id) <= 64 else None
        if record is None:
            raise NotFound("No such employee.")
        saved = change(record)
        return replace(_employee_from(_user_columns(saved)), etag=saved.etag)  # the columns as written
    return _retrying(attempt)


def set_admin(tenant_id: str, user_id: str, is_admin: bool) -> Employee:
    """Grant or take admin rights (Gatehouse-internal; not visible over SCIM). A dismissed (inactive)
    employee cannot be made an admin."""
    def change(record: UserRecord) -> UserRecord:
        if is_admin and record.data.get("active") is False:
            raise Conflict("A dismissed employee (active=false) cannot be an admin.", field="is_admin")
        return save_user(tenant_id, record, record.data, bump=False, is_admin=bool(is_admin))
    return _change_user(tenant_id, user_id, change)


def set_allowed_outside_domain(tenant_id: str, user_id: str, allowed: bool) -> Employee:
    """The domain audit's "Allow": the admin accepts this employee's email outside the corporate domains."""
    return _change_user(tenant_id, user_id, lambda record: save_user(
        tenant_id, record, record.data, bump=False, allowed_outside_domain=bool(allowed)))


def update_work_email(tenant_id: str, user_id: str, email: str) -> Employee:
    """Set the employee's work email (the admin fixing an address): the SCIM `emails` value of type "work"
    changes too, so provisioning clients see it; the email index follows in the same transaction."""
    if not isinstance(email, str) or "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise BadRequest("email must be an email address (name@domain).", field="email")

    def change(record: UserRecord) -> UserRecord:
        data = json.loads(json.dumps(record.data))
        emails = [dict(e) for e in data.get("emails") or []]
        work = [e for e in emails if str(e.get("type", "")).lower() == "work"]
        if work:
            target = next((e for e in work if e.get("primary") is True), work[0])
            target["value"] = email
        else:
            entry = {"value": email, "type": "work"}
            if not any(e.get("primary") is True for e in emails):
                entry["primary"] = True
            emails.append(entry)
        data["emails"] = emails
        return save_user(tenant_id, record, data)
    return _change_user(tenant_id, user_id, change)
