"""Token exchange never waits on a failure, and an Entra token signs in once in all (issue 22).

- After a failed fetch of Entra's keys, every exchange answers 503 with Retry-After at once: no request sleeps
  polling storage for another's fetch (the storage round trips of a flood are counted: a poll would multiply them).
- Concurrent exchanges on a cold cache wait for the one fetch in flight in this instance, without polling storage.
- One Entra ID token exchanged at two of our tenants that trust the same app registration: the second is refused.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared_code.entra import keys
from shared_code.oidc.errors import OAuthError
from shared_code.oidc.token_exchange import exchange
from shared_code.storage import tables
from tests.token_exchange.conftest import SCIM_JSON, MobileTenant  # noqa: F401 - the fixture's type


@pytest.fixture(autouse=True)
def no_memory():
    keys.forget_memory()
    yield
    keys.forget_memory()


def _outcome(mobile: MobileTenant, token: str):
    try:
        return exchange(mobile.tenant_id, None, mobile.form(token)).id
    except OAuthError as error:
        return error


def test_a_failed_key_fetch_answers_every_request_503_with_retry_after_at_once(mobile, alice):
    mobile.entra.status[mobile.entra_tenant_id] = 500
    try:
        first = _outcome(mobile, mobile.id_token(alice))
        assert isinstance(first, OAuthError) and first.status == 503, first
        assert int(first.headers["Retry-After"]) >= 1
        assert mobile.entra.fetches[mobile.entra_tenant_id] == 1

        before = tables.round_trips()
        with ThreadPoolExecutor(12) as pool:
            flood = list(pool.map(lambda _: _outcome(mobile, mobile.id_token(alice)), range(24)))
        spent = tables.round_trips() - before
        for answer in flood:
            assert isinstance(answer, OAuthError) and answer.status == 503, answer
            assert answer.error == "temporarily_unavailable" and 1 <= int(answer.headers["Retry-After"]) <= 10
        assert mobile.entra.fetches[mobile.entra_tenant_id] == 1  # nobody asked Entra again
        # Each refusal reads the tenant and the keys row, nothing more: a request polling storage for another's
        # fetch (what it did before) would read the keys row every 0.1 s.
        assert spent <= 24 * 3, spent

        keys.forget_memory()  # another instance: it learns of the failure from the row, and answers at once too
        before = tables.round_trips()
        other = _outcome(mobile, mobile.id_token(alice))
        assert isinstance(other, OAuthError) and other.status == 503 and "Retry-After" in other.headers
        assert tables.round_trips() - before <= 3
        assert mobile.entra.fetches[mobile.entra_tenant_id] == 1
    finally:
        mobile.entra.status.pop(mobile.entra_tenant_id, None)


def test_concurrent_requests_wait_for_the_fetch_in_flight_without_polling_storage(mobile, alice):
    mobile.entra.delay[mobile.entra_tenant_id] = 1.5  # Entra is slow: the crowd arrives while the fetch runs
    try:
        tokens = [mobile.id_token(alice) for _ in range(8)]
        before = tables.round_trips()
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda token: _outcome(mobile, token), tokens))
        crowd = tables.round_trips() - before
    finally:
        mobile.entra.delay.pop(mobile.entra_tenant_id, None)
    assert outcomes == [alice["id"]] * 8, outcomes
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 1

    keys.forget_memory()
    before = tables.round_trips()
    assert _outcome(mobile, mobile.id_token(alice)) == alice["id"]  # cached in the table: the plain cost
    single = tables.round_trips() - before
    # A waiter costs about what a plain exchange costs (the one fetcher adds its claim and save; concurrent
    # connections to the store add a few): a waiter polling the keys row every 0.1 s for 1.5 s would add ~15
    # reads each (the code before this measured 140 round trips here, against 4 for one exchange).
    assert crowd < 2 * 8 * single, (crowd, single)


def test_one_entra_token_is_exchanged_once_across_every_tenant(mobile, alice, new_tenant, app_settings):
    # A second Gatehouse tenant trusting the same Entra tenant and app registration, with the same employee.
    handle = new_tenant("Acme Mobile Twin", "https://twin.example.com")
    assert handle.api("POST", "sso/idp-metadata",
                      json={"metadata_xml": mobile.idp.metadata_xml().decode()}).status_code == 200
    assert handle.api("PUT", "mobile", json={
        "msal_configuration": mobile.msal,
        "ios_redirect_uri": f"msauth.{app_settings['MOBILE_IOS_BUNDLE_ID']}://auth"}).status_code == 200
    twin_user = requests.post(f"{handle.scim_url}/Users", timeout=30, headers={
        "Authorization": f"Bearer {handle.scim_token()}", "Content-Type": SCIM_JSON}, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": alice["userName"], "active": True,
        "externalId": alice["externalId"], "emails": [{"value": alice["userName"], "type": "work"}]})
    assert twin_user.status_code == 201, twin_user.text

    token = mobile.id_token(alice)
    assert exchange(mobile.tenant_id, None, mobile.form(token)).id == alice["id"]
    with pytest.raises(OAuthError) as caught:
        exchange(handle.tenant_id, None, mobile.form(token))
    assert caught.value.error == "invalid_request" and "exchanged already" in caught.value.description
    # A fresh token signs in at the twin: it is the replay that is refused, not the tenant.
    assert exchange(handle.tenant_id, None, mobile.form(mobile.id_token(alice))).id == twin_user.json()["id"]
