"""Background jobs fan out over `gatehouse-jobs`: a timer only walks tenants onto the queue, the queue function
does the work, one tenant's failure stops nobody else and ends in the poison queue with a record the operator
reads, and a walk cut by its budget goes on where it stopped (issue 20)."""
from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime, timedelta, timezone

from tests.jobs.conftest import long_ago

EXPIRED_SIGN_IN_ROWS, EXPIRED_OIDC_ROWS = 70, 50


def _seed_expired(tenant_id: str) -> None:
    """Rows a busy day of sign-ins leaves behind, all expired, and one of each still live."""
    from shared_code.storage import tables

    past, future = long_ago(1), datetime.now(timezone.utc) + timedelta(hours=1)
    for table, count in ((tables.SIGN_INS, EXPIRED_SIGN_IN_ROWS), (tables.OIDC, EXPIRED_OIDC_ROWS)):
        rows = [{"PartitionKey": tenant_id, "RowKey": f"request:{uuid.uuid4().hex}", "expires_at": past}
                for _ in range(count)]
        rows.append({"PartitionKey": tenant_id, "RowKey": "request:live", "expires_at": future})
        for start in range(0, len(rows), 100):
            tables.transact(table, [("create", row) for row in rows[start:start + 100]])


def _rows(table: str, tenant_id: str) -> list[str]:
    from shared_code.storage import tables

    return [row["RowKey"] for row in tables.query(table, "PartitionKey eq @pk", {"pk": tenant_id},
                                                   select=["RowKey"])]


def test_a_purge_over_many_tenants_fans_out_and_finishes(jobs_app, make_tenants):
    from shared_code.jobs import fanout
    from shared_code.storage import jobs as job_store
    from shared_code.storage import tables

    tenants = make_tenants(40, "Purge")
    for tenant_id in tenants:
        _seed_expired(tenant_id)
    expired = len(tenants) * (EXPIRED_SIGN_IN_ROWS + EXPIRED_OIDC_ROWS)

    jobs_app.timer("purge_sign_in_state")
    waiting = jobs_app.messages(fanout.QUEUE)
    # The timer only enqueued: shards of at most 25 tenants, and no row is gone yet.
    assert waiting and all(len(m["tenants"]) <= 25 for m in waiting)
    assert {t for m in waiting for t in m["tenants"]} >= set(tenants)
    assert len(_rows(tables.SIGN_INS, tenants[0])) == EXPIRED_SIGN_IN_ROWS + 1

    before = tables.round_trips()
    jobs_app.drain()
    for tenant_id in tenants:
        assert _rows(tables.SIGN_INS, tenant_id) == ["request:live"]
        assert _rows(tables.OIDC, tenant_id) == ["request:live"]
    # 4,800 rows deleted in transactions of up to 100: a few round trips per tenant, not one per row.
    assert tables.round_trips() - before < expired / 10
    run = next(r for r in job_store.runs() if r["job"] == "purge_sign_in_state")
    assert run["walk_done"] is True and run["walked"] >= len(tenants)
    assert run["started_at"].endswith("Z") and run["updated_at"].endswith("Z")  # one time format for the operator
    assert job_store.failures("purge_sign_in_state") == []


def _seed_old_events(tenant_id: str, count: int = 3, *, broken: bool = False) -> None:
    """Events older than the 30 days kept; a `broken` tenant's first one lost its time (a damaged row)."""
    from shared_code.events import log
    from shared_code.storage import tables

    rows = [{"PartitionKey": tenant_id, "RowKey": log.event_key(i), "kind": "event", "id": uuid.uuid4().hex,
             "type": "employee.created", "occurred_at": "2020-01-01T00:00:00.000Z", "sequence": i, "data": "{}"}
            for i in range(1, count + 1)]
    if broken:
        del rows[0]["occurred_at"]
    tables.transact(log.TABLE, [("create", row) for row in rows])


def _old_events(tenant_id: str) -> int:
    from shared_code.events import log
    from shared_code.storage import tables

    return len(list(tables.partition_range(log.TABLE, tenant_id, log.EVENT)))


def test_one_tenant_failing_stops_nobody_and_ends_in_the_poison_queue_with_a_record(jobs_app, make_tenants,
                                                                                      operator_key):
    from shared_code.jobs import fanout
    from shared_code.storage import jobs as job_store

    tenants = make_tenants(12, "Events")
    broken = tenants[5]
    for tenant_id in tenants:
        _seed_old_events(tenant_id, broken=tenant_id == broken)

    jobs_app.timer("events_purge")
    jobs_app.drain()

    for tenant_id in tenants:
        assert _old_events(tenant_id) == (3 if tenant_id == broken else 0)
    # Put back alone out of its shard, retried by the host maxDequeueCount times, then poisoned.
    poisoned = jobs_app.messages(fanout.POISON)
    assert [m["tenants"] for m in poisoned if m["job"] == "events_purge"] == [[broken]]
    [failure] = job_store.failures("events_purge")
    assert (failure.tenant_id, failure.poisoned) == (broken, True)
    assert failure.attempts == 1 + fanout.MAX_DEQUEUE_COUNT and failure.error == "KeyError"

    # The operator reads it.
    response = jobs_app.call("list_jobs", "GET", "jobs", operator_key)
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert {"job": "events_purge", "tenant_id": broken, "poisoned": True}.items() <= next(
        f for f in body["failures"] if f["tenant_id"] == broken).items()
    assert any(r["job"] == "events_purge" and r["walk_done"] for r in body["runs"])
    assert jobs_app.call("list_jobs", "GET", "jobs", "not-the-operator").status_code == 403

    # Repaired, the next run succeeds for it and its failure record goes.
    from shared_code.events import log
    from shared_code.storage import tables

    tables.upsert(log.TABLE, {"PartitionKey": broken, "RowKey": log.event_key(1),
                              "occurred_at": "2020-01-01T00:00:00.000Z"})
    jobs_app.timer("events_purge")
    jobs_app.drain()
    assert _old_events(broken) == 0
    assert job_store.failures("events_purge") == []


def test_a_walk_cut_by_its_budget_goes_on_where_it_stopped(jobs_app, make_tenants):
    from shared_code.jobs import catalog, fanout
    from shared_code.storage.tenants import iter_tenant_records

    make_tenants(30, "Walk")
    everyone = sorted(r["tenant_id"] for r in iter_tenant_records(select=["PartitionKey"]))
    assert jobs_app.drain() is not None and not jobs_app.messages(fanout.QUEUE)

    ticks = itertools.count()
    cut = catalog.start(catalog.EVENTS_PURGE, budget=7, clock=lambda: next(ticks))  # out of time after 7 tenants
    assert not cut.done and cut.walked == 7 and cut.after == everyone[6]
    [work, step] = jobs_app.messages(fanout.QUEUE)
    assert work["tenants"] == everyone[:7]
    assert step["walk"]["after"] == everyone[6] and step["run"] == cut.run_id

    # The continuation message walks on from the eighth tenant; nothing before it is enqueued again.
    enqueued = []
    while taken := jobs_app.take():
        enqueued.extend(t for message in taken for t in message.get("tenants") or [])
    assert sorted(enqueued) == everyone and len(enqueued) == len(set(enqueued))


def test_a_message_that_is_not_a_job_is_dropped_not_retried(jobs_app):
    from shared_code.jobs import catalog

    for body in (b"not json", b"[]", b'{"job": "rm -rf"}', b'{"job": "events_purge", "tenants": ["../x"]}',
                 json.dumps({"job": "events_purge", "tenants": ["t" * 3] * 101}).encode(),
                 b'{"job": "events_purge", "walk": {"after": 5}}'):
        assert catalog.handle(body) == "dropped"
    # Counts that are not counts are taken as none: the work is done, never a crash to retry five times.
    assert catalog.handle(b'{"job": "events_purge", "tenants": ["nobody-123"], "retry": "x", "run": [1]}') == "work"


def test_a_timer_walk_that_fails_midway_hands_over_from_the_last_tenant_it_enqueued(jobs_app, make_tenants):
    """The timer's walk has no retry of its own: failing at the 8th tenant, it leaves a continuation message after
    the 6th (the last whose shard of 3 was sent), and the queue finishes the walk."""
    import pytest

    from shared_code.jobs import catalog, fanout
    from shared_code.storage.tenants import iter_tenant_records

    make_tenants(10, "Handover")
    everyone = sorted(r["tenant_id"] for r in iter_tenant_records(select=["PartitionKey"]))
    jobs_app.drain()
    purge = catalog.jobs()[catalog.EVENTS_PURGE]
    seen: list[str] = []

    def wanted(row: dict) -> bool:
        seen.append(row["PartitionKey"])
        if len(seen) == 8:
            raise ConnectionError("the store went away")
        return True

    failing = fanout.Job(purge.name, fanout.Source(purge.source.table, purge.source.filter, purge.source.parameters,
                                                   wanted=wanted), purge.work, per_message=3)
    with pytest.raises(ConnectionError):
        fanout.start(failing)
    messages = jobs_app.messages(fanout.QUEUE)
    assert [m["tenants"] for m in messages if "tenants" in m] == [everyone[:3], everyone[3:6]]
    assert [m["walk"]["after"] for m in messages if "walk" in m] == [everyone[5]]
    enqueued = []
    while taken := jobs_app.take():
        enqueued.extend(t for message in taken for t in message.get("tenants") or [])
    assert sorted(enqueued) == everyone and len(enqueued) == len(set(enqueued))
