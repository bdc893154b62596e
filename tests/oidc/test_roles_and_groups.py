"""Roles from Entra groups: a tenant admin maps an Entra group (as provisioned over SCIM) to the product's
roles; membership grants them, removal and dismissal drop them, each with its events (in the same transaction
as the change); a rehire brings the other roles back but not the admin right, until a tenant admin grants it.
Roles and groups reach the product in the ID token and UserInfo (scopes `roles`, `groups`), without overage
however many groups the employee is in."""
from __future__ import annotations

import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.events.product import EventReader

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _scim(op, method: str, path: str, body=None) -> requests.Response:
    if op.sso._scim_token is None:
        op.sso._scim_token = op.sso.handle.scim_token()
    return op.sso.http.request(method, f"{op.sso.handle.scim_url}{path}", json=body, timeout=60, headers={
        "Authorization": f"Bearer {op.sso._scim_token}", "Content-Type": "application/scim+json"})


def _group(op, name: str, members: list[str] = ()) -> str:
    response = _scim(op, "POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                            "displayName": name, "members": [{"value": m} for m in members]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _members(op, group_id: str, verb: str, user_id: str) -> None:
    response = _scim(op, "PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": verb, "path": "members", "value": [{"$ref": None, "value": user_id}]}]})
    assert response.status_code == 204, response.text


def _claims(op, tokens: dict) -> dict:
    jwks = requests.get(op.discovery()["jwks_uri"], timeout=30).json()
    return jwt.decode(tokens["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"]).claims


def _signed_in(op, user: dict, scope: str) -> tuple[dict, dict]:
    response = op.redeem(op.sign_in(user, scope=scope))
    assert response.status_code == 200, response.text
    tokens = response.json()
    info = op.userinfo(tokens["access_token"])
    assert info.status_code == 200, info.text
    return _claims(op, tokens), info.json()


def test_an_entra_group_mapped_to_admin_grants_and_drops_the_admin_right_with_its_events(op, employee):
    tenant = op.sso.handle
    uid = employee["id"]
    admins, staff = _group(op, "Gatehouse Admins"), _group(op, "Staff")
    reader = EventReader(tenant)
    reader.poll()
    mapped = tenant.api("PUT", "role-mappings", json={"mappings": {admins: ["admin"], staff: ["member"]}})
    assert mapped.status_code == 200, mapped.text
    assert mapped.json()["roles"] == ["admin", "member"]
    assert {m["group_id"]: (m["display_name"], m["roles"]) for m in mapped.json()["mappings"]} == {
        admins: ("Gatehouse Admins", ["admin"]), staff: ("Staff", ["member"])}
    assert reader.poll() == []  # nobody is in those groups yet: no employee changed

    _members(op, admins, "Add", uid)
    _members(op, staff, "Add", uid)
    events = reader.poll()
    assert [e["type"] for e in events] == [
        "group.members_added", "employee.updated", "employee.roles_changed", "employee.admin_granted",
        "group.members_added", "employee.updated", "employee.roles_changed"]
    assert events[3]["data"]["is_admin"] is True and events[6]["data"]["roles"] == ["admin", "member"]
    assert len({e["sequence"] for e in events[:4]}) == 4  # one transaction, consecutive sequence numbers
    assert tenant.api("GET", f"employees/{uid}").json()["roles"] == ["admin", "member"]
    claims, info = _signed_in(op, employee, "openid profile roles groups")
    assert claims["roles"] == ["admin", "member"] and claims["is_admin"] is True
    assert sorted(claims["groups"]) == sorted([admins, staff]) and info["roles"] == claims["roles"]
    assert sorted(info["groups"]) == sorted(claims["groups"])
    # without the scopes, neither claim
    plain, plain_info = _signed_in(op, employee, "openid profile")
    assert "roles" not in plain and "groups" not in plain and "roles" not in plain_info

    # a revoke cannot take away what the Entra group gives (and says what to do instead)
    refused = tenant.api("DELETE", f"employees/{uid}/admin")
    assert refused.status_code == 409 and "Entra group" in refused.json()["message"]

    # removal from the group drops the admin right (with its events); the other role stays
    _members(op, admins, "Remove", uid)
    events = reader.poll()
    assert [e["type"] for e in events] == ["group.members_removed", "employee.updated", "employee.roles_changed",
                                           "employee.admin_revoked"]
    assert events[-1]["data"]["roles"] == ["member"] and events[-1]["data"]["is_admin"] is False

    # back in the group: admin again; then dismissed: no roles at all
    _members(op, admins, "Add", uid)
    reader.poll()
    op.sso.set_active(employee, False)
    events = reader.poll()
    assert [e["type"] for e in events] == ["employee.dismissed", "employee.roles_changed", "employee.admin_revoked"]
    assert events[-1]["data"]["roles"] == [] and events[-1]["data"]["group_ids"] == sorted([admins, staff])

    # rehired: the member role follows the groups, the admin right does not come back by itself
    op.sso.set_active(employee, True)
    events = reader.poll()
    assert [e["type"] for e in events] == ["employee.rehired", "employee.roles_changed"]
    assert events[-1]["data"]["roles"] == ["member"] and events[-1]["data"]["is_admin"] is False
    shown = tenant.api("GET", f"employees/{uid}").json()
    assert shown["is_admin"] is False and "grant them again" in shown["why_not_admin"]
    assert "rehire" in tenant.api("GET", "role-mappings").json()["rehire_rule"]
    # a tenant admin grants it again: from then on, the group's admin role applies again
    assert tenant.api("PUT", f"employees/{uid}/admin").json()["roles"] == ["admin", "member"]
    assert [e["type"] for e in reader.poll()] == ["employee.roles_changed", "employee.admin_granted"]
    assert "why_not_admin" not in tenant.api("GET", f"employees/{uid}").json()

    # changing the mapping recomputes the members' roles, with their events
    remapped = tenant.api("PUT", "role-mappings", json={"mappings": {admins: ["admin"]}})
    assert remapped.status_code == 200
    events = reader.poll()
    assert [e["type"] for e in events] == ["employee.roles_changed"]  # Staff no longer gives member
    assert events[0]["data"]["roles"] == ["admin"]


def test_role_mappings_refuse_unknown_groups_and_roles_and_other_callers(op):
    tenant = op.sso.handle
    group = _group(op, "Finance")
    for body, field in (({"mappings": {group: ["billing"]}}, f"mappings.{group}"),
                        ({"mappings": {"0" * 32: ["member"]}}, f"mappings.{'0' * 32}"),
                        ({"mappings": {"../x": ["member"]}}, "mappings"),
                        ({"mappings": {group: "admin"}}, None), ({"roles": []}, None)):
        response = tenant.api("PUT", "role-mappings", json=body)
        assert response.status_code in (400, 422), (body, response.text)
        if field:
            assert response.json()["field"] == field
    assert requests.put(f"{op.sso.base_url}/api/tenants/{tenant.tenant_id}/role-mappings", json={"mappings": {}},
                        headers=op.operator, timeout=30).status_code in (401, 403)


def test_an_employee_in_300_groups_signs_in_with_all_of_them(op, employee):
    groups = [_group(op, f"Project {n:03d}", [employee["id"]]) for n in range(300)]
    claims, info = _signed_in(op, employee, "openid groups")
    assert sorted(claims["groups"]) == sorted(groups)  # no overage claim, however many groups
    assert sorted(info["groups"]) == sorted(groups)
    assert "_claim_names" not in claims and "hasgroups" not in claims


def test_the_operator_declares_the_products_roles_per_tenant(op):
    tenant = op.sso.handle
    url = f"{op.sso.base_url}/api/tenants/{tenant.tenant_id}/product-roles"
    group = _group(op, "Billing team")
    declared = requests.put(url, json={"roles": ["billing", "member"]}, headers=op.operator, timeout=30)
    assert declared.status_code == 200 and declared.json() == {"roles": ["admin", "billing", "member"],
                                                               "per_tenant": True}
    assert tenant.api("GET", "role-mappings").json()["roles"] == ["admin", "billing", "member"]
    assert tenant.api("PUT", "role-mappings", json={"mappings": {group: ["billing"]}}).status_code == 200
    # a role still mapped cannot go; the tenant admin cannot declare roles
    refused = requests.put(url, json={"roles": ["member"]}, headers=op.operator, timeout=30)
    assert refused.status_code == 409 and group in refused.json()["message"]
    assert requests.put(url, json={"roles": ["x"]}, headers=tenant.admin_headers, timeout=30).status_code in (401, 403)
    assert requests.put(url, json={"roles": ["no spaces"]}, headers=op.operator, timeout=30).status_code == 422
    # the mappings survive a declaration; back to the deployment's PRODUCT_ROLES once billing is unmapped
    assert tenant.api("PUT", "role-mappings", json={"mappings": {}}).status_code == 200
    reset = requests.put(url, json={"roles": None}, headers=op.operator, timeout=30)
    assert reset.status_code == 200 and reset.json() == {"roles": ["admin", "member"], "per_tenant": False}
    assert tenant.api("PUT", "role-mappings", json={"mappings": {group: ["billing"]}}).status_code == 422
