"""Domain errors. Cores raise these; the HTTP adapter (functions/_http.py) maps them to responses in one place."""
from __future__ import annotations


class GatehouseError(Exception):
    """An error a client can act on. `message` is safe to show; it never carries secrets or internals."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, scim_type: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.scim_type = scim_type
        self.headers = headers or {}


class BadRequest(GatehouseError):
    status, code = 400, "bad_request"


class Unauthorized(GatehouseError):
    status, code = 401, "unauthorized"


class Forbidden(GatehouseError):
    status, code = 403, "forbidden"


class NotFound(GatehouseError):
    status, code = 404, "not_found"


class Conflict(GatehouseError):
    status, code = 409, "conflict"


class PreconditionFailed(GatehouseError):
    status, code = 412, "precondition_failed"


class PayloadTooLarge(GatehouseError):
    status, code = 413, "payload_too_large"


class Unprocessable(GatehouseError):
    status, code = 422, "unprocessable"


class TooManyRequests(GatehouseError):
    status, code = 429, "too_many_requests"


class StorageUnavailable(GatehouseError):
    """Table Storage cannot be reached. Clients should retry; nothing was half-written."""

    status, code = 503, "storage_unavailable"

    def __init__(self, message: str = "Storage is temporarily unavailable. Please retry shortly.",
                 retry_after: int = 5):
        super().__init__(message, headers={"Retry-After": str(retry_after)})
