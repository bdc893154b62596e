"""What an event is: its type and `data`, the whole current state of what changed, so a receiver can upsert
from any one event. Plain dicts, no pydantic: the directory's write path builds these on every change.

- employee.*: the employee as the admin API shows them (`employee_data`).
- group.created / group.updated / group.deleted: the group (`group_data`).
- group.members_added / group.members_removed: the group plus `member_ids`, the users added or removed by
  this event (a large change is several events, one per transaction that wrote part of it).
- employee.deleted also ends every membership of the employee (the membership rows go in the same
  transaction, or, for an employee in very many groups, in earlier ones that write group.members_removed).
- sso.enabled / sso.disabled: the tenant's SSO status; domain_audit.completed: the run's summary;
  idp.certificates_changed: the IdP's signing certificates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EMPLOYEE_CREATED, EMPLOYEE_UPDATED = "employee.created", "employee.updated"
EMPLOYEE_DISMISSED, EMPLOYEE_REHIRED, EMPLOYEE_DELETED = "employee.dismissed", "employee.rehired", "employee.deleted"
EMPLOYEE_ADMIN_GRANTED, EMPLOYEE_ADMIN_REVOKED = "employee.admin_granted", "employee.admin_revoked"
GROUP_CREATED, GROUP_UPDATED, GROUP_DELETED = "group.created", "group.updated", "group.deleted"
GROUP_MEMBERS_ADDED, GROUP_MEMBERS_REMOVED = "group.members_added", "group.members_removed"
SSO_ENABLED, SSO_DISABLED = "sso.enabled", "sso.disabled"
DOMAIN_AUDIT_COMPLETED, IDP_CERTIFICATES_CHANGED = "domain_audit.completed", "idp.certificates_changed"

EVENT_TYPES = (
    EMPLOYEE_CREATED, EMPLOYEE_UPDATED, EMPLOYEE_DISMISSED, EMPLOYEE_REHIRED, EMPLOYEE_DELETED,
    EMPLOYEE_ADMIN_GRANTED, EMPLOYEE_ADMIN_REVOKED,
    GROUP_CREATED, GROUP_UPDATED, GROUP_DELETED, GROUP_MEMBERS_ADDED, GROUP_MEMBERS_REMOVED,
    SSO_ENABLED, SSO_DISABLED, DOMAIN_AUDIT_COMPLETED, IDP_CERTIFICATES_CHANGED,
)


@dataclass(frozen=True)
class Change:
    """An event about to be written: its type and data (id, sequence and time are given when it is written)."""

    type: str
    data: dict[str, Any]


def employee_data(columns: dict[str, Any]) -> dict[str, Any]:
    """The employee as the admin API shows them (GET /tenants/{t}/employees/{id}, without the audit's
    verdict, which depends on the corporate domains rather than on the employee), from a user row's columns."""
    return {
        "id": columns["id"], "user_name": columns.get("user_name"), "name": columns.get("display_name"),
        "email": columns.get("work_email"), "active": bool(columns.get("active")),
        "is_admin": bool(columns.get("is_admin")), "department": columns.get("department"),
        "managed_by_entra": bool(columns.get("external_id")), "external_id": columns.get("external_id"),
        "allowed_outside_domain": bool(columns.get("allowed_outside_domain")),
    }


def employee_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Change]:
    """The events of one write of a user row (columns before and after): none when nothing a reader sees
    changed. A dismissal that drops admin rights is two events, dismissed then admin_revoked."""
    after = employee_data(new)
    if old is None:
        return [Change(EMPLOYEE_CREATED, after)]
    before = employee_data(old)
    if before == after:
        return []
    changes = []
    rest_before = {k: v for k, v in before.items() if k not in ("active", "is_admin")}
    rest_after = {k: v for k, v in after.items() if k not in ("active", "is_admin")}
    if before["active"] and not after["active"]:
        changes.append(Change(EMPLOYEE_DISMISSED, after))
    elif not before["active"] and after["active"]:
        changes.append(Change(EMPLOYEE_REHIRED, after))
    elif rest_before != rest_after:
        changes.append(Change(EMPLOYEE_UPDATED, after))
    if before["is_admin"] and not after["is_admin"]:
        changes.append(Change(EMPLOYEE_ADMIN_REVOKED, after))
    elif not before["is_admin"] and after["is_admin"]:
        changes.append(Change(EMPLOYEE_ADMIN_GRANTED, after))
    return changes


def group_data(group_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": group_id, "display_name": data.get("displayName"), "external_id": data.get("externalId")}


def members_change(kind: str, group_id: str, data: dict[str, Any], user_ids: list[str]) -> Change:
    return Change(kind, {**group_data(group_id, data), "member_ids": list(user_ids)})


def _sso(record: dict[str, Any]) -> dict[str, Any]:
    return {"status": record.get("status") or "draft", "enabled_at": record.get("enabled_at")}


def _certificates(record: dict[str, Any]) -> dict[str, Any]:
    idp = record.get("idp") or {}
    return {"idp_entity_id": idp.get("entity_id"), "sso_url": idp.get("sso_url"),
            "certificates": [{"sha256": c.get("sha256"), "not_after": c.get("not_after")}
                             for c in idp.get("certificates") or []]}


def tenant_changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """The events of one write of a tenant row (stored records before and after)."""
    changes = []
    was, now = before.get("status") == "enabled", after.get("status") == "enabled"
    if now and not was:
        changes.append(Change(SSO_ENABLED, _sso(after)))
    elif was and not now:
        changes.append(Change(SSO_DISABLED, _sso(after)))
    old, new = _certificates(before), _certificates(after)
    if {c["sha256"] for c in old["certificates"]} != {c["sha256"] for c in new["certificates"]}:
        changes.append(Change(IDP_CERTIFICATES_CHANGED, new))
    return changes


def audit_completed(run_view: dict[str, Any]) -> Change:
    return Change(DOMAIN_AUDIT_COMPLETED, run_view)
