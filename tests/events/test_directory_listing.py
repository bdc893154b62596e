"""The product's copy of the directory: the whole employee in every employee.* event (a PATCH of any attribute
Entra provisions writes employee.updated with the new value; a PATCH that changes nothing writes nothing), and
the listing it starts from (paged with a signed cursor, consistent with the event-log position it names, even
while Entra writes)."""
from __future__ import annotations

import threading
import uuid

import pytest
from entra_client import ScimClient, load
from product import DirectoryCopy, EventReader
from tests.support.waiting import wait_until

from shared_code.bodies.directory import DirectoryEmployee, DirectoryGroup
from shared_code.events.shapes import employee_data
from shared_code.storage import consistency

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _op(op: str, path: str | None, value) -> dict:
    operation = {"op": op, "value": value}
    if path is not None:
        operation["path"] = path
    return {"schemas": [PATCH], "Operations": [operation]}


# (Entra's PATCH, in its dialects: reference/entra-provisioning.md) → (field of the event, the value it must hold)
ATTRIBUTE_PATCHES = [
    (_op("Replace", "displayName", "Ada Lovelace-King"), "name", "Ada Lovelace-King"),
    (_op("Replace", "name.givenName", "Augusta"), "given_name", "Augusta"),
    (_op("Replace", "name.familyName", "King"), "family_name", "King"),
    (_op("Replace", "name.formatted", "Augusta King"), "formatted_name", "Augusta King"),
    (_op("Replace", "title", "Analyst"), "title", "Analyst"),
    (_op("Add", "title", "Principal Analyst"), "title", "Principal Analyst"),
    (_op("Replace", 'emails[type eq "work"].value', "augusta@contoso.example"), "email", "augusta@contoso.example"),
    (_op("Add", 'phoneNumbers[type eq "work"].value', "+44 20 7946 0000"), "phone_numbers",
     [{"value": "+44 20 7946 0000", "type": "work", "primary": False}]),
    (_op("Add", 'phoneNumbers[type eq "mobile"].value', "+44 7700 900000"), "phone_numbers",
     [{"value": "+44 20 7946 0000", "type": "work", "primary": False},
      {"value": "+44 7700 900000", "type": "mobile", "primary": False}]),
    (_op("Replace", "preferredLanguage", "en-GB"), "preferred_language", "en-GB"),
    (_op("Replace", "locale", "en-GB"), "locale", "en-GB"),
    (_op("Replace", "timezone", "Europe/London"), "timezone", "Europe/London"),
    (_op("Replace", f"{ENTERPRISE}:department", "Analytics"), "department", "Analytics"),
    (_op("Replace", f"{ENTERPRISE}:division", "Engines"), "division", "Engines"),
    (_op("Replace", f"{ENTERPRISE}:costCenter", "CC-1843"), "cost_center", "CC-1843"),
    (_op("Replace", f"{ENTERPRISE}:organization", "Contoso Ltd"), "organization", "Contoso Ltd"),
    (_op("Add", f"{ENTERPRISE}:employeeNumber", "E-1815"), "employee_number", "E-1815"),
    # Entra's no-path replace with dotted and URN keys (aadOptscim062020, the SCIM Validator)
    (_op("replace", None, {"name.givenName": "Ada", f"{ENTERPRISE}:employeeNumber": "E-1816"}),
     "employee_number", "E-1816"),
    (_op("Replace", "userName", "augusta.king@contoso.example"), "user_name", "augusta.king@contoso.example"),
    (_op("Replace", "externalId", "obj-augusta"), "external_id", "obj-augusta"),
]


def test_a_patch_of_each_attribute_writes_employee_updated_with_the_new_value(scim, reader):
    boss = scim.create_user(displayName="Charles Babbage")
    user = scim.post("/Users", load("entra-dev-create-user.json", externalId="obj-ada",
                                    userName="ada@contoso.example", email="ada@contoso.example")).json()
    reader.poll()
    for body, field, value in ATTRIBUTE_PATCHES:
        response = scim.patch(f"/Users/{user['id']}", body)
        assert response.status_code == 200, (field, response.text)
        events = reader.poll()
        assert [e["type"] for e in events] == ["employee.updated"], (field, events)
        assert events[0]["data"][field] == value, field
    # the manager, as Entra sends it (a bare id), with their display name; then removed (Replace with "")
    assert scim.patch(f"/Users/{user['id']}", load("entra-dev-add-manager.json", managerId=boss["id"])) \
        .status_code == 200
    [event] = reader.poll()
    assert event["type"] == "employee.updated"
    assert event["data"]["manager"] == {"id": boss["id"], "display_name": "Charles Babbage"}
    # every field of the last event is what the admin API and the listing show
    shown = scim.tenant.api("GET", f"employees/{user['id']}").json()
    assert {k: shown[k] for k in event["data"]} == event["data"]
    listed = scim.tenant.api("GET", "directory/employees").json()["employees"]
    assert [e for e in listed if e["id"] == user["id"]] == [event["data"]]
    assert scim.patch(f"/Users/{user['id']}", load("entra-onboarding-remove-manager.json")).status_code == 200
    assert reader.poll()[0]["data"]["manager"] is None


def test_a_write_that_changes_nothing_writes_no_event(scim, reader):
    user = scim.create_user(title="Engineer", schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                            **{ENTERPRISE: {"department": "R&D"}})
    reader.poll()
    for body in (_op("Replace", "title", "Engineer"), _op("Replace", f"{ENTERPRISE}:department", "R&D"),
                 _op("Add", "title", "Engineer")):
        assert scim.patch(f"/Users/{user['id']}", body).status_code == 200
    assert scim.put(f"/Users/{user['id']}", {k: v for k, v in user.items() if k not in ("id", "meta")}) \
        .status_code == 200
    assert scim.tenant.api("DELETE", f"employees/{user['id']}/admin").status_code == 200
    assert reader.poll() == []


def test_the_event_builder_and_the_model_name_the_same_fields():
    """`employee_data` (plain dicts, on the SCIM path) builds exactly what `DirectoryEmployee` declares."""
    built = employee_data({"id": "u1", "scim": "{}", "user_name": "a@b.example", "active": True})
    assert list(built) == list(DirectoryEmployee.model_fields)
    assert DirectoryEmployee.model_validate(built).model_dump() == built
    assert list(DirectoryGroup.model_fields) == ["id", "display_name", "external_id"]


def _list(tenant, kind: str, limit: int = 3, key: str | None = None) -> tuple[list[dict], str]:
    """Every page of a listing; answers the items and the listing's events_after (the same on every page)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    items, after, positions = [], None, set()
    while True:
        params = {"limit": limit, **({"after": after} if after else {})}
        response = tenant.api("GET", f"directory/{kind}", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body[kind]
        positions.add(body["events_after"])
        after = body["next"]
        if after is None:
            assert len(positions) == 1
            return items, positions.pop()


def test_the_listing_pages_with_a_signed_cursor_for_the_operator_and_the_admin(scim, operator_key, new_tenant):
    users = [scim.create_user(displayName=f"P{n}")["id"] for n in range(7)]
    groups = [scim.create_group()["id"] for _ in range(4)]
    tenant = scim.tenant
    employees, _ = _list(tenant, "employees")
    assert [e["id"] for e in employees] == users  # id order is creation order
    listed_groups, _ = _list(tenant, "groups", key=operator_key)
    assert [g["id"] for g in listed_groups] == groups
    first = tenant.api("GET", "directory/employees", params={"limit": 2}).json()
    cursor = first["next"]
    for bad in (cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1], "v1.e30.AAAA", "nonsense", "x" * 5000):
        response = tenant.api("GET", "directory/employees", params={"after": bad})
        assert response.status_code == 400 and "after" in response.json()["message"], response.text
    # a cursor of the employees list is no cursor of the groups list, nor of another tenant's
    assert tenant.api("GET", "directory/groups", params={"after": cursor}).status_code == 400
    other = new_tenant()
    assert other.api("GET", "directory/employees", params={"after": cursor}).status_code == 400
    assert other.api("GET", "directory/employees").json()["employees"] == []
    # another tenant's admin key, or none, gets nothing
    assert tenant.api("GET", "directory/employees", headers={"Authorization": f"Bearer {other.admin_key}"}) \
        .status_code in (401, 403, 404)
    assert tenant.http.get(f"{tenant.base_url}/api/tenants/{tenant.tenant_id}/directory/groups",
                           timeout=30).status_code == 401


def _scim_state(scim: ScimClient) -> dict:
    """The tenant's directory as SCIM tells it: what the product's copy must equal."""
    users = scim.get("/Users?count=1000").json()["Resources"]
    groups = scim.get("/Groups?count=1000&excludedAttributes=members").json()["Resources"]
    members = {g["id"]: sorted(m["value"] for m in scim.get(f"/Groups/{g['id']}").json().get("members", []))
               for g in groups}
    return {"employees": {u["id"]: (u["userName"], u.get("title"), u.get("active", True)) for u in users},
            "groups": {g["id"]: g["displayName"] for g in groups},
            "members": {g: m for g, m in members.items()}}


def _copy_state(copy: DirectoryCopy) -> dict:
    with copy.lock:
        return {"employees": {i: (e["user_name"], e["title"], e["active"]) for i, e in copy.employees.items()},
                "groups": {i: g["display_name"] for i, g in copy.groups.items()},
                "members": {g: sorted(m) for g, m in copy.members.items() if g in copy.groups}}


def test_a_listing_taken_while_entra_writes_then_events_from_its_position_equal_the_directory(scim):
    tenant = scim.tenant
    users = [scim.create_user(title="t0")["id"] for _ in range(12)]
    groups = [scim.create_group()["id"] for _ in range(3)]
    doomed = scim.create_user()["id"]
    assert scim.patch(f"/Groups/{groups[0]}", load("entra-dev-add-members.json", first=doomed, second=users[0])) \
        .status_code == 204
    stop = threading.Event()
    errors: list[str] = []
    steps: list[int] = []

    def writer(n: int):
        client = ScimClient(scim.base, scim.token, tenant)
        step = 0
        while not stop.is_set() and step < 40:
            step += 1
            steps.append(n)
            user = users[(n * 5 + step) % len(users)]
            group = groups[step % len(groups)]
            for response in (
                client.patch(f"/Users/{user}", _op("Replace", "title", f"w{n}-{step}")),
                client.patch(f"/Groups/{group}", load("entra-dev-add-members.json", first=user, second=user)
                             if step % 3 else load("entra-dev-remove-member.json", memberId=user)),
            ):
                if response.status_code >= 300 and response.status_code != 503:
                    errors.append(response.text)
            if step % 7 == 0:
                created = client.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                                 "userName": f"{uuid.uuid4().hex[:8]}@contoso.example"})
                if created.status_code != 201:
                    errors.append(created.text)
            if step == 20 and n == 0:
                if client.delete(f"/Users/{doomed}").status_code != 204:
                    errors.append("delete")

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in writers:
        thread.start()
    try:
        wait_until(lambda: len(steps) >= 3)  # the listing starts while Entra writes
        copy = DirectoryCopy()
        # the product starts from the first position (the groups' listing is as new or newer: events upsert)
        employees, events_after = _list(tenant, "employees", limit=2)
        listed_groups, _ = _list(tenant, "groups", limit=1)
        copy.start_from(employees, listed_groups)
    finally:
        for thread in writers:
            thread.join()
    assert errors == []
    reader = EventReader(tenant)
    reader.cursor = events_after
    for event in reader.poll():
        copy.apply(event)
    assert _copy_state(copy) == _scim_state(scim)
    assert copy.out_of_order == []
    # the employees' group ids (kept on their rows by the parallel membership writes) equal their memberships
    assert consistency.check_tenant(tenant.tenant_id) == []


@pytest.mark.parametrize("kind", ["employees", "groups"])
def test_a_bad_limit_is_refused(scim, kind):
    for limit in ("0", "501", "ten", "-1"):
        assert scim.tenant.api("GET", f"directory/{kind}", params={"limit": limit}).status_code == 400
