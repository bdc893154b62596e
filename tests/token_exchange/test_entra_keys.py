"""Entra's signing keys: fetched once and cached in Table Storage, fetched again for a rollover (a token with a kid
we have not seen), never more than once per interval however many unknown kids arrive, refreshed daily, and a key
Entra stops publishing stops verifying."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared_code.entra import keys
from shared_code.oidc.errors import OAuthError
from shared_code.oidc.token_exchange import exchange
from tests.support.entra import new_key


@pytest.fixture(autouse=True)
def no_memory():
    """Each test starts from the table, as a fresh instance would."""
    keys.forget_memory()
    yield
    keys.forget_memory()


def exchanges(mobile, token, now=None) -> bool:
    try:
        exchange(mobile.tenant_id, None, mobile.form(token), now=now)
        return True
    except OAuthError as error:
        assert error.error == "invalid_request", error.description
        return False


def test_keys_are_fetched_once_and_then_served_from_the_table(mobile, alice):
    for _ in range(3):
        assert exchanges(mobile, mobile.id_token(alice))
        keys.forget_memory()  # another instance: it reads the table, not Entra
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 1


def test_a_rollover_works_after_one_fetch_and_the_rotated_out_key_stops_verifying(mobile, alice):
    old = mobile.entra.signing_key(mobile.entra_tenant_id)
    assert exchanges(mobile, mobile.id_token(alice))
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 1

    mobile.entra.rotate(mobile.entra_tenant_id)  # Entra publishes a new key, signs with it, drops the old one
    assert exchanges(mobile, mobile.id_token(alice))
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 2
    assert exchanges(mobile, mobile.id_token(alice))
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 2

    with pytest.raises(OAuthError) as caught:
        exchange(mobile.tenant_id, None, mobile.form(mobile.id_token(alice, key=old)))
    assert "does not publish" in caught.value.description
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 2


def test_a_flood_of_unknown_kids_is_not_a_flood_of_fetches(mobile, alice):
    assert exchanges(mobile, mobile.id_token(alice))
    for _ in range(25):
        assert not exchanges(mobile, mobile.id_token(alice, key=new_key() if _ < 2 else None,
                                                     header={"kid": uuid.uuid4().hex}))
    # the first unknown kid may fetch (it could be a rollover); the rest wait for the interval
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 2
    assert exchanges(mobile, mobile.id_token(alice))


def test_after_the_interval_an_unknown_kid_may_fetch_again(mobile, alice):
    now = datetime.now(timezone.utc)
    assert not exchanges(mobile, mobile.id_token(alice, key=new_key()), now=now)
    assert not exchanges(mobile, mobile.id_token(alice, key=new_key()), now=now)
    fetched = mobile.entra.fetches[mobile.entra_tenant_id]
    assert fetched == 2  # the first fill, then one unknown-kid fetch
    later = now + keys.UNKNOWN_KID_REFETCH_INTERVAL + timedelta(seconds=1)
    mobile.entra.rotate(mobile.entra_tenant_id, keep_old=True)
    keys.forget_memory()
    token = mobile.id_token(alice, iat=int(later.timestamp()), nbf=int(later.timestamp()),
                            exp=int(later.timestamp()) + 3600)
    assert exchanges(mobile, token, now=later)
    assert mobile.entra.fetches[mobile.entra_tenant_id] == fetched + 1


def test_cached_keys_are_refreshed_after_a_day_and_kept_when_entra_is_down(mobile, alice):
    now = datetime.now(timezone.utc)
    assert exchanges(mobile, mobile.id_token(alice), now=now)
    tomorrow = now + keys.KEYS_MAX_AGE + timedelta(minutes=1)
    stamp = int(tomorrow.timestamp())

    def token():
        return mobile.id_token(alice, iat=stamp, nbf=stamp, exp=stamp + 3600)

    mobile.entra.status[mobile.entra_tenant_id] = 500
    try:
        keys.forget_memory()
        assert exchanges(mobile, token(), now=tomorrow)  # the refresh failed; the cached keys still verify
    finally:
        mobile.entra.status.pop(mobile.entra_tenant_id)
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 2
    later = tomorrow + keys.UNKNOWN_KID_REFETCH_INTERVAL + timedelta(seconds=1)
    stamp = int(later.timestamp())
    keys.forget_memory()
    assert exchanges(mobile, token(), now=later)  # tried again after the pause, and now it works
    assert mobile.entra.fetches[mobile.entra_tenant_id] == 3


def test_parallel_unknown_kids_on_a_cold_cache_fetch_at_most_twice(mobile, alice):
    """Instances racing on a cold cache: one fills it, one fetches for the unknown kid, the rest only read."""
    from concurrent.futures import ThreadPoolExecutor

    forged = [mobile.id_token(alice, header={"kid": uuid.uuid4().hex}) for _ in range(12)]

    def attempt(token):
        keys.forget_memory()
        return exchanges(mobile, token)

    with ThreadPoolExecutor(12) as pool:
        assert not any(pool.map(attempt, forged))
    assert mobile.entra.fetches[mobile.entra_tenant_id] <= 2
