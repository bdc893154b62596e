"""The admin's actions on one employee over HTTP: read, fix the email (warned when Entra owns it), "Allow",
and admin rights, which dismissal over SCIM takes away and rehiring does not bring back."""
from __future__ import annotations

import pytest

from tests.audit.provisioning import set_domains


def test_admin_reads_an_employee_with_the_audits_verdict_on_their_email(tenant, entra):
    set_domains(tenant, "contoso.example")
    person = entra.provision("uma@gmail.com", name="Uma")
    response = tenant.api("GET", f"employees/{person['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == person["id"] and body["name"] == "Uma" and body["email"] == "uma@gmail.com"
    assert body["active"] is True and body["is_admin"] is False and body["allowed_outside_domain"] is False
    assert body["managed_by_entra"] is True and body["external_id"] == person["externalId"]
    assert body["department"] == "Everyone"
    assert body["why_outside"] == "domain gmail.com is not a corporate domain"


@pytest.mark.parametrize("employee_id", ["0000000000000000000000000000dead", "not.an.id", "x" * 200])
def test_unknown_employee_is_404_with_a_message(tenant, employee_id):
    for method, path in (("GET", ""), ("PATCH", ""), ("POST", "/allow"), ("PUT", "/admin"), ("DELETE", "/admin")):
        response = tenant.api(method, f"employees/{employee_id}{path}", json={"email": "a@contoso.example"})
        assert response.status_code == 404, (method, path, response.text)
        assert "No employee" in response.json()["message"]


def test_fixing_the_email_of_an_entra_employee_warns_that_entra_will_overwrite_it(tenant, entra):
    set_domains(tenant, "contoso.example")
    person = entra.provision("victor@gmail.com", name="Victor")
    response = tenant.api("PATCH", f"employees/{person['id']}", json={"email": " victor@contoso.example "})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email"] == "victor@contoso.example" and body["why_outside"] is None
    assert "Entra will overwrite this email" in body["warning"]
    # What Entra reads back over SCIM changed too, so its next cycle sees the difference.
    scim = entra.user(person["id"])
    assert [e["value"] for e in scim["emails"] if e.get("type") == "work"] == ["victor@contoso.example"]


def test_fixing_the_email_of_an_employee_not_from_entra_gives_no_warning(tenant, entra):
    person = entra.provision("walter@gmail.com", object_id=None)
    response = tenant.api("PATCH", f"employees/{person['id']}", json={"email": "walter@contoso.example"})
    assert response.status_code == 200
    assert "warning" not in response.json() and response.json()["managed_by_entra"] is False


@pytest.mark.parametrize("body, field, words", [
    ({"email": "walter"}, "email", "needs a name, @ and a domain"),
    ({"email": "walter@"}, "email", "needs a name, @ and a domain"),
    ({"email": "wal ter@contoso.example"}, "email", "space"),
    ({"email": "walter@contoso"}, "email", "at least two parts"),
    ({"email": "walter@-contoso.example"}, "email", "hyphen"),
    ({"email": ".walter@contoso.example"}, "email", "part before @"),
    ({"email": "wal\"ter@contoso.example"}, "email", "part before @"),
    ({"email": 42}, "email", "email address"),
    ({"email": "x" * 250 + "@contoso.example"}, "email", "too long"),
    ({}, "email", "required"),
    ({"email": "walter@contoso.example", "name": "Walt"}, "name", "come from Microsoft Entra"),
])
def test_a_bad_email_is_refused_with_a_message_and_nothing_changes(tenant, entra, body, field, words):
    person = entra.provision("walter@gmail.com")
    response = tenant.api("PATCH", f"employees/{person['id']}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["message"]
    assert tenant.api("GET", f"employees/{person['id']}").json()["email"] == "walter@gmail.com"


def test_allow_and_undo_are_reflected_on_the_employee(tenant, entra):
    person = entra.provision("xavier@gmail.com")
    allowed = tenant.api("POST", f"employees/{person['id']}/allow")
    assert allowed.status_code == 200 and allowed.json()["allowed_outside_domain"] is True
    assert tenant.api("POST", f"employees/{person['id']}/allow").status_code == 200  # idempotent
    undone = tenant.api("DELETE", f"employees/{person['id']}/allow")
    assert undone.status_code == 200 and undone.json()["allowed_outside_domain"] is False


def test_admin_rights_are_granted_and_revoked(tenant, entra):
    person = entra.provision("yvonne@contoso.example")
    granted = tenant.api("PUT", f"employees/{person['id']}/admin")
    assert granted.status_code == 200 and granted.json()["is_admin"] is True
    assert tenant.api("GET", f"employees/{person['id']}").json()["is_admin"] is True
    revoked = tenant.api("DELETE", f"employees/{person['id']}/admin")
    assert revoked.status_code == 200 and revoked.json()["is_admin"] is False


def test_a_dismissed_employee_cannot_be_made_an_admin(tenant, entra):
    person = entra.provision("zoe@contoso.example", name="Zoe")
    entra.dismiss(person["id"])
    response = tenant.api("PUT", f"employees/{person['id']}/admin")
    assert response.status_code == 409
    assert response.json()["field"] == "is_admin"
    assert "Zoe is dismissed" in response.json()["message"]
    assert tenant.api("GET", f"employees/{person['id']}").json()["is_admin"] is False


def test_an_admin_dismissed_and_rehired_over_scim_has_no_admin_rights(tenant, entra):
    person = entra.provision("amir@contoso.example")
    assert tenant.api("PUT", f"employees/{person['id']}/admin").json()["is_admin"] is True
    entra.dismiss(person["id"])
    dismissed = tenant.api("GET", f"employees/{person['id']}").json()
    assert dismissed["active"] is False and dismissed["is_admin"] is False
    entra.rehire(person["id"])
    rehired = tenant.api("GET", f"employees/{person['id']}").json()
    assert rehired["active"] is True and rehired["is_admin"] is False
    assert tenant.api("PUT", f"employees/{person['id']}/admin").json()["is_admin"] is True  # re-granted on purpose


def test_another_tenants_admin_cannot_touch_employees(tenant, entra, new_tenant):
    person = entra.provision("bea@contoso.example")
    other = new_tenant("Globex")
    url = f"{tenant.base_url}/api/tenants/{tenant.tenant_id}/employees/{person['id']}"
    for method, suffix in (("GET", ""), ("PATCH", ""), ("POST", "/allow"), ("PUT", "/admin")):
        response = tenant.http.request(method, url + suffix, json={"email": "x@contoso.example"},
                                       headers=other.admin_headers, timeout=10)
        assert response.status_code == 403
    # Nor through its own tenant's path: employees live in their tenant's partition.
    assert other.api("GET", f"employees/{person['id']}").status_code == 404
    assert tenant.api("GET", f"employees/{person['id']}").json()["is_admin"] is False
