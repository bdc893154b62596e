"""The webhook sweep (every minute) checks a rotating shard of the endpoints through `gatehouse-jobs`: a
delivery message that was lost is made up for, and every endpoint is checked within a cycle of runs whatever
their number, each run walking only its shard (issue 20)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))  # the product's webhook receiver

from product import WebhookReceiver  # noqa: E402


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.stop()


def _endpoint(tenant_id: str, receiver: WebhookReceiver) -> None:
    from shared_code.webhooks import endpoint

    receiver.secret = endpoint.put(tenant_id, {"url": receiver.url}).secret


def test_a_lost_webhook_message_is_made_up_for_by_the_sweep(jobs_app, make_tenants, receiver):
    from shared_code.events import log as event_log
    from shared_code.events.shapes import Change
    from shared_code.webhooks import queue

    [tenant_id] = make_tenants(1, "Lost message")
    _endpoint(tenant_id, receiver)
    jobs_app.drain("webhook_delivery")
    hooks = list(event_log.after_commit)
    event_log.after_commit[:] = [hook for hook in hooks if hook is not queue.notifier]
    try:  # the change is written; the process dies before its delivery message is sent
        event_log.transact(tenant_id, [], [Change("sso.enabled", {"status": "enabled", "enabled_at": None})])
    finally:
        event_log.after_commit[:] = hooks
    assert jobs_app.messages(queue.QUEUE) == [] and receiver.arrivals == []

    jobs_app.timer("webhook_sweep")
    jobs_app.drain("run_job")  # the shard's check finds the endpoint behind its log ...
    assert jobs_app.messages(queue.QUEUE) == [{"tenant": tenant_id}]
    jobs_app.drain("webhook_delivery")  # ... and its delivery run sends the event
    assert [event["type"] for _, event in receiver.arrivals] == ["sso.enabled"]

    jobs_app.timer("webhook_sweep")  # delivered: the next check enqueues nothing
    jobs_app.drain("run_job")
    assert jobs_app.messages(queue.QUEUE) == []


def test_each_sweep_checks_one_shard_and_a_cycle_checks_every_endpoint(jobs_app, make_tenants, receiver,
                                                                        monkeypatch):
    from shared_code.jobs import catalog
    from shared_code.storage import jobs as job_store

    monkeypatch.setattr(catalog, "WEBHOOK_MIN_SHARD", 2)
    for tenant_id in make_tenants(5, "Rotating"):
        _endpoint(tenant_id, receiver)
    jobs_app.drain("run_job")
    endpoints = {row["PartitionKey"] for row in _endpoint_rows()}
    job_store.save_cursor(catalog.WEBHOOK_CHECK, after="")

    checked: list[str] = []
    for _ in range(len(endpoints) // 2 + 2):  # a cycle: until a run reaches the last endpoint
        jobs_app.timer("webhook_sweep")
        shard = [t for message in jobs_app.take() for t in message.get("tenants") or []]
        assert len(shard) <= 2  # this run's shard, not every endpoint
        checked.extend(shard)
        if not job_store.cursor(catalog.WEBHOOK_CHECK)["after"]:
            break
    assert sorted(checked) == sorted(endpoints)
    # The cycle is remembered: the next run starts over, and sizes its shard from the cycle it saw.
    assert job_store.cursor(catalog.WEBHOOK_CHECK)["last_cycle_walked"] == len(endpoints)


def _endpoint_rows():
    from shared_code.storage import tables
    from shared_code.webhooks import endpoint

    return tables.query(endpoint.TABLE, "RowKey eq @row and enabled eq true", {"row": endpoint.ROW},
                        select=["PartitionKey"])


def test_a_failing_end_of_trust_run_holds_up_no_webhook(jobs_app, make_tenants, receiver, monkeypatch):
    """Both consumers ride one queue message: when the reactions fail (a bug, a store that stays down), the
    webhooks are still delivered, and the failure still reaches the host, which retries the message."""
    from shared_code.events import log as event_log
    from shared_code.events import shapes
    from shared_code.events.shapes import Change
    from shared_code.oidc import logout

    [tenant_id] = make_tenants(1, "Trust fails")
    _endpoint(tenant_id, receiver)
    jobs_app.drain("webhook_delivery")

    def broken(*args, **kwargs):
        raise RuntimeError("the reactions broke")

    monkeypatch.setattr(logout, "tenant_sessions_ended", broken)
    event_log.transact(tenant_id, [], [Change(shapes.SESSIONS_REVOKED, {"why": "sso_disabled", "sessions_valid_from": 0}),
                                       Change("sso.enabled", {"status": "enabled", "enabled_at": None})])
    assert jobs_app.wake_up_for(tenant_id)["types"] == sorted([shapes.SESSIONS_REVOKED, "sso.enabled"])
    with pytest.raises(RuntimeError, match="the reactions broke"):
        jobs_app.take("webhook_delivery")
    assert [event["type"] for _, event in receiver.arrivals] == ["sso.enabled"]
