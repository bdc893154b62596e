"""OAuth 2.0 error answers (RFC 6749 §5.2 at the token endpoint, §4.1.2.1 at the authorization endpoint).

`error` is one of the registered codes (`invalid_request`, `invalid_client`, `invalid_grant`,
`unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `access_denied`, …); `description` is a
sentence the client's developer can act on. It never says whether an employee exists.
"""
from __future__ import annotations

from shared_code.platform.errors import GatehouseError


class OAuthError(GatehouseError):
    """An OAuth 2.0 refusal; the HTTP adapter answers it as `{"error", "error_description"}` JSON with
    `Cache-Control: no-store` (RFC 6749 §5.1)."""

    code = "invalid_request"

    def __init__(self, error: str, description: str, *, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(description, headers=headers)
        self.error = error
        self.code = error
        self.status = status
        self.description = description
