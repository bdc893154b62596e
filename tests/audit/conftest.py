"""Fixtures for the domain audit, employee and admin-rights tests: a tenant whose employees Entra provisions
over SCIM (real HTTP against the running app). Helpers live in `tests/audit/provisioning.py`."""
from __future__ import annotations

import pytest

from tests.audit.provisioning import Entra


@pytest.fixture
def tenant(new_tenant):
    """A fresh tenant with a default department (where SCIM-created employees land)."""
    handle = new_tenant("Contoso")
    assert handle.api("PUT", "default-department", json={"department": "Everyone"}).status_code == 200
    return handle


@pytest.fixture
def entra(tenant) -> Entra:
    return Entra(tenant)
