"""The directory listing a product starts from: a tenant's employees and groups, paged, each answer with the
event-log position it is consistent with.

    GET /api/tenants/{t}/directory/employees?after=<cursor>&limit=<n>
    GET /api/tenants/{t}/directory/groups?after=<cursor>&limit=<n>
        → 200 {"employees"|"groups": […], "next": "<cursor>"|null, "events_after": "<events cursor>"}

A product lists every page once, then reads the Events API from `events_after` and keeps reading: it misses
nothing, even while Entra writes. Why that holds:
- `events_after` is the event log's head read *before* the first page is read, and every later page of the
  same listing answers the same position (it travels in the cursor).
- Every directory change commits in one transaction with its event (shared_code/events/log.py), and the log
  hands out sequence numbers in commit order. A change committed before the head was read is visible to every
  page (read after it); a change committed after has a sequence above `events_after`, so the product reads it.
- A change committed while the listing runs is either seen by a page or not; either way its event (with the
  whole current state of the employee or group) comes after `events_after`, and applying events in order as
  upserts (delete for *.deleted) ends at the current state, whatever the page showed.
- Memberships are in the employees' `group_ids` (updated in the membership's own transaction), so the same
  argument covers them.

The cursor is signed (HMAC, `sessions.sign`, its own purpose): it names the tenant, the kind, the last id
listed and `events_after`, so it cannot be edited or used on another tenant or list; a bad one is a 400. It
lasts a day (a listing that takes longer starts again).
"""
from __future__ import annotations

import json
from typing import Any

from shared_code.sign_in import sessions
from shared_code.platform.errors import BadRequest
from shared_code.events import api as events_api
from shared_code.events import log as event_log
from shared_code.events.shapes import employee_data, group_data
from shared_code.storage import directory, tables

MAX_LIMIT, DEFAULT_LIMIT = events_api.MAX_LIMIT, events_api.DEFAULT_LIMIT  # the same `limit` as the Events API
CURSOR_SECONDS = 24 * 3600
_PURPOSE = "directory-listing"


def _cursor(tenant_id: str, kind: str, last: str, events_after: int) -> str:
    return sessions.sign(_PURPOSE, {"t": tenant_id, "k": kind, "a": last, "e": events_after}, CURSOR_SECONDS)


def _position(tenant_id: str, kind: str, after: str | None) -> tuple[str, int]:
    """Where this page starts (the last id listed, "" for the first page) and the listing's `events_after`."""
    if after is None or after == "":
        # The head before anything is read: see the module docstring.
        return "", event_log.last_sequence(tenant_id)
    claims = sessions.verify(_PURPOSE, after)
    if not claims or claims.get("t") != tenant_id or claims.get("k") != kind or not isinstance(claims.get("a"), str) \
            or not isinstance(claims.get("e"), int):
        raise BadRequest("after must be a `next` cursor this listing returned (for this tenant and list, less than "
                         "a day old); to start again, leave it out.", field="after")
    return claims["a"], claims["e"]


def _rows(tenant_id: str, prefix: str, last: str, limit: int, select: list[str] | None) -> list[dict]:
    low = prefix + last if last else prefix
    rows = tables.query(directory.TABLE, "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi",
                        {"pk": tenant_id, "lo": low, "hi": prefix + "\uffff"}, select=select, page_size=limit + 1)
    out = []
    for entity in rows:
        out.append(entity)
        if len(out) > limit:
            break
    return out


def employees(tenant_id: str, after: str | None, limit: str | None) -> dict[str, Any]:
    last, events_after = _position(tenant_id, "employees", after)
    count = events_api.parse_limit(limit)
    rows = _rows(tenant_id, directory.USER, last, count, None)
    page = [employee_data(entity) for entity in rows[:count]]
    more = len(rows) > count
    return {"employees": page, "next": _cursor(tenant_id, "employees", page[-1]["id"], events_after) if more else None,
            "events_after": events_api.encode_cursor(events_after)}


def groups(tenant_id: str, after: str | None, limit: str | None) -> dict[str, Any]:
    last, events_after = _position(tenant_id, "groups", after)
    count = events_api.parse_limit(limit)
    # A group being deleted is hidden (its group.deleted was written when it was hidden).
    found, rows, start = [], [], last
    while True:
        rows = _rows(tenant_id, directory.GROUP, start, count, ["id", "scim", "deleting"])
        live = [r for r in rows if not r.get("deleting")]
        found += live
        if len(found) > count or len(rows) <= count:
            break
        start = rows[-1]["id"]
    page = [group_data(entity["id"], json.loads(entity["scim"])) for entity in found[:count]]
    more = len(found) > count
    return {"groups": page, "next": _cursor(tenant_id, "groups", page[-1]["id"], events_after) if more else None,
            "events_after": events_api.encode_cursor(events_after)}
