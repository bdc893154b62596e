"""The signing keys Entra publishes for one Entra tenant (`{ENTRA_LOGIN_URL}/{tenant}/discovery/v2.0/keys`).

Where a key comes from, in order:
1. this instance's memory, for up to `MEMORY_SECONDS` (saves the table read on most exchanges);
2. the `entrakeys` table (shared by every instance), refetched in the background of a request once it is older than
   `KEYS_MAX_AGE` (Microsoft advises checking the keys daily; a failed refresh keeps the cached keys);
3. a fetch when a token names a `kid` we do not have — Entra publishes a new key before it signs with it, so an
   unknown kid is either a rollover we have not seen or a forgery. At most one such fetch per Entra tenant per
   `UNKNOWN_KID_REFETCH_INTERVAL`, across all instances (a claim on the table row decides who fetches): a flood of
   tokens with made-up kids costs table reads, not requests to Entra.
A refetch replaces the cached list, so a key Entra has stopped publishing stops verifying tokens.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta

from shared_code.entra.errors import EntraUnavailable
from shared_code.settings import get_settings
from shared_code.storage import entra_keys as store

log = logging.getLogger("gatehouse")

KEYS_MAX_AGE = timedelta(hours=24)
UNKNOWN_KID_REFETCH_INTERVAL = timedelta(minutes=5)
MEMORY_SECONDS = 60.0
FAILED_FETCH_PAUSE = timedelta(seconds=10)
FETCH_TIMEOUT = 4.0  # with the wait for another instance's fetch, an exchange stays inside the 10 s request budget
MAX_KEYS = 50  # Entra publishes a handful; more is not a key set we should store
_WAIT_STEP = 0.1

_memory: dict[str, tuple[float, store.CachedKeys]] = {}
_memory_lock = threading.Lock()


def keys_url(entra_tenant_id: str) -> str:
    return f"{get_settings().entra_login_url}/{entra_tenant_id}/discovery/v2.0/keys"


def signing_key(entra_tenant_id: str, kid: str, now: datetime) -> dict | None:
    """The public JWK named `kid` that Entra publishes for this tenant, or None when it does not publish one (as
    far as we may find out now). Raises EntraUnavailable when no keys can be had at all."""
    remembered = _remembered(entra_tenant_id)
    if remembered is not None and remembered.key(kid) is not None and not _stale(remembered, now):
        return remembered.key(kid)
    cached = _remember(store.read(entra_tenant_id))
    if cached is None or cached.fetched_at is None:
        cached = _first_fetch(entra_tenant_id, cached, now)
    elif _stale(cached, now):
        cached = _refresh(entra_tenant_id, cached, now)
    jwk = cached.key(kid)
    if jwk is not None:
        return jwk
    if cached.unknown_kid_claimed_at is not None and now - cached.unknown_kid_claimed_at < UNKNOWN_KID_REFETCH_INTERVAL:
        return None  # fetched for an unknown kid a moment ago: Entra will not have changed its mind since
    if not store.claim_fetch(entra_tenant_id, cached, now, unknown_kid=True):
        return _after_other_fetch(entra_tenant_id, cached, now).key(kid)
    try:
        return _fetch_and_save(entra_tenant_id, now).key(kid)
    except EntraUnavailable:
        log.warning(json.dumps({"event": "entra_keys_fetch", "entra_tenant": entra_tenant_id, "outcome": "failed",
                                "why": "unknown_kid"}))
        raise


def forget_memory() -> None:
    """Tests that change what Entra publishes behind the cache's back call this."""
    with _memory_lock:
        _memory.clear()


# ---- the three ways to a fetch ---------------------------------------------------------------------------------

def _first_fetch(entra_tenant_id: str, cached: store.CachedKeys | None, now: datetime) -> store.CachedKeys:
    if cached is not None and cached.claimed_at is not None and now - cached.claimed_at < FAILED_FETCH_PAUSE:
        # A first fetch was claimed moments ago and has not landed: it failed or is still running. Either way do
        # not pile more requests onto Entra.
        return _after_other_fetch_or_unavailable(entra_tenant_id, cached, now)
    if not store.claim_fetch(entra_tenant_id, cached, now, unknown_kid=False):
        return _after_other_fetch_or_unavailable(entra_tenant_id, cached, now)
    return _fetch_and_save(entra_tenant_id, now)


def _after_other_fetch_or_unavailable(entra_tenant_id: str, cached: store.CachedKeys | None,
                                       now: datetime) -> store.CachedKeys:
    waited = _after_other_fetch(entra_tenant_id, cached, now)
    if waited.fetched_at is None:
        raise EntraUnavailable("Microsoft Entra's signing keys could not be read yet; retry in a few seconds.",
                               retry_after=5)
    return waited


def _refresh(entra_tenant_id: str, cached: store.CachedKeys, now: datetime) -> store.CachedKeys:
    """The daily refresh: one instance fetches, the others keep using the cached keys meanwhile."""
    if cached.claimed_at is not None and now - cached.claimed_at < UNKNOWN_KID_REFETCH_INTERVAL:
        return cached  # someone is refreshing (or failed to a moment ago)
    if not store.claim_fetch(entra_tenant_id, cached, now, unknown_kid=False):
        return cached
    try:
        return _fetch_and_save(entra_tenant_id, now)
    except EntraUnavailable as error:
        log.warning(json.dumps({"event": "entra_keys_fetch", "entra_tenant": entra_tenant_id, "outcome": "failed",
                                "why": "refresh", "message": error.message}))
        return cached


def _after_other_fetch(entra_tenant_id: str, cached: store.CachedKeys | None, now: datetime) -> store.CachedKeys:
    """Another instance won the claim: wait (bounded) for its fetch to land, and use that. A claim older than a
    fetch can take will not land: no wait then."""
    latest = store.read(entra_tenant_id) or cached
    claimed_at = latest.claimed_at if latest is not None else None
    budget = FETCH_TIMEOUT if claimed_at is None else (claimed_at + timedelta(seconds=FETCH_TIMEOUT + 1) - now
                                                         ).total_seconds()
    deadline = time.monotonic() + max(0.0, min(budget, FETCH_TIMEOUT + 1))
    if latest is not None and latest.fetched_at is not None and claimed_at is not None \
            and latest.fetched_at >= claimed_at:
        return _remember(latest)
    while time.monotonic() < deadline:
        time.sleep(_WAIT_STEP)
        latest = store.read(entra_tenant_id)
        if latest is not None and latest.fetched_at is not None and latest.claimed_at is not None \
                and latest.fetched_at >= latest.claimed_at:
            return _remember(latest)
    return latest or store.CachedKeys(entra_tenant_id)


def _fetch_and_save(entra_tenant_id: str, now: datetime) -> store.CachedKeys:
    keys = _fetch(entra_tenant_id)
    store.save(entra_tenant_id, keys, now)
    log.info(json.dumps({"event": "entra_keys_fetch", "entra_tenant": entra_tenant_id, "outcome": "fetched",
                         "kids": [key["kid"] for key in keys]}))
    saved = store.read(entra_tenant_id) or store.CachedKeys(entra_tenant_id, keys, now)
    return _remember(saved)


def _fetch(entra_tenant_id: str) -> list[dict]:
    from shared_code import outbound

    url = keys_url(entra_tenant_id)
    try:
        answer = outbound.request("GET", url, what="The Entra keys URL (ENTRA_LOGIN_URL)", timeout=FETCH_TIMEOUT,
                                  headers={"Accept": "application/json"}, max_bytes=256 * 1024)
    except outbound.OutboundError as error:
        raise EntraUnavailable(f"Could not read Microsoft Entra's signing keys: {error.message} Retry shortly.") \
            from None
    if answer.status != 200:
        raise EntraUnavailable(f"Microsoft Entra answered {answer.status} for the signing keys of tenant "
                               f"{entra_tenant_id}. Retry shortly; if it lasts, the tenant's federation metadata "
                               "may name an Entra tenant that no longer exists.")
    try:
        document = json.loads(answer.body)
        published = document["keys"]
        if not isinstance(published, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise EntraUnavailable("Microsoft Entra's signing keys could not be read (not a JWK Set). Retry shortly.") \
            from None
    keys = []
    for jwk in published[:MAX_KEYS]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        if not all(isinstance(jwk.get(name), str) and jwk.get(name) for name in ("kid", "n", "e")):
            continue
        keys.append({"kid": jwk["kid"], "kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    return keys


# ---- memory ------------------------------------------------------------------------------------------------------

def _stale(cached: store.CachedKeys, now: datetime) -> bool:
    return cached.fetched_at is None or now - cached.fetched_at > KEYS_MAX_AGE


def _remembered(entra_tenant_id: str) -> store.CachedKeys | None:
    with _memory_lock:
        entry = _memory.get(entra_tenant_id)
    if entry is None or time.monotonic() - entry[0] > MEMORY_SECONDS:
        return None
    return entry[1]


def _remember(cached: store.CachedKeys | None) -> store.CachedKeys | None:
    if cached is not None and cached.fetched_at is not None:
        with _memory_lock:
            _memory[cached.entra_tenant_id] = (time.monotonic(), cached)
    return cached
