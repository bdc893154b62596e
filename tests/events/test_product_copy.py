"""The product's two copies of the directory — one fed by webhooks (verified with `standardwebhooks`), one by
the Events API — after an Entra provisioning run during which the webhook receiver fails, hangs past the
10 s timeout and goes away, Table and Queue storage go down, and the app is restarted in the middle of
delivering: both copies equal the tenant's directory (employees, dismissed, admins, groups, members), and no
event arrived out of order.

This module runs its own Azurite and local host, so it can stop storage and restart the app without
disturbing the session's.
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from entra_client import ScimClient, load
from product import DirectoryCopy, EventReader, Operator, WebhookReceiver
from tests.support.waiting import wait_until

from tests.conftest import TenantHandle, private_app

USERS = 12


@pytest.fixture(scope="module")
def world(app_settings, test_output):
    with private_app(app_settings, test_output, "events") as app:
        yield app


def replay(send, attempts: int = 120):
    """Entra's way with a failing service: the same request again later, until it is answered."""
    for _ in range(attempts):
        try:
            response = send()
        except requests.RequestException:
            response = None
        if response is not None and response.status_code < 500:
            return response
        time.sleep(0.5)
    raise AssertionError("never answered")


def _noting(send, answers: list[int]):
    response = send()
    answers.append(response.status_code)
    return response


def directory_state(tenant: TenantHandle, scim: ScimClient) -> dict:
    users = scim.get("/Users?count=1000").json()["Resources"]
    groups = scim.get("/Groups?count=1000").json()["Resources"]
    admins = {u["id"]: tenant.api("GET", f"employees/{u['id']}").json()["is_admin"] for u in users}
    return {
        "employees": {u["id"]: (u["userName"], u.get("active", True), admins[u["id"]]) for u in users},
        "groups": {g["id"]: g["displayName"] for g in groups},
        "members": {g["id"]: sorted(m["value"] for m in scim.get(f"/Groups/{g['id']}").json().get("members", []))
                    for g in groups},
    }


def test_both_copies_equal_the_directory_after_failures_an_outage_and_a_restart(world, operator_key):
    azurite, host, settings = world
    base = host.url
    created = requests.post(f"{base}/api/tenants", json={"name": "Product Copy", "app_url": "https://p.example.com"},
                            headers={"Authorization": f"Bearer {operator_key}"}, timeout=30).json()
    tenant = TenantHandle(base, created["tenant_id"], created["admin_key"], created)
    scim = ScimClient(tenant.scim_url, tenant.scim_token(), tenant)
    receiver = WebhookReceiver()
    operator = Operator(base, operator_key, tenant.tenant_id)
    receiver.secret = operator.put(receiver.url).json()["secret"]
    reader, api_copy = EventReader(tenant), DirectoryCopy()

    def poll_api():
        for event in reader.poll():
            api_copy.apply(event)

    def latest_attempt() -> dict:
        attempts = operator.get()["last_attempts"]
        return attempts[0] if attempts else {}

    def fails_once(mode, change, failed) -> None:
        """One change while the receiver misbehaves: wait for the failed attempt, then let it recover and
        wait until everything is delivered (each failure then costs one backoff step, not a growing one)."""
        receiver.mode = mode
        before = latest_attempt()
        change()
        wait_until(lambda: (a := latest_attempt()) != before and failed(a), timeout=90)
        receiver.mode = "ok"
        if receiver.server is None:
            receiver.start()
        wait_until(lambda: operator.get()["pending"] == 0, timeout=90)

    # Entra's initial cycle: users, groups, memberships
    users = [replay(lambda i=i: scim.post("/Users", load(
        "entra-dev-create-user.json", externalId=str(uuid.uuid4()), userName=f"user{i}@contoso.example",
        email=f"user{i}@contoso.example"))).json()["id"] for i in range(USERS)]
    groups = [replay(lambda n=n: scim.post("/Groups", load("entra-dev-create-group.json", externalId=str(uuid.uuid4()),
                                                             displayName=f"Team {n}"))).json()["id"] for n in range(3)]
    for n, group in enumerate(groups):
        replay(lambda g=group, n=n: scim.patch(f"/Groups/{g}", load("entra-dev-add-members.json", first=users[n],
                                                                     second=users[n + 3])))
    poll_api()

    # the receiver fails (a 500), hangs past the 10 s timeout, and goes away (connection refused)
    fails_once(("status", 500, None), lambda: tenant.api("PUT", f"employees/{users[0]}/admin"),
               lambda a: a.get("status") == 500)
    fails_once("hang", lambda: replay(lambda: scim.patch(f"/Users/{users[1]}", load("entra-default-disable-user.json"))),
               lambda a: a.get("status") is None and "10" in (a.get("message") or ""))
    receiver.stop()
    fails_once("ok", lambda: replay(lambda: scim.patch(f"/Groups/{groups[0]}", load(
        "entra-dev-replace-group-display-name.json", displayName="Team zero"))),
        lambda a: a.get("status") is None)

    # storage (tables and queues) goes away in the middle of the next changes; Entra replays what failed
    answers: list[int] = []

    def entra_cycle():
        for send in (lambda: scim.patch(f"/Users/{users[0]}", load("entra-default-disable-user.json")),
                     lambda: scim.patch(f"/Groups/{groups[1]}", load("entra-dev-remove-member.json",
                                                                     memberId=users[1])),
                     lambda: scim.delete(f"/Users/{users[2]}")):
            answers.append(replay(lambda send=send: _noting(send, answers)).status_code)

    azurite.stop()
    cycle = threading.Thread(target=entra_cycle)
    cycle.start()
    wait_until(lambda: 503 in answers)
    time.sleep(2)
    azurite.start()
    cycle.join()
    poll_api()

    # the app is restarted while it delivers to a slow receiver (an event may arrive twice: at least once)
    receiver.mode = ("slow", 2)
    for i in range(4):
        replay(lambda i=i: scim.patch(f"/Users/{users[5 + i]}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": f"Renamed {i}"}]}))
    wait_until(lambda: receiver.received and operator.get()["pending"] > 0)
    host.stop()
    receiver.mode = "ok"
    host.start()
    replay(lambda: scim.delete(f"/Groups/{groups[2]}"))
    replay(lambda: scim.patch(f"/Users/{users[1]}", load("entra-default-enable-user.json")))

    expected = directory_state(tenant, scim)
    wait_until(lambda: operator.get()["pending"] == 0 and receiver.copy.state() == expected, timeout=180)
    poll_api()
    assert receiver.copy.state() == expected
    assert api_copy.state() == expected
    assert receiver.copy.out_of_order == [] and api_copy.out_of_order == []
    assert receiver.rejected_signatures == 0
    assert receiver.copy.applied == api_copy.applied  # the same events, by id and sequence
    assert expected["employees"][users[0]][1:] == (False, False)  # dismissed, and no longer an admin
    assert users[2] not in expected["employees"] and groups[2] not in expected["groups"]
    receiver.stop()


def _profile_replay(n: int, manager: str) -> dict:
    """Entra's PATCH after every profile attribute changed in Entra (both dialects: path ops and a no-path
    replace with dotted and URN keys)."""
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "displayName", "value": f"Person {n} (new)"},
        {"op": "replace", "value": {"name.givenName": f"Given{n}", "name.familyName": f"Family{n}",
                                    "name.formatted": f"Given{n} Family{n}", f"{ent}:employeeNumber": f"E{n:04d}"}},
        {"op": "Replace", "path": "title", "value": f"Title {n}"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": f"new{n}@contoso.example"},
        {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": f"+1 555 01{n:02d}"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": f"+1 555 02{n:02d}"},
        {"op": "Replace", "path": "preferredLanguage", "value": "de-DE"},
        {"op": "Replace", "path": "locale", "value": "de-DE"},
        {"op": "Replace", "path": "timezone", "value": "Europe/Berlin"},
        {"op": "Replace", "path": f"{ent}:department", "value": f"Dept {n % 3}"},
        {"op": "Replace", "path": f"{ent}:division", "value": "Division A"},
        {"op": "Replace", "path": f"{ent}:costCenter", "value": f"CC{n}"},
        {"op": "Replace", "path": f"{ent}:organization", "value": "Contoso"},
        {"op": "Add", "path": f"{ent}:manager", "value": manager},
        {"op": "Replace", "path": "userName", "value": f"renamed{n}@contoso.example"},
    ]}


def test_both_copies_start_from_the_listing_after_a_replay_that_changed_every_attribute(new_tenant, operator_key):
    """A product that connects late: it sets its webhook, lists the directory, then keeps both copies (webhooks,
    and the Events API from the listing's events_after) while Entra goes on; each equals the tenant's
    directory field by field, every employee as the admin API shows them."""
    tenant = new_tenant("Late Product")
    scim = ScimClient(tenant.scim_url, tenant.scim_token(), tenant)
    users = [scim.post("/Users", load("entra-dev-create-user.json", externalId=str(uuid.uuid4()),
                                      userName=f"p{i}@contoso.example", email=f"p{i}@contoso.example")).json()["id"]
             for i in range(6)]
    groups = [scim.create_group(f"Late {n}", members=[{"value": u} for u in users[n::2]])["id"] for n in range(2)]
    assert tenant.api("PUT", "role-mappings", json={"mappings": {groups[0]: ["admin"], groups[1]: ["member"]}}) \
        .status_code == 200
    for i, user in enumerate(users):  # the replay: every profile attribute changed
        response = scim.patch(f"/Users/{user}", _profile_replay(i, users[(i + 1) % len(users)]))
        assert response.status_code == 200, response.text

    # the product connects: webhook first (delivery starts at the log's head), then the listing
    receiver = WebhookReceiver()
    operator = Operator(tenant.base_url, operator_key, tenant.tenant_id)
    receiver.secret = operator.put(receiver.url).json()["secret"]
    listed, events_after, listed_groups = [], None, []
    after = None
    while True:
        page = tenant.api("GET", "directory/employees", params={"limit": 4, **({"after": after} if after else {})})
        listed += page.json()["employees"]
        events_after = events_after or page.json()["events_after"]
        after = page.json()["next"]
        if after is None:
            break
    listed_groups = tenant.api("GET", "directory/groups").json()["groups"]
    receiver.copy.start_from(listed, listed_groups)
    api_copy = DirectoryCopy()
    api_copy.start_from(listed, listed_groups)
    reader = EventReader(tenant)
    reader.cursor = events_after

    # Entra goes on: a dismissal, a move between groups, a new hire, a rename, a deletion
    replay(lambda: scim.patch(f"/Users/{users[0]}", load("entra-default-disable-user.json")))
    replay(lambda: scim.patch(f"/Groups/{groups[1]}", load("entra-dev-add-members.json", first=users[0],
                                                           second=users[2])))
    replay(lambda: scim.patch(f"/Groups/{groups[0]}", load("entra-dev-remove-member.json", memberId=users[2])))
    replay(lambda: scim.post("/Users", load("entra-dev-create-user.json", externalId=str(uuid.uuid4()),
                                           userName="late@contoso.example", email="late@contoso.example")))
    replay(lambda: scim.patch(f"/Users/{users[3]}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                     "Operations": [{"op": "Replace", "path": "title",
                                                                     "value": "Late title"}]}))
    replay(lambda: scim.delete(f"/Users/{users[5]}"))

    directory = {e["id"]: e for e in tenant.api("GET", "directory/employees", params={"limit": 500})
                 .json()["employees"]}
    for employee_id, employee in directory.items():  # the listing is the admin API's employee, field by field
        shown = tenant.api("GET", f"employees/{employee_id}").json()
        assert {k: shown[k] for k in employee} == employee
    expected_groups = {g["id"]: g for g in tenant.api("GET", "directory/groups").json()["groups"]}
    expected_members = {g: sorted(e["id"] for e in directory.values() if g in e["group_ids"]) for g in expected_groups}

    def state(copy: DirectoryCopy) -> tuple:
        with copy.lock:
            return (copy.employees, copy.groups, {g: sorted(m) for g, m in copy.members.items() if g in copy.groups})

    for event in reader.poll():
        api_copy.apply(event)
    wait_until(lambda: operator.get()["pending"] == 0 and state(receiver.copy)[0] == directory, timeout=90)
    for copy in (receiver.copy, api_copy):
        employees, copied_groups, members = state(copy)
        assert employees == directory  # every field of every employee
        assert copied_groups == expected_groups and members == expected_members
        assert copy.out_of_order == []
    assert directory[users[0]]["active"] is False and directory[users[0]]["roles"] == []
    assert directory[users[1]]["manager"]["id"] == users[2] and directory[users[1]]["title"] == "Title 1"
    assert directory[users[4]]["roles"] == ["admin"] and directory[users[4]]["phone_numbers"][1]["type"] == "mobile"
    receiver.stop()
