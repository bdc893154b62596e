"""SAML 2.0 single sign-on core: IdP metadata, our service provider's documents, and the assertion consumer.

Nothing heavy is imported here, so importing the package costs nothing at cold start: each submodule pulls in
what it needs (lxml and the xmlsec bindings for the ACS path; pysaml2's schema classes only for the documents
the SP generates). The names below are resolved on first use.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import MetadataError, SamlRejected

_LAZY = {
    "IdpMetadata": "metadata",
    "SigningCertificate": "metadata",
    "parse_idp_metadata": "metadata",
    "fetch_idp_metadata": "metadata",
    "ServiceProvider": "service_provider",
    "AuthnRedirect": "service_provider",
    "sp_metadata_xml": "service_provider",
    "build_authn_request": "service_provider",
    "build_logout_request": "service_provider",
    "build_logout_response": "service_provider",
    "read_logout_message": "logout",
    "FRESHNESS": "logout",
    "SignIn": "assertion_consumer",
    "consume": "assertion_consumer",
}

__all__ = ["MetadataError", "SamlRejected", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
