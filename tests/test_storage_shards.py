"""Storage shards (`TABLES_SHARDS`, shared_code/storage/accounts.py) on one real Azurite serving two accounts
(AZURITE_ACCOUNTS): the primary devstoreaccount1 and a shard. Tenants are created over HTTP until one lands on
each; both go through the suite's main flows — SCIM create/patch/list, a SAML sign-in, the OIDC code flow, the
events API, a webhook delivery, the domain-audit timer — and then every row of every table of both accounts is
listed: each tenant's rows are in its own account only, and what belongs to no tenant is on the primary.
Also: a tenant on the shard costs the same round trips as one on the primary; the walk over every tenant
finds both accounts (in tenant-id order, resumable) and the consistency check reads both; a reordered,
replaced or removed entry is reported; a malformed setting stops the app with a message naming it; an
unreachable shard is named in the log at startup while new tenants are placed elsewhere; and infra/ creates
the shards with the app's table role."""
from __future__ import annotations

import base64
import json
import os
import re
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests
from azure.data.tables import TableServiceClient

from tests.audit.provisioning import newer_timer_run, run_timer, set_domains, wait_for_run
from tests.conftest import Azurite, LocalHost, TenantHandle, check_consistency, free_port
from tests.events.product import EventReader, Operator, WebhookReceiver
from tests.support.waiting import wait_until
from tests.oidc.conftest import REDIRECT_URI, OidcTenant
from tests.scim.entra_client import ScimClient
from tests.sso.conftest import SsoTenant, session_of
from tests.support.idp import TestIdp

SHARD_ACCOUNT = "gatehouseshard1"
SPARE_ACCOUNT = "gatehousespare"  # an account no tenant was placed on (a wrong entry for the registry test)
SHARD_KEY = base64.b64encode(b"gatehouse test shard account key, not a secret!!").decode()
ON_SHARD = re.compile(r"-[0-9a-f]{6}-s1$")


@pytest.fixture(scope="module")
def sharded(app_settings, test_output) -> Iterator[tuple[Azurite, LocalHost, dict[str, str]]]:
    """The app on an Azurite of its own with two accounts: devstoreaccount1 (primary) and a shard."""
    extra = {SHARD_ACCOUNT: SHARD_KEY, SPARE_ACCOUNT: SHARD_KEY}
    with Azurite.temporary(prefix="gatehouse-shards-", accounts=extra) as azurite:
        port = free_port()
        settings = {**app_settings, "TABLES_CONNECTION_STRING": azurite.connection_string,
                    "TABLES_SHARDS": json.dumps([azurite.connection_string_for(SHARD_ACCOUNT, SHARD_KEY)]),
                    "GATEHOUSE_QUEUES": azurite.queue_connection_string, "PORT": str(port),
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
        host = LocalHost(settings, test_output / "shards-local-host.log")
        host.start()
        try:
            yield azurite, host, settings
        finally:
            host.stop()


def create_tenant(base_url: str, operator_key: str, name: str) -> requests.Response:
    return requests.post(f"{base_url}/api/tenants", json={"name": name, "app_url": "https://acme.example.com"},
                         headers={"Authorization": f"Bearer {operator_key}"}, timeout=30)


@pytest.fixture(scope="module")
def placed(sharded, operator_key) -> dict[str, TenantHandle]:
    """One tenant on each account: created until placement (uniform at random) has used both."""
    _, host, _ = sharded
    found: dict[str, TenantHandle] = {}
    for attempt in range(60):
        response = create_tenant(host.url, operator_key, f"Shard Corp {attempt}")
        assert response.status_code == 201, response.text
        body = response.json()
        where = "shard" if ON_SHARD.search(body["tenant_id"]) else "primary"
        found.setdefault(where, TenantHandle(host.url, body["tenant_id"], body["admin_key"], body))
        if len(found) == 2:
            return found
    raise AssertionError(f"60 tenants and still not one on each account: {sorted(found)}")


def rows_by_account(azurite: Azurite) -> dict[str, dict[str, set[str]]]:
    """Every row of every table of both accounts: account → table → the partition keys found there."""
    found = {}
    for account, connection in (("primary", azurite.connection_string),
                                ("shard", azurite.connection_string_for(SHARD_ACCOUNT, SHARD_KEY))):
        service = TableServiceClient.from_connection_string(connection)
        found[account] = {table.name: {row["PartitionKey"] for row in service.get_table_client(table.name)
                                       .query_entities("", select=["PartitionKey"])}
                          for table in service.list_tables()}
    return found


def exercise(tenant: TenantHandle, operator_key: str) -> dict:
    """The suite's main flows on one tenant, each asserted; answers what later checks compare."""
    sso = SsoTenant(tenant, TestIdp(key_label=f"shards-{tenant.tenant_id}"), tenant.base_url)
    assert sso.connect().status_code == 200

    # SCIM: create, patch, list with a filter, a group with a member
    scim = ScimClient(tenant.scim_url, tenant.scim_token(), tenant)
    sso._scim_token = scim.token
    user = scim.create_user(f"pat-{uuid.uuid4().hex[:6]}@acme.example.com", externalId=str(uuid.uuid4()),
                            emails=[{"value": "pat@acme.example.com", "type": "work", "primary": True}])
    patched = scim.patch(f"/Users/{user['id']}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                 "Operations": [{"op": "replace", "path": "displayName",
                                                                 "value": "Pat Sharded"}]})
    assert patched.status_code in (200, 204), patched.text
    listed = scim.get("/Users", params={"filter": f'userName eq "{user["userName"]}"'})
    assert listed.status_code == 200 and [u["id"] for u in listed.json()["Resources"]] == [user["id"]], listed.text
    assert listed.json()["Resources"][0]["displayName"] == "Pat Sharded"
    scim.create_group("Sharded people", members=[{"value": user["id"]}])

    # a webhook endpoint, connected before the sign-ins so that their events are delivered too
    reader = EventReader(tenant)
    before = reader.poll()  # deliveries start from the endpoint's creation
    receiver = WebhookReceiver()
    operator = Operator(tenant.base_url, operator_key, tenant.tenant_id)
    put = operator.put(receiver.url)
    assert put.status_code == 200, put.text
    receiver.secret = put.json()["secret"]

    # SAML: an SP-initiated sign-in and the session it gives
    session = session_of(sso.sign_in(user))
    me = sso.me(session)
    assert me.status_code == 200 and me.json()["id"] == user["id"], me.text

    # OIDC: a client, the code flow through the same IdP, the tokens and UserInfo
    oidc = OidcTenant(sso, operator_key)
    registered = oidc.register(redirect_uris=[REDIRECT_URI])
    assert registered.status_code == 201, registered.text
    oidc.client = registered.json()
    tokens = oidc.redeem(oidc.sign_in(user))
    assert tokens.status_code == 200, tokens.text
    info = oidc.userinfo(tokens.json()["access_token"])
    assert info.status_code == 200 and info.json()["sub"], info.text

    # events: the API and the webhook deliveries carry the same events
    scim.create_user(f"sam-{uuid.uuid4().hex[:6]}@acme.example.com")  # an event after the endpoint existed
    events = before + reader.poll()
    assert {"employee.created", "group.created"} <= {event["type"] for event in events}
    assert all(event["tenant"] == tenant.tenant_id for event in events)
    assert [event["sequence"] for event in events] == list(range(1, len(events) + 1))
    try:
        wait_until(lambda: receiver.copy.last_sequence >= events[-1]["sequence"])
        assert receiver.rejected_signatures == 0
        delivered = {event["id"] for _, event in receiver.arrivals}
        assert {event["id"] for event in events[len(before):]} <= delivered
    finally:
        receiver.stop()

    set_domains(tenant, "acme.example.com")
    return {"user": user, "events": events}


@pytest.fixture(scope="module")
def exercised(sharded, placed, operator_key) -> dict[str, dict]:
    results = {where: exercise(tenant, operator_key) for where, tenant in placed.items()}
    # the domain-audit timer walks every tenant of every account
    _, host, _ = sharded
    run_timer(host.url)
    for tenant in placed.values():
        run = wait_for_run(tenant, newer_timer_run(None))
        assert run["status"] == "complete", run
    return results


def test_placement_marks_the_account_in_the_id_and_old_style_ids_stay_on_the_primary(placed):
    assert ON_SHARD.search(placed["shard"].tenant_id)
    assert re.fullmatch(r"shard-corp-\d+-[0-9a-f]{6}", placed["primary"].tenant_id)
    for tenant in placed.values():  # the id is a tenant id like any other: the URLs carry it
        assert tenant.created["acs_url"].endswith(f"/api/sso/{tenant.tenant_id}/acs")


def test_every_flow_works_on_either_account_and_each_tenants_rows_are_only_in_its_own(sharded, placed, exercised):
    azurite, _, _ = sharded
    found = rows_by_account(azurite)
    ours = {where: tenant.tenant_id for where, tenant in placed.items()}
    # each tenant's rows, in every table it uses, are in its own account and nowhere else
    expected_tables = {"tenants", "directory", "signins", "oidc", "webhooks", "audits"}
    for where, tenant_id in ours.items():
        elsewhere = "shard" if where == "primary" else "primary"
        in_own = {table for table, partitions in found[where].items() if tenant_id in partitions}
        assert expected_tables <= in_own, (where, sorted(in_own))
        in_other = {table for table, partitions in found[elsewhere].items() if tenant_id in partitions}
        assert in_other == set(), (tenant_id, where, sorted(in_other))
    # the shard holds nothing but its tenants' rows: every partition there is a tenant id placed on it
    for table, partitions in found["shard"].items():
        assert all(ON_SHARD.search(partition) for partition in partitions), (table, sorted(partitions))
    # what belongs to no tenant (the background jobs' records: the audit timer's run) is on the primary
    assert "run" in found["primary"]["jobs"] and "jobs" not in found["shard"]


@contextmanager
def using(settings: dict[str, str]) -> Iterator[None]:
    """This process's settings switched to `settings` (tests run one at a time), then back."""
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    get_settings.cache_clear()
    tables.reset_clients()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        tables.reset_clients()


def test_the_walk_over_every_tenant_finds_both_accounts_in_id_order_and_resumes(sharded, placed, exercised):
    from shared_code.storage.tenants import iter_tenant_records

    _, _, settings = sharded
    with using(settings):
        walked = [record["tenant_id"] for record in iter_tenant_records(select=["PartitionKey", "RowKey"])]
        assert {tenant.tenant_id for tenant in placed.values()} <= set(walked)
        assert walked == sorted(walked) and len(walked) == len(set(walked))
        assert any(ON_SHARD.search(t) for t in walked) and any(not ON_SHARD.search(t) for t in walked)
        middle = walked[len(walked) // 2]
        assert [r["tenant_id"] for r in iter_tenant_records(select=["PartitionKey"], after=middle)] == \
            walked[walked.index(middle) + 1:]
    # the consistency check (a walk of the directory table of every account) finds both tenants sound
    result = check_consistency(settings)
    assert result.returncode == 0 and result.stdout.strip().endswith("0 problems"), result.stdout + result.stderr


def test_a_tenant_on_the_shard_costs_the_same_round_trips_as_one_on_the_primary(sharded, placed, exercised):
    """No lookup to find the account: the same reads cost the same round trips wherever the tenant lives, and
    each is answered from the tenant's own account (the rows exist only there)."""
    from shared_code.events import log
    from shared_code.storage import directory, oidc, tables
    from shared_code.storage.tenants import get_tenant_record

    _, _, settings = sharded
    costs = {}
    with using(settings):
        for where, tenant in placed.items():
            user_id = exercised[where]["user"]["id"]
            before = tables.round_trips()
            assert get_tenant_record(tenant.tenant_id)["name"].startswith("Shard Corp")
            assert directory.get_user_record(tenant.tenant_id, user_id).id == user_id
            assert log.last_sequence(tenant.tenant_id) >= exercised[where]["events"][-1]["sequence"]
            assert len(oidc.list_clients(tenant.tenant_id)) == 1
            costs[where] = tables.round_trips() - before
    assert costs == {"primary": 4, "shard": 4}, costs


def test_a_reordered_replaced_or_removed_entry_is_reported_and_appending_one_is_not(sharded, placed):
    from shared_code.storage import tables

    azurite, host, settings = sharded
    shard = azurite.connection_string_for(SHARD_ACCOUNT, SHARD_KEY)
    spare = azurite.connection_string_for(SPARE_ACCOUNT, SHARD_KEY)
    with using(settings):
        assert tables.check_accounts() == []  # the host registered its shard at startup (or this does now)
    with using({**settings, "TABLES_SHARDS": json.dumps([spare, shard])}):  # inserted before it
        problems = tables.check_accounts()
    assert len(problems) == 1 and f"TABLES_SHARDS[0] (http://127.0.0.1:{azurite.port}/{SPARE_ACCOUNT})" in problems[0]
    assert "never reordered or replaced" in problems[0] and f"/{SHARD_ACCOUNT}" in problems[0]
    with using({**settings, "TABLES_SHARDS": "[]"}):  # removed
        problems = tables.check_accounts()
    assert len(problems) == 1 and "TABLES_SHARDS has no entry 0 any more" in problems[0], problems
    with using({**settings, "TABLES_SHARDS": json.dumps([shard, spare])}):  # appended: fine, and registered
        assert tables.check_accounts() == []
    with using({**settings, "TABLES_SHARDS": json.dumps([shard])}):  # ... so dropping it again is reported
        assert "TABLES_SHARDS has no entry 1 any more" in " ".join(tables.check_accounts())
    assert "startup check" not in host.log_text()  # the host's own configuration was sound
    # leave the registry as the module's host knows it
    TableServiceClient.from_connection_string(azurite.connection_string).get_table_client("tenants").delete_entity(
        tables.ACCOUNTS_PARTITION, "shard2")


def test_a_whole_table_is_listed_and_dropped_on_every_account(sharded, placed):
    """For tables dropped whole (time-sliced expiry): they exist on every account their tenants use."""
    from shared_code.storage import tables

    azurite, _, settings = sharded
    name = f"slice{uuid.uuid4().hex[:8]}"
    with using(settings):
        for tenant in placed.values():
            tables.insert(name, {"PartitionKey": tenant.tenant_id, "RowKey": "r"})
        assert name in rows_by_account(azurite)["primary"] and name in rows_by_account(azurite)["shard"]
        assert tables.table_names(name[:5]) == sorted(t for t in tables.table_names() if t.startswith(name[:5]))
        assert name in tables.table_names(name)
        tables.drop_table(name)
        tables.drop_table(name)  # already gone: fine
        assert name not in tables.table_names(name)
    found = rows_by_account(azurite)
    assert name not in found["primary"] and name not in found["shard"]


def test_a_made_up_shard_marker_is_an_unknown_tenant_not_an_error(sharded):
    _, host, _ = sharded
    for tenant_id in ("nobody-abcdef-s1", "nobody-abcdef-s7", "nobody-abcdef-s99"):
        response = requests.get(f"{host.url}/api/sso/{tenant_id}/metadata", timeout=30)
        assert response.status_code == 404, (tenant_id, response.status_code, response.text[:200])


@pytest.mark.parametrize("value, words", [
    ("[not json", "TABLES_SHARDS is not valid JSON"),
    ('{"account": "x"}', "TABLES_SHARDS must be a JSON array"),
    ('[42]', "TABLES_SHARDS[0] must be a non-empty string"),
    ('["no account here"]', "TABLES_SHARDS[0] is neither an https:// table endpoint nor a connection string"),
])
def test_a_malformed_setting_stops_the_app_with_a_message_naming_it(app_settings, test_output, value, words):
    port = free_port()
    log = test_output / "shards-bad-setting.log"
    log.unlink(missing_ok=True)
    host = LocalHost({**app_settings, "TABLES_SHARDS": value, "PORT": str(port)}, log)
    with pytest.raises((RuntimeError, TimeoutError)):
        host.start()
    host.stop()
    text = host.log_text()
    assert words in text, text[-2000:]
    assert "StorageNotConfigured" in text


def test_the_same_account_twice_is_refused(app_settings):
    from shared_code.storage import accounts

    with using({"TABLES_SHARDS": json.dumps([app_settings["TABLES_CONNECTION_STRING"]])}):
        with pytest.raises(accounts.StorageNotConfigured) as refused:
            accounts.all_accounts()
    assert "is the same account as TABLES_CONNECTION_STRING/TABLES_ENDPOINT" in refused.value.why
    assert "AccountKey" not in refused.value.message  # never the key


def test_an_unreachable_shard_is_named_at_startup_and_new_tenants_go_elsewhere(app_settings, test_output,
                                                                               operator_key):
    dead = free_port()  # nothing listens there
    shard = (f"DefaultEndpointsProtocol=http;AccountName={SHARD_ACCOUNT};AccountKey={SHARD_KEY};"
             f"TableEndpoint=http://127.0.0.1:{dead}/{SHARD_ACCOUNT};")
    port = free_port()
    host = LocalHost({**app_settings, "TABLES_SHARDS": json.dumps([shard]), "PORT": str(port),
                      "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}, test_output / "shards-unreachable.log")
    host.log_path.unlink(missing_ok=True)
    host.start()
    try:
        wait_until(lambda: f"TABLES_SHARDS[0] (http://127.0.0.1:{dead}/{SHARD_ACCOUNT}) cannot be reached"
                   in host.log_text(), timeout=30)
        assert SHARD_KEY not in host.log_text()
        # placement leaves an account that fails for another: every tenant is created, on the primary
        for attempt in range(12):
            response = create_tenant(host.url, operator_key, f"Dead Shard {attempt}")
            assert response.status_code == 201, response.text
            body = response.json()
            assert not ON_SHARD.search(body["tenant_id"]), body["tenant_id"]
            tenant = TenantHandle(host.url, body["tenant_id"], body["admin_key"], body)
            assert tenant.api("GET", "sso").status_code == 200
        # a tenant of the shard (made up here: none could be placed there) gets an honest 503, never a 500
        refused = requests.get(f"{host.url}/api/sso/nobody-abcdef-s1/metadata", timeout=30)
        assert refused.status_code == 503 and refused.headers.get("Retry-After"), refused.text
    finally:
        host.stop()


def test_infra_creates_the_shards_with_the_table_role_and_sets_the_setting_to_their_endpoints():
    """What a Bicep build cannot check (no compiler here; tools/validate_infra.sh parses and wires the files)."""
    from pathlib import Path

    from tests.test_settings_consistency import infra_app_settings

    infra = Path(__file__).resolve().parent.parent / "infra"
    main = (infra / "main.bicep").read_text()
    shard = (infra / "modules" / "tableshard.bicep").read_text()
    assert re.search(r"@minValue\(0\)\s+@maxValue\(99\)\s+param tableShardCount int = 0", main), "0 extra by default"
    assert '"value": "${TABLES_SHARD_COUNT=0}"' in (infra / "main.parameters.json").read_text()
    # n accounts, numbered from 1 like the id markers, each granting the app's identity the table role
    assert re.search(r"module tableShards 'modules/tableshard.bicep' = \[for i in range\(1, tableShardCount\)", main)
    assert "appPrincipalId: identity.outputs.principalId" in main.split("module tableShards", 1)[1].split("}]")[0]
    assert re.search(r"principalId: appPrincipalId\s+principalType: 'ServicePrincipal'\s+roleDefinitionId: "
                     r"subscriptionResourceId\('Microsoft.Authorization/roleDefinitions', "
                     r"storageTableDataContributor\)", shard)
    assert "storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'" in shard
    assert "allowSharedKeyAccess: false" in shard and "scope: account" in shard
    # TABLES_SHARDS is the JSON array of their endpoints, in account order
    assert infra_app_settings()["TABLES_SHARDS"] == "string(tableShardEndpoints)"
    assert "var tableShardEndpoints = [for i in range(0, tableShardCount): tableShards[i].outputs.tableEndpoint]" \
        in main
    assert "output tableEndpoint string = account.properties.primaryEndpoints.table" in shard
    # the app starts only once the identity holds its roles on every account
    assert re.search(r"dependsOn: \[\s+rbac\s+tableShards\s+\]", main)


def test_an_endpoint_entry_is_reached_with_the_managed_identity_and_an_empty_array_is_one_account(app_settings):
    from shared_code.storage import accounts

    endpoint = "https://gatehouseshard1.table.core.windows.net/"
    with using({"TABLES_SHARDS": json.dumps([endpoint])}):
        primary, shard = accounts.all_accounts()
        assert shard.endpoint == endpoint.rstrip("/") and not shard.connection_string
        assert shard.label == f"TABLES_SHARDS[0] ({endpoint.rstrip('/')})"
        assert accounts.index_of("acme-1a2b3c-s1") == 1 and accounts.index_of("acme-1a2b3c") == 0
        assert accounts.index_of("acme-s1-1a2b3c") == 0  # a name that happens to contain "-s1"
    for empty in ("", "[]"):
        with using({"TABLES_SHARDS": empty}):
            assert len(accounts.all_accounts()) == 1
            assert accounts.place("acme-1a2b3c") == "acme-1a2b3c"


def test_make_run_serves_local_shards_from_its_own_azurite():
    """`make run` (tools/dev_server.py) starts Azurite with the accounts of the shards that live on it."""
    from tools.dev_server import DEV_ACCOUNT_KEY, azurite_accounts

    here = f"DefaultEndpointsProtocol=http;AccountName={SHARD_ACCOUNT};AccountKey={SHARD_KEY};" \
           f"TableEndpoint=http://127.0.0.1:10002/{SHARD_ACCOUNT};"
    elsewhere = "DefaultEndpointsProtocol=https;AccountName=remote;AccountKey=eA==;EndpointSuffix=core.windows.net"
    assert azurite_accounts({"TABLES_SHARDS": json.dumps([here, elsewhere])}, 10002) == \
        f"devstoreaccount1:{DEV_ACCOUNT_KEY};{SHARD_ACCOUNT}:{SHARD_KEY}"
    for value in ("", "[]", "[not json", json.dumps([elsewhere])):
        assert azurite_accounts({"TABLES_SHARDS": value}, 10002) == ""
