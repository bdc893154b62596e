"""The operator registers the product's clients: secrets shown once and stored hashed, exact https redirect
URIs (loopback http for development), web and native clients, list/read/delete/rotate, one tenant each."""
from __future__ import annotations

import pytest
import requests

from shared_code.platform import credentials
from shared_code.storage import oidc as store


def test_register_shows_the_secret_once_and_stores_only_its_hash(op, app_settings):
    client = op.client
    assert client["client_secret"].startswith("gh_client_")
    assert client["application_type"] == "web" and client["issuer"] == op.issuer
    record = store.get_client(op.tenant_id, client["client_id"])
    assert record.secret_hash == credentials.hash_secret(client["client_secret"])
    read = requests.get(f"{op.clients_url}/{client['client_id']}", headers=op.operator, timeout=30).json()
    assert "client_secret" not in read and read["redirect_uris"] == client["redirect_uris"]
    listed = requests.get(op.clients_url, headers=op.operator, timeout=30).json()["clients"]
    assert [c["client_id"] for c in listed] == [client["client_id"]]


@pytest.mark.parametrize("uri, field", [
    ("http://product.example.com/cb", "redirect_uris"),
    ("https://product.example.com/cb#frag", "redirect_uris"),
    ("https://user:pw@product.example.com/cb", "redirect_uris"),
    ("/relative", "redirect_uris"),
    ("javascript:alert(1)", "redirect_uris"),
])
def test_registration_refuses_unsafe_redirect_uris(op, uri, field):
    response = op.register(redirect_uris=[uri])
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and "redirect" in response.json()["message"].lower()


def test_registration_errors_use_our_shape_not_pydantics(op):
    for body in ({}, {"redirect_uris": []}, {"redirect_uris": ["https://a.example/cb"], "surprise": 1},
                 {"redirect_uris": ["https://a.example/cb"], "application_type": "spa"}):
        response = op.register(**body)
        assert response.status_code == 400, response.text
        error = response.json()
        assert set(error) >= {"error", "message", "field"} and isinstance(error["message"], str)


def test_loopback_http_and_native_private_scheme_are_allowed(op):
    web = op.register(redirect_uris=["http://127.0.0.1:5000/cb", "http://[::1]:5000/cb", "http://localhost/cb"])
    assert web.status_code == 201, web.text
    native = op.register(application_type="native", redirect_uris=["com.example.app:/oauth2redirect"])
    assert native.status_code == 201, native.text
    assert native.json()["client_secret"] is None and native.json()["token_endpoint_auth_method"] == "none"
    assert op.register(redirect_uris=["com.example.app:/oauth2redirect"]).status_code == 422  # web: https only


def test_only_the_operator_manages_clients(op):
    admin = {"Authorization": f"Bearer {op.sso.handle.admin_key}"}
    assert requests.post(op.clients_url, json={"redirect_uris": ["https://a.example/cb"]}, headers=admin,
                         timeout=30).status_code in (401, 403)
    assert requests.get(op.clients_url, timeout=30).status_code == 401


def test_rotate_replaces_the_secret_and_delete_forgets_the_client(op):
    client_id = op.client["client_id"]
    rotated = requests.post(f"{op.clients_url}/{client_id}/secret", headers=op.operator, timeout=30)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert new_secret != op.client["client_secret"]
    old = op.token({"grant_type": "authorization_code", "code": "x" * 43, "redirect_uri": "https://x/cb",
                    "code_verifier": "v" * 43})
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    deleted = requests.delete(f"{op.clients_url}/{client_id}", headers=op.operator, timeout=30)
    assert deleted.status_code == 204
    assert requests.get(f"{op.clients_url}/{client_id}", headers=op.operator, timeout=30).status_code == 404


def test_another_tenants_client_is_unknown_here(op, new_tenant):
    other = new_tenant("Globex", "https://globex.example.com")
    url = f"{op.sso.base_url}/api/tenants/{other.tenant_id}/oidc/clients/{op.client['client_id']}"
    assert requests.get(url, headers=op.operator, timeout=30).status_code == 404
