"""The Table Storage client as configured for the app: environment proxies are ignored, round trips counted."""
from __future__ import annotations

import uuid

import pytest

from shared_code.storage import tables


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
    assert tables.round_trips() - before == 2
