"""No tenant reaches another: every tenant-admin endpoint (`/api/tenants/{tenant}/…`) and every SCIM endpoint
(`/api/scim/{tenant}/…`) the app registers, called on tenant A's path with tenant B's admin key or SCIM
token, is refused (401/403/404), says nothing of A, and changes nothing of A.

The endpoints are read from `function_app.app.get_functions()` in a subprocess (the app may be indexed only
once per process), so an endpoint added later is covered without touching this test.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from scim_traffic import Scim, add_members, group_body, patch_body, user_body

ROOT = Path(__file__).resolve().parents[2]
REFUSED = {401, 403, 404}
_LIST_ROUTES = """
import json, function_app
routes = []
for function in function_app.app.get_functions():
    trigger = function.get_trigger()
    if getattr(trigger, "type", "") == "httpTrigger":
        routes.append({"name": function.get_function_name(), "route": trigger.route,
                       "methods": [getattr(m, "value", m) for m in (trigger.methods or [])]
                                  or ["GET", "POST", "PUT", "PATCH", "DELETE"]})
print(json.dumps(routes))
"""


def registered_endpoints(env: dict[str, str]) -> list[dict]:
    listing = subprocess.run([sys.executable, "-c", _LIST_ROUTES], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60, check=True)
    return json.loads(listing.stdout)


def tenant_endpoints(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(function name, method, route) of every endpoint that acts on one tenant as its admin or its SCIM client."""
    out = []
    for function in registered_endpoints(env):
        route = function["route"] or function["name"]
        if re.match(r"(tenants|scim)/\{tenant\}(/|$)", route):
            out += [(function["name"], method.upper(), route) for method in function["methods"]]
    return sorted(out)


def fill(route: str, tenant_id: str, user_id: str, group_id: str) -> str:
    """The route with its parameters set to tenant A's real resources (so a missing check would find them)."""
    def value(match: re.Match) -> str:
        name = match.group(1).lstrip("*")
        if name == "tenant":
            return tenant_id
        if name == "id":
            return group_id if "/Groups/" in route else user_id
        if name == "schema_id":
            return "urn:ietf:params:scim:schemas:core:2.0:User"
        if name == "name":
            return "User"
        if match.group(1).startswith("*"):
            return f"Users/{user_id}"
        return "x"
    return re.sub(r"\{([*\w]+)[^}]*\}", value, route)


def body_for(method: str, route: str, user_id: str) -> dict | None:
    """A body that would succeed if the credential were not checked."""
    if method in ("GET", "DELETE"):
        return None
    if route.endswith(".search"):
        return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    if route.endswith("/Users") or route.endswith("/Users/{id}") and method == "PUT":
        return user_body(f"intruder-{uuid.uuid4().hex[:6]}@evil.example", uuid.uuid4().hex)
    if route.endswith("/Groups") or route.endswith("/Groups/{id}") and method == "PUT":
        return group_body(f"Intruders {uuid.uuid4().hex[:6]}")
    if route.endswith("/Users/{id}"):
        return patch_body({"op": "replace", "path": "displayName", "value": "Owned"})
    if route.endswith("/Groups/{id}"):
        return add_members(user_id)
    return {"department": "Owned", "domains": ["evil.example"], "email": "owned@evil.example",
            "metadata_url": "https://evil.example/metadata"}


@pytest.fixture(scope="module")
def two_tenants(new_tenant):
    marker = uuid.uuid4().hex[:10]
    a, b = new_tenant(f"Alpha {marker}", f"https://alpha-{marker}.example.com"), new_tenant("Beta")
    a_scim = Scim(a.scim_url, a.scim_token())
    b_token = b.scim_token()
    user = a_scim.request("POST", "/Users", user_body(f"alice-{marker}@alpha.example", f"obj-{marker}")).json()
    group = a_scim.request("POST", "/Groups", group_body(f"Alpha Board {marker}")).json()
    assert a_scim.request("PATCH", f"/Groups/{group['id']}", add_members(user["id"])).status_code == 204
    assert a.api("PUT", "default-department", json={"department": f"Alpha Dept {marker}"}).status_code == 200
    secrets = [marker, a.admin_key, a_scim.token]
    return a, a_scim, b, b_token, user, group, secrets


@pytest.fixture(scope="module")
def endpoints(app_settings) -> list[tuple[str, str, str]]:
    return tenant_endpoints({**os.environ, **app_settings})


def test_the_route_listing_finds_the_scim_and_admin_endpoints(endpoints):
    names = {name for name, _, _ in endpoints}
    assert {"scim_get_user", "scim_patch_group", "scim_unknown_endpoint", "get_sso_setup",
            "rotate_scim_token"} <= names


def test_tenant_b_credentials_on_tenant_a_paths_are_refused_and_learn_nothing(two_tenants, endpoints):
    a, a_scim, b, b_token, user, group, secrets = two_tenants
    leaks, accepted = [], []
    for name, method, route in endpoints:
        url = f"{a.base_url}/api/{fill(route, a.tenant_id, user['id'], group['id'])}"
        body = body_for(method, route, user["id"])
        for label, credential in (("B's admin key", b.admin_key), ("B's SCIM token", b_token)):
            # A new address per attempt: this test is about who is refused, not about the failure budget.
            headers = {"Authorization": f"Bearer {credential}",
                       "X-Forwarded-For": f"100.64.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}
            response = requests.request(method, url, json=body, headers=headers, timeout=30)
            if response.status_code not in REFUSED:
                accepted.append(f"{method} /api/{route} with {label}: {response.status_code} {response.text[:200]}")
            leaked = [s for s in secrets if s in response.text]
            if leaked:
                leaks.append(f"{method} /api/{route} with {label}: body contains {leaked}")
    assert not accepted, "\n".join(accepted)
    assert not leaks, "\n".join(leaks)

    # And nothing of A changed: its credentials still work, its employee and group are as they were.
    after = a_scim.request("GET", f"/Users/{user['id']}").json()
    assert after["meta"]["version"] == user["meta"]["version"] and after["displayName"] == user["displayName"]
    members = a_scim.request("GET", f"/Groups/{group['id']}").json()["members"]
    assert [m["value"] for m in members] == [user["id"]]
    assert a_scim.request("GET", "/Users").json()["totalResults"] == 1
    assert a_scim.request("GET", "/Groups").json()["totalResults"] == 1
    setup = a.api("GET", "sso")
    assert setup.status_code == 200 and setup.json()["steps"]["default_department"]["department"].startswith("Alpha")
