"""Fixtures for the SCIM tests: a tenant with a SCIM secret token and a client that talks to the running app
over real HTTP the way Entra's provisioning client does."""
from __future__ import annotations

import pytest
from entra_client import ScimClient


@pytest.fixture
def scim(new_tenant) -> ScimClient:
    """A fresh tenant (with a default department) and a client holding its SCIM secret token."""
    tenant = new_tenant()
    assert tenant.api("PUT", "default-department", json={"department": "Unassigned"}).status_code == 200
    return ScimClient(tenant.scim_url, tenant.scim_token(), tenant)
