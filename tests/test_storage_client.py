"""The Table Storage client as configured for the app, against a real Azurite: environment proxies are ignored,
round trips are counted, and our `$batch` transactions behave exactly like the SDK's `submit_transaction`
(the SDK is the oracle: same rows written, same etags, same error codes and failing index)."""
from __future__ import annotations

import time
import uuid

import pytest
from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode

from shared_code.storage import batch, tables


@pytest.fixture
def dead_proxy_everywhere(monkeypatch, app_settings):
    """Point every proxy variable requests honours at a port where nothing listens."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    tables.reset_clients()
    yield
    tables.reset_clients()


def test_storage_round_trips_do_not_go_through_an_environment_proxy(dead_proxy_everywhere):
    row = {"PartitionKey": "storage-client-test", "RowKey": uuid.uuid4().hex, "note": "direct"}
    tables.insert(tables.AUDITS, row)
    assert tables.get(tables.AUDITS, row["PartitionKey"], row["RowKey"])["note"] == "direct"
    tables.delete(tables.AUDITS, row["PartitionKey"], row["RowKey"])


def test_every_round_trip_is_counted(app_settings):
    row = {"PartitionKey": "storage-client-test", "RowKey": uuid.uuid4().hex}
    tables.insert(tables.AUDITS, row)
    before = tables.round_trips()
    tables.get(tables.AUDITS, row["PartitionKey"], row["RowKey"])
    tables.get(tables.AUDITS, row["PartitionKey"], "no-such-row")
    tables.transact(tables.AUDITS, [("upsert", {**row, "n": 1})])
    assert tables.round_trips() - before == 3


# --- transactions ---------------------------------------------------------------------------------------------

@pytest.fixture
def client(app_settings):
    return tables.table(tables.AUDITS)


def _partition() -> str:
    return "batch-" + uuid.uuid4().hex


def test_a_transaction_writes_every_row_and_answers_each_row_s_etag(client):
    pk = _partition()
    text = "Zoë Ångström — 日本語 " + "x" * 30_000  # non-ASCII and a large value: lengths are in bytes
    client.create_entity({"PartitionKey": pk, "RowKey": "merge-me", "kept": "yes", "changed": "old"})
    client.create_entity({"PartitionKey": pk, "RowKey": "replace-me", "dropped": "yes"})
    client.create_entity({"PartitionKey": pk, "RowKey": "delete-me"})
    results = batch.submit(client, [
        ("create", {"PartitionKey": pk, "RowKey": "new", "text": text, "number": 7, "flag": True}),
        ("upsert", {"PartitionKey": pk, "RowKey": "merge-me", "changed": "new"}, {"mode": UpdateMode.MERGE}),
        ("upsert", {"PartitionKey": pk, "RowKey": "replace-me", "only": "this"}, {"mode": UpdateMode.REPLACE}),
        ("delete", {"PartitionKey": pk, "RowKey": "delete-me"}),
    ])
    assert len(results) == 4
    rows = {row["RowKey"]: row for row in client.query_entities("PartitionKey eq @pk", parameters={"pk": pk})}
    assert sorted(rows) == ["merge-me", "new", "replace-me"]
    assert (rows["new"]["text"], rows["new"]["number"], rows["new"]["flag"]) == (text, 7, True)
    assert (rows["merge-me"]["kept"], rows["merge-me"]["changed"]) == ("yes", "new")
    assert "dropped" not in rows["replace-me"] and rows["replace-me"]["only"] == "this"
    for result, key in zip(results[:3], ["new", "merge-me", "replace-me"]):
        assert result["etag"] == rows[key].metadata["etag"]


def _sdk_and_ours(client, make_operations) -> tuple[TableTransactionError, TableTransactionError]:
    """The same failing transaction through the SDK and through ours, each on a fresh copy of the rows."""
    errors = []
    for send in (client.submit_transaction, lambda operations: batch.submit(client, operations)):
        pk = _partition()
        with pytest.raises(TableTransactionError) as caught:
            send(make_operations(pk))
        assert list(client.query_entities("PartitionKey eq @pk and RowKey ge 'new'", parameters={"pk": pk})) == [], \
            "a failed transaction must write nothing"
        errors.append(caught.value)
    return errors[0], errors[1]


@pytest.mark.parametrize("case", ["exists", "stale-etag", "missing-row"])
def test_a_failed_transaction_fails_like_the_sdk_s_with_its_code_and_index(client, case):
    def operations(pk: str) -> list[tuple]:
        stale = client.create_entity({"PartitionKey": pk, "RowKey": "existing", "v": 1})["etag"]
        client.update_entity({"PartitionKey": pk, "RowKey": "existing", "v": 5})  # the etag above is now stale
        first = ("create", {"PartitionKey": pk, "RowKey": "new-1", "v": 1})
        second = ("create", {"PartitionKey": pk, "RowKey": "new-2", "v": 2})
        failing = {
            "exists": ("create", {"PartitionKey": pk, "RowKey": "existing"}),
            "stale-etag": ("update", {"PartitionKey": pk, "RowKey": "existing", "v": 2},
                           {"etag": stale, "match_condition": MatchConditions.IfNotModified}),
            "missing-row": ("update", {"PartitionKey": pk, "RowKey": "absent", "v": 2}),
        }[case]
        return [first, second, failing]

    sdk, ours = _sdk_and_ours(client, operations)
    assert ours.error_code == sdk.error_code and ours.error_code
    assert ours.index == sdk.index == 2
    assert ours.status_code == sdk.status_code


def test_a_transaction_on_a_table_that_does_not_exist_yet_creates_it(app_settings):
    name = "batchtest" + uuid.uuid4().hex[:12]
    pk = _partition()
    results = tables.transact(name, [("create", {"PartitionKey": pk, "RowKey": "a"}),
                                     ("create", {"PartitionKey": pk, "RowKey": "b"})])
    assert len(results) == 2
    assert tables.get(name, pk, "b") is not None
    tables.table(name).delete_table()


# --- an unreachable store -------------------------------------------------------------------------------------

@pytest.fixture
def own_azurite(monkeypatch, app_settings):
    """A private Azurite (on disk) that this test may stop, with the storage layer pointed at it."""
    from shared_code.platform.settings import get_settings
    from tests.conftest import Azurite

    with Azurite.temporary(prefix="gatehouse-unreachable-") as server:
        monkeypatch.setenv("TABLES_CONNECTION_STRING", server.connection_string)
        get_settings.cache_clear()
        tables.reset_clients()
        yield server
    monkeypatch.undo()
    get_settings.cache_clear()
    tables.reset_clients()


def test_once_the_store_is_unreachable_calls_fail_at_once_for_a_moment_then_try_again(own_azurite, monkeypatch):
    from shared_code.platform.errors import StorageUnavailable

    monkeypatch.setattr(tables, "UNREACHABLE_SECONDS", 0.5)
    row = {"PartitionKey": "unreachable", "RowKey": "r", "v": 1}
    tables.upsert(tables.AUDITS, row)
    own_azurite.stop()

    before = tables.round_trips()
    with pytest.raises(StorageUnavailable):
        tables.get(tables.AUDITS, "unreachable", "r")
    assert tables.round_trips() > before  # it tried (with the client's retries) and found nobody
    tried = tables.round_trips()
    for call in (lambda: tables.get(tables.AUDITS, "unreachable", "r"),
                 lambda: tables.transact(tables.AUDITS, [("upsert", row)]),
                 lambda: list(tables.partition_range(tables.AUDITS, "unreachable", ""))):
        with pytest.raises(StorageUnavailable):
            call()
    assert tables.round_trips() == tried  # within the pause nobody waits on a connection that cannot come

    own_azurite.start()
    time.sleep(0.6)
    assert tables.get(tables.AUDITS, "unreachable", "r")["v"] == 1
