"""The directory consistency check: a partition written only through SCIM is clean; each kind of damage —
made here by writing or deleting rows directly, as a crash between two transactions would — is named.
Run through the command an operator uses (`python -m tools.check_consistency`) and through its core."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from scim_traffic import add_members, group_body, patch_body, user_body

from shared_code.storage import consistency, directory, tables

ROOT = Path(__file__).resolve().parents[2]


def check_command(app_settings: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.check_consistency", *args], cwd=ROOT,
                          env={**os.environ, **app_settings}, capture_output=True, text=True, timeout=60)


@pytest.fixture
def provisioned(scim_tenant):
    """A tenant provisioned through SCIM: three employees (one renamed, one deleted), two groups."""
    tenant, scim = scim_tenant
    users = [scim.request("POST", "/Users", user_body(f"emp{i}@contoso.example", f"obj-emp-{i}")).json()
             for i in range(3)]
    scim.request("PATCH", f"/Users/{users[1]['id']}", patch_body(
        {"op": "Replace", "path": "userName", "value": "renamed@contoso.example"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "renamed@contoso.example"}))
    groups = [scim.request("POST", "/Groups", group_body(f"Team {i}")).json() for i in range(2)]
    for group in groups:
        assert scim.request("PATCH", f"/Groups/{group['id']}", add_members(*(u["id"] for u in users))).status_code == 204
    assert scim.request("DELETE", f"/Users/{users[2]['id']}").status_code == 204
    return tenant.tenant_id, users, groups


def delete_row(tenant_id: str, key: str) -> None:
    tables.delete(tables.DIRECTORY, tenant_id, key)


def test_a_partition_written_through_scim_has_0_problems(provisioned, app_settings):
    tenant_id, _, _ = provisioned
    assert consistency.check_tenant(tenant_id) == []
    result = check_command(app_settings, "--tenant", tenant_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"tenant {tenant_id}: 0 problems", "0 problems"]


def test_a_deleted_index_row_is_a_half_created_employee_and_the_command_exits_1(provisioned, app_settings):
    tenant_id, users, _ = provisioned
    delete_row(tenant_id, directory.user_name_key("emp0@contoso.example"))
    problems = consistency.check_tenant(tenant_id)
    assert [(p.code, p.row) for p in problems] == [("user-without-index", f"user:{users[0]['id']}")]
    result = check_command(app_settings, "--tenant", tenant_id)
    assert result.returncode == 1
    assert f"user-without-index user:{users[0]['id']}: its index row username:emp0@contoso.example is missing" \
        in result.stdout
    assert result.stdout.splitlines()[-1] == "1 problem"


def test_an_index_row_whose_user_is_gone_is_named(provisioned):
    tenant_id, users, _ = provisioned
    delete_row(tenant_id, f"user:{users[0]['id']}")
    codes = sorted((p.code, p.row) for p in consistency.check_tenant(tenant_id))
    email = directory.email_prefix("emp0@contoso.example") + users[0]["id"]
    assert codes == sorted([
        ("index-without-user", email), ("index-without-user", "externalid:obj-emp-0"),
        ("index-without-user", "username:emp0@contoso.example"),
        *(("membership-without-user", f"member:{g}:{users[0]['id']}") for g in _group_ids(tenant_id)),
    ])


def test_a_copy_with_an_older_version_a_leftover_name_and_a_one_sided_membership_are_named(provisioned):
    tenant_id, users, groups = provisioned
    key = directory.external_id_key("obj-emp-1")
    stale = dict(tables.get(tables.DIRECTORY, tenant_id, key))
    stale["version"] = 1
    tables.upsert(tables.DIRECTORY, stale, replace=True)
    leftover = dict(tables.get(tables.DIRECTORY, tenant_id, directory.user_name_key("renamed@contoso.example")))
    leftover["RowKey"] = directory.user_name_key("emp1@contoso.example")  # the name before the rename
    tables.upsert(tables.DIRECTORY, leftover, replace=True)
    delete_row(tenant_id, f"memberof:{users[0]['id']}:{groups[1]['id']}")

    found = {(p.code, p.row): p.detail for p in consistency.check_tenant(tenant_id)}
    assert set(found) == {
        ("stale-index-copy", key),
        ("index-not-of-its-user", "username:emp1@contoso.example"),
        ("membership-without-reverse", f"member:{groups[1]['id']}:{users[0]['id']}"),
        ("user-group-ids-stale", f"user:{users[0]['id']}"),  # its group_ids still name the group
    }
    assert "version 1 vs 2" in found[("stale-index-copy", key)]


def test_a_group_stuck_deleting_is_named_only_after_a_few_minutes(provisioned):
    tenant_id, _, groups = provisioned
    row = dict(tables.get(tables.DIRECTORY, tenant_id, f"group:{groups[0]['id']}"))
    row["deleting"] = True
    tables.upsert(tables.DIRECTORY, row, replace=True)
    delete_row(tenant_id, directory.group_name_key("Team 0"))  # a deleting group has freed its name
    assert consistency.check_tenant(tenant_id) == []  # a delete in progress
    later = datetime.now(timezone.utc) + timedelta(minutes=6)
    assert [(p.code, p.row) for p in consistency.check_tenant(tenant_id, now=later)] == [
        ("group-stuck-deleting", f"group:{groups[0]['id']}")]


def test_a_problem_that_a_concurrent_write_resolved_before_the_recheck_is_not_reported(provisioned):
    """The scan is not a snapshot: a problem is reported only if a point read of its rows still shows it."""
    tenant_id, users, _ = provisioned
    key = directory.user_name_key("emp0@contoso.example")
    copy = tables.get(tables.DIRECTORY, tenant_id, key)
    delete_row(tenant_id, key)
    seen = consistency.check_tenant(tenant_id, recheck=False)  # what a scan taken at this moment shows
    assert [p.code for p in seen] == ["user-without-index"]
    tables.upsert(tables.DIRECTORY, dict(copy), replace=True)  # the write that was in flight lands
    assert consistency.confirmed(tenant_id, seen) == []


def test_an_unknown_tenant_is_exit_2_not_a_clean_bill(app_settings):
    result = check_command(app_settings, "--tenant", "no-such-tenant-000000")
    assert result.returncode == 2 and "no tenant" in result.stderr


def test_directory_rows_of_a_tenant_that_does_not_exist_are_a_problem():
    orphan = "orphan-" + uuid.uuid4().hex[:8]
    tables.upsert(tables.DIRECTORY, {"PartitionKey": orphan, "RowKey": "member:a:b"})
    codes = [p.code for p in consistency.check_tenant(orphan)]
    assert codes[0] == "partition-without-tenant" and "malformed-row" not in codes


def _group_ids(tenant_id: str) -> list[str]:
    return [g.id for g in directory.iter_group_records(tenant_id)]
