"""Schemathesis against the running app: every documented operation, with generated valid and invalid requests
and real credentials, must answer without a 5xx and only as `/api/openapi.json` says (status codes, content
types, response schemas, headers; invalid input refused, valid input not refused as malformed).

Each operation runs with the credential its `security` names — the operator key, a tenant's admin key, or a
SCIM token — against tenants made for this test; `{id}` path parameters name a real resource about half the
time and generated member/manager ids are pointed at real users, so the success paths run too. Schemathesis's
own probes (no credentials, wrong credentials, a method the path does not take) run as well.

Bounded: the fuzzing phase with a fixed seed and 10 examples per operation (under a minute with the app's
start). GATEHOUSE_FUZZ_EXAMPLES=200 and GATEHOUSE_FUZZ_PHASES=fuzzing,coverage make a long exploratory run
(the coverage phase alone takes several minutes: every boundary and omission of every schema).
"""
from __future__ import annotations

import hashlib
import os

import pytest
import requests
import schemathesis
from schemathesis.core.parameters import ParameterLocation

from shared_code.scim.schemas import CORE_GROUP, CORE_USER, ENTERPRISE_USER as ENTERPRISE
from tests.conftest import LocalHost, free_port
from tests.support import openapi as described

MAX_EXAMPLES = int(os.environ.get("GATEHOUSE_FUZZ_EXAMPLES", "10"))
REQUEST_TIMEOUT = 30


class FuzzTenants:
    """Two tenants: one whose admin endpoints are fuzzed (its SCIM token gets rotated), one for SCIM; a few
    seeded users and a group so that ids can name something real."""

    def __init__(self, app_url: str, operator_key: str, new_tenant):
        self.app_url = app_url
        self.operator_key = operator_key
        self.admin = new_tenant("Fuzzed Admin Corp", "https://admin-fuzz.example.com")
        self.scim = new_tenant("Fuzzed SCIM Corp", "https://scim-fuzz.example.com")
        self.scim_token = self.scim.scim_token()
        self.user_id = self._create(self.scim, self.scim_token, "Users", {
            "schemas": [CORE_USER], "userName": "seed.user@fuzz.example",
            "externalId": "seed-user", "active": True, "emails": [{"type": "work", "value": "seed.user@fuzz.example"}]})
        self.manager_id = self._create(self.scim, self.scim_token, "Users", {
            "schemas": [CORE_USER], "userName": "seed.manager@fuzz.example"})
        self.disposed = 0
        self.group_id = self._create(self.scim, self.scim_token, "Groups", {
            "schemas": [CORE_GROUP], "displayName": "Seed group",
            "members": [{"value": self.user_id}]})
        # The admin tenant: corporate domains (so an audit runs) and one employee to act on.
        admin_token = self.admin.scim_token()
        self.employee_id = self._create(self.admin, admin_token, "Users", {
            "schemas": [CORE_USER], "userName": "seed.employee@elsewhere.example",
            "active": True})
        response = self.admin.api("PUT", "domains", json={"domains": ["fuzz.example"]})
        assert response.status_code == 200, response.text
        # Rotating the admin tenant's key would leave every adminKey operation fuzzed after it with a stale key
        # (403 only): the rotation gets a tenant of its own, so the order of the operations does not matter.
        self.rotated = new_tenant("Fuzzed Key Rotation Corp", "https://rotation-fuzz.example.com")

    def _real_id(self, method: str, path: str) -> str:
        if "/employees/" in path:
            return self.employee_id
        endpoint = "Users" if "/Users/" in path else "Groups"
        if method.upper() != "DELETE":
            return self.user_id if endpoint == "Users" else self.group_id
        # A delete gets a resource of its own, so the seeded ones stay for the operations after it.
        self.disposed += 1
        body = ({"schemas": [CORE_USER], "userName": f"disposable.{self.disposed}@fuzz.example"} if endpoint == "Users"
                else {"schemas": [CORE_GROUP], "displayName": f"Disposable {self.disposed}"})
        return self._create(self.scim, self.scim_token, endpoint, body)

    def _point_references(self, body: dict) -> None:
        """Members and managers must be users of the tenant (a 400 otherwise, which no schema can express):
        generated ids are pointed at seeded users; values that are not ids at all are left to be refused."""
        def member_list(value):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and is_id(item.get("value")):
                    item["value"] = self.user_id

        def manager(holder: dict, key: str):
            value = holder.get(key)
            if is_id(value):
                holder[key] = self.manager_id
            elif isinstance(value, dict) and is_id(value.get("value")):
                value["value"] = self.manager_id

        def is_id(value) -> bool:
            return isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value)

        if "members" in body:
            member_list(body["members"])
        if isinstance(body.get(ENTERPRISE), dict):
            manager(body[ENTERPRISE], "manager")
        for operation in body.get("Operations") or []:
            if not isinstance(operation, dict):
                continue
            target = str(operation.get("path") or "")
            if target == "members":
                member_list(operation.get("value"))
            elif target.endswith(":manager"):
                manager(operation, "value")

    @staticmethod
    def _create(tenant, token: str, endpoint: str, body: dict) -> str:
        response = requests.post(f"{tenant.scim_url}/{endpoint}", json=body, timeout=REQUEST_TIMEOUT,
                                 headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def prepare(self, case) -> dict[str, str]:
        """Aim the generated case at our tenants; the headers to send: the credential its operation asks for."""
        path, operation = case.operation.path, case.operation.definition.raw
        schemes = [name for requirement in operation.get("security", []) for name in requirement]
        tenant = self.scim if path.startswith("/scim/") else self.rotated if path.endswith("/admin-key") else self.admin
        if "tenant" in case.path_parameters:
            case.path_parameters["tenant"] = tenant.tenant_id
        key = {"scimToken": self.scim_token, "adminKey": self.admin.admin_key, "operatorKey": self.operator_key}
        # Each operation is its own client for the failed-authentication limiter, so the probes schemathesis
        # sends with wrong credentials neither spill over to other operations nor to the rest of the suite.
        client = int(hashlib.sha256(case.operation.label.encode()).hexdigest(), 16) % 250 + 1
        headers = {"X-Forwarded-For": f"198.51.100.{client}"}
        if schemes:
            headers["Authorization"] = f"Bearer {key[schemes[0]]}"
        generated = case.path_parameters.get("id")
        negative_path = case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)
        if isinstance(generated, str) and not negative_path and int(hashlib.sha256(generated.encode()).hexdigest(), 16) % 2:
            case.path_parameters["id"] = self._real_id(case.method, path)
        negative_query = case.meta is not None and case.meta.is_negative_at(ParameterLocation.QUERY)
        if path.endswith(("/directory/employees", "/directory/groups")) and not negative_query and case.query:
            # `after` is a signed `next` cursor (documented: any other value is a 400, tests/events cover it);
            # a generated one cannot be, so the listing starts at the beginning.
            case.query.pop("after", None)
        body = case.body if isinstance(case.body, dict) else None
        if body and path.startswith("/scim/"):
            self._point_references(body)
        if path.endswith("/sso/idp-metadata") and body and isinstance(body.get("metadata_url"), str):
            # Keep the fetch on this machine: a closed local port answers at once, like an unreachable host.
            body["metadata_url"] = "http://127.0.0.1:9/federationmetadata.xml"
        negative_body = case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY)
        if path.endswith("/webhook") and body and isinstance(body.get("url"), str) and not negative_body:
            # An endpoint the app accepts is delivered to, and retried for days on the shared app's queue: keep
            # those deliveries on this machine too.
            body["url"] = "http://127.0.0.1:9/webhooks"
        return headers


@pytest.fixture(scope="module")
def fuzz_tenants(app_url, operator_key, new_tenant) -> FuzzTenants:
    return FuzzTenants(app_url, operator_key, new_tenant)


def _document_under_test() -> dict:
    """The document as the app serves it (tests/test_openapi.py checks the served one is this one).

    Loaded at import, as the port is known only once the app runs (requests go to `app_url` by `base_url`;
    `schemathesis.pytest.from_fixture` would fetch it from the app, but it fails under pytest 9.2). The
    `tenant` path parameter is always one of ours (a generated one only meets 401/403/404, which
    tests/test_tenants.py covers), so it is not generated: a case made invalid there would be sent valid.
    """
    document = described.document("http://gatehouse.invalid")
    document["components"]["parameters"]["tenant"]["schema"] = {"type": "string"}
    return document


schema = schemathesis.openapi.from_dict(_document_under_test())
# Credentials are ours too (the right one per operation); the ignored_auth check still sends none and wrong ones.
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none",
                                with_security_parameters=False)
schema.config.phases.update(phases=os.environ.get("GATEHOUSE_FUZZ_PHASES", "fuzzing").split(","))
# TRACE and QUERY never reach a function: the local host's HTTP server answers them 501 itself (Azure's front
# end refuses them too), so probing them would test the stdlib, not the app.
schema.config.phases.coverage.unexpected_methods = {"get", "put", "post", "delete", "options", "patch"}
# Valid requests may still be refused for what JSON Schema cannot say: 422 is how the app refuses well-formed
# values it cannot use (a public-suffix domain, a redirect URI for another app), 412 answers a generated
# If-Match that names no version the resource had. A schema-valid request answered 400 is still a failure.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses, "412", "422"]
# Invalid data may also be refused for its size: a generated body over the documented limit is a 413.
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses, "413"]


@pytest.fixture(scope="module")
def fuzz_host(app_settings, test_output):
    """The fuzzing gets a host process of its own (same storage, so the tenants made through the suite's host are
    there): its thousands of deliberately wrong credentials fill the failed-authentication windows, which live in
    the process, and must not answer the rest of the suite 429."""
    host = LocalHost({**app_settings, "PORT": str(free_port())}, test_output / "local-host-fuzz.log")
    host.start()
    yield host.url
    host.stop()


@schema.parametrize()
def test_every_operation_answers_as_documented(case, fuzz_tenants, fuzz_host):
    headers = fuzz_tenants.prepare(case)
    case.call_and_validate(base_url=f"{fuzz_host}/api", headers=headers, timeout=REQUEST_TIMEOUT)
