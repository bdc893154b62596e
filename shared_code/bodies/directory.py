"""The directory as the product sees it: one model of the employee (`DirectoryEmployee`) used by every
`employee.*` event's `data`, the admin API's employee and the directory listing; the group; the listing's
pages; and the role mappings' bodies (`shared_code/directory/roles.py`).

The events themselves are built on the SCIM write path, which must not load pydantic
(`shared_code/events/shapes.py: employee_data` builds plain dicts); tests/events/test_directory_listing.py
checks that builder against this model, field by field, so the two cannot drift apart.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from shared_code.bodies import Answer, Body


class Contact(BaseModel):
    """One email or phone number as Entra provisions it."""

    value: str
    type: str | None = Field(description="work, mobile, …, as Entra sends it.")
    primary: bool


class Manager(BaseModel):
    id: str = Field(description="The manager's employee id.")
    display_name: str | None = Field(description="The manager's display name when they were last set as manager.")


class DirectoryEmployee(BaseModel):
    """The whole employee: what Entra provisions, and what Gatehouse adds (roles, admin right, group ids)."""

    id: str = Field(description="The employee's id (their SCIM User id); the ID token's `sub`.")
    user_name: str | None = Field(description="Entra's user principal name, usually.")
    name: str | None = Field(description="The display name.")
    given_name: str | None
    family_name: str | None
    formatted_name: str | None
    email: str | None = Field(description="The work email (the primary email of type work, else the primary).")
    emails: list[Contact]
    phone_numbers: list[Contact]
    title: str | None = Field(description="Job title.")
    department: str | None
    division: str | None
    cost_center: str | None
    organization: str | None
    employee_number: str | None
    manager: Manager | None
    preferred_language: str | None
    locale: str | None
    timezone: str | None
    active: bool = Field(description="false: dismissed (no sign-in, no roles).")
    is_admin: bool = Field(description="Gatehouse's admin right: the same as `\"admin\" in roles`.")
    roles: list[str] = Field(description="The product's roles: those mapped to the employee's Entra groups plus "
                                         "those a tenant admin granted (sorted); none while dismissed.")
    group_ids: list[str] = Field(description="The groups (SCIM Group ids) the employee is in, sorted.")
    managed_by_entra: bool = Field(description="Provisioned by Entra (has an externalId).")
    external_id: str | None = Field(description="Entra's objectId.")
    allowed_outside_domain: bool = Field(description="The domain audit's \"Allow\".")
    created: str | None = Field(description="When the employee was provisioned (UTC, ISO 8601).")
    last_modified: str | None = Field(description="When Entra last changed the employee (SCIM meta.lastModified).")


class DirectoryGroup(BaseModel):
    """A group as provisioned by Entra (group.* events carry the same, plus `member_ids` for member changes)."""

    id: str
    display_name: str | None
    external_id: str | None = Field(description="Entra's objectId of the group.")


class EmployeePage(Answer):
    employees: list[DirectoryEmployee] = Field(description="In id order (creation order).")
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page.")
    events_after: str = Field(description="An Events API cursor: read GET …/events?after=<this> once the last page "
                                          "is read, and nothing that changed meanwhile is missed.")


class GroupPage(Answer):
    groups: list[DirectoryGroup]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page.")
    events_after: str = Field(description="An Events API cursor (as for employees).")


class RoleMappings(Body):
    """`PUT …/role-mappings`: the whole mapping, Entra group (SCIM Group id) → the product's roles."""

    messages = {
        "mappings:missing": 'mappings is required, such as {{"mappings": {{"<group id>": ["admin"]}}}}.',
    }

    mappings: dict[str, list[str]] = Field(
        max_length=500, description="SCIM Group id (as Entra provisioned it) → roles from `roles`. A group left "
                                    "out gives no roles. At most 500 groups.")


class ProductRoles(Body):
    """`PUT …/product-roles` (operator): the product's roles for this tenant; null: the deployment's."""

    roles: list[str] | None = Field(max_length=50, description="Role names (1-64 of letters, digits, . _ : -); "
                                                               "`admin` is added. null: `PRODUCT_ROLES`.")


class ProductRolesAnswer(Answer):
    roles: list[str]
    per_tenant: bool = Field(description="false: the deployment's `PRODUCT_ROLES` apply.")


class MappedGroup(BaseModel):
    group_id: str
    display_name: str | None = Field(description="null: the group is no longer provisioned (it gives no roles).")
    roles: list[str]


class RoleMappingsAnswer(Answer):
    roles: list[str] = Field(description="The product's roles the operator declared (the `admin` role is "
                                         "Gatehouse's admin right).")
    mappings: list[MappedGroup]
    groups: list[DirectoryGroup] = Field(description="Every group Entra provisioned, to choose from.")
    rehire_rule: str = Field(description="Why a rehired employee is no admin until a tenant admin grants it.")
