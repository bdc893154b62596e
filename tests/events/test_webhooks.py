"""Webhooks: the operator's endpoint API, Standard Webhooks signatures checked with the `standardwebhooks`
package, the secret rotation, the test delivery, and delivery's answers to a receiver that fails."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import requests
from product import Operator, WebhookReceiver
from tests.support.waiting import wait_until
from standardwebhooks import Webhook


@pytest.fixture
def operator(scim, operator_key) -> Operator:
    return Operator(scim.tenant.base_url, operator_key, scim.tenant.tenant_id)


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.stop()


def connect(operator: Operator, receiver: WebhookReceiver) -> str:
    response = operator.put(receiver.url)
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    receiver.secret = secret
    return secret


def test_only_the_operator_manages_the_webhook_and_the_url_follows_the_outbound_rules(scim, operator, receiver):
    admin = requests.put(operator.url, json={"url": receiver.url}, timeout=30,
                         # its own client address: a wrong operator key counts against the client that sent it,
                         # and the rest of the suite (no address: "unknown") must not inherit the failure
                         headers={"Authorization": f"Bearer {scim.tenant.admin_key}",
                                  "X-Forwarded-For": "203.0.113.14"})
    assert admin.status_code in (401, 403)
    for bad in ("ftp://example.com/x", "https://user:pw@example.com/x", "not a url"):
        response = operator.put(bad)
        assert response.status_code == 422 and response.json()["field"] == "url", response.text
    extra = requests.put(operator.url, json={"url": receiver.url, "secret": "mine"}, headers=operator.headers,
                         timeout=30)
    assert extra.status_code == 422 and extra.json()["field"] == "secret"
    assert requests.get(operator.url, headers=operator.headers, timeout=30).status_code == 404
    body = operator.put(receiver.url).json()
    assert body["url"] == receiver.url and body["secret"].startswith("whsec_")
    status = operator.get()
    assert status["enabled"] is True and "secret" not in str(status).replace("previous_secret_expires_at", "")
    assert requests.delete(operator.url, headers=operator.headers, timeout=30).status_code == 204
    assert requests.get(operator.url, headers=operator.headers, timeout=30).status_code == 404


def test_events_are_delivered_signed_in_order_with_the_events_api_ids(scim, operator, receiver, reader):
    connect(operator, receiver)
    user = scim.create_user(displayName="Webhooked")
    scim.create_group(members=[{"value": user["id"]}])
    wait_until(lambda: len(receiver.copy.applied) == 4)  # created, group created, members added, employee updated
    from_api = reader.poll()
    delivered = [event for _, event in receiver.arrivals]
    assert [e["id"] for e in delivered] == [e["id"] for e in from_api]
    assert delivered == from_api  # the same event, byte for byte as JSON
    assert receiver.rejected_signatures == 0 and receiver.copy.out_of_order == []
    status = wait_until(lambda: (s := operator.get())["pending"] == 0 and s)
    assert status["delivered_sequence"] == 4 and status["last_attempts"][0]["outcome"] == "delivered"


def test_the_test_delivery_and_a_rotation_that_signs_with_both_secrets(scim, operator, receiver):
    old = connect(operator, receiver)
    test = operator.post("test")
    assert test.status_code == 200 and test.json()["delivered"] is True, test.text
    rotated = operator.post("rotate-secret").json()
    assert rotated["secret"] != old and rotated["secret"].startswith("whsec_")
    assert datetime.fromisoformat(rotated["previous_secret_expires_at"].replace("Z", "+00:00")) > datetime.now(
        timezone.utc)
    receiver.secret = old  # a receiver that has not switched yet still verifies
    assert operator.post("test").json()["delivered"] is True
    receiver.secret = rotated["secret"]
    assert operator.post("test").json()["delivered"] is True
    # both signatures, space-separated, each checkable with its own secret
    headers = {"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time()))}
    signature = " ".join(Webhook(s).sign("msg_x", datetime.now(timezone.utc), "{}") for s in (old, rotated["secret"]))
    for secret in (old, rotated["secret"]):
        Webhook(secret).verify("{}", {**headers, "webhook-signature": signature})


def test_retry_after_is_honoured_then_delivery_resumes(scim, operator, receiver):
    connect(operator, receiver)
    receiver.mode = ("status", 503, 2)
    scim.create_user()
    status = wait_until(lambda: (s := operator.get())["last_attempts"] and s)
    assert status["last_attempts"][0]["status"] == 503 and status["next_attempt_at"]
    # That the delay is the Retry-After's and not the backoff's is asserted exactly, on the run's own clock, in
    # tests/events/test_webhook_and_log_rules.py (a window on the wall clock here overlapped the backoff's 2.5 to 5 s).
    receiver.mode = "ok"
    wait_until(lambda: len(receiver.copy.applied) == 1)
    # the position moves after the receiver answers 204: wait for it rather than read it at once
    wait_until(lambda: operator.get()["pending"] == 0)
    assert len(receiver.copy.applied) == 1  # delivered once


def test_410_disables_the_endpoint_and_a_put_resumes_where_it_stopped(scim, operator, receiver):
    connect(operator, receiver)
    receiver.mode = "gone"
    scim.create_user()
    status = wait_until(lambda: (s := operator.get())["enabled"] is False and s)
    assert "410" in status["disabled_reason"] and status["pending"] == 1
    scim.create_user()
    receiver.mode = "ok"
    assert operator.put(receiver.url).status_code == 200
    wait_until(lambda: len(receiver.copy.applied) == 2)
    assert [e["sequence"] for _, e in receiver.arrivals] == [1, 2]


def test_every_delivery_and_the_test_delivery_match_the_documents_webhooks(scim, operator, receiver):
    """What the receiver gets is what /api/openapi.json's `webhooks` section says, type by type (the JSON
    Schema of the entry for the event's type, with the document's components), the test delivery included."""
    import jsonschema_rs

    document = requests.get(f"{scim.tenant.base_url}/api/openapi.json", timeout=30).json()
    connect(operator, receiver)
    user = scim.create_user(displayName="Documented", title="Writer")
    group = scim.create_group(members=[{"value": user["id"]}])
    assert scim.tenant.api("PUT", "role-mappings", json={"mappings": {group["id"]: ["admin"]}}).status_code == 200
    assert scim.patch(f"/Users/{user['id']}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                               "Operations": [{"op": "replace", "path": "active", "value": False}]}
                      ).status_code == 200
    assert operator.post("test").json()["delivered"] is True
    wait_until(lambda: any(e["type"] == "employee.admin_revoked" for _, e in receiver.arrivals))
    delivered = [event for _, event in receiver.arrivals]
    assert {e["type"] for e in delivered} >= {"webhook.test", "employee.created", "group.created",
                                              "group.members_added", "employee.updated", "employee.roles_changed",
                                              "employee.admin_granted", "employee.dismissed",
                                              "employee.admin_revoked"}
    for event in delivered:
        entry = document["webhooks"][event["type"]]["post"]["requestBody"]["content"]["application/json"]["schema"]
        validator = jsonschema_rs.Draft202012Validator({**entry, "components": document["components"]})
        errors = [e.message for e in validator.iter_errors(event)]
        assert errors == [], (event["type"], errors)
    # and a wrong one does not pass: the schema checks the data of the type
    entry = document["webhooks"]["employee.updated"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({**entry, "components": document["components"]})
    updated = next(e for e in delivered if e["type"] == "employee.updated")
    assert validator.is_valid(updated)
    assert not validator.is_valid({**updated, "data": {**updated["data"], "roles": "admin"}})
    assert not validator.is_valid({**updated, "data": {k: v for k, v in updated["data"].items() if k != "title"}})
