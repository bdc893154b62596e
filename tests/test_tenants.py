"""Tenants over HTTP: the operator creates one, its admin reads the setup URLs; wrong keys learn nothing."""
from __future__ import annotations

import requests


def test_operator_creates_tenant_and_admin_reads_absolute_setup_urls(app_url, new_tenant, app_settings):
    tenant = new_tenant("Acme Corp", "https://acme.example.com")
    assert tenant.admin_key.startswith("gh_admin_")
    response = tenant.api("GET", "sso")
    assert response.status_code == 200
    body = response.json()
    base = app_settings["PUBLIC_BASE_URL"]
    tid = tenant.tenant_id
    assert body["acs_url"] == f"{base}/api/sso/{tid}/acs"
    assert body["sp_entity_id"].startswith(base + "/")
    assert body["sp_metadata_url"] == f"{base}/api/sso/{tid}/metadata"
    assert body["login_url"] == f"{base}/api/sso/{tid}/login"
    assert body["scim_tenant_url"] == f"{base}/api/scim/{tid}/v2"
    assert body["status"] == "draft"
    assert body["steps"]["idp_metadata"]["done"] is False
    assert body["steps"]["scim_token"]["done"] is False
    assert "admin_key" not in body and "admin_key_hash" not in response.text


def test_creating_a_tenant_needs_the_operator_key(app_url, operator_key):
    url = f"{app_url}/api/tenants"
    body = {"name": "X", "app_url": "https://x.example.com"}
    assert requests.post(url, json=body, timeout=10).status_code == 401
    assert requests.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 403
    assert requests.post(url, json=body, headers={"Authorization": "Basic " + operator_key}, timeout=10).status_code == 401


def test_malformed_tenant_bodies_get_400_with_a_message(app_url, operator_key):
    url = f"{app_url}/api/tenants"
    headers = {"Authorization": f"Bearer {operator_key}"}
    cases = [
        (b"{not json", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (b'{"name": "", "app_url": "https://a.example.com"}', "name"),
        (b'{"name": "A", "app_url": "javascript:alert(1)"}', "app_url"),
        (b'{"name": "A"}', "app_url"),
    ]
    for body, words in cases:
        response = requests.post(url, data=body, headers={**headers, "Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 400, (body, response.text)
        assert words in response.json()["message"]
        assert "Traceback" not in response.text


def test_another_tenants_key_is_refused_and_learns_nothing(new_tenant):
    acme = new_tenant("Acme")
    globex = new_tenant("Globex")
    foreign = acme.http.get(f"{acme.base_url}/api/tenants/{acme.tenant_id}/sso",
                            headers={"Authorization": f"Bearer {globex.admin_key}"}, timeout=10)
    unknown = acme.http.get(f"{acme.base_url}/api/tenants/no-such-tenant-0000/sso",
                            headers={"Authorization": f"Bearer {globex.admin_key}"}, timeout=10)
    assert foreign.status_code == unknown.status_code == 403
    assert foreign.json()["message"] == unknown.json()["message"]
    assert "Acme" not in foreign.text
    missing = acme.http.get(f"{acme.base_url}/api/tenants/{acme.tenant_id}/sso", timeout=10)
    assert missing.status_code == 401


def test_operator_key_reads_any_tenant_but_cannot_rotate_its_scim_token(new_tenant, operator_key):
    tenant = new_tenant()
    as_operator = {"Authorization": f"Bearer {operator_key}"}
    assert tenant.http.get(f"{tenant.base_url}/api/tenants/{tenant.tenant_id}/sso", headers=as_operator,
                           timeout=10).status_code == 200
    assert tenant.http.post(f"{tenant.base_url}/api/tenants/{tenant.tenant_id}/scim/token", headers=as_operator,
                            timeout=10).status_code == 403


def test_scim_token_is_shown_once_and_rotation_revokes_the_old_one(new_tenant):
    tenant = new_tenant()
    first = tenant.api("POST", "scim/token")
    assert first.status_code == 201
    body = first.json()
    assert body["scim_tenant_url"] == tenant.scim_url
    old = body["secret_token"]
    assert len(old) > 40
    new = tenant.scim_token()
    assert new != old
    assert tenant.api("GET", "sso").json()["steps"]["scim_token"]["done"] is True
    assert old not in tenant.api("GET", "sso").text
    assert tenant.http.get(f"{tenant.scim_url}/Users", headers={"Authorization": f"Bearer {old}"},
                           timeout=10).status_code == 401
    assert tenant.http.get(f"{tenant.scim_url}/Users", headers={"Authorization": f"Bearer {new}"},
                           timeout=10).status_code == 200


def test_default_department_is_validated_and_reported_as_a_step(new_tenant):
    tenant = new_tenant()
    assert tenant.api("PUT", "default-department", json={"department": ""}).status_code == 400
    response = tenant.api("PUT", "default-department", json={"department": "New hires"})
    assert response.status_code == 200
    assert tenant.api("GET", "sso").json()["steps"]["default_department"] == {"done": True, "department": "New hires"}


def test_sso_cannot_be_enabled_before_entra_is_connected_and_tested(new_tenant):
    tenant = new_tenant()
    response = tenant.api("POST", "sso/enable")
    assert response.status_code == 409
    assert "Check now" in response.json()["message"]
    assert tenant.api("GET", "sso").json()["status"] == "draft"


def test_unknown_route_and_wrong_method_are_client_errors(app_url, new_tenant):
    tenant = new_tenant()
    assert requests.get(f"{app_url}/api/nothing-here", timeout=10).status_code == 404
    assert tenant.api("DELETE", "sso").status_code in (404, 405)


def test_the_operator_rotates_an_admin_key_and_the_old_one_stops_working(app_url, new_tenant, operator_key):
    tenant = new_tenant("Rotated Key")
    url = f"{app_url}/api/tenants/{tenant.tenant_id}/admin-key"
    assert requests.post(url, headers={"Authorization": f"Bearer {tenant.admin_key}"}, timeout=10).status_code == 403
    rotated = requests.post(url, headers={"Authorization": f"Bearer {operator_key}"}, timeout=10)
    assert rotated.status_code == 201, rotated.text
    body = rotated.json()
    assert body["tenant_id"] == tenant.tenant_id and body["admin_key"].startswith("gh_admin_") and body["rotated_at"]
    assert tenant.api("GET", "sso").status_code == 403  # the leaked key is revoked
    new = requests.get(f"{app_url}/api/tenants/{tenant.tenant_id}/sso", timeout=10,
                       headers={"Authorization": f"Bearer {body['admin_key']}"})
    assert new.status_code == 200
    missing = requests.post(f"{app_url}/api/tenants/no-such-tenant-000/admin-key", timeout=10,
                            headers={"Authorization": f"Bearer {operator_key}"})
    assert missing.status_code == 404
