"""GET /api/tenants/{tenant}/events: cursor paging, limits, who may read, and the race the design rules out:
parallel writers against a polling reader, nothing skipped, nothing seen twice."""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from product import EventReader

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_pages_follow_the_cursor_oldest_first(scim, reader):
    for _ in range(5):
        scim.create_user()
    first = reader.page(limit=2).json()
    assert [e["sequence"] for e in first["events"]] == [1, 2]
    second = reader.page(first["next"], limit=2).json()
    assert [e["sequence"] for e in second["events"]] == [3, 4]
    rest = reader.page(second["next"]).json()
    assert [e["sequence"] for e in rest["events"]] == [5]
    empty = reader.page(rest["next"]).json()
    assert empty == {"events": [], "next": rest["next"]}  # nothing new: keep the same cursor


def test_limit_and_cursor_are_checked(scim, reader):
    for limit in ("0", "501", "x", "-1"):
        response = reader.page(limit=limit)
        assert response.status_code == 400 and response.json()["field"] == "limit", response.text
    response = reader.page(after="not-a-cursor")
    assert response.status_code == 422 and response.json()["field"] == "after"
    assert reader.page(limit=500).status_code == 200


def test_the_operator_reads_any_tenant_another_tenant_reads_nothing(scim, new_tenant, operator_key):
    scim.create_user()
    assert len(EventReader(scim.tenant, operator_key).poll()) == 1
    other = new_tenant("Other Corp")
    assert EventReader(scim.tenant, other.admin_key).page().status_code in (401, 403, 404)
    assert EventReader(scim.tenant, "nope").page().status_code in (401, 403)


def test_parallel_writers_against_a_polling_reader_nothing_skipped_nothing_twice(scim, reader):
    users = [scim.create_user()["id"] for _ in range(4)]
    seen: list[dict] = reader.poll()
    done = threading.Event()

    def poll_until_done():
        while not done.is_set():
            seen.extend(reader.poll(limit=7))  # small pages: the reader moves while writers commit
        seen.extend(reader.poll())

    def write(n: int):
        user = users[n % len(users)]
        if n % 3 == 0:
            scim.create_user(f"race-{n}-{uuid.uuid4().hex[:6]}@contoso.example")
        else:
            body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": f"n{n}"}]}
            assert scim.patch(f"/Users/{user}", body).status_code == 200

    polling = threading.Thread(target=poll_until_done)
    polling.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(60)))
    done.set()
    polling.join()
    sequences = [e["sequence"] for e in seen]
    assert sequences == list(range(1, len(sequences) + 1))  # in order, no gap, no repeat
    assert len({e["id"] for e in seen}) == len(seen)
    assert len(seen) == 4 + 60  # every write (each changes something) is one event


def test_every_event_type_matches_its_shape_in_the_openapi_document(scim, reader, operator_key):
    """All sixteen types, produced for real, each validated against /api/openapi.json's Event schema (its
    `data` by `type`)."""
    import jsonschema_rs
    import requests
    from entra_client import load

    from shared_code.tenancy import tenants
    from shared_code.events.shapes import EVENT_TYPES
    from tests.support.idp import TestIdp

    tenant, tid = scim.tenant, scim.tenant.tenant_id
    a, b = scim.create_user(externalId="o-a")["id"], scim.create_user()["id"]
    assert tenant.api("PUT", f"employees/{a}/admin").status_code == 200
    assert tenant.api("PATCH", f"employees/{b}", json={"email": "b@contoso.example"}).status_code == 200
    scim.patch(f"/Users/{a}", load("entra-default-disable-user.json"))
    scim.patch(f"/Users/{a}", load("entra-default-enable-user.json"))
    group = scim.create_group()["id"]
    scim.patch(f"/Groups/{group}", load("entra-dev-add-members.json", first=a, second=b))
    scim.patch(f"/Groups/{group}", load("entra-dev-remove-member.json", memberId=a))
    scim.patch(f"/Groups/{group}", load("entra-dev-replace-group-display-name.json", displayName="Renamed"))
    scim.delete(f"/Groups/{group}")
    scim.delete(f"/Users/{b}")
    assert tenant.api("PUT", "domains", json={"domains": ["contoso.example"]}).status_code == 200
    assert tenant.api("POST", "domain-audit").status_code == 200
    idp = TestIdp(key_label="events-tests")
    assert tenant.api("POST", "sso/idp-metadata", json={"metadata_xml": idp.metadata_xml().decode()}).ok
    tenants.mark_self_check_passed(tid)
    assert tenant.api("POST", "sso/enable").status_code == 200
    assert requests.post(f"{tenant.base_url}/api/tenants/{tid}/sso/disable", timeout=30,
                         headers={"Authorization": f"Bearer {operator_key}"}).status_code == 200

    events = reader.poll()
    assert {e["type"] for e in events} == set(EVENT_TYPES)
    document = requests.get(f"{tenant.base_url}/api/openapi.json", timeout=30).json()
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/Event", "components": document["components"]})
    for event in events:
        errors = [e.message for e in validator.iter_errors(event)]
        assert not errors, (event["type"], errors)
    assert not validator.is_valid({**events[0], "data": {"id": 1}})  # the per-type shapes do bite
