"""A log consumer (shared_code/events/consumer.py) on real storage: it handles the events after its position, in
order, at least once — a failure mid-run keeps what was handled and the failed event comes again —, only while it
holds the tenant's lease, and stops when its budget is spent (an injected clock, no sleeping)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared_code.events import log as event_log
from shared_code.events.consumer import TABLE, LogConsumer
from shared_code.events.shapes import Change
from shared_code.storage import tables


def _write(tenant_id: str, count: int) -> None:
    event_log.transact(tenant_id, [], [Change("sso.enabled", {"status": "enabled", "enabled_at": str(i)})
                                       for i in range(count)])


def test_a_consumer_handles_each_event_in_order_at_least_once_from_its_position(jobs_app, make_tenants):
    [tenant_id] = make_tenants(1, "Consumer")
    seen: list[int] = []
    failing: set[int] = set()

    def handle(tenant: str, event: dict) -> None:
        assert tenant == tenant_id
        if event["sequence"] in failing:
            raise RuntimeError("the store went away")
        seen.append(event["sequence"])

    consumer = LogConsumer("test-recorder", frozenset({"sso.enabled"}), handle)
    start = event_log.last_sequence(tenant_id)
    _write(tenant_id, 3)
    assert consumer.behind(tenant_id)
    done = consumer.run(tenant_id)
    assert (done.outcome, done.handled, done.position) == ("idle", 3, start + 3)
    assert seen == [start + 1, start + 2, start + 3] and not consumer.behind(tenant_id)
    before = tables.round_trips()  # a message with nothing for this consumer: two point reads, nothing written
    assert consumer.run_if_behind(tenant_id).outcome == "idle" and tables.round_trips() - before == 2

    _write(tenant_id, 2)
    failing.add(start + 5)  # dies on the second new event
    with pytest.raises(RuntimeError):
        consumer.run(tenant_id)
    assert consumer.position(tenant_id) == start + 4 and seen[-1] == start + 4
    failing.clear()
    again = consumer.run(tenant_id)  # the lease was handed back: no waiting for it to expire
    assert again.outcome == "idle" and seen == [start + 1, start + 2, start + 3, start + 4, start + 5]


def test_a_consumer_waits_for_another_workers_lease_and_stops_at_its_budget(jobs_app, make_tenants):
    [tenant_id] = make_tenants(1, "Consumer lease")
    seen: list[int] = []
    consumer = LogConsumer("test-lease", frozenset({"sso.enabled"}), lambda tenant, event: seen.append(1))
    _write(tenant_id, 3)
    until = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
    tables.upsert(TABLE, {"PartitionKey": tenant_id, "RowKey": consumer.row, "position": 0,
                          "lease_owner": "another-worker", "lease_until": until})
    assert consumer.run(tenant_id).outcome == "busy" and seen == []

    tables.upsert(TABLE, {"PartitionKey": tenant_id, "RowKey": consumer.row, "lease_owner": "", "lease_until": ""})
    ticks = iter(range(100))
    cut = consumer.run(tenant_id, budget=3, clock=lambda: next(ticks))  # a tick per event: time for two
    assert cut.outcome == "more" and cut.handled == 2 and consumer.position(tenant_id) == cut.position
    rest = consumer.run(tenant_id)
    assert rest.outcome == "idle" and len(seen) == 3 and rest.position == event_log.last_sequence(tenant_id)
