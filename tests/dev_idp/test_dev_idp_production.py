"""Under production settings the development IdP does not exist: with DEV_IDP off, and with DEV_IDP=true but an
https:// PUBLIC_BASE_URL (a deployment others can reach), the app registers none of its routes, its URLs answer
404, and connecting its metadata — by URL, even one the suite's development host really serves, or pasted — is
refused with a 422 that says why. The suite's own host (DEV_IDP=true on http://) accepts the same metadata, so
the refusal is the setting's doing."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Iterator

import pytest
import requests

from tests.conftest import ROOT, LocalHost, TenantHandle, free_port

_LIST_FUNCTIONS = "import json, function_app; print(json.dumps([f.get_function_name() for f in function_app.app.get_functions()]))"

PRODUCTION = {
    "DEV_IDP off": {"DEV_IDP": "false"},
    "DEV_IDP=true behind https": {"DEV_IDP": "true", "PUBLIC_BASE_URL": "https://gatehouse.example.test",
                                  "ALLOW_PRIVATE_METADATA_URLS": "false"},
}


@pytest.fixture(scope="module", params=sorted(PRODUCTION))
def production(request, app_settings, test_output) -> Iterator[tuple[str, LocalHost]]:
    port = free_port()
    settings = {**app_settings, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "PORT": str(port),
                **PRODUCTION[request.param]}
    name = request.param.replace(" ", "-").replace("=", "-")
    host = LocalHost(settings, test_output / f"local-host-dev-idp-{name}.log")
    host.start()
    yield request.param, host
    host.stop()


def _tenant(base_url: str, operator_key: str) -> TenantHandle:
    response = requests.post(f"{base_url}/api/tenants", json={"name": "Prod Corp", "app_url": "https://prod.example"},
                             headers={"Authorization": f"Bearer {operator_key}"}, timeout=30)
    assert response.status_code == 201, response.text
    body = response.json()
    return TenantHandle(base_url, body["tenant_id"], body["admin_key"], body)


def test_the_app_registers_none_of_its_routes(production):
    _, host = production
    listed = subprocess.run([sys.executable, "-c", _LIST_FUNCTIONS], cwd=ROOT, capture_output=True, text=True,
                            env={**host.settings}, timeout=120, check=True)
    names = json.loads(listed.stdout.strip().splitlines()[-1])
    assert "sso_acs" in names  # the listing works ...
    assert not [name for name in names if name.startswith("dev_idp")]  # ... and has no development IdP


def test_its_urls_are_not_there(production, operator_key):
    _, host = production
    tenant = _tenant(host.url, operator_key)
    for path in ("metadata", "saml2", "logout", "discovery/v2.0/keys", "id-token"):
        response = requests.get(f"{host.url}/api/dev-idp/{tenant.tenant_id}/{path}", timeout=30)
        assert response.status_code == 404, (path, response.status_code)


def test_connecting_its_metadata_is_refused_with_a_clear_422(production, operator_key, new_tenant, app_url):
    what, host = production
    tenant = _tenant(host.url, operator_key)
    # The suite's development host really serves this metadata (and accepts it: see the last lines).
    dev_tenant = new_tenant("Dev Corp", "https://dev.example.com")
    metadata_url = f"{app_url}/api/dev-idp/{dev_tenant.tenant_id}/metadata"
    metadata_xml = requests.get(metadata_url, timeout=30).text
    by_url = tenant.api("POST", "sso/idp-metadata", json={"metadata_url": metadata_url})
    assert by_url.status_code == 422, (what, by_url.text)
    assert "development IdP" in by_url.json()["message"] and "DEV_IDP=true" in by_url.json()["message"]
    pasted = tenant.api("POST", "sso/idp-metadata", json={"metadata_xml": metadata_xml})
    assert pasted.status_code == 422, (what, pasted.text)
    assert "development IdP" in pasted.json()["message"]
    assert tenant.api("GET", "sso").json()["status"] == "draft"

    accepted = dev_tenant.api("POST", "sso/idp-metadata", json={"metadata_url": metadata_url})
    assert accepted.status_code == 200, accepted.text
