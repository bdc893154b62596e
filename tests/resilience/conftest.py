"""Fixtures for the resilience tests: a fresh tenant with a SCIM client holding its token."""
from __future__ import annotations

import pytest
from scim_traffic import Scim


@pytest.fixture
def scim_tenant(new_tenant):
    """A fresh tenant and a SCIM client holding its token."""
    tenant = new_tenant("Resilience Corp")
    return tenant, Scim(tenant.scim_url, tenant.scim_token())
