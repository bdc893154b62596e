"""A tenant's webhook endpoint: where its events are POSTed, the secret they are signed with, and the state
of delivery, in one row (`webhooks` table, PartitionKey = tenant, RowKey `endpoint`).

    PUT    /api/tenants/{t}/webhook {"url": …}       → {"url", "secret"}: creates it (a new secret; delivery
                                                       starts with the next event) or changes the URL (same
                                                       secret; re-enables a disabled endpoint, delivery
                                                       resumes where it stopped)
    POST   /api/tenants/{t}/webhook/rotate-secret     → a new secret; the old one keeps signing too for 24 h
    POST   /api/tenants/{t}/webhook/test              → one signed `webhook.test` delivery now, its outcome
    GET    /api/tenants/{t}/webhook                   → URL, enabled / why disabled, delivery position, the
                                                       last attempts (never the secret)
    DELETE /api/tenants/{t}/webhook                   → 204

The URL follows the outbound policy (shared_code/platform/outbound.py): https and public addresses only, unless
ALLOW_PRIVATE_METADATA_URLS=true for local development; addresses are checked again on every delivery.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from shared_code.platform import outbound
from shared_code.platform.errors import NotFound, StorageUnavailable, Unprocessable
from shared_code.events import log as event_log
from shared_code.storage import tables
from shared_code.webhooks import secrets

TABLE = tables.WEBHOOKS
ROW = "endpoint"
ROTATION_OVERLAP = timedelta(hours=24)
KEPT_ATTEMPTS = 20
_JSON_COLUMNS = ("last_attempts",)


# --- request and response bodies ---------------------------------------------------------------------------------

class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, description="https:// and a public address (http and loopback only with "
                                                  "ALLOW_PRIVATE_METADATA_URLS=true, for local development).")


class WebhookSecret(BaseModel):
    url: str
    secret: str = Field(description="whsec_…: verify deliveries with it (Standard Webhooks). Shown only here.")
    previous_secret_expires_at: str | None = Field(
        None, description="After a rotation: until then deliveries carry a signature with the old secret too.")


class DeliveryAttempt(BaseModel):
    at: str
    event_id: str
    sequence: int | None = Field(None, description="Absent for a test delivery.")
    status: int | None = Field(None, description="The receiver's HTTP status; absent when it was not reached.")
    outcome: str = Field(description="delivered | retrying | disabled | failed")
    message: str | None = None
    ms: int
    _retry_after: str | None = PrivateAttr(None)  # a 429/503's Retry-After, for the scheduler


class WebhookStatus(BaseModel):
    url: str
    enabled: bool
    disabled_reason: str | None = None
    disabled_at: str | None = None
    delivered_sequence: int = Field(description="Every event up to this sequence has been delivered.")
    latest_sequence: int = Field(description="The tenant's latest event.")
    pending: int = Field(description="Events not yet delivered.")
    next_attempt_at: str | None = Field(None, description="When a failing delivery is tried again.")
    failing_since: str | None = None
    previous_secret_expires_at: str | None = None
    last_attempts: list[DeliveryAttempt] = Field(description="Newest first, at most 20.")


class TestDelivery(BaseModel):
    delivered: bool
    attempt: DeliveryAttempt


def parse_request(body: Any) -> WebhookRequest:
    """The PUT body, refused in our error shape (field + a sentence), never pydantic's raw list."""
    try:
        request = WebhookRequest.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "url"
        if first.get("type") == "extra_forbidden":
            raise Unprocessable(f"Only url can be set here ({field!r} cannot).", field=field) from None
        raise Unprocessable('url is required: {"url": "https://your-product.example.com/gatehouse-events"}.',
                            field="url") from None
    try:
        outbound.check_url(request.url, what="The webhook URL")
    except outbound.OutboundError as error:
        raise Unprocessable(error.message, field="url") from None
    return request


# --- the row --------------------------------------------------------------------------------------------------------

now_iso, parse_iso = event_log.iso, event_log.parse_iso  # the endpoint row's times are the log's (lease, retries)


def read(tenant_id: str) -> dict | None:
    entity = tables.get(TABLE, tenant_id, ROW)
    if not entity:
        return None
    row = dict(entity)
    for column in _JSON_COLUMNS:
        row[column] = json.loads(row[column]) if isinstance(row.get(column), str) else []
    row["etag"] = tables.etag_of(entity)
    return row


def encode(fields: dict[str, Any]) -> dict[str, Any]:
    """Columns for a MERGE: None becomes "" (the SDK leaves None out of a merge, which would keep the old
    value: a lease never released, a reason that outlives a re-enable); readers take "" as unset."""
    out = {}
    for key, value in fields.items():
        if key == "etag":
            continue
        out[key] = json.dumps(value, separators=(",", ":")) if key in _JSON_COLUMNS else ("" if value is None else value)
    return out


def merge(tenant_id: str, etag: str, fields: dict[str, Any]) -> str:
    """Set columns of the row if it is unchanged since read (raises ResourceModifiedError); its new ETag."""
    result = tables.update(TABLE, {"PartitionKey": tenant_id, "RowKey": ROW, **encode(fields)}, etag=etag)
    return (result or {}).get("etag", etag)


def signing_secrets(row: dict, tenant_id: str, at: datetime | None = None) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one during its 24 h."""
    at = at or datetime.now(timezone.utc)
    found = []
    current = secrets.unseal(row["secret"], tenant_id) if row.get("secret") else None
    if current:
        found.append(current)
    until = parse_iso(row.get("previous_until"))
    if row.get("previous_secret") and until and at < until:
        previous = secrets.unseal(row["previous_secret"], tenant_id)
        if previous:
            found.append(previous)
    return found


# --- the operations ---------------------------------------------------------------------------------------------------

def put(tenant_id: str, body: Any) -> WebhookSecret:
    request = parse_request(body)
    for _ in range(8):
        row = read(tenant_id)
        if row is None:
            secret = secrets.new_secret()
            try:
                tables.insert(TABLE, {
                    "PartitionKey": tenant_id, "RowKey": ROW, "url": request.url,
                    "secret": secrets.seal(secret, tenant_id), "enabled": True, "created_at": now_iso(),
                    # Delivery starts with the next event; earlier ones are in the Events API.
                    "delivered": event_log.last_sequence(tenant_id), "attempts": 0,
                    "last_attempts": "[]"})
            except ResourceExistsError:
                continue
            return WebhookSecret(url=request.url, secret=secret)
        secret = secrets.unseal(row["secret"], tenant_id) if row.get("secret") else None
        fields: dict[str, Any] = {"url": request.url, "enabled": True, "disabled_reason": None, "disabled_at": None,
                                  "attempts": 0, "failing_since": None, "next_attempt_at": None}
        if secret is None:  # unreadable (SESSION_SIGNING_KEY changed): a new one
            secret = secrets.new_secret()
            fields["secret"] = secrets.seal(secret, tenant_id)
        try:
            merge(tenant_id, row["etag"], fields)
        except ResourceModifiedError:
            continue
        return WebhookSecret(url=request.url, secret=secret, previous_secret_expires_at=_still(row))
    raise StorageUnavailable("The webhook is being changed by several requests at once; please retry.", retry_after=1)


def _still(row: dict) -> str | None:
    until = parse_iso(row.get("previous_until"))
    return row["previous_until"] if until and until > datetime.now(timezone.utc) else None


def rotate_secret(tenant_id: str) -> WebhookSecret:
    for _ in range(8):
        row = existing(tenant_id)
        secret = secrets.new_secret()
        until = now_iso(datetime.now(timezone.utc) + ROTATION_OVERLAP)
        fields = {"secret": secrets.seal(secret, tenant_id), "previous_secret": row.get("secret"),
                  "previous_until": until}
        try:
            merge(tenant_id, row["etag"], fields)
        except ResourceModifiedError:
            continue
        return WebhookSecret(url=row["url"], secret=secret, previous_secret_expires_at=until)
    raise StorageUnavailable("The webhook is being changed by several requests at once; please retry.", retry_after=1)


def existing(tenant_id: str) -> dict:
    """The endpoint row, or a 404 that says how to create one."""
    row = read(tenant_id)
    if row is None:
        raise NotFound("This tenant has no webhook: PUT /api/tenants/{tenant}/webhook {\"url\": …} first.")
    return row


def status(tenant_id: str) -> WebhookStatus:
    row = existing(tenant_id)
    latest = event_log.last_sequence(tenant_id)
    delivered = int(row.get("delivered") or 0)
    return WebhookStatus(
        url=row["url"], enabled=bool(row.get("enabled")), disabled_reason=row.get("disabled_reason") or None,
        disabled_at=row.get("disabled_at") or None, delivered_sequence=delivered, latest_sequence=latest,
        pending=max(0, latest - delivered), next_attempt_at=row.get("next_attempt_at") or None,
        failing_since=row.get("failing_since") or None, previous_secret_expires_at=_still(row),
        last_attempts=[DeliveryAttempt(**a) for a in row.get("last_attempts") or []])


def delete(tenant_id: str) -> None:
    existing(tenant_id)
    tables.delete(TABLE, tenant_id, ROW)

