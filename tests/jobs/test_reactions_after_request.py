"""The end-of-trust reactions run in the request that committed their event, before it answers
(functions/_reactions.py); and the consumer never leaves a client that redeemed a code untold.

On the in-process host of tests/jobs/ nobody takes the `webhook-deliveries` message that the commit puts on the
queue (its queues run only when a test polls them), so what is done when the request answers was done by the
request itself. The race: a code redeemed between the consumer's read of the session and its write (the token
endpoint touches the session row under the ETag the code carries) makes the write fail; the consumer reads
again, now sees the client that redeemed, queues its logout token and ends the session; a code redeemed after
that is refused."""
from __future__ import annotations

import json
import secrets
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import azure.functions as func

from functions import _reactions
from shared_code.sign_in import trust
from shared_code.tenancy import tenants
from shared_code.events import log as event_log
from shared_code.events.consumer import TABLE
from shared_code.events.shapes import Change
from shared_code.oidc import backchannel
from shared_code.storage import oidc as oidc_store
from shared_code.storage import tables


FIXTURES = Path(__file__).resolve().parent.parent / "scim" / "fixtures"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _session(tenant_id: str, employee_id: str) -> str:
    sid = secrets.token_hex(8)
    oidc_store.save_browser_session(tenant_id, employee_id, sid, name_id=None, session_index=None,
                                    expires_at=_now() + timedelta(hours=1))
    return sid


def test_a_cancelled_setup_answers_once_its_sessions_have_ended(jobs_app):
    tenant, admin_key = tenants.create_tenant("Reactions in the request", "https://app.example.com")
    sids = [_session(tenant.tenant_id, "employee-a"), _session(tenant.tenant_id, "employee-b")]
    request = func.HttpRequest("POST", f"http://127.0.0.1/api/tenants/{tenant.tenant_id}/sso/cancel", body=b"",
                               headers={"authorization": f"Bearer {admin_key}"},
                               route_params={"tenant": tenant.tenant_id})
    answer = jobs_app.host.run(jobs_app.host.functions["cancel_sso_setup"], request).result()
    assert answer.status_code == 200, answer.get_body()
    # No queue message was taken: the request's own run of the consumer ended both sessions before it answered.
    assert not oidc_store.session_is_live(tenant.tenant_id, "employee-a", sids[0])
    assert not oidc_store.session_is_live(tenant.tenant_id, "employee-b", sids[1])
    assert not trust.CONSUMER.behind(tenant.tenant_id)
    assert trust.CONSUMER.position(tenant.tenant_id) == event_log.last_sequence(tenant.tenant_id)


def _call(jobs_app, name: str, method: str, path: str, token: str, route: dict, body: dict | None = None):
    request = func.HttpRequest(method, f"http://127.0.0.1/api/{path}", route_params=route,
                               headers={"authorization": f"Bearer {token}", "content-type": "application/scim+json"},
                               body=json.dumps(body).encode() if body is not None else b"")
    return jobs_app.host.run(jobs_app.host.functions[name], request).result()


def test_a_dismissal_over_scim_answers_once_the_employees_sessions_have_ended(jobs_app):
    tenant, _ = tenants.create_tenant("Reactions over SCIM", "https://app.example.com")
    _, token = tenants.rotate_scim_token(tenant.tenant_id)
    users = f"scim/{tenant.tenant_id}/v2/Users"
    created = _call(jobs_app, "scim_create_user", "POST", users, token, {"tenant": tenant.tenant_id},
                    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dana@contoso.example",
                     "externalId": "dana", "active": True, "emails": [{"value": "dana@contoso.example",
                                                                         "type": "work", "primary": True}]})
    assert created.status_code == 201, created.get_body()
    employee_id = json.loads(created.get_body())["id"]
    sid = _session(tenant.tenant_id, employee_id)
    dismissed = _call(jobs_app, "scim_patch_user", "PATCH", f"{users}/{employee_id}", token,
                      {"tenant": tenant.tenant_id, "id": employee_id},
                      json.loads((FIXTURES / "entra-default-disable-user.json").read_text()))
    assert dismissed.status_code == 200 and json.loads(dismissed.get_body())["active"] is False
    assert not oidc_store.session_is_live(tenant.tenant_id, employee_id, sid)  # ended before the answer
    assert not trust.CONSUMER.behind(tenant.tenant_id)


def test_a_request_whose_events_end_no_trust_does_not_run_the_consumer(jobs_app):
    tenant, _ = tenants.create_tenant("Reactions not needed", "https://app.example.com")
    with _reactions.after_request():
        event_log.transact(tenant.tenant_id, [], [Change("sso.enabled", {"status": "enabled", "enabled_at": "x"})])
    assert tables.get(TABLE, tenant.tenant_id, trust.CONSUMER.row) is None  # no lease taken, no round trip spent
    assert trust.CONSUMER.behind(tenant.tenant_id)  # the queue message and the sweep are its way


def test_a_code_redeemed_while_the_consumer_ends_its_session_gets_its_client_a_logout_token(jobs_app, monkeypatch):
    tenant, _ = tenants.create_tenant("Reactions race", "https://app.example.com")
    tenant_id, employee_id = tenant.tenant_id, "employee-r"
    client = oidc_store.ClientRecord("race" + secrets.token_hex(4), "web", None, ["https://product.example.com/cb"],
                                     [], None, "http://127.0.0.1:9/backchannel-logout", None, _now().isoformat())
    oidc_store.insert_client(tenant_id, client)
    sid = _session(tenant_id, employee_id)
    # The ACS hands the code the session row's ETag; the token endpoint redeems under it.
    etag_at_sign_in = tables.etag_of(tables.get(tables.OIDC, tenant_id, f"{oidc_store.SESSION}{employee_id}:{sid}"))
    issued = int(_now().timestamp())
    grant = oidc_store.CodeRecord(
        key=oidc_store.digest("code-" + sid), client_id=client.client_id, redirect_uri=client.redirect_uris[0],
        code_challenge="", nonce=None, scope="openid", employee_id=employee_id, sid=sid, auth_time=issued,
        code_expires_at=issued + 60, expires_at=_now() + timedelta(hours=1))
    tenants.cancel_setup(tenant_id)  # committed with its event; no request around it: the consumer runs below

    real, redeemed = backchannel.session_ended, []

    def redeemed_meanwhile(*args, **kwargs):
        queued = real(*args, **kwargs)  # the consumer has read the row and found no client to tell ...
        if not redeemed:  # ... when the token endpoint redeems the code, before the consumer's write
            redeemed.append(oidc_store.redeem(tenant_id, grant, etag_at_sign_in, _now()))
        return queued

    monkeypatch.setattr(backchannel, "session_ended", redeemed_meanwhile)
    assert trust.CONSUMER.run(tenant_id).outcome == "idle"
    assert redeemed == [oidc_store.REDEEMED]
    assert not oidc_store.session_is_live(tenant_id, employee_id, sid)
    told = oidc_store.get_pending_logout(tenant_id, f"{employee_id}:{sid}:{client.client_id}")
    assert told is not None and told.uri == client.backchannel_logout_uri
    # After the write, a code of that sign-in meets the ended session's ETag.
    later = replace(grant, key=oidc_store.digest("later-" + sid))
    assert oidc_store.redeem(tenant_id, later, etag_at_sign_in, _now()) == oidc_store.SESSION_ENDED
