"""Storage done right: one partition per tenant, lookups that are point reads, a create that is one
transaction, member changes that cost in proportion to the members named (so a group of 50,000 works), and
multi-transaction changes that a retry finishes. Round trips are counted by the Table client's own
per-call policy (`tables.round_trips()`), not guessed."""
from __future__ import annotations

import time

import uuid

import pytest
from entra_client import load

from shared_code.tenancy import tenants
from shared_code.events import log as event_log
from shared_code.scim import service
from shared_code.scim.schemas import GROUP_KIND, USER_KIND
from shared_code.storage import directory, tables

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def round_trips(action) -> tuple[object, int]:
    # As an instance that has written for these tenants before, and so knows where their event logs stand
    # (the first write of an instance, or the first after another instance wrote, reads the log's head once).
    event_log.prime_known()
    before = tables.round_trips()
    result = action()
    return result, tables.round_trips() - before


@pytest.fixture
def tenant(scim):
    """The caller as the service sees it once the token is checked (so counts leave the check out)."""
    event_log.prime(scim.tenant.tenant_id)
    return service.Caller.of(tenants.get_tenant(scim.tenant.tenant_id))


def test_every_row_of_a_tenant_lives_in_its_own_partition(scim):
    user = scim.create_user(externalId="obj")
    group = scim.create_group()
    added = scim.patch(f"/Groups/{group['id']}", load("entra-dev-add-members.json", first=user["id"], second=user["id"]))
    assert added.status_code == 204, added.text
    rows = list(tables.query(tables.DIRECTORY, "PartitionKey eq @pk", {"pk": scim.tenant.tenant_id},
                             select=["RowKey"]))
    prefixes = sorted({r["RowKey"].split(":")[0] for r in rows} - {"event", "eventlog"})  # its events too
    assert prefixes == ["email", "externalid", "group", "groupname", "member", "memberof", "user", "username"] \
        or prefixes == ["externalid", "group", "groupname", "member", "memberof", "user", "username"]
    assert any(r["RowKey"] == "eventlog" for r in rows)


def test_lookups_by_user_name_external_id_and_id_are_one_point_read(scim, tenant):
    user = scim.create_user("Point.Read@contoso.example", externalId="obj-point")
    tid = tenant.tenant_id
    for lookup in (lambda: directory.find_user_record(tid, "userName", "point.read@contoso.example"),
                   lambda: directory.find_user_record(tid, "externalId", "obj-point"),
                   lambda: directory.get_user_record(tid, user["id"]),
                   lambda: directory.find_user_by_external_id(tid, "obj-point")):
        found, trips = round_trips(lookup)
        assert found.id == user["id"] and trips == 1


def test_entra_filter_by_user_name_costs_one_round_trip_and_create_one_transaction(scim, tenant):
    body, trips = round_trips(lambda: service.query(tenant, USER_KIND, filter='userName eq "new@contoso.example"'))
    assert body.body["totalResults"] == 0 and trips == 1
    created, trips = round_trips(lambda: service.create_user(tenant, load(
        "entra-dev-create-user.json", externalId="o1", userName="new@contoso.example", email="new@contoso.example"),
        {}))
    assert created.status == 201 and trips == 1
    found, trips = round_trips(lambda: service.query(tenant, USER_KIND, filter='userName eq "NEW@contoso.example"'))
    assert found.body["totalResults"] == 1 and trips == 1
    patched, trips = round_trips(lambda: service.patch_user(
        tenant, created.body["id"], load("entra-default-disable-user.json"), {}, None))
    # read + one transaction (with its events): the sessions a dismissal ends are the log consumer's, off this path
    assert patched.body["active"] is False and trips == 2
    group, trips = round_trips(lambda: service.query(tenant, GROUP_KIND, filter='displayName eq "Nope"',
                                                     excluded="members"))
    assert trips == 1


def _seed_users(tenant_id: str, count: int) -> list[str]:
    """Users written straight into storage, 100 per transaction (creating 50,000 over HTTP takes minutes)."""
    ids = []
    stamp = directory.now()
    for start in range(0, count, directory.BATCH):
        ops = []
        for i in range(start, min(start + directory.BATCH, count)):
            record = directory.UserRecord(directory.new_id() + "", {"userName": f"u{i}@contoso.example"},
                                          stamp, stamp, 1)
            ids.append(record.id)
            ops.append(("create", directory._user_rows(tenant_id, record)[directory.USER + record.id]))
        tables.transact(tables.DIRECTORY, ops)
    return ids


def _add_members(scim, group_id, ids):
    body = {"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members",
                                                "value": [{"value": i} for i in ids]}]}
    response = scim.patch(f"/Groups/{group_id}", body)
    assert response.status_code == 204, response.text


# Azurite needs minutes to write 50,000 memberships; the suite proves the property that makes a group of
# 50,000 work (member changes cost the same whatever the group's size) on a group ten transactions wide,
# and `python bench/scim.py --members 50000` runs the full size.
BIG = 1_000


def test_member_changes_cost_the_same_on_a_group_of_three_and_a_big_group(scim, tenant):
    tid = tenant.tenant_id
    ids = _seed_users(tid, BIG)
    big, small = scim.create_group("Everyone"), scim.create_group("Few")
    # 50 members a PATCH (each also merges its user row's group ids and writes its employee.updated): well
    # inside a request's storage deadline on a busy machine
    for start in range(0, len(ids), 50):
        _add_members(scim, big["id"], ids[start:start + 50])
    _add_members(scim, small["id"], ids[:3])

    newcomer = scim.create_user()["id"]
    costs = {}
    for group in (small, big):
        add = load("entra-dev-add-members.json", first=newcomer, second=newcomer)
        remove = load("entra-aadoptscim062020-remove-member.json", memberId=newcomer)
        rename = load("entra-dev-replace-group-display-name.json", displayName=group["displayName"] + "!")
        costs[group["displayName"]] = [
            round_trips(lambda body=body: service.patch_group(tenant, group["id"], body, None))[1]
            for body in (add, remove, rename)]
    assert costs["Everyone"] == costs["Few"], costs  # in proportion to the members named, not the group

    response = scim.get(f"/Groups/{big['id']}")
    assert response.status_code == 200 and len(response.json()["members"]) == BIG
    lean = scim.get(f"/Groups/{big['id']}?excludedAttributes=members")
    assert "members" not in lean.json()

    # deleting a member user touches only that user's memberships
    _, trips = round_trips(lambda: service.delete(tenant, USER_KIND, ids[0], None))
    assert trips <= 5  # …and the scan for the OpenID Connect sessions a deleted employee's leave ends
    assert directory.find_members(tid, big["id"], [ids[0]]) == {}

    # deleting the group takes its memberships with it (hidden first, rows in batches, then the group)
    # (each member's user row loses the group's id too, so on a busy machine one request may run out of its
    # storage deadline: 503 with Retry-After, and the retried DELETE goes on where it stopped, as Entra's would)
    answers = [scim.delete(f"/Groups/{big['id']}")]
    while answers[-1].status_code == 503 and len(answers) < 10:
        time.sleep(float(answers[-1].headers.get("Retry-After") or 1))  # what the client is asked to wait
        answers.append(scim.delete(f"/Groups/{big['id']}"))
    assert answers[-1].status_code == 204, [a.status_code for a in answers]
    assert list(directory.iter_members(tid, big["id"])) == []
    assert directory.get_user_record(tid, ids[500]).group_ids == ()  # the group's id left its members' rows
    assert tables.get(tables.DIRECTORY, tid, f"{directory.MEMBER_OF}{ids[500]}:{big['id']}") is None
    assert sorted(m["value"] for m in directory.iter_members(tid, small["id"])) == sorted(ids[1:3])  # others keep theirs


def test_an_interrupted_group_delete_is_finished_by_the_retry(scim, tenant):
    tid = tenant.tenant_id
    ids = _seed_users(tid, 120)
    group = scim.create_group("Interrupted")
    _add_members(scim, group["id"], ids)
    # The state a DELETE leaves when it stops after hiding the group and removing some memberships:
    record = directory.get_group_record(tid, group["id"])
    hidden = directory.GroupRecord(record.id, record.data, record.created, record.last_modified,
                                   record.version + 1, deleting=True)
    directory._submit(tid, directory._replace_rows(directory._group_rows(tid, record),
                                                   directory._group_rows(tid, hidden),
                                                   directory.GROUP + record.id, record.etag))
    directory._remove_memberships(tid, [(group["id"], u) for u in ids[:50]], announce=False)
    assert scim.get(f"/Groups/{group['id']}").status_code == 404  # already invisible
    assert scim.create_group("Interrupted")["id"] != group["id"]  # and its name is free
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204  # the retry finishes
    assert list(directory.iter_members(tid, group["id"])) == []
    assert directory.get_group_record(tid, group["id"], include_deleting=True) is None
    assert {directory.get_user_record(tid, u).group_ids for u in (ids[0], ids[100])} == {()}


def test_a_large_member_add_that_names_a_stranger_writes_nothing(scim, tenant):
    ids = _seed_users(tenant.tenant_id, 200)
    group = scim.create_group()
    body = {"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members",
                                                "value": [{"value": i} for i in ids + [uuid.uuid4().hex]]}]}
    response = scim.patch(f"/Groups/{group['id']}", body)
    assert response.status_code == 400 and response.json()["scimType"] == "invalidValue"
    assert list(directory.iter_members(tenant.tenant_id, group["id"])) == []


def test_a_user_in_more_groups_than_one_transaction_holds_is_deleted_with_all_memberships(scim, tenant):
    user = scim.create_user()
    groups = [scim.create_group()["id"] for _ in range(60)]
    for group_id in groups:
        added = scim.patch(f"/Groups/{group_id}", load("entra-dev-add-members.json", first=user["id"],
                                                        second=user["id"]))
        assert added.status_code == 204, added.text
    for group_id in groups[:3] + groups[-3:]:  # the memberships the delete must take exist first
        assert list(directory.iter_members(tenant.tenant_id, group_id)) != []
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    for group_id in groups[:3] + groups[-3:]:
        assert list(directory.iter_members(tenant.tenant_id, group_id)) == []
    assert directory.get_user(tenant.tenant_id, user["id"]) is None
