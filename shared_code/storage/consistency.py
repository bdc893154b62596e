"""The directory's consistency check: does a tenant's partition hold exactly the rows that the directory's
own writes would leave behind? (Layout in `shared_code/storage/directory.py`.)

Rules, each problem naming the row it is about:
- every user row has exactly its index copies (`username:`, `externalid:` when it has an externalId,
  `email:…:<id>` when it has a work email), each with the user row's version and columns; no index row points
  at a user that does not exist or no longer has that value (a half-created or half-deleted employee);
- every live group row has its `groupname:` copy, same version; no `groupname:` row without its group;
- a group marked `deleting` is a delete in progress; older than `stuck_after` it is stuck (a retried DELETE
  finishes it);
- every `member:<g>:<u>` row has its `memberof:<u>:<g>` reverse and back, and both ends exist;
- a user row's `group_ids` name exactly the groups of its `memberof:` rows (rows written before group ids
  were kept on the user row have no `group_ids` column and are left alone).

A partition is read in one range scan, without the SCIM documents (the columns derived from them are
compared instead), so memory is a few hundred bytes per row. The scan is not a snapshot: on a live tenant a
write can land between two pages and look like a problem, so every problem found is read again by point
reads and reported only if it is still there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

from shared_code.storage import directory, tables
from shared_code.storage.tenants import get_tenant_record, iter_tenant_records

TABLE = tables.DIRECTORY
STUCK_AFTER = timedelta(minutes=5)
RECHECK_LIMIT = 2000  # rows re-read one by one; beyond that the partition is plainly broken, report as found

# Columns a copy must share with its entity (everything the directory writes into both, except the document).
_USER_SHARED = ("id", "version", "created", "last_modified", "user_name", "external_id", "work_email",
                "display_name", "active", "department", "is_admin", "allowed_outside_domain", "sessions_valid_from",
                "roles")
_GROUP_SHARED = ("id", "version", "created", "last_modified", "display_name", "external_id", "deleting")
_COLUMNS = ["RowKey", "kind", *sorted(set(_USER_SHARED) | set(_GROUP_SHARED)), *directory.GROUP_ID_COLUMNS]
_USER_INDEXES = (directory.USERNAME, directory.EXTERNAL_ID, directory.EMAIL)


@dataclass(frozen=True)
class Problem:
    """One inconsistency: its kind (`code`), the row it is about, a sentence for a person, and every row the
    rule looked at (re-read before the problem is reported)."""

    code: str
    row: str
    detail: str
    related: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.code} {self.row}: {self.detail}"


def check_tenant(tenant_id: str, *, stuck_after: timedelta = STUCK_AFTER, now: datetime | None = None,
                 recheck: bool = True) -> list[Problem]:
    """The problems of one tenant's directory partition (an empty list when it is consistent)."""
    rows = {entity["RowKey"]: dict(entity) for entity in tables.query(
        TABLE, "PartitionKey eq @pk", {"pk": tenant_id}, select=_COLUMNS, page_size=1000)}
    problems = confirmed(tenant_id, find_problems(rows, stuck_after=stuck_after, now=now), stuck_after, now, recheck)
    if rows and get_tenant_record(tenant_id) is None:
        problems.insert(0, Problem("partition-without-tenant", tenant_id,
                                   f"{len(rows)} directory rows belong to no tenant."))
    return problems


def check_all(*, stuck_after: timedelta = STUCK_AFTER, now: datetime | None = None,
              recheck: bool = True) -> Iterator[tuple[str, list[Problem]]]:
    """(tenant id, problems) for every partition of the directory table, in one scan of the table (rows
    arrive ordered by partition, so one partition is held in memory at a time). A partition whose tenant
    does not exist is a problem too: its rows are unreachable."""
    known = {record["tenant_id"] for record in iter_tenant_records(select=["PartitionKey", "RowKey"])}

    def finish(partition: str, rows: dict[str, dict]) -> list[Problem]:
        problems = confirmed(partition, find_problems(rows, stuck_after=stuck_after, now=now), stuck_after, now,
                              recheck)
        if partition not in known:
            problems.insert(0, Problem("partition-without-tenant", partition,
                                       f"{len(rows)} directory rows belong to no tenant."))
        return problems

    current: str | None = None
    rows: dict[str, dict] = {}
    for entity in tables.query(TABLE, "PartitionKey ge @lo", {"lo": ""}, select=["PartitionKey", *_COLUMNS],
                               page_size=1000):
        partition = entity["PartitionKey"]
        if partition != current and current is not None:
            yield current, finish(current, rows)
            rows = {}
        current = partition
        rows[entity["RowKey"]] = dict(entity)
    if current is not None:
        yield current, finish(current, rows)


def confirmed(tenant_id: str, problems: list[Problem], stuck_after: timedelta = STUCK_AFTER,
              now: datetime | None = None, recheck: bool = True) -> list[Problem]:
    """Keep the problems that a fresh point read of their rows still shows (a concurrent write is not one)."""
    keys = sorted({key for problem in problems for key in (problem.row, *problem.related)})
    if not recheck or not problems or len(keys) > RECHECK_LIMIT:
        return problems
    fresh = {}
    for key in keys:
        entity = tables.get(TABLE, tenant_id, key, select=_COLUMNS)
        if entity is not None:
            fresh[key] = dict(entity)
    again = set(find_problems(fresh, stuck_after=stuck_after, now=now))
    return [problem for problem in problems if problem in again]


# --- the rules (pure: a dict of rows in, problems out) -------------------------------------------------------------

def find_problems(rows: dict[str, dict], *, stuck_after: timedelta = STUCK_AFTER,
                  now: datetime | None = None) -> list[Problem]:
    """The problems among `rows` (RowKey → columns) of one partition. Rows of kinds the directory does not
    write are left alone: other features may keep rows here."""
    now = now or datetime.now(timezone.utc)
    problems: list[Problem] = []
    problems += _users(rows)
    problems += _user_indexes(rows)
    problems += _groups(rows, now - stuck_after)
    problems += _memberships(rows)
    problems += _user_group_ids(rows)
    return sorted(problems, key=lambda p: (p.row, p.code))


def _expected_user_keys(user_id: str, row: dict) -> list[str]:
    """The copies `directory._user_rows` writes for this user row."""
    keys = []
    if row.get("user_name"):
        keys.append(directory.user_name_key(row["user_name"]))
    if row.get("external_id"):
        keys.append(directory.external_id_key(row["external_id"]))
    if row.get("work_email"):
        keys.append(directory.email_prefix(row["work_email"]) + user_id)
    return keys


def _differences(entity: dict, copy: dict, columns: Iterable[str]) -> list[str]:
    return [c for c in columns if entity.get(c) != copy.get(c)]


def _users(rows: dict[str, dict]) -> Iterator[Problem]:
    for key, row in rows.items():
        if not key.startswith(directory.USER):
            continue
        user_id = key[len(directory.USER):]
        if row.get("id") != user_id:
            yield Problem("user-id-mismatch", key, f"the row's id column is {row.get('id')!r}.", ())
        if not row.get("user_name"):
            yield Problem("user-without-username", key, "the user row has no userName.", ())
        for copy_key in _expected_user_keys(user_id, row):
            copy = rows.get(copy_key)
            related = (copy_key,)
            if copy is None:
                yield Problem("user-without-index", key,
                              f"its index row {copy_key} is missing (a half-created or half-changed employee).",
                              related)
            elif copy.get("id") != user_id:
                yield Problem("index-of-another-user", key,
                              f"its index row {copy_key} belongs to user {copy.get('id')!r}.", related)
            else:
                stale = _differences(row, copy, _USER_SHARED)
                if stale:
                    yield Problem("stale-index-copy", copy_key,
                                  f"differs from {key} in {', '.join(stale)} (version {copy.get('version')} "
                                  f"vs {row.get('version')}).", (key,))


def _user_group_ids(rows: dict[str, dict]) -> Iterator[Problem]:
    member_of: dict[str, set[str]] = {}
    for key in rows:
        if key.startswith(directory.MEMBER_OF):
            user_id, _, group_id = key[len(directory.MEMBER_OF):].partition(":")
            member_of.setdefault(user_id, set()).add(group_id)
    for key, row in rows.items():
        if not key.startswith(directory.USER) or row.get("group_ids") is None:
            continue
        user_id = key[len(directory.USER):]
        stored, actual = set(directory.group_ids_of(row)), member_of.get(user_id, set())
        if stored != actual:
            related = tuple(f"{directory.MEMBER_OF}{user_id}:{g}" for g in sorted(stored | actual))
            yield Problem("user-group-ids-stale", key,
                          f"group_ids name {len(stored)} groups, its memberof rows {len(actual)} "
                          f"(differ in {', '.join(sorted(stored ^ actual)[:3])}).", related)


def _user_indexes(rows: dict[str, dict]) -> Iterator[Problem]:
    for key, row in rows.items():
        if not key.startswith(_USER_INDEXES):
            continue
        user_id = row.get("id")
        user_key = f"{directory.USER}{user_id}"
        user = rows.get(user_key) if isinstance(user_id, str) else None
        if user is None:
            yield Problem("index-without-user", key,
                          f"points to {user_key}, which does not exist (a half-created or half-deleted employee).",
                          (user_key,))
        elif key not in _expected_user_keys(user_id, user):
            yield Problem("index-not-of-its-user", key,
                          f"{user_key} no longer has this value: a leftover copy.", (user_key,))


def _groups(rows: dict[str, dict], stuck_before: datetime) -> Iterator[Problem]:
    for key, row in rows.items():
        if key.startswith(directory.GROUP):
            group_id = key[len(directory.GROUP):]
            if row.get("id") != group_id:
                yield Problem("group-id-mismatch", key, f"the row's id column is {row.get('id')!r}.", ())
            if row.get("deleting"):
                if _instant(row.get("last_modified")) < stuck_before:
                    yield Problem("group-stuck-deleting", key,
                                  f"marked deleting since {row.get('last_modified')}; DELETE it again to finish.", ())
                continue
            if not row.get("display_name"):
                yield Problem("group-without-name", key, "the group row has no displayName.", ())
                continue
            name_key = directory.group_name_key(row["display_name"])
            copy = rows.get(name_key)
            if copy is None:
                yield Problem("group-without-index", key, f"its index row {name_key} is missing.", (name_key,))
            elif copy.get("id") != group_id:
                yield Problem("index-of-another-group", key,
                              f"its index row {name_key} belongs to group {copy.get('id')!r}.", (name_key,))
            else:
                stale = _differences(row, copy, _GROUP_SHARED)
                if stale:
                    yield Problem("stale-index-copy", name_key,
                                  f"differs from {key} in {', '.join(stale)} (version {copy.get('version')} "
                                  f"vs {row.get('version')}).", (key,))
        elif key.startswith(directory.GROUP_NAME):
            group_key = f"{directory.GROUP}{row.get('id')}"
            group = rows.get(group_key)
            if group is None:
                yield Problem("index-without-group", key, f"points to {group_key}, which does not exist.",
                              (group_key,))
            elif group.get("deleting") or not group.get("display_name") or \
                    directory.group_name_key(group["display_name"]) != key:
                yield Problem("index-not-of-its-group", key,
                              f"{group_key} no longer has this name: a leftover copy.", (group_key,))


def _memberships(rows: dict[str, dict]) -> Iterator[Problem]:
    for key in rows:
        if key.startswith(directory.MEMBER_OF):
            parts = key[len(directory.MEMBER_OF):].split(":")
            if len(parts) != 2 or not all(parts):
                yield Problem("malformed-row", key, "not memberof:<user id>:<group id>.", ())
                continue
            user_id, group_id = parts
            reverse = f"{directory.MEMBER}{group_id}:{user_id}"
            if reverse not in rows:
                yield Problem("membership-without-reverse", key, f"its reverse row {reverse} is missing.", (reverse,))
        elif key.startswith(directory.MEMBER):
            parts = key[len(directory.MEMBER):].split(":")
            if len(parts) != 2 or not all(parts):
                yield Problem("malformed-row", key, "not member:<group id>:<user id>.", ())
                continue
            group_id, user_id = parts
            reverse = f"{directory.MEMBER_OF}{user_id}:{group_id}"
            group_key, user_key = f"{directory.GROUP}{group_id}", f"{directory.USER}{user_id}"
            if reverse not in rows:
                yield Problem("membership-without-reverse", key, f"its reverse row {reverse} is missing.", (reverse,))
            if group_key not in rows:
                yield Problem("membership-without-group", key, f"{group_key} does not exist.", (group_key, reverse))
            if user_key not in rows:
                yield Problem("membership-without-user", key, f"{user_key} does not exist.", (user_key, reverse))


def _instant(text) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)  # unreadable: as old as can be
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
