"""Webhook and event-log rules, each tested so that breaking it fails here (issue 26; the breakages are listed in
docs/mutation-testing.md): a rotated secret keeps signing for 24 h and no longer, a failing event is retried for
3 days and then the endpoint is disabled, a 429/503's Retry-After is the delay of the next attempt, and the
event head is replaced only if it is still the one read (If-Match), so a writer with a stale head cannot reuse
a sequence number.

Time is given to the code (`clock=`, `at=`), never slept. The delivery runs here are the test's own: the
endpoint's lease is held past the real clock first, so the app host's queue trigger and sweep (which run on
the real clock) leave this tenant alone, and the test's clock starts after that lease.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from product import WebhookReceiver

from shared_code.events import log as event_log
from shared_code.events import retention
from shared_code.events.shapes import Change
from shared_code.webhooks import delivery, endpoint


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.stop()


def _own_tenant(scim, receiver: WebhookReceiver) -> datetime:
    """The tenant's endpoint, with its lease held for an hour of real time; returns the clock to run at."""
    tenant_id = scim.tenant.tenant_id
    receiver.secret = endpoint.put(tenant_id, {"url": receiver.url}).secret
    row = endpoint.read(tenant_id)
    real_now = datetime.now(timezone.utc)
    endpoint.merge(tenant_id, row["etag"], {"lease_owner": "tests/events/test_webhook_and_log_rules.py",
                                            "lease_until": endpoint.now_iso(real_now + timedelta(hours=1))})
    scim.create_user()  # one event to deliver
    return (real_now + timedelta(hours=2)).replace(microsecond=0)


def _at(moment: datetime):
    return lambda: moment


# ---- an endpoint deleted while its delivery runs --------------------------------------------------------------

def test_an_endpoint_deleted_during_its_delivery_ends_the_run_quietly(scim, receiver):
    tenant_id = scim.tenant.tenant_id
    start = _own_tenant(scim, receiver)
    receiver.mode = ("meanwhile", lambda: endpoint.delete(tenant_id))  # the operator's DELETE, mid-POST
    done = delivery.run(tenant_id, clock=_at(start))  # no exception: nothing left to deliver to, nothing to retry
    assert done.outcome == "none" and receiver.received == 1 and endpoint.read(tenant_id) is None


# ---- the rotation overlap: 24 hours --------------------------------------------------------------------------------

def test_a_rotated_secret_keeps_signing_for_24_hours_and_then_stops(scim, receiver):
    tenant_id = scim.tenant.tenant_id
    first = endpoint.put(tenant_id, {"url": receiver.url}).secret
    before = datetime.now(timezone.utc)
    second = endpoint.rotate_secret(tenant_id).secret
    after = datetime.now(timezone.utc)
    row = endpoint.read(tenant_id)
    assert endpoint.signing_secrets(row, tenant_id, after) == [second, first]
    assert endpoint.signing_secrets(row, tenant_id, before + timedelta(hours=24) - timedelta(seconds=1)) == [
        second, first]
    assert endpoint.signing_secrets(row, tenant_id, after + timedelta(hours=24)) == [second]
    assert endpoint.signing_secrets(row, tenant_id, after + timedelta(days=365)) == [second]


# ---- retries give up after 3 days ---------------------------------------------------------------------------------

def test_a_failing_event_is_retried_for_3_days_then_the_endpoint_is_disabled(scim, receiver):
    tenant_id = scim.tenant.tenant_id
    start = _own_tenant(scim, receiver)
    receiver.mode = ("status", 500, None)
    first = delivery.run(tenant_id, clock=_at(start))
    assert first.outcome == "retry" and receiver.received == 1
    almost = delivery.run(tenant_id, clock=_at(start + timedelta(days=3) - timedelta(minutes=1)))
    assert almost.outcome == "retry", "given up before 3 days had passed"
    assert endpoint.read(tenant_id)["enabled"] is True
    late = delivery.run(tenant_id, clock=_at(start + timedelta(days=3, minutes=1)))
    assert late.outcome == "disabled", "still retrying after 3 days"
    row = endpoint.read(tenant_id)
    assert row["enabled"] is False and "3 days" in row["disabled_reason"] and receiver.received == 3
    assert endpoint.parse_iso(row["disabled_at"]) == start + timedelta(days=3, minutes=1)


# ---- Retry-After is the next attempt's delay -------------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_schedules_the_next_attempt(scim, receiver, status):
    """120 s is far outside the first backoff (2.5 to 5 s), so an ignored header cannot pass by chance."""
    tenant_id = scim.tenant.tenant_id
    start = _own_tenant(scim, receiver)
    receiver.mode = ("status", status, 120)
    result = delivery.run(tenant_id, clock=_at(start))
    assert (result.outcome, result.retry_in) == ("retry", 120.0)  # what the queue trigger re-enqueues with
    assert endpoint.read(tenant_id)["next_attempt_at"] == endpoint.now_iso(start + timedelta(seconds=120))
    waiting = delivery.run(tenant_id, clock=_at(start + timedelta(seconds=119)))
    assert waiting.outcome == "waiting" and receiver.received == 1


def test_retry_after_as_an_http_date_and_its_bounds(scim, receiver):
    tenant_id = scim.tenant.tenant_id
    start = _own_tenant(scim, receiver)
    receiver.mode = ("status", 503, format_datetime(start + timedelta(minutes=7), usegmt=True))
    assert delivery.run(tenant_id, clock=_at(start)).retry_in == 420.0
    later = start + timedelta(minutes=7)
    receiver.mode = ("status", 429, str(10 ** 9))  # a receiver asking for decades gets the cap
    result = delivery.run(tenant_id, clock=_at(later))
    assert result.retry_in == delivery.MAX_RETRY_AFTER
    assert endpoint.read(tenant_id)["next_attempt_at"] == endpoint.now_iso(
        later + timedelta(seconds=delivery.MAX_RETRY_AFTER))


# ---- the event head: If-Match -----------------------------------------------------------------------------------------

def test_a_writer_with_a_stale_head_cannot_reuse_a_purged_sequence_number(app_settings):
    """Two instances: B wrote event 1 and remembers the head as it left it; A wrote events 2 and 3; retention
    purged all three. B's next write must notice the head moved (its ETag) and become event 4: written over the
    stale head it would be a second event 2, below the 3 a reader has already seen, and the head would go back."""
    tenant_id = "rules-head-" + uuid.uuid4().hex[:12]
    event_log.transact(tenant_id, [], [Change("test.written", {"by": "B"})])
    b_remembers = event_log._heads[tenant_id]  # instance B's cached (sequence, ETag)
    event_log.transact(tenant_id, [], [Change("test.written", {"by": "A"}), Change("test.written", {"by": "A"})])
    assert event_log.read_head(tenant_id)[0] == 3
    assert retention.purge_tenant(tenant_id, now=datetime.now(timezone.utc) + timedelta(days=31)) == 3
    event_log._heads[tenant_id] = b_remembers
    try:
        event_log.transact(tenant_id, [], [Change("test.written", {"by": "B, later"})])
    finally:
        event_log.forget_heads()
    written = event_log.read(tenant_id, 0, 10)
    assert [(e["sequence"], e["data"]["by"]) for e in written] == [(4, "B, later")]
    assert event_log.read_head(tenant_id)[0] == 4
