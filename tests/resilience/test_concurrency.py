"""Concurrent SCIM writes to one resource lose nothing and leave the partition consistent: parallel PATCHes
to one employee, parallel creates of one userName, parallel member adds to one group — all over HTTP,
released together by a barrier."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import requests
from scim_traffic import ENTERPRISE, add_members, group_body, patch_body, user_body

from shared_code.storage import consistency

PARALLEL = 10

# Ten PATCHes, each changing something no other one touches (two of them add to the same multi-valued
# attribute, so a lost read-modify-write would show there first).
TEN_CHANGES = [
    ({"op": "Replace", "path": "title", "value": "Engineer"}, ("title",), "Engineer"),
    ({"op": "Replace", "path": "nickName", "value": "Nick"}, ("nickName",), "Nick"),
    ({"op": "Replace", "path": "name.middleName", "value": "Middle"}, ("name", "middleName"), "Middle"),
    ({"op": "Replace", "path": "name.honorificPrefix", "value": "Dr."}, ("name", "honorificPrefix"), "Dr."),
    ({"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0101"}, None, None),
    ({"op": "Add", "path": 'phoneNumbers[type eq "fax"].value', "value": "+1 555 0102"}, None, None),
    ({"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Research"}, (ENTERPRISE, "department"), "Research"),
    ({"op": "Add", "path": f"{ENTERPRISE}:employeeNumber", "value": "E-42"}, (ENTERPRISE, "employeeNumber"), "E-42"),
    ({"op": "Add", "path": f"{ENTERPRISE}:costCenter", "value": "CC-7"}, (ENTERPRISE, "costCenter"), "CC-7"),
    ({"op": "Replace", "path": "preferredLanguage", "value": "de-DE"}, ("preferredLanguage",), "de-DE"),
]


def together(actions: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run the actions in parallel threads, released at the same instant."""
    barrier = threading.Barrier(len(actions))

    def run(action):
        barrier.wait()
        return action()

    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(run, actions))


def as_entra(send: Callable[[], requests.Response], budget: float = 20) -> tuple[requests.Response, int]:
    """Send, and on a 503 wait its Retry-After and send again, as Entra does; (final response, 503s seen)."""
    deadline, busy = time.monotonic() + budget, 0
    while True:
        response = send()
        if response.status_code != 503 or time.monotonic() > deadline:
            return response, busy
        busy += 1
        assert "Retry-After" in response.headers
        time.sleep(min(float(response.headers["Retry-After"]), 1.0))


def lookup(resource: dict, keys: tuple[str, ...]):
    for key in keys:
        resource = (resource or {}).get(key)
    return resource


def assert_consistent(tenant_id: str) -> None:
    assert consistency.check_tenant(tenant_id) == []


def test_ten_parallel_patches_of_different_attributes_of_one_employee_all_land(scim_tenant):
    tenant, scim = scim_tenant
    user = scim.request("POST", "/Users", user_body("race.patch@contoso.example", "obj-race-patch")).json()
    url = f"/Users/{user['id']}"
    results = together([lambda op=op: as_entra(lambda: scim.request("PATCH", url, patch_body(op)))
                        for op, _, _ in TEN_CHANGES])
    assert [r.status_code for r, _ in results] == [200] * PARALLEL, [r.text for r, _ in results]

    final = scim.request("GET", url).json()
    for _, keys, value in TEN_CHANGES:
        if keys:
            assert lookup(final, keys) == value, keys
    phones = {p["type"]: p["value"] for p in final["phoneNumbers"]}
    assert phones == {"mobile": "+1 555 0101", "fax": "+1 555 0102"}
    assert final["name"]["givenName"] == "Given"  # untouched by all ten
    assert final["meta"]["version"] == 'W/"11"'  # one version per PATCH: none was swallowed
    assert_consistent(tenant.tenant_id)


def test_ten_parallel_patches_with_the_same_if_match_one_wins_and_nine_get_412(scim_tenant):
    tenant, scim = scim_tenant
    user = scim.request("POST", "/Users", user_body("race.ifmatch@contoso.example", "obj-race-ifmatch")).json()
    url, version = f"/Users/{user['id']}", user["meta"]["version"]
    responses = together([lambda op=op: scim.request("PATCH", url, patch_body(op), headers={"If-Match": version})
                          for op, _, _ in TEN_CHANGES])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * (PARALLEL - 1), [r.text for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    final = scim.request("GET", url).json()
    assert final["meta"]["version"] == 'W/"2"'
    for i, (_, keys, value) in enumerate(TEN_CHANGES):
        if keys:
            assert (lookup(final, keys) == value) == (i == winner), keys
    assert_consistent(tenant.tenant_id)


def test_ten_parallel_retries_of_one_create_all_answer_the_same_employee(scim_tenant):
    """Entra retrying a create (same userName and externalId) is idempotent even when the copies race."""
    tenant, scim = scim_tenant
    body = user_body("Race.Create@contoso.example", "obj-race-create")
    responses = together([lambda: scim.request("POST", "/Users", body)] * PARALLEL)
    assert [r.status_code for r in responses] == [201] * PARALLEL, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = scim.request("GET", '/Users?filter=userName eq "race.create@contoso.example"').json()
    assert listed["totalResults"] == 1
    assert_consistent(tenant.tenant_id)


def test_ten_parallel_creates_of_one_user_name_by_different_objects_one_201_and_nine_409(scim_tenant):
    tenant, scim = scim_tenant
    # Case variants of one userName: the uniqueness is case-insensitive, so they all claim the same index row.
    names = [("Clash@contoso.example".upper() if i % 2 else "clash@contoso.example") for i in range(PARALLEL)]
    responses = together([lambda i=i: scim.request("POST", "/Users", user_body(names[i], f"obj-clash-{i}"))
                          for i in range(PARALLEL)])
    assert sorted(r.status_code for r in responses) == [201] + [409] * (PARALLEL - 1)
    for response in responses:
        if response.status_code == 409:
            assert response.json()["scimType"] == "uniqueness"
    assert scim.request("GET", "/Users").json()["totalResults"] == 1
    assert_consistent(tenant.tenant_id)  # the losers left no index row behind


def test_ten_parallel_member_adds_to_one_group_keep_every_member(scim_tenant):
    tenant, scim = scim_tenant
    users = [scim.request("POST", "/Users", user_body(f"member{i}@contoso.example", f"obj-member-{i}")).json()["id"]
             for i in range(PARALLEL)]
    group = scim.request("POST", "/Groups", group_body("Race Group")).json()
    url = f"/Groups/{group['id']}"
    results = together([lambda u=u: as_entra(lambda: scim.request("PATCH", url, add_members(u))) for u in users])
    assert [r.status_code for r, _ in results] == [204] * PARALLEL, [r.text for r, _ in results]
    members = sorted(m["value"] for m in scim.request("GET", url).json()["members"])
    assert members == sorted(users)
    assert_consistent(tenant.tenant_id)
