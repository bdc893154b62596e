"""The event log: every directory change writes its events in its own transaction, in one gap-free
per-tenant sequence, with the whole current state; a change that changes nothing writes none."""
from __future__ import annotations

import uuid

from entra_client import load

from shared_code.events import log as event_log
from shared_code.storage import tables
from tests.support.waiting import wait_until

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _types(events):
    return [e["type"] for e in events]


def test_employee_lifecycle_is_told_in_order_with_the_whole_employee(scim, reader):
    user = scim.create_user("ada@contoso.example", externalId="obj-ada", displayName="Ada")
    uid = user["id"]
    assert scim.tenant.api("PUT", f"employees/{uid}/admin").status_code == 200
    assert scim.patch(f"/Users/{uid}", load("entra-default-disable-user.json")).status_code == 200
    assert scim.patch(f"/Users/{uid}", load("entra-default-enable-user.json")).status_code == 200
    assert scim.patch(f"/Users/{uid}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Ada L."}]}).status_code == 200
    assert scim.delete(f"/Users/{uid}").status_code == 204

    events = reader.poll()
    assert _types(events) == ["employee.created", "employee.roles_changed", "employee.admin_granted",
                              "employee.dismissed", "employee.roles_changed", "employee.admin_revoked",
                              "employee.rehired", "employee.updated", "employee.deleted"]
    assert [e["sequence"] for e in events] == list(range(events[0]["sequence"], events[0]["sequence"] + 9))
    assert all(e["tenant"] == scim.tenant.tenant_id and e["id"].startswith("evt_") for e in events)
    assert len({e["id"] for e in events}) == 9
    created, dismissed, rehired, updated = events[0]["data"], events[3]["data"], events[6]["data"], events[7]["data"]
    assert created == {"id": uid, "user_name": "ada@contoso.example", "name": "Ada", "email": None, "active": True,
                       "is_admin": False, "department": None, "managed_by_entra": True, "external_id": "obj-ada",
                       "allowed_outside_domain": False, "given_name": None, "family_name": None,
                       "formatted_name": None, "emails": [], "phone_numbers": [], "title": None,
                       "employee_number": None, "cost_center": None, "organization": None, "division": None,
                       "manager": None, "preferred_language": None, "locale": None, "timezone": None, "roles": [],
                       "group_ids": [], "created": user["meta"]["created"],
                       "last_modified": user["meta"]["lastModified"]}
    assert events[1]["data"]["roles"] == ["admin"] and events[2]["data"]["is_admin"] is True
    assert dismissed["active"] is False and dismissed["is_admin"] is False  # the dismissal dropped the rights
    assert dismissed["roles"] == [] and events[4]["data"]["roles"] == []
    assert rehired["active"] is True and rehired["is_admin"] is False  # a rehire does not bring them back
    assert updated["name"] == "Ada L."
    # the admin API shows the same employee the last event carries
    assert events[-1]["data"]["name"] == "Ada L."


def test_a_patch_that_changes_nothing_writes_no_event(scim, reader):
    user = scim.create_user(displayName="Same")
    reader.poll()
    same = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Same"}]}
    assert scim.patch(f"/Users/{user['id']}", same).status_code == 200
    assert scim.tenant.api("DELETE", f"employees/{user['id']}/admin").status_code == 200  # not an admin anyway
    assert reader.poll() == []


def test_group_changes_carry_the_group_and_the_member_ids(scim, reader):
    a, b = scim.create_user()["id"], scim.create_user()["id"]
    group = scim.create_group("Engineering", externalId="obj-eng")
    gid = group["id"]
    assert scim.patch(f"/Groups/{gid}", load("entra-dev-add-members.json", first=a, second=b)).status_code == 204
    assert scim.patch(f"/Groups/{gid}", load("entra-dev-remove-member.json", memberId=a)).status_code == 204
    assert scim.patch(f"/Groups/{gid}", load("entra-dev-replace-group-display-name.json",
                                             displayName="Eng")).status_code == 204
    assert scim.delete(f"/Groups/{gid}").status_code == 204
    everything = reader.poll()[2:]
    # each member's employee.updated comes in the same transaction as the membership change, with its group ids
    assert _types(everything) == ["group.created", "group.members_added", "employee.updated", "employee.updated",
                                  "group.members_removed", "employee.updated", "group.updated", "group.deleted",
                                  "employee.updated"]
    assert {e["data"]["id"]: e["data"]["group_ids"] for e in everything[2:4]} == {a: [gid], b: [gid]}
    assert everything[5]["data"]["id"] == a and everything[5]["data"]["group_ids"] == []
    assert everything[8]["data"]["id"] == b and everything[8]["data"]["group_ids"] == []
    events = [e for e in everything if e["type"].startswith("group.")]
    assert events[0]["data"] == {"id": gid, "display_name": "Engineering", "external_id": "obj-eng"}
    assert sorted(events[1]["data"]["member_ids"]) == sorted([a, b])
    assert events[2]["data"] == {"id": gid, "display_name": "Engineering", "external_id": "obj-eng",
                                 "member_ids": [a]}
    assert events[3]["data"]["display_name"] == "Eng"


def test_a_large_member_change_writes_one_event_per_transaction_and_loses_no_member(scim, reader):
    ids = [scim.create_user()["id"] for _ in range(70)]
    group = scim.create_group()
    reader.poll()
    body = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members",
                                                "value": [{"value": i} for i in ids]}]}
    assert scim.patch(f"/Groups/{group['id']}", body).status_code == 204
    everything = reader.poll()
    events = [e for e in everything if e["type"].startswith("group.")]
    # a transaction adds as many members as their rows, their user rows and their events fit in it
    assert _types(events) == ["group.members_added"] * 3  # 24 members a transaction: 2 rows, user row, event
    assert sorted(i for e in events for i in e["data"]["member_ids"]) == sorted(ids)
    updated = [e["data"] for e in everything if e["type"] == "employee.updated"]
    assert sorted(d["id"] for d in updated) == sorted(ids) and all(d["group_ids"] == [group["id"]] for d in updated)


def test_events_live_with_the_directory_and_the_head_counts_them(scim, reader):
    scim.create_user()
    scim.create_group()
    tid = scim.tenant.tenant_id
    rows = {r["RowKey"]: r for r in tables.query(tables.DIRECTORY, "PartitionKey eq @pk", {"pk": tid})}
    events = [k for k in rows if k.startswith(event_log.EVENT)]
    assert len(events) == 2 and rows[event_log.HEAD]["sequence"] == 2
    assert events == [event_log.event_key(1), event_log.event_key(2)]


def test_another_instance_moving_the_head_costs_a_retry_not_an_event(scim, reader):
    """This process and the app are two instances writing one tenant: each finds the other moved the head."""
    from shared_code.tenancy import tenants
    from shared_code.scim import service

    caller = service.Caller.of(tenants.get_tenant(scim.tenant.tenant_id))
    for n in range(3):
        scim.create_user()
        service.create_user(caller, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                     "userName": f"direct-{n}-{uuid.uuid4().hex[:6]}@contoso.example"}, {})
    events = reader.poll()
    assert [e["sequence"] for e in events] == list(range(1, 7))


def test_events_older_than_30_days_are_purged_and_the_sequence_goes_on(scim, reader):
    from datetime import datetime, timedelta, timezone

    from shared_code.events import retention

    scim.create_user()
    scim.create_user()
    assert retention.purge_tenant(scim.tenant.tenant_id) == 0  # young events stay
    later = datetime.now(timezone.utc) + timedelta(days=31)
    assert retention.purge_tenant(scim.tenant.tenant_id, now=later) == 2
    assert EventReaderFrom(reader).poll() == []  # from the oldest kept: none
    scim.create_user()
    assert [e["sequence"] for e in EventReaderFrom(reader).poll()] == [3]


def EventReaderFrom(reader):  # noqa: N802 - a fresh reader of the same tenant, without a cursor
    from product import EventReader

    return EventReader(reader.tenant)


def test_tenant_level_changes_join_the_same_sequence(scim, reader, operator_key):
    """SSO status, the IdP's certificates and a domain audit are stored in other tables; their events come
    through an outbox written with the change and still take the tenant's next sequence numbers."""
    from shared_code.tenancy import tenants
    from tests.support.idp import TestIdp

    tenant = scim.tenant
    tid = tenant.tenant_id
    user = scim.create_user("e1@contoso.example", emails=[{"value": "e1@elsewhere.example", "type": "work",
                                                           "primary": True}])
    assert tenant.api("PUT", "domains", json={"domains": ["contoso.example"]}).status_code == 200
    assert tenant.api("POST", "domain-audit").status_code == 200
    idp = TestIdp(key_label="events-tests")
    connected = tenant.api("POST", "sso/idp-metadata", json={"metadata_xml": idp.metadata_xml().decode()})
    assert connected.status_code == 200, connected.text
    tenants.mark_self_check_passed(tid)  # the self-check sign-in itself is tests/sso's subject
    assert tenant.api("POST", "sso/enable").status_code == 200
    disabled = tenant.http.post(f"{tenant.base_url}/api/tenants/{tid}/sso/disable",
                                headers={"Authorization": f"Bearer {operator_key}"}, timeout=30)
    assert disabled.status_code == 200
    events = reader.poll()
    assert [e["type"] for e in events] == ["employee.created", "domain_audit.completed", "idp.certificates_changed",
                                           "sso.enabled", "sso.disabled"]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5]
    assert events[1]["data"]["outside_count"] == 1 and events[1]["data"]["outside_ids"] == [user["id"]]
    assert events[2]["data"]["idp_entity_id"] == idp.entity_id and len(events[2]["data"]["certificates"]) == 1
    assert events[3]["data"]["status"] == "enabled" and events[4]["data"]["status"] == "testing"
    # the outboxes are empty: each request appended its own events
    from shared_code.events import outbox
    from shared_code.storage import tables
    for table in outbox.TABLES:
        assert list(tables.partition_range(table, tid, outbox.OUTBOX)) == []


def test_an_outbox_event_left_behind_is_appended_once_by_the_sweep(scim, reader, app_url):
    """A change whose request died after writing it (the event waits in the outbox) gets its event from the
    outbox sweep (a timer that fans out over gatehouse-jobs); an outbox row whose event was appended but not
    deleted is not appended twice."""
    import time

    import requests

    from shared_code.events import log as event_log
    from shared_code.events import outbox
    from shared_code.events.shapes import Change
    from shared_code.storage import tables

    tid = scim.tenant.tenant_id
    ops = outbox.stage(tid, [Change("sso.enabled", {"status": "enabled", "enabled_at": None})])
    tables.transact(tables.TENANTS, ops)
    assert reader.poll() == []
    assert requests.post(f"{app_url}/admin/functions/events_outbox_sweep", json={}, timeout=10).status_code == 202
    deadline = time.monotonic() + 60
    while not (first := reader.poll()):
        assert time.monotonic() < deadline, "the outbox sweep did not append the event"
        time.sleep(0.2)
    assert [e["type"] for e in first] == ["sso.enabled"] and first[0]["id"] == ops[0][1]["RowKey"][7:]
    # the sweep deletes the outbox row in its own round trip after the append: wait for it before staging again
    wait_until(lambda: not list(tables.partition_range(tables.TENANTS, tid, outbox.OUTBOX)),
               what="the outbox sweep's delete of what it appended")
    tables.transact(tables.TENANTS, ops)  # as if the delete after the append had been lost
    outbox.flush(tables.TENANTS, tid)
    assert reader.poll() == []
    assert event_log.last_sequence(tid) == 1


def test_changes_too_large_for_one_transaction_tell_every_part(scim, reader):
    """An employee in 50 groups is deleted in several transactions (memberships first): each part writes
    its group.members_removed, then employee.deleted; a group of 55 is deleted by hiding it first, which is
    when its group.deleted is written, once. A copy built from the events equals the directory."""
    from product import DirectoryCopy

    u, v = scim.create_user()["id"], scim.create_user()["id"]
    groups = [scim.create_group(members=[{"value": u}, {"value": v}])["id"] for _ in range(50)]
    assert scim.delete(f"/Users/{u}").status_code == 204
    many = [scim.create_user()["id"] for _ in range(53)]
    big = scim.create_group(members=[{"value": i} for i in many + [v]])["id"]
    assert scim.delete(f"/Groups/{big}").status_code == 204

    copy = DirectoryCopy()
    events = reader.poll()
    for event in events:
        copy.apply(event)
    removed = [e for e in events if e["type"] == "group.members_removed"]
    assert sorted(e["data"]["id"] for e in removed) == sorted(groups)
    assert all(e["data"]["member_ids"] == [u] and e["data"]["display_name"] for e in removed)
    assert [e["type"] for e in events].count("group.deleted") == 1
    assert events.index(removed[-1]) < [e["type"] for e in events].index("employee.deleted")
    state = copy.state()
    assert u not in state["employees"] and big not in state["groups"]
    assert all(state["members"][g] == [v] for g in groups)
