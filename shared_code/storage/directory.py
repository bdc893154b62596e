"""The directory: a tenant's employees (SCIM Users), groups, memberships and the index rows that make every
lookup a point read. One partition per tenant in the `directory` table.

RowKeys (key parts are escaped, see `_part`):
  user:<id>                     the employee: SCIM data as JSON (`scim`) plus its own columns for the audit
                                and sign-in (`user_name`, `external_id`, `work_email`, `display_name`, `active`,
                                `department`, and Gatehouse-internal `is_admin`, `allowed_outside_domain`), and
                                what the product sees of their groups: `group_ids` (the groups they are in,
                                space-separated, split over `group_ids`, `group_ids_1`, … when long), `roles`
                                (effective), `granted_roles` (granted by a tenant admin), `admin_blocked`
                                (dismissed since the admin right was last granted), `manager_name`
  username:<casefolded userName>   a copy of the user row: uniqueness of userName, and `userName eq` in one read
  externalid:<externalId>          a copy of the user row: uniqueness of externalId (Entra's objectId)
  email:<casefolded email>:<id>    a copy of the user row per work email (not unique)
  group:<id>                    a group's data (without members)
  groupname:<casefolded name>   a copy of the group row: uniqueness of displayName, `displayName eq` in one read
  member:<groupId>:<userId>     one row per membership ...
  memberof:<userId>:<groupId>   ... and its reverse, so deleting a user finds its groups without a scan
  rolemap                       the tenant's role mappings: Entra group id → the product's roles (JSON), and
                                the product's roles for this tenant when the operator declared them (`roles`)

Index rows are copies, not pointers, so a lookup by userName, externalId or id is one round trip. Every
change of a user or group writes its row and its copies in one entity-group transaction (all or nothing).

A membership change merges the member's new `group_ids` into their user row in the same transaction as the
membership rows, conditional on the ETag read (and their `roles`/`is_admin` into the copies too, when those
change): the user row is never behind the membership rows, so an `employee.*` event carries the employee's
groups and roles without a query per event, and a token reads them in its one point read of the user row.
The copies (`username:` …) do not carry `group_ids`. Roles are recomputed in the write that changes what they depend on
(membership, dismissal, rehire, a grant); a change of the role mappings recomputes the members of the groups it
names (`set_role_mappings`).
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

from shared_code.platform.errors import BadRequest, Conflict, NotFound, StorageUnavailable
from shared_code.events import log as event_log
from shared_code.events import shapes as events
from shared_code.storage import tables

TABLE = tables.DIRECTORY
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BATCH = 100  # Table Storage's limit of operations in one entity-group transaction
ATTEMPTS = 8  # optimistic-concurrency retries before answering 503

USER, USERNAME, EXTERNAL_ID, EMAIL = "user:", "username:", "externalid:", "email:"
GROUP, GROUP_NAME, MEMBER, MEMBER_OF = "group:", "groupname:", "member:", "memberof:"

ROLE_MAP = "rolemap"
GROUP_ID_CHUNK = 30000  # characters per column (a string property holds at most 32K UTF-16 characters)
GROUP_ID_COLUMNS = ["group_ids"] + [f"group_ids_{n}" for n in range(1, 6)]
MAX_GROUPS_PER_EMPLOYEE = len(GROUP_ID_COLUMNS) * GROUP_ID_CHUNK // 33  # 32-character ids and a separator
_ROLE_COLUMNS = ["roles", "granted_roles", "admin_blocked", "manager_name", *GROUP_ID_COLUMNS]
_USER_COLUMNS = ["id", "scim", "created", "last_modified", "version", "is_admin", "allowed_outside_domain",
                 "sessions_valid_from", *_ROLE_COLUMNS]
_EMPLOYEE_COLUMNS = ["id", "user_name", "external_id", "work_email", "display_name", "active", "is_admin",
                     "department", "allowed_outside_domain", "sessions_valid_from", "roles", "admin_blocked",
                     *GROUP_ID_COLUMNS]


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


class AdminFromGroups(Conflict):
    """Revoking an admin right that the employee's Entra groups give them (nothing is changed)."""

    def __init__(self):
        super().__init__("This employee is an admin through an Entra group mapped to the admin role: remove them "
                         "from that group in Entra, or map the group to other roles (PUT …/role-mappings).",
                         field="is_admin")


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
    group_ids: tuple[str, ...] = ()  # the groups they are in, sorted
    roles: tuple[str, ...] = ()  # effective: `effective_roles` of the rest; "admin" is the same as is_admin
    granted_roles: tuple[str, ...] = ()  # granted by a tenant admin (today: "admin")
    admin_blocked: bool = False  # dismissed since admin was last granted: no admin role from groups either
    manager_name: str | None = None  # the manager's displayName when the manager was last set


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
    names: dict | None = field(default=None, compare=False)  # SCIM givenName, familyName when read `with_names`
    roles: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()  # only when read from the user row itself (not from an index copy)
    profile: dict | None = field(default=None, compare=False, repr=False)  # the whole employee, when asked for
    admin_blocked: bool = False  # dismissed since a tenant admin last granted the admin right


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
        "roles": " ".join(record.roles),
        "granted_roles": " ".join(record.granted_roles),
        "admin_blocked": record.admin_blocked,
        "manager_name": record.manager_name,
        **group_id_columns(record.group_ids),
    }


def group_id_columns(group_ids: Iterable[str]) -> dict[str, str | None]:
    """`group_ids` split over as many columns as it needs (the unused ones empty, so a MERGE clears them)."""
    text = " ".join(group_ids)
    if len(text) > len(GROUP_ID_COLUMNS) * GROUP_ID_CHUNK:
        raise Conflict(f"An employee can be in at most {MAX_GROUPS_PER_EMPLOYEE} groups here.", field="members")
    parts = [text[i:i + GROUP_ID_CHUNK] for i in range(0, len(text), GROUP_ID_CHUNK)] or [""]
    return {column: (parts[n] if n < len(parts) else "") for n, column in enumerate(GROUP_ID_COLUMNS)}


def group_ids_of(columns: dict) -> tuple[str, ...]:
    """The group ids stored on a user row (see `group_id_columns`)."""
    return tuple("".join(columns.get(c) or "" for c in GROUP_ID_COLUMNS).split())


def _words(value: Any) -> tuple[str, ...]:
    return tuple(value.split()) if isinstance(value, str) else ()


def effective_roles(active: bool, group_ids: Iterable[str], granted: Iterable[str], admin_blocked: bool,
                    mapping: dict[str, list[str]]) -> tuple[str, ...]:
    """An employee's roles: none while dismissed; else their grants plus the roles mapped to their groups,
    except the admin role from groups while `admin_blocked` (dismissed since a tenant admin last granted it:
    a rehire does not bring admin rights back by itself)."""
    if not active:
        return ()
    roles = set(granted)
    for group_id in group_ids:
        for role in mapping.get(group_id, ()):
            if role != "admin" or not admin_blocked:
                roles.add(role)
    return tuple(sorted(roles))


def _user_rows(tenant_id: str, record: UserRecord) -> dict[str, dict]:
    """The user row and its copies, by RowKey."""
    columns = _user_columns(record)
    keys = [USER + record.id, user_name_key(record.data["userName"])]
    if record.data.get("externalId"):
        keys.append(external_id_key(record.data["externalId"]))
    if columns["work_email"]:
        keys.append(email_prefix(columns["work_email"]) + record.id)
    # The group ids live on the user row only: a membership change then rewrites one row, not four.
    copy = {k: v for k, v in columns.items() if k not in GROUP_ID_COLUMNS}
    return {key: {"PartitionKey": tenant_id, "RowKey": key, **(columns if key == USER + record.id else copy)}
            for key in keys}


def _user_from(entity: dict, from_copy: bool = False) -> UserRecord:
    is_admin = bool(entity.get("is_admin"))
    granted = entity.get("granted_roles")
    # Rows written before roles existed: their admin right was a grant.
    granted_roles = _words(granted) if granted is not None else (("admin",) if is_admin else ())
    roles = entity.get("roles")
    return UserRecord(
        id=entity["id"], data=json.loads(entity["scim"]), created=entity["created"],
        last_modified=entity["last_modified"], version=int(entity["version"]),
        is_admin=is_admin, allowed_outside_domain=bool(entity.get("allowed_outside_domain")),
        sessions_valid_from=int(entity.get("sessions_valid_from") or 0),
        etag=None if from_copy else tables.etag_of(entity), group_ids=group_ids_of(entity),
        roles=_words(roles) if roles is not None else granted_roles, granted_roles=granted_roles,
        admin_blocked=bool(entity.get("admin_blocked")), manager_name=entity.get("manager_name"))


def _employee_from(entity: dict) -> Employee:
    return Employee(
        id=entity["id"], user_name=entity.get("user_name") or "", external_id=entity.get("external_id"),
        work_email=entity.get("work_email"), display_name=entity.get("display_name"),
        active=bool(entity.get("active")), is_admin=bool(entity.get("is_admin")),
        department=entity.get("department"), allowed_outside_domain=bool(entity.get("allowed_outside_domain")),
        sessions_valid_from=int(entity.get("sessions_valid_from") or 0), etag=tables.etag_of(entity),
        roles=_words(entity["roles"]) if entity.get("roles") is not None else (
            ("admin",) if entity.get("is_admin") else ()),
        group_ids=group_ids_of(entity), admin_blocked=bool(entity.get("admin_blocked")),
        names=_names(entity) if "scim" in entity else None)


def _names(entity: dict) -> dict[str, str]:
    """givenName and familyName from the SCIM document of a user row (or one of its copies)."""
    name = json.loads(entity.get("scim") or "{}").get("name")
    return {key: name[key] for key in ("givenName", "familyName")
            if isinstance(name, dict) and isinstance(name.get(key), str) and name[key]}


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
            gone_ok: set[str] | None = None,
            changes: list[events.Change] | None = None) -> list:
    """One transaction, with the events of `changes`. Maps its failures: a created index row that exists →
    Taken; a conditional write that lost the race, or a row gone meanwhile → Changed."""
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

def create_user(tenant_id: str, data: dict, manager_name: str | None = None) -> UserRecord:
    """Insert a user with its copies in one transaction: of concurrent creates with the same userName
    (or externalId), exactly one wins; the others raise Taken."""
    stamp = now()
    record = UserRecord(new_id(), data, stamp, stamp, 1, manager_name=manager_name)
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


_KEEP: Any = object()


def save_user(tenant_id: str, old: UserRecord, data: dict, *, bump: bool = True,
              is_admin: bool | None = None, allowed_outside_domain: bool | None = None,
              manager_name: Any = _KEEP) -> UserRecord:
    """Write new data for a user read as `old` (raises Changed when it changed meanwhile, Taken when a new
    userName/externalId is someone else's). Dismissal is enforced here, for every caller: a dismissed user
    has no roles (so is no admin), a granted admin right is withdrawn and the admin role from groups stays
    blocked until a tenant admin grants it again (a rehire does not bring it back), and the moment of a
    dismissal ends every session issued before it (also once the employee is rehired: a rehire means a new
    sign-in). `is_admin` True/False grants/withdraws the admin right (a grant lifts the block)."""
    granted, blocked = set(old.granted_roles), old.admin_blocked
    if is_admin is True:
        granted.add("admin")
        blocked = False
    elif is_admin is False:
        granted.discard("admin")
    sessions_valid_from = old.sessions_valid_from
    active, was_active = data.get("active") is not False, old.data.get("active") is not False
    if not active:
        granted.discard("admin")
        if was_active:
            blocked = True
            # Rounded up: a session issued in the same second as the dismissal is ended too.
            sessions_valid_from = math.ceil(time.time())
    roles = old.roles
    if active != was_active or granted != set(old.granted_roles) or blocked != old.admin_blocked:
        mapping = role_mapping(tenant_id)[0] if active and old.group_ids else {}
        roles = effective_roles(active, old.group_ids, granted, blocked, mapping)
    manager = ((data.get(ENTERPRISE) or {}).get("manager") or {}).get("value")
    if manager_name is _KEEP:
        manager_name = old.manager_name if manager else None
    record = replace(old, data=data, last_modified=now() if bump else old.last_modified,
                     version=old.version + (1 if bump else 0), is_admin="admin" in roles,
                     allowed_outside_domain=old.allowed_outside_domain if allowed_outside_domain is None
                     else allowed_outside_domain, sessions_valid_from=sessions_valid_from, roles=roles,
                     granted_roles=tuple(sorted(granted)), admin_blocked=blocked,
                     manager_name=manager_name if manager else None, etag=None)
    taken = {}
    if old.data["userName"].casefold() != data["userName"].casefold():
        taken[user_name_key(data["userName"])] = ("userName", data["userName"])
    if data.get("externalId") and data.get("externalId") != old.data.get("externalId"):
        taken[external_id_key(data["externalId"])] = ("externalId", data["externalId"])
    ops, changes = _user_write(tenant_id, old, record)
    results = _submit(tenant_id, ops, taken=taken, changes=changes)
    record.etag = (results[0] or {}).get("etag") if results else None
    return record


def _user_write(tenant_id: str, old: UserRecord, new: UserRecord) -> tuple[list[tuple], list[events.Change]]:
    """The operations that turn the user `old` (as read, with its ETag) into `new`, and their events."""
    old_rows, new_rows = _user_rows(tenant_id, old), _user_rows(tenant_id, new)
    return (_replace_rows(old_rows, new_rows, USER + old.id, old.etag),
            events.employee_changes(old_rows[USER + old.id], new_rows[USER + old.id]))


def _regrouped(old: UserRecord, add: Iterable[str], remove: Iterable[str], mapping: dict) -> UserRecord:
    """The user after joining `add` and leaving `remove`, with their roles recomputed."""
    group_ids = tuple(sorted((set(old.group_ids) | set(add)) - set(remove)))
    return _reroled(replace(old, group_ids=group_ids, etag=None), mapping)


def _reroled(record: UserRecord, mapping: dict) -> UserRecord:
    roles = effective_roles(record.data.get("active") is not False, record.group_ids, record.granted_roles,
                            record.admin_blocked, mapping)
    return replace(record, roles=roles, is_admin="admin" in roles)


# --- role mappings -----------------------------------------------------------------------------------------------

def role_mapping(tenant_id: str) -> tuple[dict[str, list[str]], int]:
    """The tenant's role mappings (Entra group id → roles) and their version (0: never set)."""
    entity = tables.get(TABLE, tenant_id, ROLE_MAP, select=["mappings", "version"])
    return _mapping_from(entity)


def _mapping_from(entity: dict | None) -> tuple[dict[str, list[str]], int]:
    if not entity:
        return {}, 0
    return json.loads(entity.get("mappings") or "{}"), int(entity.get("version") or 0)


def set_role_mappings(tenant_id: str, mappings: dict[str, list[str]]) -> int:
    """Store the role mappings and recompute the roles of every member of a group the old or new mappings
    name (each changed employee gets its events). The mappings row is written first; the members are then
    rewritten in batches (`recompute_roles`), so an interrupted call leaves roles that a repeated PUT (same
    body) finishes. A membership write that read the mappings before this one changed them notices it after
    its commit and recomputes its users again (`_after_membership_write`)."""
    def attempt() -> tuple[dict, int]:
        entity = tables.get(TABLE, tenant_id, ROLE_MAP, select=["mappings", "version", "roles"])
        old, version = _mapping_from(entity)
        row = {"PartitionKey": tenant_id, "RowKey": ROLE_MAP, "kind": "rolemap", "version": version + 1,
               "mappings": json.dumps(mappings, separators=(",", ":"), sort_keys=True),
               "roles": (entity or {}).get("roles")}
        op = ("update", row, {"mode": UpdateMode.REPLACE, **_conditional(tables.etag_of(entity))}) if entity \
            else ("create", row)
        _submit(tenant_id, [op])
        return old, version + 1
    old, version = _retrying(attempt)
    users: set[str] = set()
    for group_id in sorted(set(old) | set(mappings)):
        users.update(m["value"] for m in iter_members(tenant_id, group_id))
    recompute_roles(tenant_id, sorted(users))
    return version


def tenant_roles(tenant_id: str) -> list[str] | None:
    """The product's roles the operator declared for this tenant (None: the deployment's `PRODUCT_ROLES`)."""
    entity = tables.get(TABLE, tenant_id, ROLE_MAP, select=["roles"])
    roles = (entity or {}).get("roles")
    return json.loads(roles) if roles else None


def set_tenant_roles(tenant_id: str, roles: list[str] | None, check=None) -> None:
    """Declare (None: forget) the product's roles for this tenant. `check(mappings)` may refuse first (a role
    still mapped); the mappings row's ETag makes a concurrent mapping change re-run it."""
    def attempt() -> None:
        entity = tables.get(TABLE, tenant_id, ROLE_MAP, select=["mappings", "version", "roles"])
        if check is not None:
            check(_mapping_from(entity)[0])
        row = {"PartitionKey": tenant_id, "RowKey": ROLE_MAP, "kind": "rolemap",
               "version": int((entity or {}).get("version") or 0), "mappings": (entity or {}).get("mappings") or "{}",
               "roles": json.dumps(roles) if roles is not None else None}
        op = ("update", row, {"mode": UpdateMode.REPLACE, **_conditional(tables.etag_of(entity))}) if entity \
            else ("create", row)
        _submit(tenant_id, [op])
    _retrying(attempt)


def recompute_roles(tenant_id: str, user_ids: list[str]) -> None:
    """Recompute these users' roles from the current mappings, in batches; only changed users are written."""
    for chunk in _chunks(user_ids, (BATCH - 1) // 7):
        for _ in range(ATTEMPTS):
            users, mapping, _ = _read_users(tenant_id, chunk)
            ops: list[tuple] = []
            changes: list[events.Change] = []
            for user in users.values():
                new = _reroled(user, mapping)
                if new.roles != user.roles:
                    user_ops, user_changes = _user_write(tenant_id, user, new)
                    ops += user_ops
                    changes += user_changes
            if not ops:
                break
            try:
                _submit(tenant_id, ops, changes=changes)
                break
            except Changed:
                continue
        else:
            raise StorageUnavailable("These employees are being changed by several requests at once; please retry.",
                                     retry_after=1)


def _read_users(tenant_id: str, user_ids: Iterable[str]) -> tuple[dict[str, UserRecord], dict, int]:
    """These users (those that exist) and the role mappings, in one parallel round of point reads."""
    found = _existing(tenant_id, [USER + u for u in user_ids] + [ROLE_MAP], select=_USER_COLUMNS + ["mappings"])
    mapping, version = _mapping_from(found.pop(ROLE_MAP, None))
    return {key[len(USER):]: _user_from(entity) for key, entity in found.items()}, mapping, version


def _after_membership_write(tenant_id: str, version: int, user_ids: Iterable[str]) -> None:
    """A membership write computed roles from mappings of `version`; if they changed meanwhile (a concurrent
    PUT of the mappings that may have recomputed these users before this write landed), recompute again."""
    if role_mapping(tenant_id)[1] != version:
        recompute_roles(tenant_id, sorted(set(user_ids)))


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
        _remove_memberships(tenant_id, [(g, user_id) for g in groups], update_users=False)
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


PER_MEMBER = 9  # operations one member can cost: 2 membership rows, the user row, 3 copies, 3 events


def _membership_units(tenant_id: str, group_id: str, adds: list[dict], removes: list[str],
                      users: dict[str, UserRecord], mapping: dict) -> list[tuple[str, list, list]]:
    """Per member (user id, operations, events): for an added one, its row and the reverse row; for a removed
    one, both deleted; and the user row merged with their new `group_ids` (and roles), conditional on the
    ETag read (a concurrent change or delete of the user fails the transaction: Changed, re-read), with the
    user's events. An added user that does not exist is refused (NotAUser) before anything is written."""
    units = []
    for member in adds:
        user_id = member["value"]
        if user_id not in users:
            raise NotAUser(user_id)
        columns = {"type": member["type"]} if member.get("type") else {}
        ops = [("upsert", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER}{group_id}:{user_id}", **columns},
                {"mode": UpdateMode.REPLACE}),
               ("upsert", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER_OF}{user_id}:{group_id}"},
                {"mode": UpdateMode.REPLACE})]
        user_ops, changes = _regroup_ops(tenant_id, users[user_id], [group_id], [], mapping)
        units.append((user_id, ops + user_ops, changes))
    for user_id in removes:
        ops = [("delete", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER}{group_id}:{user_id}"}),
               ("delete", {"PartitionKey": tenant_id, "RowKey": f"{MEMBER_OF}{user_id}:{group_id}"})]
        changes: list[events.Change] = []
        if user_id in users:  # else a user being deleted: its row goes with it
            user_ops, changes = _regroup_ops(tenant_id, users[user_id], [], [group_id], mapping)
            ops += user_ops
        units.append((user_id, ops, changes))
    return units


def _regroup_ops(tenant_id: str, old: UserRecord, add: list[str], remove: list[str],
                 mapping: dict) -> tuple[list[tuple], list[events.Change]]:
    """Merge a user's new group ids (and, when they change, roles) into their rows; with their events."""
    new = _regrouped(old, add, remove, mapping)
    if new.group_ids == old.group_ids and new.roles == old.roles:
        return [], []
    old_rows, new_rows = _user_rows(tenant_id, old), _user_rows(tenant_id, new)
    primary = USER + old.id
    changed = {"PartitionKey": tenant_id, "RowKey": primary, **group_id_columns(new.group_ids)}
    copies = {"roles": new_rows[primary]["roles"], "is_admin": new.is_admin} if new.roles != old.roles else {}
    ops = [("update", {**changed, **copies}, {"mode": UpdateMode.MERGE, **_conditional(old.etag)})]
    if copies:
        ops += [("update", {"PartitionKey": tenant_id, "RowKey": key, **copies}, {"mode": UpdateMode.MERGE})
                for key in new_rows if key != primary]
    return ops, events.employee_changes(old_rows[primary], new_rows[primary])


PAYLOAD = 3_000_000  # bytes a transaction may carry, with room to spare (Table Storage takes at most 4 MiB)


def _unit_bytes(unit: tuple[str, list, list]) -> int:
    """About what a unit adds to a transaction's payload (its long strings: group ids, SCIM data, events)."""
    size = sum(len(v) for op in unit[1] for v in op[1].values() if isinstance(v, str))
    return size + sum(len(json.dumps(change.data)) for change in unit[2])


def _packed(units: list[tuple[str, list, list]], room: int) -> Iterator[list[tuple[str, list, list]]]:
    """Units in order, as many to a transaction as fit in `room` operations (events included) and in its
    payload (members in thousands of groups carry long group id lists)."""
    batch: list = []
    used = weight = 0
    for unit in units:
        cost, size = len(unit[1]) + len(unit[2]), _unit_bytes(unit)
        if batch and (used + cost > room or weight + size > PAYLOAD):
            yield batch
            batch, used, weight = [], 0, 0
        batch.append(unit)
        used += cost
        weight += size
    if batch:
        yield batch


def _unit_ops(units) -> tuple[list, list[events.Change]]:
    return [op for unit in units for op in unit[1]], [change for unit in units for change in unit[2]]


def create_group(tenant_id: str, data: dict, members: list[dict]) -> GroupRecord:
    """Insert a group (and its members, if any). The displayName is unique: a clash raises Taken."""
    stamp = now()
    record = GroupRecord(new_id(), data, stamp, stamp, 1)
    rows = _group_rows(tenant_id, record)
    taken = {group_name_key(data["displayName"]): ("displayName", data["displayName"])}
    group_ops = [("create", row) for row in rows.values()]
    members = list({m["value"]: m for m in members}.values())
    created = [events.Change(events.GROUP_CREATED, events.group_data(record.id, data))]
    if len(group_ops) + PER_MEMBER * len(members) + 3 <= BATCH:  # + two events and the event log's head
        users, mapping, version = _read_users(tenant_id, [m["value"] for m in members]) if members else ({}, {}, 0)
        ops, user_changes = _unit_ops(_membership_units(tenant_id, record.id, members, [], users, mapping))
        if members:
            created.append(events.members_change(events.GROUP_MEMBERS_ADDED, record.id, data,
                                                 [m["value"] for m in members]))
        results = _submit(tenant_id, group_ops + ops, taken=taken, changes=created + user_changes)
        record.etag = results[0].get("etag")
        if members:
            _after_membership_write(tenant_id, version, [m["value"] for m in members])
        return record
    # A large initial member list (Entra never sends one): check the users, create the group, then add
    # members in batches; an interruption leaves the group with part of its members (a PATCH completes it).
    read = _added_users(tenant_id, members)
    results = _submit(tenant_id, group_ops, taken=taken, changes=created)
    record.etag = results[0].get("etag")
    _write_members(tenant_id, record.id, members, [], data, read)
    return record


def _added_users(tenant_id: str, adds: list[dict]) -> tuple[dict[str, UserRecord], dict, int]:
    """The users about to be added (all of them, read once; NotAUser for one that does not exist, so bad input
    fails before anything is written) and the role mappings."""
    users, mapping, version = _read_users(tenant_id, [m["value"] for m in adds])
    for member in adds:
        if member["value"] not in users:
            raise NotAUser(member["value"])
    return users, mapping, version


def _write_members(tenant_id: str, group_id: str, adds: list[dict], removes: list[str], data: dict,
                   read: tuple[dict[str, UserRecord], dict, int]) -> None:
    """Member changes too large for one transaction, in batches; each batch writes its own events and
    rewrites its users (`read` by `_added_users`; re-read and tried again when one of them changed)."""
    _remove_memberships(tenant_id, [(group_id, u) for u in removes], {group_id: data})
    users, mapping, first_version = read
    pending, touched = list(adds), []
    for _ in range(ATTEMPTS * max(1, math.ceil(len(adds) / 10))):
        if not pending:
            break
        window = pending[:(BATCH - 2) // 4]  # what fits when roles do not change: 2 rows, the user row, an event
        units = _membership_units(tenant_id, group_id, window, [], users, mapping)
        batch = next(_packed(units, BATCH - 2))  # as many as fit in one transaction
        ops, user_changes = _unit_ops(batch)
        try:
            _submit(tenant_id, ops, changes=[events.members_change(
                events.GROUP_MEMBERS_ADDED, group_id, data, [unit[0] for unit in batch])] + user_changes)
        except Changed:  # one of them changed meanwhile: read the window again
            fresh, mapping, _ = _read_users(tenant_id, [m["value"] for m in window])
            users.update(fresh)
            for member in window:
                if member["value"] not in fresh:
                    users.pop(member["value"], None)
            continue
        pending = pending[len(batch):]
        touched += [unit[0] for unit in batch]
    if pending:
        raise StorageUnavailable("These memberships are being changed by several requests at once; please retry.",
                                 retry_after=1)
    if touched:
        _after_membership_write(tenant_id, first_version, touched)


def _remove_memberships(tenant_id: str, pairs: list[tuple[str, str]], groups: dict[str, dict] | None = None,
                        *, announce: bool = True, update_users: bool = True) -> None:
    """Delete memberships (group id, user id) in batches, each with a group.members_removed event per group
    (unless `announce` is off: a group whose deletion was announced) and, with `update_users`, the users'
    rows without the group (off for a user being deleted); a membership deleted meanwhile by someone else is
    left out (its event was theirs)."""
    if groups is None and announce:
        found = _existing(tenant_id, [GROUP + g for g in {g for g, _ in pairs}], select=["id", "scim"])
        groups = {entity["id"]: json.loads(entity["scim"]) for entity in found.values()}
    pending, first_version, touched = list(pairs), None, []
    for _ in range(ATTEMPTS * max(1, math.ceil(len(pairs) / 10))):
        if not pending:
            break
        window = pending[:(BATCH - 2) // 4]
        leaving: dict[str, list[str]] = {}
        for g, u in window:
            leaving.setdefault(u, []).append(g)
        users, mapping, version = _read_users(tenant_id, leaving) if update_users else ({}, {}, None)
        first_version = version if first_version is None else first_version
        units = []  # (its memberships, operations, events): per user, or per membership for a user who goes
        for user_id, left in leaving.items():
            for part in ([left] if update_users else [[g] for g in left]):
                ops = [("delete", {"PartitionKey": tenant_id, "RowKey": key}) for g in part
                       for key in (f"{MEMBER}{g}:{user_id}", f"{MEMBER_OF}{user_id}:{g}")]
                user_ops, changes = _regroup_ops(tenant_id, users[user_id], [], part, mapping) \
                    if user_id in users else ([], [])
                units.append(([(g, user_id) for g in part], ops + user_ops, changes))
        batch = next(_packed(units, BATCH - 1 - len({g for g, _ in window})))
        chunk = [pair for unit in batch for pair in unit[0]]
        in_batch = {u for _, u in chunk}
        removed: dict[str, list[str]] = {}
        for g, u in chunk:
            removed.setdefault(g, []).append(u)
        changes = [events.members_change(events.GROUP_MEMBERS_REMOVED, g, (groups or {}).get(g) or {}, users_)
                   for g, users_ in removed.items()] if announce else []
        ops, user_changes = _unit_ops(batch)
        try:
            _submit(tenant_id, ops, changes=changes + user_changes)
        except Changed:  # one of them is gone, or a user changed: keep only memberships still there
            present = _existing(tenant_id, [f"{MEMBER}{g}:{u}" for g, u in chunk], select=["RowKey"])
            gone = {(g, u) for g, u in chunk if f"{MEMBER}{g}:{u}" not in present}
            pending = [pair for pair in pending if pair not in gone]
            continue
        done = set(chunk)
        pending = [pair for pair in pending if pair not in done]
        touched += sorted(in_batch)
    if pending:
        raise StorageUnavailable("These memberships are being changed by several requests at once; please retry.",
                                 retry_after=1)
    if update_users and touched:
        _after_membership_write(tenant_id, first_version, touched)


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
    if len(group_ops) + PER_MEMBER * (len(adding) + len(removing)) + 4 <= BATCH:  # + three events, the head
        members = [m["value"] for m in adding] + removing
        users, mapping, version = _read_users(tenant_id, members) if members else ({}, {}, 0)
        ops, user_changes = _unit_ops(_membership_units(tenant_id, old.id, adding, removing, users, mapping))
        changes = list(updated)
        if adding:
            changes.append(events.members_change(events.GROUP_MEMBERS_ADDED, old.id, data,
                                                 [m["value"] for m in adding]))
        if removing:
            changes.append(events.members_change(events.GROUP_MEMBERS_REMOVED, old.id, data, removing))
        results = _submit(tenant_id, group_ops + ops, taken=taken, changes=changes + user_changes)
        record.etag = results[0].get("etag")
        if members:
            _after_membership_write(tenant_id, version, members)
        return record
    # More than one transaction: check the users first, so bad input fails before anything is written;
    # then the group row (which also claims the version), then the membership batches.
    read = _added_users(tenant_id, adding)
    results = _submit(tenant_id, group_ops, taken=taken, changes=updated)
    record.etag = results[0].get("etag")
    _write_members(tenant_id, old.id, adding, removing, data, read)
    return record


def delete_group(tenant_id: str, group_id: str, check=None) -> bool:
    """Delete a group and its memberships (and the group from its members' `group_ids`); False when there is
    no such group. A retried DELETE of a group whose deletion was interrupted finishes it."""
    def attempt() -> bool:
        record = get_group_record(tenant_id, group_id, include_deleting=True)
        if record is None:
            return False
        if check is not None and not record.deleting:
            check(record)
        users = [m["value"] for m in iter_members(tenant_id, group_id)]
        rows = _group_rows(tenant_id, record)
        group_ops = [("delete", {"PartitionKey": tenant_id, "RowKey": key},
                      _conditional(record.etag) if key == GROUP + group_id else {}) for key in rows]
        # A hidden group's deletion was announced when it was hidden; the rest is cleaning up.
        deleted = [] if record.deleting else [events.Change(events.GROUP_DELETED,
                                                            events.group_data(group_id, record.data))]
        if not record.deleting and len(group_ops) + PER_MEMBER * len(users) + 2 <= BATCH:
            members, mapping, version = _read_users(tenant_id, users) if users else ({}, {}, 0)
            ops, user_changes = _unit_ops(_membership_units(tenant_id, group_id, [], users, members, mapping))
            _submit(tenant_id, group_ops + ops, changes=deleted + user_changes)
            if users:
                _after_membership_write(tenant_id, version, users)
            return True
        if not record.deleting:
            # Hide the group and free its name first: from here on, only finishing the delete is possible.
            hidden = GroupRecord(record.id, record.data, record.created, now(), record.version + 1, deleting=True)
            results = _submit(tenant_id, _replace_rows(rows, _group_rows(tenant_id, hidden), GROUP + group_id,
                                                       record.etag), changes=deleted)
            record = hidden
            record.etag = results[0].get("etag")
        _remove_memberships(tenant_id, [(group_id, u) for u in users], announce=False)
        _submit(tenant_id, [("delete", {"PartitionKey": tenant_id, "RowKey": GROUP + group_id},
                             _conditional(record.etag))])
        return True
    return _retrying(attempt)


# --- the employee interface (sign-in, domain audit, admin) -------------------------------------------------------------

def _employee_entity(tenant_id: str, key: str, with_names: bool = False) -> dict | None:
    return tables.get(TABLE, tenant_id, key, select=_EMPLOYEE_COLUMNS + (["scim"] if with_names else []))


def get_user(tenant_id: str, user_id: str, profile: bool = False) -> Employee | None:
    """The employee with this SCIM id (one point read); with `profile`, the whole employee as the product sees
    them too (`events.employee_data`: the SCIM document is read along)."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > 64:
        return None
    if profile:
        entity = tables.get(TABLE, tenant_id, USER + _part(user_id))
        return replace(_employee_from(entity), profile=events.employee_data(entity)) if entity else None
    entity = _employee_entity(tenant_id, USER + _part(user_id))
    return _employee_from(entity) if entity else None


def get_user_and_names(tenant_id: str, user_id: str) -> tuple[Employee, dict[str, str]] | None:
    """The employee and their SCIM name parts (givenName, familyName) in one point read (ID token claims)."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > 64:
        return None
    entity = tables.get(TABLE, tenant_id, USER + _part(user_id), select=_EMPLOYEE_COLUMNS + ["scim"])
    if not entity:
        return None
    return _employee_from(entity), _names(entity)


def find_user_by_external_id(tenant_id: str, external_id: str, with_names: bool = False) -> Employee | None:
    """The employee whose externalId (Entra objectId) is exactly this (one point read); `with_names` also
    reads their name parts (for an ID token)."""
    if not isinstance(external_id, str) or not external_id:
        return None
    entity = _employee_entity(tenant_id, external_id_key(external_id), with_names)
    return _employee_from(entity) if entity else None


def find_user_by_user_name(tenant_id: str, user_name: str, with_names: bool = False) -> Employee | None:
    """The employee whose userName matches case-insensitively (one point read)."""
    if not isinstance(user_name, str) or not user_name:
        return None
    entity = _employee_entity(tenant_id, user_name_key(user_name), with_names)
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
        columns = _user_columns(saved)  # as written
        return replace(_employee_from(columns), etag=saved.etag, profile=events.employee_data(columns))
    return _retrying(attempt)


def set_admin(tenant_id: str, user_id: str, is_admin: bool) -> Employee:
    """Grant or take admin rights (Gatehouse-internal; not visible over SCIM). A dismissed (inactive)
    employee cannot be made an admin."""
    def change(record: UserRecord) -> UserRecord:
        if is_admin and record.data.get("active") is False:
            raise Conflict("A dismissed employee (active=false) cannot be an admin.", field="is_admin")
        if not is_admin and record.is_admin and "admin" in effective_roles(
                True, record.group_ids, set(record.granted_roles) - {"admin"}, record.admin_blocked,
                role_mapping(tenant_id)[0]):
            raise AdminFromGroups()
        if bool(is_admin) == ("admin" in record.granted_roles) and not (is_admin and record.admin_blocked):
            return record  # already so: nothing to write
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
