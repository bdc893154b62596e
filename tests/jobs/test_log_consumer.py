"""A log consumer (shared_code/events/consumer.py) on real storage: it handles the events after its position, in
order, at least once — a failure mid-run keeps what was handled and the failed event comes again —, only while it
holds the tenant's lease, and stops when its budget is spent (an injected clock, no sleeping)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sys
from pathlib import Path

import pytest

from shared_code.events import log as event_log
from shared_code.events import shapes
from shared_code.events.consumer import TABLE, LogConsumer
from shared_code.events.shapes import Change
from shared_code.sign_in import trust
from shared_code.storage import tables
from shared_code.webhooks import delivery, endpoint, queue

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))  # the product's webhook receiver

from product import WebhookReceiver  # noqa: E402


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
    assert consumer.run(tenant_id).outcome == "idle" and tables.round_trips() - before == 2

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


def test_a_commit_wakes_the_trust_consumer_only_for_the_events_it_handles(jobs_app, make_tenants):
    [tenant_id] = make_tenants(1, "Asleep")
    jobs_app.drain("webhook_delivery")
    assert trust.CONSUMER.run(tenant_id).outcome == "idle"
    position = trust.CONSUMER.position(tenant_id)

    _write(tenant_id, 2)  # nothing that ends trust: the message says so, and the consumer stays asleep
    assert jobs_app.wake_up_for(tenant_id) == {"tenant": tenant_id, "types": ["sso.enabled"]}
    jobs_app.drain("webhook_delivery")
    assert trust.CONSUMER.position(tenant_id) == position and trust.CONSUMER.behind(tenant_id)

    jobs_app.timer("events_outbox_sweep")  # with it the trust check: behind → a message for every consumer
    jobs_app.drain("run_job")
    assert {"tenant": tenant_id} in jobs_app.messages(queue.QUEUE)
    jobs_app.drain("webhook_delivery")
    assert not trust.CONSUMER.behind(tenant_id)  # past both events in one run

    event_log.transact(tenant_id, [], [Change(shapes.SESSIONS_REVOKED, {"why": "sso_disabled",
                                                                          "sessions_valid_from": 0})])
    assert jobs_app.wake_up_for(tenant_id) == {"tenant": tenant_id, "types": [shapes.SESSIONS_REVOKED]}
    jobs_app.drain("webhook_delivery")
    assert not trust.CONSUMER.behind(tenant_id)  # an end of trust wakes it at once


def _cost(action) -> tuple[object, int]:
    before = tables.round_trips()
    result = action()
    return result, tables.round_trips() - before


def test_a_run_costs_two_point_reads_when_caught_up_and_one_write_after_a_short_batch(jobs_app, make_tenants):
    """Every queue message runs the tenant's consumers and most carry nothing for a given one: caught up, a run
    reads its row and the log's head and takes no lease. One event behind: those two reads, the lease, the
    batch, and one write of the position that also hands the lease back (the batch was short: the log ran out)."""
    [tenant_id] = make_tenants(1, "Consumer cost")
    seen: list[int] = []
    consumer = LogConsumer("test-cost", frozenset({"sso.enabled"}),
                           lambda tenant, event: seen.append(event["sequence"]))
    done, trips = _cost(lambda: consumer.run(tenant_id))  # an empty log: no row written either
    assert (done.outcome, done.position, trips) == ("idle", 0, 2)
    _write(tenant_id, 1)
    done, trips = _cost(lambda: consumer.run(tenant_id))  # read, head, lease (a new row), batch, position + release
    assert (done.outcome, done.handled, trips) == ("idle", 1, 5) and seen == [done.position]
    again, trips = _cost(lambda: consumer.run(tenant_id))
    assert (again.outcome, again.position, trips) == ("idle", done.position, 2)
    _write(tenant_id, 1)
    done, trips = _cost(lambda: consumer.run(tenant_id))  # the lease on the row it has: handed back
    assert (done.outcome, done.handled, trips) == ("idle", 1, 5) and len(seen) == 2
    row = tables.get(TABLE, tenant_id, consumer.row)
    assert row["position"] == done.position and row["lease_owner"] == "" and row["lease_until"] == ""


def test_a_webhook_delivery_run_costs_the_same_as_the_shared_loop(jobs_app, make_tenants):
    """Webhook delivery (its own `open`: an endpoint, enabled, retry due) checks the log's head before the lease
    too, and the checkpoint of the log's last event hands the lease back."""
    [tenant_id] = make_tenants(1, "Delivery cost")
    receiver = WebhookReceiver()
    try:
        receiver.secret = endpoint.put(tenant_id, {"url": receiver.url}).secret
        jobs_app.drain("webhook_delivery")
        caught_up, trips = _cost(lambda: delivery.run(tenant_id))
        assert (caught_up.outcome, trips) == ("idle", 2)  # was 4: the lease taken and handed back
        _write(tenant_id, 1)
        done, trips = _cost(lambda: delivery.run(tenant_id))
        assert (done.outcome, done.handled, trips) == ("idle", 1, 5)  # was 6: an empty read and a release more
        assert [event["sequence"] for _, event in receiver.arrivals] == [done.position]
        row = tables.get(endpoint.TABLE, tenant_id, endpoint.ROW)
        assert row["delivered"] == done.position and row["lease_owner"] == "" and row["lease_until"] == ""
    finally:
        receiver.stop()
