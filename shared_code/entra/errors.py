"""Why an Entra ID token was not accepted."""
from __future__ import annotations

from shared_code.platform.errors import GatehouseError, StorageUnavailable


class EntraTokenRejected(GatehouseError):
    """The token is not acceptable. `reason` is a stable word for logs and tests; `message` says what to change."""

    status, code = 400, "entra_token_rejected"

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class EntraUnavailable(StorageUnavailable):
    """Entra's signing keys could not be fetched and none are cached: nothing is wrong with the token, retry."""

    def __init__(self, message: str, retry_after: int = 30):
        super().__init__(message, retry_after=retry_after)
