"""What an event is: its type and `data`, the whole current state of what changed, so a receiver can upsert
from any one event. Plain dicts, no pydantic: the directory's write path builds these on every change.

- employee.*: the whole employee as the product sees them (`employee_data`): profile, emails, phones, manager,
  roles and group ids. employee.updated for any change of it; employee.roles_changed when their roles change
  (memberships, role mappings, dismissal, rehire, a grant), in the same transaction as that change.
- group.created / group.updated / group.deleted: the group (`group_data`).
- group.members_added / group.members_removed: the group plus `member_ids`, the users added or removed by
  this event (a large change is several events, one per transaction that wrote part of it).
- employee.deleted also ends every membership of the employee (the membership rows go in the same
  transaction, or, for an employee in very many groups, in earlier ones that write group.members_removed).
- sso.enabled / sso.disabled: the tenant's SSO status; domain_audit.completed: the run's summary;
  idp.certificates_changed: the IdP's signing certificates.
- sessions.revoked (internal: neither delivered as a webhook nor listed by the Events API): the tenant's
  `sessions_valid_from` moved, so every session signed in before it ends — the setup cancelled, the IdP
  replaced, SSO turned off (`why`). Written with the tenant row (its outbox), read by shared_code/sign_in/trust.py.
- client.deleted (internal too): a product's client deleted (`client_id`, `backchannel_logout_uri`), written
  with the client row's delete (the oidc table's outbox): its sessions end and it hears so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

EMPLOYEE_CREATED, EMPLOYEE_UPDATED = "employee.created", "employee.updated"
EMPLOYEE_DISMISSED, EMPLOYEE_REHIRED, EMPLOYEE_DELETED = "employee.dismissed", "employee.rehired", "employee.deleted"
EMPLOYEE_ADMIN_GRANTED, EMPLOYEE_ADMIN_REVOKED = "employee.admin_granted", "employee.admin_revoked"
EMPLOYEE_ROLES_CHANGED = "employee.roles_changed"
GROUP_CREATED, GROUP_UPDATED, GROUP_DELETED = "group.created", "group.updated", "group.deleted"
GROUP_MEMBERS_ADDED, GROUP_MEMBERS_REMOVED = "group.members_added", "group.members_removed"
SSO_ENABLED, SSO_DISABLED = "sso.enabled", "sso.disabled"
DOMAIN_AUDIT_COMPLETED, IDP_CERTIFICATES_CHANGED = "domain_audit.completed", "idp.certificates_changed"

SESSIONS_REVOKED, CLIENT_DELETED = "sessions.revoked", "client.deleted"
INTERNAL_TYPES = frozenset({SESSIONS_REVOKED, CLIENT_DELETED})  # for the log's own consumers only, never shown to the product
# The changes that end the trust behind sessions: what the end-of-trust consumer (sign_in/trust.py) handles.
ENDS_TRUST = frozenset({EMPLOYEE_DISMISSED, EMPLOYEE_DELETED, SESSIONS_REVOKED, CLIENT_DELETED})
SETUP_CANCELLED, IDP_CHANGED, SSO_TURNED_OFF = "setup_cancelled", "idp_changed", "sso_disabled"  # its `why`

EVENT_TYPES = (
    EMPLOYEE_CREATED, EMPLOYEE_UPDATED, EMPLOYEE_DISMISSED, EMPLOYEE_REHIRED, EMPLOYEE_DELETED,
    EMPLOYEE_ADMIN_GRANTED, EMPLOYEE_ADMIN_REVOKED, EMPLOYEE_ROLES_CHANGED,
    GROUP_CREATED, GROUP_UPDATED, GROUP_DELETED, GROUP_MEMBERS_ADDED, GROUP_MEMBERS_REMOVED,
    SSO_ENABLED, SSO_DISABLED, DOMAIN_AUDIT_COMPLETED, IDP_CERTIFICATES_CHANGED,
)


@dataclass(frozen=True)
class Change:
    """An event about to be written: its type and data (id, sequence and time are given when it is written)."""

    type: str
    data: dict[str, Any]


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# Enterprise User attributes, by the name the product sees them under.
_ENTERPRISE_FIELDS = (("department", "department"), ("division", "division"), ("cost_center", "costCenter"),
                      ("organization", "organization"), ("employee_number", "employeeNumber"))
# What only says how, or when, the employee changed (not that they did): no employee.updated on its own.
_NOT_UPDATES = ("active", "is_admin", "roles", "last_modified")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _multi(values: Any) -> list[dict[str, Any]]:
    """SCIM emails / phoneNumbers as the product sees them: value, type, primary."""
    return [{"value": v["value"], "type": _text(v.get("type")), "primary": v.get("primary") is True}
            for v in values or [] if isinstance(v, dict) and isinstance(v.get("value"), str)]


def _joined(columns: dict[str, Any], name: str) -> str:
    """A long column written over `name`, `name_1`, `name_2`, … (storage/directory.py: group_id_columns)."""
    parts, n = [columns.get(name) or ""], 1
    while columns.get(f"{name}_{n}"):
        parts.append(columns[f"{name}_{n}"])
        n += 1
    return "".join(parts)


def employee_data(columns: dict[str, Any]) -> dict[str, Any]:
    """The whole employee as the product sees them, from a user row's columns (with its SCIM document): the
    same fields in every employee.* event, the admin API's employee (which adds the audit's verdict) and the
    directory listing. `bodies.directory.DirectoryEmployee` declares them (the OpenAPI document publishes
    it; tests check this builder against it). Plain dicts here: this runs on every write of the SCIM path,
    which must not load pydantic."""
    scim = columns.get("scim")
    data = json.loads(scim) if isinstance(scim, str) else (scim or {})
    name = data.get("name") if isinstance(data.get("name"), dict) else {}
    enterprise = data.get(ENTERPRISE) if isinstance(data.get(ENTERPRISE), dict) else {}
    manager = enterprise.get("manager") if isinstance(enterprise.get("manager"), dict) else {}
    roles = columns.get("roles")
    return {
        "id": columns["id"], "user_name": columns.get("user_name"), "name": columns.get("display_name"),
        "given_name": _text(name.get("givenName")), "family_name": _text(name.get("familyName")),
        "formatted_name": _text(name.get("formatted")),
        "email": columns.get("work_email"), "emails": _multi(data.get("emails")),
        "phone_numbers": _multi(data.get("phoneNumbers")), "title": _text(data.get("title")),
        **{field: _text(enterprise.get(attribute)) for field, attribute in _ENTERPRISE_FIELDS},
        "manager": {"id": manager["value"], "display_name": columns.get("manager_name")}
        if isinstance(manager.get("value"), str) and manager["value"] else None,
        "preferred_language": _text(data.get("preferredLanguage")), "locale": _text(data.get("locale")),
        "timezone": _text(data.get("timezone")),
        "active": bool(columns.get("active")), "is_admin": bool(columns.get("is_admin")),
        "roles": roles.split() if isinstance(roles, str) else (["admin"] if columns.get("is_admin") else []),
        "group_ids": _joined(columns, "group_ids").split(),
        "managed_by_entra": bool(columns.get("external_id")), "external_id": columns.get("external_id"),
        "allowed_outside_domain": bool(columns.get("allowed_outside_domain")),
        "created": columns.get("created"), "last_modified": columns.get("last_modified"),
    }


def employee_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Change]:
    """The events of one write of a user row (columns before and after): none when nothing the product sees
    changed. A lifecycle change (dismissed, rehired) or else any other change of the employee (updated);
    then roles_changed when their roles changed, and admin_granted / admin_revoked when the admin right did.
    A dismissal of an admin is three events: dismissed, roles_changed, admin_revoked; each carries the whole
    employee as it is after the write."""
    after = employee_data(new)
    if old is None:
        changes = [Change(EMPLOYEE_CREATED, after)]
        if after["roles"]:
            changes.append(Change(EMPLOYEE_ROLES_CHANGED, after))
        return changes
    before = employee_data(old)
    if {k: v for k, v in before.items() if k != "last_modified"} == \
            {k: v for k, v in after.items() if k != "last_modified"}:
        return []
    changes = []
    rest_before = {k: v for k, v in before.items() if k not in _NOT_UPDATES}
    rest_after = {k: v for k, v in after.items() if k not in _NOT_UPDATES}
    if before["active"] and not after["active"]:
        changes.append(Change(EMPLOYEE_DISMISSED, after))
    elif not before["active"] and after["active"]:
        changes.append(Change(EMPLOYEE_REHIRED, after))
    elif rest_before != rest_after:
        changes.append(Change(EMPLOYEE_UPDATED, after))
    if before["roles"] != after["roles"]:
        changes.append(Change(EMPLOYEE_ROLES_CHANGED, after))
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
    valid_from = int(after.get("sessions_valid_from") or 0)
    if valid_from > int(before.get("sessions_valid_from") or 0):
        why = SSO_TURNED_OFF if was and not now else IDP_CHANGED if after.get("idp") else SETUP_CANCELLED
        changes.append(Change(SESSIONS_REVOKED, {"why": why, "sessions_valid_from": valid_from}))
    return changes


def client_deleted(client_id: str, backchannel_logout_uri: str | None) -> Change:
    return Change(CLIENT_DELETED, {"client_id": client_id, "backchannel_logout_uri": backchannel_logout_uri})


def audit_completed(run_view: dict[str, Any]) -> Change:
    return Change(DOMAIN_AUDIT_COMPLETED, run_view)
