"""Errors of the SAML core. Both carry a message that is safe to show to a person and tells them what to do."""
from __future__ import annotations

from shared_code.platform.errors import GatehouseError, Unprocessable

# Reasons that mean "the browser sent us something that is not a SAML response at all" rather than
# "a SAML response that we refuse": the HTTP layer may answer 400 for these and 403 for the rest.
_MALFORMED_INPUT = frozenset({"not_base64", "not_xml", "too_large", "doctype_forbidden", "not_saml_response"})


class SamlRejected(GatehouseError):
    """The assertion consumer refused a SAML response.

    `reason` is a short machine code (stable, for logs, metrics and tests); `message` is for the employee.
    """

    status, code = 403, "saml_rejected"
    in_response_to: str | None = None  # set for a status response (`no_passive`): the request it answers

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        if reason in _MALFORMED_INPUT:
            self.status = 413 if reason == "too_large" else 400

    def __repr__(self) -> str:
        return f"SamlRejected({self.reason!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class MetadataError(Unprocessable):
    """IdP metadata could not be fetched or used; the message tells the tenant admin what to fix (HTTP 422)."""

    code = "idp_metadata_invalid"

    def __init__(self, message: str):
        super().__init__(message, field="metadata")
