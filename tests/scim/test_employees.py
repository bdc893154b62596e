"""Provisioned users are employees: dismissal on active=false, admin rights that are not restored by a
re-hire, the tenant's default department, and the directory interface sign-in and the domain audit use."""
from __future__ import annotations

import pytest
from entra_client import load

from shared_code.platform.errors import Conflict
from shared_code.storage import directory

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def employee(scim, user):
    return directory.get_user(scim.tenant.tenant_id, user["id"])


def test_deactivation_is_a_dismissal_and_reactivation_does_not_restore_admin_rights(scim):
    user = scim.create_user()
    directory.set_admin(scim.tenant.tenant_id, user["id"], True)
    assert employee(scim, user).is_admin

    assert scim.patch(f"/Users/{user['id']}", load("entra-default-disable-user.json")).status_code in (200, 204)
    dismissed = employee(scim, user)
    assert not dismissed.active and not dismissed.is_admin

    assert scim.patch(f"/Users/{user['id']}", load("entra-default-enable-user.json")).status_code in (200, 204)
    rehired = employee(scim, user)
    assert rehired.active and not rehired.is_admin


def test_a_put_with_active_false_is_a_dismissal_too(scim):
    user = scim.create_user("put@contoso.example")
    directory.set_admin(scim.tenant.tenant_id, user["id"], True)
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "put@contoso.example",
            "active": False}
    assert scim.put(f"/Users/{user['id']}", body).status_code == 200
    assert not employee(scim, user).is_admin


def test_a_dismissed_employee_cannot_be_made_an_admin(scim):
    user = scim.create_user(active=False)
    with pytest.raises(Conflict):
        directory.set_admin(scim.tenant.tenant_id, user["id"], True)


def test_admin_rights_are_never_visible_or_writable_over_scim(scim):
    user = scim.create_user()
    directory.set_admin(scim.tenant.tenant_id, user["id"], True)
    assert "admin" not in scim.get(f"/Users/{user['id']}").text.lower()
    response = scim.patch(f"/Users/{user['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "is_admin", "value": False}]})
    assert response.status_code == 400 and employee(scim, user).is_admin


def test_a_user_created_without_a_department_lands_in_the_default_department(scim):
    user = scim.create_user()
    assert user[ENTERPRISE] == {"department": "Unassigned"}
    assert employee(scim, user).department == "Unassigned"
    placed = scim.create_user(**{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                                 ENTERPRISE: {"department": "Sales"}})
    assert employee(scim, placed).department == "Sales"


def test_sign_in_finds_the_employee_by_object_id_or_user_name_never_by_email(scim):
    """The contract: objectId (SCIM externalId), then NameID as userName; never an email claim."""
    tid = scim.tenant.tenant_id
    user = scim.create_user("Lee.Gu@contoso.example", externalId="4f2c-objectid",
                            emails=[{"type": "work", "value": "lee@mail.contoso.example", "primary": True}])
    assert directory.find_user_by_external_id(tid, "4f2c-objectid").id == user["id"]
    assert directory.find_user_by_external_id(tid, "4F2C-OBJECTID") is None  # objectIds compare exactly
    assert directory.find_user_by_user_name(tid, "lee.gu@CONTOSO.example").id == user["id"]
    assert directory.find_user_by_user_name(tid, "lee@mail.contoso.example") is None  # the work email is not a key
    found = directory.get_user(tid, user["id"])
    assert (found.user_name, found.external_id, found.work_email, found.active) == (
        "Lee.Gu@contoso.example", "4f2c-objectid", "lee@mail.contoso.example", True)


def test_the_audit_lists_active_employees_with_their_own_columns(scim):
    active = scim.create_user("a@contoso.example", displayName="A",
                              emails=[{"type": "work", "value": "a@gmail.example"}])
    scim.create_user("gone@contoso.example", active=False)
    people = list(directory.iter_active_people(scim.tenant.tenant_id))
    assert [(p.id, p.user_name, p.work_email, p.display_name) for p in people] == [
        (active["id"], "a@contoso.example", "a@gmail.example", "A")]


def test_fixing_a_work_email_changes_the_scim_resource_and_the_email_lookup(scim):
    tid = scim.tenant.tenant_id
    user = scim.create_user("fix@contoso.example", emails=[{"type": "work", "value": "fix@gmail.example"}])
    changed = directory.update_work_email(tid, user["id"], "fix@contoso-corp.example")
    assert changed.work_email == "fix@contoso-corp.example"
    assert scim.get(f"/Users/{user['id']}").json()["emails"] == [{"type": "work", "value": "fix@contoso-corp.example"}]
    assert directory.get_user(tid, user["id"]).work_email == "fix@contoso-corp.example"


def test_allowing_an_outside_domain_is_kept_on_the_employee(scim):
    user = scim.create_user()
    assert directory.set_allowed_outside_domain(scim.tenant.tenant_id, user["id"], True).allowed_outside_domain
    assert employee(scim, user).allowed_outside_domain
    assert scim.patch(f"/Users/{user['id']}", load("entra-default-disable-user.json")).status_code in (200, 204)
    assert employee(scim, user).allowed_outside_domain  # a SCIM change keeps Gatehouse's own fields
