"""How audit runs are stored: newest first, large outside lists split into rows that respect Table Storage's
limits (64 KiB per property, 1 MiB per entity) and read back whole, and old runs pruned. Runs are written by
the real cores into the suite's Azurite and read back over HTTP. (The timer's walk over every tenant, cut short
and resumed, is tests/jobs/.)"""
from __future__ import annotations

from shared_code.storage import audits
from tests.audit.directory_seed import entra_user, seed_employees
from tests.audit.provisioning import audit_now, set_domains

PROPERTY_LIMIT = 64 * 1024
ENTITY_LIMIT = 1024 * 1024


def _utf16(value) -> int:
    return len(value.encode("utf-16-le")) if isinstance(value, str) else 8


def _worst_case_entries(count: int) -> list[dict]:
    """Outside entries at the stored length limit, with characters that take two UTF-16 units each."""
    return [{"id": f"{i:032x}", "name": ("𝔑" * 300) + str(i), "email": f"{'x' * 240}{i:08d}@gmail.com",
             "why": "domain gmail.com is not a corporate domain", "user_name": "u" * 300,
             "managed_by_entra": True} for i in range(count)]


def test_half_of_ten_thousand_employees_outside_is_stored_in_rows_within_the_limits_and_read_back_whole(tenant):
    set_domains(tenant, "contoso.example")
    entries = _worst_case_entries(5_000)
    run = audits.start_run(tenant.tenant_id, "on_demand", {"domains": ["contoso.example"], "include_subdomains": False})
    audits.complete_run(run, checked=10_000, allowed=0, outside=entries)

    rows = audits.raw_rows(tenant.tenant_id)
    assert len(rows) > 10  # the list did not fit one row: it was split
    for row in rows:
        assert max(_utf16(value) for value in row.values()) <= PROPERTY_LIMIT
        assert sum(_utf16(key) + _utf16(value) for key, value in row.items()) <= ENTITY_LIMIT

    latest = tenant.api("GET", "domain-audit").json()
    assert latest["complete"] is True and latest["checked"] == 10_000
    assert latest["outside_count"] == 5_000 and len(latest["outside"]) == 5_000
    assert latest["outside_truncated"] is False
    assert [entry["id"] for entry in latest["outside"]] == [entry["id"] for entry in entries]
    assert latest["outside"][0]["name"] == ("𝔑" * 256)  # texts are cut to a bounded length


def test_an_outside_list_beyond_the_cap_is_counted_in_full_and_listed_up_to_the_cap(tenant):
    set_domains(tenant, "contoso.example")
    entries = [{"id": f"{i:032x}", "name": f"Employee {i}", "email": f"e{i:06d}@gmail.com",
                "why": "domain gmail.com is not a corporate domain", "user_name": f"e{i:06d}@gmail.com",
                "managed_by_entra": True} for i in range(audits.MAX_STORED_OUTSIDE + 500)]
    run = audits.start_run(tenant.tenant_id, "timer", {"domains": ["contoso.example"]})
    audits.complete_run(run, checked=len(entries), allowed=0, outside=entries)
    latest = tenant.api("GET", "domain-audit").json()
    assert latest["outside_count"] == audits.MAX_STORED_OUTSIDE + 500
    assert len(latest["outside"]) == audits.MAX_STORED_OUTSIDE
    assert latest["outside_truncated"] is True and "the first 10000" in latest["message"]


def test_a_bulk_provisioned_directory_is_audited_in_one_pass_with_a_split_outside_list(tenant):
    set_domains(tenant, "contoso.example")
    long_name = "Bartholomew-Maximilian " * 11  # ~250 characters: the stored list needs several rows
    users = [entra_user(f"staff{i:04d}@{'gmail.com' if i % 2 else 'contoso.example'}", name=f"{long_name}{i}")
             for i in range(400)]
    users.append(entra_user("gone@gmail.com", active=False))
    seed_employees(tenant.tenant_id, users)

    run = audit_now(tenant)
    assert run["checked"] == 400 and run["outside_count"] == 200 and len(run["outside"]) == 200
    assert [entry["email"] for entry in run["outside"]] == sorted(f"staff{i:04d}@gmail.com" for i in range(1, 400, 2))
    outside_rows = [row for row in audits.raw_rows(tenant.tenant_id) if row["RowKey"].startswith(audits.OUTSIDE)]
    assert len(outside_rows) >= 2
    assert tenant.api("GET", "domain-audit").json() == run


def test_the_newest_run_is_the_first_row_and_only_the_last_thirty_are_kept(tenant, entra):
    from shared_code.directory import domain_audit

    entra.provision("kim@gmail.com")
    set_domains(tenant, "contoso.example")
    run_ids = [audit_now(tenant)["run_id"] for _ in range(domain_audit.KEEP_RUNS + 3)]
    headers = [row["RowKey"] for row in audits.raw_rows(tenant.tenant_id) if row["RowKey"].startswith(audits.RUN)]
    assert headers == [audits.RUN + run_id for run_id in reversed(run_ids[-domain_audit.KEEP_RUNS:])]
    outside = {row["RowKey"].split(":")[1] for row in audits.raw_rows(tenant.tenant_id)
               if row["RowKey"].startswith(audits.OUTSIDE)}
    assert outside == set(run_ids[-domain_audit.KEEP_RUNS:])  # the pruned runs' lists went with them
