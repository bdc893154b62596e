"""What a tenant admin does to one employee: read them, fix their work email, "Allow" an email outside the
corporate domains, grant or revoke admin rights.

Entra owns provisioned employees (they have an externalId, Entra's objectId): an email fixed here is
overwritten on Entra's next provisioning cycle unless it is fixed in Entra too, so the answer warns.
Dismissal (SCIM `active=false`) drops admin rights in the directory itself; a dismissed employee cannot be
made an admin here, and rehiring does not bring the rights back — neither a grant nor the admin role of an
Entra group (shared_code/directory/roles.py) — until a tenant admin grants them again here.
"""
from __future__ import annotations

import re
from typing import Any

from shared_code.tenancy import tenants
from shared_code.directory.domain_audit import audited_email, corporate_domains_of
from shared_code.directory.domains import validate_hostname
from shared_code.platform.errors import Conflict, NotFound, Unprocessable
from shared_code.storage import directory
from shared_code.storage.directory import Employee

# Ids are server-made; anything else cannot name an employee, and must not reach a storage key.
_EMPLOYEE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Characters RFC 5322 allows unquoted in a local part, plus any non-ASCII letter (RFC 6531, SMTPUTF8).
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\u00a1-\U0010FFFF]+$")
_ENTRA_WARNING = ("This employee is provisioned by Microsoft Entra: Entra will overwrite this email on its next "
                  "provisioning cycle (about every 40 minutes) unless you also change it in Entra (the user's "
                  "email / mail attribute mapped to emails[type eq \"work\"]).")


def employee_view(employee: Employee, tenant: tenants.Tenant) -> dict[str, Any]:
    """The whole employee (as events and the directory listing show them), with the audit's verdict on their
    email."""
    corporate = _domains_or_none(tenant)
    email = audited_email(employee)
    view = {**(employee.profile or {}), "why_outside": corporate.why_outside(email) if corporate else None}
    note = why_not_admin(tenant.tenant_id, employee)
    if note:
        view["why_not_admin"] = note
    return view


def why_not_admin(tenant_id: str, employee: Employee) -> str | None:
    """Why an active employee whose Entra groups map to the admin role is no admin: the seed's rule that a
    rehire does not bring admin rights back by itself (one read of the role mappings, only then)."""
    if not employee.admin_blocked or not employee.active or employee.is_admin or not employee.group_ids:
        return None
    mapping = directory.role_mapping(tenant_id)[0]
    if not any("admin" in mapping.get(g, ()) for g in employee.group_ids):
        return None
    return ("This employee was dismissed (deactivated in Entra) and rehired since a tenant admin last granted "
            "them the admin right. Their Entra group is mapped to the admin role, but a rehire does not bring "
            "admin rights back by itself: grant them again (PUT …/employees/{id}/admin) if they should have them.")


def _domains_or_none(tenant: tenants.Tenant):
    try:
        return corporate_domains_of(tenant)
    except Unprocessable:
        return None  # stored domains no longer valid: the audit reports that; the employee view stays readable


def get_employee(tenant: tenants.Tenant, employee_id: str) -> Employee:
    employee = directory.get_user(tenant.tenant_id, employee_id, profile=True) \
        if _EMPLOYEE_ID.match(employee_id or "") else None
    if employee is None:
        raise NotFound(f"No employee with id {employee_id[:64]!r} in this tenant: take the id from the domain "
                       "audit or from SCIM.")
    return employee


def change_work_email(tenant: tenants.Tenant, employee_id: str, email: str) -> dict[str, Any]:
    """Store a work email (checked by `valid_email`, as `bodies.employees.EmailChange` does); the answer is the
    employee's view, plus a `warning` for Entra-provisioned ones."""
    email = valid_email(email)
    get_employee(tenant, employee_id)
    employee = directory.update_work_email(tenant.tenant_id, employee_id, email)
    view = employee_view(employee, tenant)
    if employee.external_id:
        view["warning"] = _ENTRA_WARNING
    return view


def valid_email(value: Any) -> str:
    """An email address a person typed, checked closely enough that sign-in can rely on it; stripped."""
    if not isinstance(value, str) or not value.strip():
        raise Unprocessable("email must be an email address such as name@yourcompany.com.", field="email")
    email = value.strip()
    shown = email if len(email) <= 80 else email[:77] + "..."
    if len(email) > 254:
        raise Unprocessable(f"{shown!r} is too long for an email address (at most 254 characters).", field="email")
    if any(ch.isspace() for ch in email):
        raise Unprocessable(f"{shown!r} contains a space; an email address has none.", field="email")
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise Unprocessable(f"{shown!r} is not an email address: it needs a name, @ and a domain, such as "
                            "name@yourcompany.com.", field="email")
    if len(local.encode("utf-8")) > 64:
        raise Unprocessable(f"The part before @ in {shown!r} is longer than 64 characters.", field="email")
    if not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise Unprocessable(f"The part before @ in {shown!r} is not valid: use letters, digits and . _ - + "
                            "(no leading, trailing or double dots).", field="email")
    try:
        validate_hostname(domain, "email")
    except Unprocessable as error:
        raise Unprocessable(f"The domain of {shown!r} is not valid: {error.message}", field="email") from None
    return email


def allow_outside_domain(tenant: tenants.Tenant, employee_id: str, allowed: bool) -> dict[str, Any]:
    """"Allow": accept that this employee will not sign in, so the audit counts them instead of listing them."""
    get_employee(tenant, employee_id)
    return employee_view(directory.set_allowed_outside_domain(tenant.tenant_id, employee_id, allowed), tenant)


def set_admin_rights(tenant: tenants.Tenant, employee_id: str, granted: bool) -> dict[str, Any]:
    employee = get_employee(tenant, employee_id)
    if granted and not employee.active:
        raise Conflict(f"{employee.display_name or employee.user_name} is dismissed (deactivated in Entra), so "
                       "they cannot be an admin. Rehire them in Entra (assign the app again) and grant the "
                       "rights once they are active.", field="is_admin")
    return employee_view(directory.set_admin(tenant.tenant_id, employee_id, granted), tenant)
