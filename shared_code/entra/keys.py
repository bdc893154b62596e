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

Nothing waits on a failure, and nothing polls: within one instance, concurrent requests that need the same fetch
join the one in flight (`_single_flight`: they block on its result, not on storage reads); a request that finds
another instance's fetch claimed and not landed, or a fetch that failed less than `FAILED_FETCH_PAUSE` ago (this
instance remembers its failures; the row's `failed_at` tells the others), answers 503 with Retry-After at once.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta
from typing import Callable

from shared_code.entra.errors import EntraUnavailable
from shared_code.platform.settings import get_settings
from shared_code.storage import entra_keys as store

log = logging.getLogger("gatehouse")

KEYS_MAX_AGE = timedelta(hours=24)
UNKNOWN_KID_REFETCH_INTERVAL = timedelta(minutes=5)
MEMORY_SECONDS = 60.0
FAILED_FETCH_PAUSE = timedelta(seconds=10)
FETCH_TIMEOUT = 4.0  # with the wait for another instance's fetch, an exchange stays inside the 10 s request budget
MAX_KEYS = 50  # Entra publishes a handful; more is not a key set we should store

_memory: dict[str, tuple[float, store.CachedKeys]] = {}
_memory_lock = threading.Lock()
_in_flight: dict[str, Future] = {}  # Entra tenant → the fetch this instance is making for it now
_failed_at: dict[str, datetime] = {}  # Entra tenant → when this instance's last fetch for it failed
_flight_lock = threading.Lock()


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
    _refuse_if_failed_recently(entra_tenant_id, cached, now)

    def claim_and_fetch() -> store.CachedKeys:
        if not store.claim_fetch(entra_tenant_id, cached, now, unknown_kid=True):
            # Another instance is fetching for a new kid right now: a rollover it has not stored yet must not be
            # refused as a forgery, so until its fetch lands the answer is "retry", not "unknown key".
            return _after_other_fetch(entra_tenant_id, now, keys_in_hand_will_do=False)
        try:
            return _fetch_and_save(entra_tenant_id, now)
        except EntraUnavailable:
            log.warning(json.dumps({"event": "entra_keys_fetch", "entra_tenant": entra_tenant_id,
                                    "outcome": "failed", "why": "unknown_kid"}))
            raise
    return _single_flight(entra_tenant_id, now, claim_and_fetch).key(kid)


def forget_memory() -> None:
    """Tests that change what Entra publishes behind the cache's back call this."""
    with _memory_lock:
        _memory.clear()
    with _flight_lock:
        _failed_at.clear()


# ---- the three ways to a fetch ---------------------------------------------------------------------------------

def _first_fetch(entra_tenant_id: str, cached: store.CachedKeys | None, now: datetime) -> store.CachedKeys:
    _refuse_if_failed_recently(entra_tenant_id, cached, now)

    def claim_and_fetch() -> store.CachedKeys:
        if cached is not None and cached.claimed_at is not None and now - cached.claimed_at < FAILED_FETCH_PAUSE:
            # Another instance claimed a first fetch moments ago and it has not landed: do not pile onto Entra.
            return _after_other_fetch(entra_tenant_id, now, known=cached)
        if not store.claim_fetch(entra_tenant_id, cached, now, unknown_kid=False):
            return _after_other_fetch(entra_tenant_id, now)
        return _fetch_and_save(entra_tenant_id, now)
    return _single_flight(entra_tenant_id, now, claim_and_fetch)


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


def _single_flight(entra_tenant_id: str, now: datetime,
                   claim_and_fetch: Callable[[], store.CachedKeys]) -> store.CachedKeys:
    """Run `claim_and_fetch` once per Entra tenant at a time in this instance: a request that arrives while one is
    running waits for its result (or its failure) instead of fetching, claiming or reading storage itself."""
    with _flight_lock:
        running = _in_flight.get(entra_tenant_id)
        if running is None:
            mine: Future = Future()
            _in_flight[entra_tenant_id] = mine
    if running is not None:
        try:
            return running.result(timeout=FETCH_TIMEOUT + 1)
        except FutureTimeout:
            raise EntraUnavailable("Microsoft Entra's signing keys are being fetched and have not arrived yet; "
                                   "retry in a few seconds.", retry_after=5) from None
    try:
        result = claim_and_fetch()
    except BaseException as error:
        if isinstance(error, EntraUnavailable):
            with _flight_lock:
                _failed_at[entra_tenant_id] = now
        mine.set_exception(error)
        raise
    else:
        mine.set_result(result)
        return result
    finally:
        with _flight_lock:
            _in_flight.pop(entra_tenant_id, None)


def _refuse_if_failed_recently(entra_tenant_id: str, cached: store.CachedKeys | None, now: datetime) -> None:
    """503 at once when a fetch failed less than FAILED_FETCH_PAUSE ago (here, or at another instance: the row's
    failed_at, written after the claim it failed under)."""
    with _flight_lock:
        failed = _failed_at.get(entra_tenant_id)
    if cached is not None and cached.failed_at is not None and cached.claimed_at is not None \
            and cached.failed_at >= cached.claimed_at and (failed is None or cached.failed_at > failed):
        failed = cached.failed_at
    if failed is None or not (timedelta(0) <= now - failed < FAILED_FETCH_PAUSE):
        return
    wait = max(1, int((FAILED_FETCH_PAUSE - (now - failed)).total_seconds() + 0.999))
    raise EntraUnavailable("Microsoft Entra's signing keys could not be fetched a moment ago; retry in "
                           f"{wait} seconds.", retry_after=wait)


def _after_other_fetch(entra_tenant_id: str, now: datetime, *, known: store.CachedKeys | None = None,
                       keys_in_hand_will_do: bool = True) -> store.CachedKeys:
    """Another instance holds the claim: use its fetch if it has landed (one read, unless the caller's row is fresh
    enough to tell), else 503 with Retry-After at once — never a wait polling storage. With `keys_in_hand_will_do`
    the keys cached before that fetch are good enough meanwhile."""
    latest = known if known is not None else store.read(entra_tenant_id)
    if latest is not None and latest.fetched_at is not None and (latest.claimed_at is None
                                                                 or latest.fetched_at >= latest.claimed_at):
        return _remember(latest)
    if latest is not None and latest.fetched_at is not None and keys_in_hand_will_do:
        return latest  # a refetch is under way elsewhere; the keys we have are still Entra's
    raise EntraUnavailable("Microsoft Entra's signing keys are being fetched by another instance; retry in a few "
                           "seconds.", retry_after=int(FAILED_FETCH_PAUSE.total_seconds() // 2) or 1)


def _fetch_and_save(entra_tenant_id: str, now: datetime) -> store.CachedKeys:
    try:
        keys = _fetch(entra_tenant_id)
    except EntraUnavailable:
        try:
            store.record_failure(entra_tenant_id, now)  # the other instances answer 503 at once, too
        except Exception:  # noqa: BLE001 - the fetch's own failure is the answer; storage trouble adds nothing
            log.warning(json.dumps({"event": "entra_keys_fetch", "entra_tenant": entra_tenant_id,
                                    "outcome": "failure_not_recorded"}))
        raise
    store.save(entra_tenant_id, keys, now)
    log.info(json.dumps({"event": "entra_keys_fetch", "entra_tenant": entra_tenant_id, "outcome": "fetched",
                         "kids": [key["kid"] for key in keys]}))
    saved = store.read(entra_tenant_id) or store.CachedKeys(entra_tenant_id, keys, now)
    return _remember(saved)


def _fetch(entra_tenant_id: str) -> list[dict]:
    from shared_code.platform import outbound

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
