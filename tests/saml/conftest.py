"""Fixtures for the SAML core tests: one Entra-like test IdP, its parsed metadata, and our SP."""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # pytest puts test folders on sys.path, not the repo root
    sys.path.insert(0, str(REPO_ROOT))

from shared_code.saml.metadata import IdpMetadata, parse_idp_metadata  # noqa: E402
from shared_code.saml.service_provider import ServiceProvider  # noqa: E402
from tests.support.idp import TestIdp  # noqa: E402

ENTRA_TENANT = "9a8b7c6d-1111-4222-8333-444455556666"


@pytest.fixture(scope="session")
def idp() -> TestIdp:
    return TestIdp(entra_tenant_id=ENTRA_TENANT)


@pytest.fixture(scope="session")
def sp() -> ServiceProvider:
    return ServiceProvider(entity_id="https://gatehouse.example/api/sso/acme/metadata",
                           acs_url="https://gatehouse.example/api/sso/acme/acs")


@pytest.fixture(scope="session")
def metadata(idp: TestIdp) -> IdpMetadata:
    return parse_idp_metadata(idp.metadata_xml(), datetime.now(timezone.utc))
