"""Storage as the app reaches it on Azure (Flex Consumption): `TABLES_ENDPOINT` and `DefaultAzureCredential`,
no connection string. Azurite requires OAuth over HTTPS (a certificate made here, trusted through
REQUESTS_CA_BUNDLE), and the token comes from a managed-identity endpoint on loopback named by
IDENTITY_ENDPOINT / IDENTITY_HEADER, exactly as App Service serves it to a Function App.

This module overrides the suite's `app_settings` (and what depends on it) for its own tests only, and re-runs
every storage-client test of tests/test_storage_client.py over this path, then a SCIM round trip through the
local host. The environment is restored when the module ends.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.conftest import OPERATOR_KEY, LocalHost, TenantHandle, free_port
from tests.support.managed_identity import STORAGE_RESOURCE, ManagedIdentityEndpoint, OAuthAzurite, TlsFiles
from tests.test_storage_client import *  # noqa: F401,F403 (every storage test, run again over this path)
from tests.test_storage_client import test_storage_round_trips_do_not_go_through_an_environment_proxy as _proxy_test

SCIM_JSON = "application/scim+json"
SHARD_ACCOUNT = "gatehouseshard1"
SHARD_KEY = "c2hhcmQgYWNjb3VudCBrZXkgZm9yIHRlc3RzIG9ubHk="


@pytest.fixture(scope="module")
def tls() -> Iterator[TlsFiles]:
    folder = Path(tempfile.mkdtemp(prefix="gatehouse-tls-"))
    yield TlsFiles.make(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def oauth_azurite(tls) -> Iterator[OAuthAzurite]:
    location = Path(tempfile.mkdtemp(prefix="gatehouse-azurite-oauth-"))
    server = OAuthAzurite(location, tls, accounts={SHARD_ACCOUNT: SHARD_KEY})  # a shard, for the shard test
    server.start()
    yield server
    server.stop()
    shutil.rmtree(location, ignore_errors=True)


@pytest.fixture(scope="module")
def identity() -> Iterator[ManagedIdentityEndpoint]:
    endpoint = ManagedIdentityEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture(scope="module")
def app_settings(oauth_azurite, identity, tls) -> Iterator[dict[str, str]]:
    """The suite's settings with storage reached only through TABLES_ENDPOINT and the managed identity."""
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    port = free_port()
    settings = {
        "TABLES_CONNECTION_STRING": "", "TABLES_ENDPOINT": oauth_azurite.endpoint,
        **identity.settings(), "REQUESTS_CA_BUNDLE": str(tls.ca),
        "PLATFORM_ADMIN_KEY": OPERATOR_KEY, "SESSION_SIGNING_KEY": "test-session-key-" + uuid.uuid4().hex,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "DOMAIN_AUDIT_SCHEDULE": "0 0 3 * * *",
        "ALLOW_PRIVATE_METADATA_URLS": "true", "MOBILE_IOS_BUNDLE_ID": "com.example.gatehouse",
        "MOBILE_ANDROID_PACKAGE_NAME": "com.example.gatehouse",
        "MOBILE_ANDROID_SIGNATURE_HASH": "2pmj9i4rSx0yEb/viWBYkE/ZQrk=", "PORT": str(port),
    }
    saved = dict(os.environ)
    os.environ.update(settings)
    get_settings.cache_clear()
    tables.reset_clients()
    yield settings
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()
    tables.reset_clients()


@pytest.fixture(scope="module")
def local_host(app_settings, test_output) -> Iterator[LocalHost]:
    host = LocalHost(app_settings, test_output / "local-host-managed-identity.log")
    host.start()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def new_tenant(local_host) -> Callable[..., TenantHandle]:
    def create(name: str = "Identity Corp", app_url_: str = "https://identity.example.com") -> TenantHandle:
        response = requests.post(f"{local_host.url}/api/tenants", json={"name": name, "app_url": app_url_},
                                 headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=60)
        assert response.status_code == 201, response.text
        body = response.json()
        return TenantHandle(local_host.url, body["tenant_id"], body["admin_key"], body)
    return create


# The re-run proxy test points every proxy variable at a dead port; the managed-identity request is an HTTP
# call too, and azure-identity honours those variables (as App Service's own does not set them, NO_PROXY
# keeps loopback direct, which is what a proxied deployment must also do).
@pytest.fixture
def dead_proxy_everywhere(monkeypatch, app_settings):
    from shared_code.storage import tables

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("no_proxy", raising=False)
    tables.reset_clients()
    yield
    tables.reset_clients()


def test_storage_calls_authenticate_with_the_managed_identity_token(app_settings, identity):
    from shared_code.storage import tables

    tables.reset_clients()
    before = len(identity.requests)
    row = {"PartitionKey": "identity-test", "RowKey": uuid.uuid4().hex, "note": "through the identity"}
    tables.insert(tables.AUDITS, row)
    assert tables.get(tables.AUDITS, row["PartitionKey"], row["RowKey"])["note"] == "through the identity"
    asked = identity.requests[before:]
    assert asked, "no token was requested: storage did not go through DefaultAzureCredential"
    assert all(r.header_ok and r.api_version == "2019-08-01" for r in asked), asked
    assert {r.resource for r in asked} == {STORAGE_RESOURCE}
    assert {r.client_id for r in asked} == {identity.client_id}  # the user-assigned identity infra names


def test_a_token_for_another_audience_is_refused_by_storage(app_settings, identity):
    """The path is really checked: a token Azurite must refuse makes every storage call fail (a 503 upstream)."""
    from shared_code.platform.errors import StorageUnavailable
    from shared_code.storage import tables

    identity.audience = "https://vault.azure.net"
    tables.reset_clients()
    try:
        with pytest.raises(StorageUnavailable) as refused:
            tables.get(tables.AUDITS, "identity-test", "any")
        causes, error = [], refused.value
        while error is not None:
            causes.append(str(error))
            error = error.__cause__ or error.__context__
        assert any("Invalid token audience" in cause for cause in causes), causes
    finally:
        identity.audience = STORAGE_RESOURCE
        tables.reset_clients()


def test_a_scim_round_trip_through_the_local_host_over_the_managed_identity(new_tenant, identity, local_host):
    before = len(identity.requests)
    tenant = new_tenant()
    scim = requests.Session()
    scim.headers.update({"Authorization": f"Bearer {tenant.scim_token()}", "Content-Type": SCIM_JSON})
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ida@identity.example.com",
            "externalId": str(uuid.uuid4()), "active": True, "displayName": "Ida",
            "emails": [{"value": "ida@identity.example.com", "type": "work", "primary": True}]}
    created = scim.post(f"{tenant.scim_url}/Users", json=body, timeout=60)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    found = scim.get(f"{tenant.scim_url}/Users", params={"filter": 'userName eq "ida@identity.example.com"'},
                     timeout=60)
    assert [r["id"] for r in found.json()["Resources"]] == [user_id]
    patched = scim.patch(f"{tenant.scim_url}/Users/{user_id}", timeout=60, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Ida Lovelace"}]})
    assert patched.status_code in (200, 204), patched.text
    assert scim.get(f"{tenant.scim_url}/Users/{user_id}", timeout=60).json()["displayName"] == "Ida Lovelace"
    assert scim.delete(f"{tenant.scim_url}/Users/{user_id}", timeout=60).status_code == 204
    assert scim.get(f"{tenant.scim_url}/Users/{user_id}", timeout=60).status_code == 404
    # The host process asked the endpoint for its storage token with App Service's header.
    assert any(r.header_ok and r.client_id == identity.client_id for r in identity.requests[before:]), \
        local_host.log_text()[-2000:]


def test_a_shard_named_by_its_endpoint_is_reached_with_the_same_managed_identity(app_settings, identity, oauth_azurite,
                                                                                 monkeypatch):
    """TABLES_SHARDS as infra sets it on Azure (endpoints, no keys): a tenant's row on the shard is written and
    read with the identity's token, lands in the shard account only, and both accounts share one token."""
    from azure.data.tables import TableServiceClient

    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    monkeypatch.setenv("TABLES_SHARDS", f'["{oauth_azurite.endpoint_of(SHARD_ACCOUNT)}"]')
    get_settings.cache_clear()
    tables.reset_clients()
    try:
        before = len(identity.requests)
        assert tables.check_accounts() == []  # both answer to the identity
        on_shard, on_primary = f"identity-{uuid.uuid4().hex[:6]}-s1", f"identity-{uuid.uuid4().hex[:6]}"
        for partition in (on_shard, on_primary):
            tables.upsert(tables.AUDITS, {"PartitionKey": partition, "RowKey": "row", "note": partition})
            assert tables.get(tables.AUDITS, partition, "row")["note"] == partition
        assert len(identity.requests) - before <= 1, "one token serves every account"
    finally:
        monkeypatch.delenv("TABLES_SHARDS")
        get_settings.cache_clear()
        tables.reset_clients()
    with_key = (f"DefaultEndpointsProtocol=https;AccountName={SHARD_ACCOUNT};AccountKey={SHARD_KEY};"
                f"TableEndpoint={oauth_azurite.endpoint_of(SHARD_ACCOUNT)};")
    shard = TableServiceClient.from_connection_string(with_key, connection_verify=app_settings["REQUESTS_CA_BUNDLE"])
    shard_rows = {row["PartitionKey"] for row in shard.get_table_client(tables.AUDITS).list_entities()}
    assert on_shard in shard_rows and on_primary not in shard_rows
    assert tables.get(tables.AUDITS, on_primary, "row") is not None  # and, without shards, on_shard is not here:
    assert tables.get(tables.AUDITS, on_shard, "row") is None
