"""Fixtures for the event log tests: a tenant with a SCIM client (Entra's side) and a reader of its events."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scim"))  # entra_client, the SCIM test client

from entra_client import ScimClient  # noqa: E402


class EventReader:
    """The product's side of the Events API: keeps `next` and polls."""

    def __init__(self, tenant, key: str | None = None):
        self.tenant = tenant
        self.key = key or tenant.admin_key
        self.cursor: str | None = None
        self.http = requests.Session()

    def page(self, after: str | None = None, limit: int | None = None) -> requests.Response:
        params = {k: v for k, v in (("after", after), ("limit", limit)) if v is not None}
        return self.http.get(f"{self.tenant.base_url}/api/tenants/{self.tenant.tenant_id}/events", params=params,
                             headers={"Authorization": f"Bearer {self.key}"}, timeout=30)

    def poll(self, limit: int = 500) -> list[dict]:
        """Every event after the cursor (following `next` until a page comes back empty)."""
        seen = []
        while True:
            response = self.page(self.cursor, limit)
            assert response.status_code == 200, response.text
            body = response.json()
            self.cursor = body["next"]
            seen += body["events"]
            if not body["events"]:
                return seen


@pytest.fixture
def scim(new_tenant) -> ScimClient:
    tenant = new_tenant()
    return ScimClient(tenant.scim_url, tenant.scim_token(), tenant)


@pytest.fixture
def reader(scim) -> EventReader:
    return EventReader(scim.tenant)
