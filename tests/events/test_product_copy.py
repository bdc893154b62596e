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
from product import DirectoryCopy, EventReader, Operator, WebhookReceiver, wait_until

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
