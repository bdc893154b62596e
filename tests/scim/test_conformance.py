"""The independent conformance checker scim2-tester runs every check it has against the running app over
real HTTP; every check it runs must pass (a SKIPPED check names a feature we do not offer, and says so)."""
from __future__ import annotations

from typing import Any

import pytest
import requests
from scim2_client import BaseSyncSCIMClient
from scim2_client.engines.inprocess import _build_url, _stays_under_base_url
from scim2_tester import Status, check_server


class RequestsSCIMClient(BaseSyncSCIMClient):
    """scim2-client over `requests` (its network engine needs httpx2, which we do not ship)."""

    def __init__(self, base_url: str, token: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _stays_under_base_url(self, endpoint: str) -> bool:
        return _stays_under_base_url(self.base_url, endpoint)

    def request(self, method: str, url: str, *, params=None, json=None, content=None, headers=None,
                **_: Any) -> requests.Response:
        target = _build_url(self.base_url, url).geturl()
        return self.session.request(method, target, params=params, json=json, data=content, headers=headers,
                                    timeout=60)


@pytest.fixture
def checker_results(scim) -> list:
    client = RequestsSCIMClient(scim.base, scim.token)
    return check_server(client)


def test_scim2_tester_reports_no_failure(checker_results):
    failures = [(r.resource_type, r.title, r.status.name, r.reason) for r in checker_results
                if r.status not in (Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED)]
    assert not failures, "\n".join(map(str, failures))


def test_scim2_tester_runs_the_crud_and_patch_checks_on_users_and_groups(checker_results):
    ran = {(r.resource_type, r.title) for r in checker_results if r.status == Status.SUCCESS}
    for resource_type in ("User", "Group"):
        for title in ("object_creation", "object_query", "object_query_without_id", "object_replacement",
                      "object_deletion", "check_add_attribute", "check_remove_attribute", "check_replace_attribute",
                      "object_query_with_attributes", "object_list_with_attributes", "search_with_attributes"):
            assert (resource_type, title) in ran, (resource_type, title)
