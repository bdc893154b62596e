"""Fixtures for the event log tests: a tenant with a SCIM client (Entra's side) and a reader of its events."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scim"))  # entra_client, the SCIM test client

from entra_client import ScimClient  # noqa: E402
from product import EventReader  # noqa: E402


@pytest.fixture
def scim(new_tenant) -> ScimClient:
    tenant = new_tenant()
    return ScimClient(tenant.scim_url, tenant.scim_token(), tenant)


@pytest.fixture
def reader(scim) -> EventReader:
    return EventReader(scim.tenant)
