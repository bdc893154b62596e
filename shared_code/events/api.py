"""The Events API: a tenant's events, oldest first, read with an opaque cursor.

    GET /api/tenants/{tenant}/events?after=<cursor>&limit=<n>  →  {"events": [...], "next": "<cursor>"}

`next` is the position after the last event returned (or `after` again when there is nothing new), so a
reader that keeps it and polls sees every event exactly once and in sequence order (log.py says why).
Without `after`, reading starts at the oldest event kept (events are kept 30 days).
"""
from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared_code.bodies.directory import DirectoryEmployee, DirectoryGroup
from shared_code.platform.errors import BadRequest, Unprocessable
from shared_code.events import log
from shared_code.events.shapes import EVENT_TYPES, INTERNAL_TYPES

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
_CURSOR_PREFIX = "v1:"

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class Event(BaseModel):
    """One directory event; `data` is the whole current state of what changed (see shared_code/events/shapes.py)."""

    id: str = Field(description="The event's id, the same on every webhook delivery (receivers dedupe by it).")
    type: EventType = Field(description="What happened.")
    tenant: str
    occurred_at: str = Field(description="When the change was written (UTC, ISO 8601).")
    sequence: int = Field(description="Per tenant, gap-free, in the order the changes were committed.")
    data: dict[str, Any]


# --- what `data` holds, per type (documentation and the OpenAPI document; shapes.py builds them) -------------

class EmployeeData(DirectoryEmployee):
    """employee.*: the whole employee, as the admin API and the directory listing show them."""


class GroupData(DirectoryGroup):
    """group.created / group.updated / group.deleted."""


class GroupMembersData(GroupData):
    """group.members_added / group.members_removed: the users this event added or removed."""

    member_ids: list[str]


class SsoData(BaseModel):
    """sso.enabled / sso.disabled."""

    status: Literal["draft", "testing", "enabled"]
    enabled_at: str | None


class CertificateData(BaseModel):
    sha256: str | None
    not_after: str | None


class IdpCertificatesData(BaseModel):
    """idp.certificates_changed: the IdP's signing certificates now."""

    idp_entity_id: str | None
    sso_url: str | None
    certificates: list[CertificateData]


class DomainAuditData(BaseModel):
    """domain_audit.completed: the run's summary (GET …/domain-audit has the full list)."""

    run_id: str
    trigger: str
    finished_at: str
    domains: list[str]
    checked: int
    allowed: int
    outside_count: int
    outside_ids: list[str] = Field(description="The first 500, by email.")
    outside_ids_truncated: bool


DATA_MODELS = {
    EmployeeData: [t for t in EVENT_TYPES if t.startswith("employee.")],
    GroupData: ["group.created", "group.updated", "group.deleted"],
    GroupMembersData: ["group.members_added", "group.members_removed"],
    SsoData: ["sso.enabled", "sso.disabled"],
    IdpCertificatesData: ["idp.certificates_changed"],
    DomainAuditData: ["domain_audit.completed"],
}


class WebhookTestData(BaseModel):
    message: str


class WebhookTestEvent(BaseModel):
    """What `POST …/webhook/test` delivers: signed like every event, but not in the event log (no sequence)."""

    id: str
    type: Literal["webhook.test"]
    tenant: str
    occurred_at: str
    sequence: None = Field(description="Always null: a test delivery is not in the event log.")
    data: WebhookTestData


class EventPage(BaseModel):
    events: list[Event] = Field(description="Oldest first, at most `limit`.")
    next: str = Field(description="Pass as `after` to read on; returned even when `events` is empty.")


def encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{sequence}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith(_CURSOR_PREFIX) and text[len(_CURSOR_PREFIX):].isdigit():
            return int(text[len(_CURSOR_PREFIX):])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Unprocessable("after must be a cursor this API returned as `next`.", field="after")


def parse_limit(limit: str | None) -> int:
    if limit is None or limit == "":
        return DEFAULT_LIMIT
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}.", field="limit")
    return int(limit)


def page(tenant_id: str, after: str | None, limit: str | None) -> EventPage:
    position, count = decode_cursor(after), parse_limit(limit)
    events = log.read(tenant_id, position, count)
    last = events[-1]["sequence"] if events else position
    return EventPage(events=[Event(**event) for event in events if event["type"] not in INTERNAL_TYPES],
                     next=encode_cursor(last))  # past an internal event too: it is the log's own consumers
