"""Every end of trust ends every session it vouched for (issue 22): the setup cancelled, the identity provider
replaced (by the admin before SSO is enabled, by the operator after), SSO turned off, the product's client deleted,
the employee dismissed or deleted. Each time the product hears it on its back channel (the sample product
receives and verifies the logout token) and the session's access token stops working at UserInfo; the Gatehouse
cookie session ends too. Entra's single logout ends the cookie session it names."""
from __future__ import annotations

import requests

from shared_code.storage import tables
from tests.oidc.test_logout import _signed_in, entra, product  # noqa: F401 - fixtures
from tests.sso.conftest import SCIM_JSON, session_of
from tests.support.idp import TestIdp
from tests.support.waiting import wait_until


def _ended(op, product, tokens) -> None:
    """The product heard the end on its back channel, and the access token is refused."""
    token = wait_until(lambda: [t for t in product.logout_tokens if t["sid"] == tokens["claims"]["sid"]],
                       what="a back-channel logout token for the session")[0]
    assert token["sub"] == tokens["claims"]["sub"] and token["aud"] == product.client_id
    refused = op.userinfo(tokens["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token", refused.text


def _enable(op) -> None:
    tables.update(tables.TENANTS, {"PartitionKey": op.tenant_id, "RowKey": "tenant", "status": "enabled",
                                   "self_check_at": "2026-01-01T00:00:00+00:00"}, etag=None)


def test_cancelling_the_setup_ends_the_products_and_the_cookie_sessions(op, product, employee):
    tokens = _signed_in(op, product, employee)
    cookie = session_of(op.sso.answer_login(employee))
    assert op.sso.me(cookie).status_code == 200
    cancelled = op.sso.handle.api("POST", "sso/cancel")
    assert cancelled.status_code == 200, cancelled.text
    _ended(op, product, tokens)
    assert op.sso.me(cookie).status_code == 401


def test_the_admin_connecting_another_idp_ends_the_old_idps_sessions(op, product, employee):
    tokens = _signed_in(op, product, employee)
    cookie = session_of(op.sso.answer_login(employee))
    assert op.sso.connect(TestIdp(key_label="trust-ends-new-idp")).status_code == 200
    _ended(op, product, tokens)
    assert op.sso.me(cookie).status_code == 401


def test_the_operator_moving_an_enabled_tenant_to_another_idp_ends_its_sessions(op, product, employee):
    tokens = _signed_in(op, product, employee)
    _enable(op)
    other = TestIdp(key_label="trust-ends-operator-idp")
    moved = requests.post(f"{op.sso.base_url}/api/tenants/{op.tenant_id}/sso/idp-metadata", headers=op.operator,
                          json={"metadata_xml": other.metadata_xml().decode()}, timeout=30)
    assert moved.status_code == 200, moved.text
    _ended(op, product, tokens)


def test_sso_turned_off_ends_the_sessions_and_refuses_their_tokens(op, product, employee):
    tokens = _signed_in(op, product, employee)
    cookie = session_of(op.sso.answer_login(employee))
    _enable(op)
    off = requests.post(f"{op.sso.base_url}/api/tenants/{op.tenant_id}/sso/disable", headers=op.operator, timeout=30)
    assert off.status_code == 200, off.text
    _ended(op, product, tokens)
    assert op.sso.me(cookie).status_code == 401


def test_deleting_the_client_ends_its_sessions_and_its_tokens(op, product, employee):
    tokens = _signed_in(op, product, employee)
    deleted = requests.delete(f"{op.clients_url}/{product.client_id}", headers=op.operator, timeout=30)
    assert deleted.status_code == 204, deleted.text
    _ended(op, product, tokens)


def test_dismissing_or_deleting_the_employee_ends_the_sessions(op, product, employee):
    tokens = _signed_in(op, product, employee)
    op.sso.set_active(employee, False)
    _ended(op, product, tokens)

    op.sso.set_active(employee, True)
    again = _signed_in(op, product, employee)
    removed = requests.delete(f"{op.sso.handle.scim_url}/Users/{employee['id']}", timeout=30,
                              headers={"Authorization": f"Bearer {op.sso._scim_token}", "Content-Type": SCIM_JSON})
    assert removed.status_code == 204, removed.text
    _ended(op, product, again)


def test_a_code_issued_before_the_trust_ended_is_not_redeemed(op, product, employee):
    from shared_code.sign_in import trust

    authorized = op.sign_in(employee, client=product.client)
    assert op.sso.handle.api("POST", "sso/cancel").status_code == 200
    # The reaction ends the code's session, as a rule right after the answer (inline) and at the latest when the
    # queue's consumer gets to it (another worker may hold the lease: trust.py's window); wait for the consumer.
    wait_until(lambda: not trust.CONSUMER.behind(op.tenant_id), what="the end-of-trust consumer to catch up")
    refused = op.redeem(authorized, client=product.client)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text


def test_entra_single_logout_ends_the_cookie_session_it_names(op, employee, entra):
    first = session_of(op.sso.answer_login(employee, session_index="_entra-cookie-1"))
    second = session_of(op.sso.answer_login(employee, session_index="_entra-cookie-2"))
    assert op.sso.me(first).status_code == 200 and op.sso.me(second).status_code == 200
    answer = requests.get(entra.logout_request_url(op.sso.sp_entity_id, employee["userName"], "_entra-cookie-1"),
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text
    ended = op.sso.me(first)
    assert ended.status_code == 401 and "signed out" in ended.json()["message"]
    assert op.sso.me(second).status_code == 200  # another sign-in of the same employee goes on
