"""The end-of-trust reactions are a consumer of the event log (shared_code/sign_in/trust.py, shared_code/events/consumer.py):
a dismissal whose process dies right after its commit — before the message that wakes the consumers was sent —
still reaches the product as a back-channel logout token, once the sweep finds the consumer behind the log and
a running host's consumer handles the event. The stored change refuses the old tokens at once meanwhile, and
handling the same event again ends nothing and queues no second token."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from shared_code.sign_in import trust
from shared_code.events import log as event_log
from shared_code.events import shapes
from shared_code.events.api import encode_cursor
from shared_code.jobs import catalog
from shared_code.storage import directory
from shared_code.storage import oidc as oidc_store
from shared_code.storage import tables
from tests.oidc.test_logout import _signed_in, product  # noqa: F401 - fixtures
from tests.oidc.test_trust_ends import _ended
from tests.support.waiting import wait_until


def test_a_dismissal_whose_process_died_after_the_commit_still_reaches_the_product(op, product, employee,
                                                                                   monkeypatch: pytest.MonkeyPatch):
    tokens = _signed_in(op, product, employee)
    # The consumer has handled what provisioning wrote (provisioning's messages name no type it handles, so they
    # leave it asleep; here it runs at once, or after the host's run that holds its lease).
    wait_until(lambda: trust.CONSUMER.run(op.tenant_id).outcome == "idle", what="the consumer caught up with provisioning")
    # The dismissal, committed by this process as SCIM's PATCH commits it (the user row and its events in one
    # transaction); no wake-up message follows it, as if the process died right after the commit.
    monkeypatch.setattr(event_log, "after_commit", [])
    record = directory.get_user_record(op.tenant_id, employee["id"])
    directory.save_user(op.tenant_id, record, {**record.data, "active": False})
    head = event_log.last_sequence(op.tenant_id)

    # Nothing reacted yet: the consumer is behind, no logout token came, the session row is live; but the stored
    # change already refuses the access token.
    assert trust.CONSUMER.behind(op.tenant_id)
    assert not [t for t in product.logout_tokens if t["sid"] == tokens["claims"]["sid"]]
    refused = op.userinfo(tokens["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token", refused.text

    # The sweep's check (the `trust_check` job's unit of work) finds the consumer behind and wakes the running
    # host's consumer, which ends the session and sends the product its logout token.
    catalog.check_trust(op.tenant_id, datetime.now(timezone.utc))
    _ended(op, product, tokens)
    wait_until(lambda: trust.CONSUMER.position(op.tenant_id) >= head, what="the consumer's position at the log's head")
    assert not trust.CONSUMER.behind(op.tenant_id)
    assert catalog.check_trust(op.tenant_id, datetime.now(timezone.utc)) is False  # caught up: no message

    # At least once, idempotent: the same event handled again ends nothing (no second token is queued).
    dismissed = [e for e in event_log.read(op.tenant_id, 0, 500) if e["type"] == shapes.EMPLOYEE_DISMISSED
                 and e["data"]["id"] == employee["id"]]
    assert len(dismissed) == 1
    assert trust.react(op.tenant_id, dismissed[0]) == 0


def test_an_old_dismissal_handled_again_spares_the_sessions_of_the_rehired_employee(op, product, employee):
    op.sso.set_active(employee, False)
    op.sso.set_active(employee, True)
    tokens = _signed_in(op, product, employee)
    dismissed = [e for e in event_log.read(op.tenant_id, 0, 500) if e["type"] == shapes.EMPLOYEE_DISMISSED]
    assert dismissed
    assert trust.react(op.tenant_id, dismissed[-1]) == 0  # the session began after the dismissal
    assert oidc_store.session_is_live(op.tenant_id, employee["id"], tokens["claims"]["sid"])
    # A session written before sessions recorded their start is spared too, the employee being active again.
    key = f"{oidc_store.SESSION}{employee['id']}:{tokens['claims']['sid']}"
    row = {k: v for k, v in tables.get(tables.OIDC, op.tenant_id, key).items() if k != "started_at"}
    tables.update(tables.OIDC, row, etag=None, replace=True)
    assert oidc_store.get_session(op.tenant_id, employee["id"], tokens["claims"]["sid"]).started_at is None
    assert trust.react(op.tenant_id, dismissed[-1]) == 0
    assert oidc_store.session_is_live(op.tenant_id, employee["id"], tokens["claims"]["sid"])


def test_the_internal_event_of_a_cancelled_setup_is_not_shown_to_the_product(op):
    assert op.sso.handle.api("POST", "sso/cancel").status_code == 200
    logged = event_log.read(op.tenant_id, 0, 500)
    revoked = [e for e in logged if e["type"] == shapes.SESSIONS_REVOKED]
    assert [e["data"]["why"] for e in revoked] == [shapes.SETUP_CANCELLED]
    listed = requests.get(f"{op.sso.base_url}/api/tenants/{op.tenant_id}/events", headers=op.operator,
                          params={"limit": "500"}, timeout=30)
    assert listed.status_code == 200, listed.text
    assert shapes.SESSIONS_REVOKED not in {e["type"] for e in listed.json()["events"]}
    assert listed.json()["next"] == encode_cursor(logged[-1]["sequence"])  # read past it all the same
