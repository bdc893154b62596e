"""Roles from Entra groups: the product's roles (declared by the operator, `PRODUCT_ROLES`), and the tenant
admin's mapping of Entra groups (as provisioned over SCIM) to them.

An employee's roles are the roles of the groups they are in plus those a tenant admin granted (today the
admin right, `PUT …/employees/{id}/admin`); the `admin` role is Gatehouse's admin right. The seed's rules
hold (shared_code/storage/directory.py enforces them in every write): a dismissed employee has no roles; a
rehire does not bring the admin right back, wherever it came from, until a tenant admin grants it again,
while other roles follow the employee's current groups. Roles reach the product as `employee.roles_changed`
events (and in every employee.* event's `roles`), and in the ID token and UserInfo (scope `roles`).

    GET /api/tenants/{t}/role-mappings   → the declared roles, the mappings, every provisioned group
    PUT /api/tenants/{t}/role-mappings   {"mappings": {"<group id>": ["admin"], …}} → the same, after
    PUT /api/tenants/{t}/product-roles   (operator) {"roles": ["admin", "billing"]} or {"roles": null}
"""
from __future__ import annotations

import re
from typing import Any

from shared_code.platform.errors import Conflict, Unprocessable
from shared_code.platform.settings import get_settings
from shared_code.storage import directory
from shared_code.tenancy.tenants import Tenant

ADMIN = "admin"
_ROLE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_GROUP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REHIRE_RULE = ("A dismissed employee has no roles. When Entra rehires them (active again), their other roles "
               "follow their groups at once, but the admin role does not come back by itself, whether it was "
               "granted by hand or came from a group mapped to admin: a tenant admin grants it again "
               "(PUT …/employees/{id}/admin), after which the groups' admin role applies again.")


def declared_roles(tenant_id: str | None = None) -> list[str]:
    """The product's roles: those the operator declared for this tenant (`PUT …/product-roles`), else the
    deployment's `PRODUCT_ROLES`; `admin` always among them."""
    roles = directory.tenant_roles(tenant_id) if tenant_id else None
    if roles is None:
        roles = [r.strip() for r in get_settings().product_roles.split(",") if _ROLE.match(r.strip())]
    return sorted(set(roles) | {ADMIN})


def set_tenant_roles(tenant: Tenant, roles: list[str] | None) -> dict[str, Any]:
    """The operator declares the product's roles for one tenant (None: back to `PRODUCT_ROLES`). A role that
    a mapping still uses cannot go (409 naming the group): the tenant admin maps it away first."""
    for role in roles or []:
        if not _ROLE.match(role):
            raise Unprocessable(f"{role[:64]!r} is not a role name: 1-64 letters, digits and . _ : -.", field="roles")
    kept = set(roles or []) | {ADMIN} if roles is not None else None

    def still_mapped(mappings: dict[str, list[str]]) -> None:
        if kept is None:
            return
        for group_id, mapped in sorted(mappings.items()):
            gone = sorted(set(mapped) - kept)
            if gone:
                raise Conflict(f"The role {gone[0]!r} is still mapped to the group {group_id!r}: the tenant admin "
                               "removes it from the role mappings first.", field="roles")
    directory.set_tenant_roles(tenant.tenant_id, sorted(kept) if kept is not None else None, check=still_mapped)
    return {"roles": declared_roles(tenant.tenant_id), "per_tenant": roles is not None}


def view(tenant: Tenant) -> dict[str, Any]:
    """The declared roles, the mappings (with the groups' names) and every provisioned group to choose from."""
    mapping, _ = directory.role_mapping(tenant.tenant_id)
    groups = {g.id: g for g in directory.iter_group_records(tenant.tenant_id)}
    return {
        "roles": declared_roles(tenant.tenant_id),
        "mappings": [{"group_id": group_id, "display_name": groups[group_id].data.get("displayName")
                      if group_id in groups else None, "roles": roles}
                     for group_id, roles in sorted(mapping.items())],
        "groups": [{"id": g.id, "display_name": g.data.get("displayName"), "external_id": g.data.get("externalId")}
                   for g in groups.values()],
        "rehire_rule": REHIRE_RULE,
    }


def set_mappings(tenant: Tenant, mappings: dict[str, list[str]]) -> dict[str, Any]:
    """Replace the tenant's mappings (each group must be provisioned, each role declared) and recompute the
    roles of every member of a group the old or new mappings name; answers `view`."""
    declared = set(declared_roles(tenant.tenant_id))
    clean: dict[str, list[str]] = {}
    for group_id, roles in mappings.items():
        if not _GROUP_ID.match(group_id):
            raise Unprocessable(f"{group_id[:64]!r} is not a group id: use the id of a group Entra provisioned "
                                "(GET …/role-mappings lists them).", field="mappings")
        unknown = sorted(set(roles) - declared)
        if unknown:
            raise Unprocessable(f"{', '.join(repr(r[:64]) for r in unknown[:5])} is not one of the product's roles "
                                f"({', '.join(sorted(declared))}).", field=f"mappings.{group_id}")
        if roles:
            clean[group_id] = sorted(set(roles))
    found = {g.id for g in directory.iter_group_records(tenant.tenant_id)} if clean else set()
    missing = sorted(set(clean) - found)
    if missing:
        raise Unprocessable(f"No group with id {missing[0]!r} in this tenant: map groups Entra provisioned "
                            "(GET …/role-mappings lists them).", field=f"mappings.{missing[0]}")
    directory.set_role_mappings(tenant.tenant_id, clean)
    return view(tenant)
