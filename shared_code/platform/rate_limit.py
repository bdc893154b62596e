"""Failed authentications are limited per tenant and client: after 20 failed attempts within a minute from one
client address, or 200 within a minute against one tenant, a further wrong credential is answered `429` with
`Retry-After` instead of 401/403.

Who is limited and who never is:
- Only wrong credentials count (a wrong admin key, SCIM token or operator key — also one tried where an
  admin key or the operator key is accepted; not a missing one, not a sign-in rejected for other reasons).
- A correct credential is never refused and never counted: the credential is checked first, and only a
  wrong one meets the limit. (Limiting before the check let anyone who could send 20 failures in a client's
  name lock that client out, whatever it presented.)
- A tenant over its budget (an attack spread over many addresses) refuses only the clients that have failed
  against it in the window.

The client is the address the platform adds: the LAST entry of `X-Forwarded-For` (Azure's front ends, App
Service and Front Door, append the address that connected to them to whatever the client sent, so every
earlier entry is the caller's own claim), without its port (App Service appends `ip:port`) and IPv6 grouped
by /64 (one subscriber's block). The adapter sets it per request in `client_address`; without a header (the
local host) every caller is "unknown". What the limits stop: an Entra job left with a rotated token, a
misconfigured script or a scanner hammering from its real address. The secrets are 256-bit random, so
limiting is about cost and noise, not about making guessing infeasible — it already is.

Kept in process memory, not in Table Storage, on purpose: a counter row per failure would make every failed
attempt a storage write (the attacker would set the price of our storage bill and load the tenant's
partition, which Entra's real writes share), while an in-memory window costs nothing. On a scaled-out app
each instance (and worker process) keeps its own window, so an attacker spread over N instances gets
N × 20 attempts per minute per address: at our `maximumInstanceCount` of 100 (infra), 2,000 a minute at
most, each refused in memory or failed for the price of one point read — against 256-bit secrets. Memory is
bounded: at most 10,000 (tenant, client) windows of 20 timestamps and 1,000 tenant windows of 200, least
recently failed forgotten first; 17 MB measured when every one of them is full.

Anonymous sign-in starts (`GET /sso/{t}/login`, the OpenID Connect authorization endpoint) are not limited at
all. They once wrote a pending-request row each, and a tenant-wide cap on them let a sender with a dozen
addresses lock every employee of a tenant out. They write nothing now (the pending login is a sealed cookie,
shared_code/sign_in/pending_logins.py): a start costs one or two point reads, like the discovery and metadata
endpoints, so a per-address limit would protect nothing those endpoints leave open, and a per-tenant limit
would hand the tenant's sign-ins to whoever floods. Volumetric abuse is the platform's to absorb (Front Door
or App Service access restrictions).
"""
from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from contextvars import ContextVar
from typing import Callable, Mapping

from shared_code.platform.errors import TooManyRequests

UNKNOWN = "unknown"
OPERATOR = "(operator)"  # the scope of the operator key; not a valid tenant id (it has parentheses)
MAX_CLIENT_TEXT = 64

# The calling client's address for this request; the HTTP adapter sets it (see `client_of`).
client_address: ContextVar[str] = ContextVar("client_address", default=UNKNOWN)


def client_of(headers: Mapping[str, str]) -> str:
    """The client's address from `X-Forwarded-For`: the last entry, the one the platform appended (port dropped,
    IPv6 as its /64). Earlier entries are whatever the caller sent and are never used."""
    forwarded = (headers.get("x-forwarded-for") or "").split(",")[-1].strip()
    if not forwarded:
        return UNKNOWN
    text = forwarded
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].split("]")[0]
    elif text.count(":") == 1:  # 203.0.113.7:52144
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "?" + forwarded[:MAX_CLIENT_TEXT]  # not an address: still a key, but a bounded one
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)  # IPv4Address has no ipv4_mapped


class FailureLimiter:
    """Sliding one-minute windows of failure times per (scope, client) and per scope; thread-safe."""

    def __init__(self, per_client: int = 20, per_scope: int = 200, window: float = 60.0,
                 max_clients: int = 10_000, max_scopes: int = 1_000, clock: Callable[[], float] = time.monotonic):
        self.per_client, self.per_scope, self.window = per_client, per_scope, window
        self.max_clients, self.max_scopes, self.clock = max_clients, max_scopes, clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._scopes: OrderedDict[str, deque[float]] = OrderedDict()

    def refusal(self, scope: str, client: str) -> int | None:
        """Seconds to wait if this client may not try a credential for `scope` now; None when it may."""
        now = self.clock()
        with self._lock:
            mine = self._recent(self._clients, (scope, client), now)
            if mine is None:
                return None  # never failed here (or long ago): always checked, whatever the tenant's state
            if len(mine) >= self.per_client:
                return self._wait(mine[0], now)
            everyone = self._recent(self._scopes, scope, now)
            if everyone is not None and len(everyone) >= self.per_scope:
                # Under a spread attack, a client that failed recently waits until either window clears.
                return min(self._wait(everyone[0], now), self._wait(mine[-1], now))
            return None

    def failed(self, scope: str, client: str) -> None:
        """Count one failed authentication."""
        now = self.clock()
        with self._lock:
            self._append(self._clients, (scope, client), now, self.per_client, self.max_clients)
            self._append(self._scopes, scope, now, self.per_scope, self.max_scopes)

    def check(self, scope: str, client: str | None = None) -> None:
        """Raise `429 TooManyRequests` with `Retry-After` when `refusal` says so."""
        wait = self.refusal(scope, client or client_address.get())
        if wait is not None:
            raise TooManyRequests("Too many failed authentication attempts from this address; retry after "
                                  f"{wait} seconds.", headers={"Retry-After": str(wait)})

    def record_failure(self, scope: str, client: str | None = None) -> None:
        self.failed(scope, client or client_address.get())

    def wrong_credential(self, scope: str, client: str | None = None) -> None:
        """A wrong credential was presented: raise 429 when this client is over its budget, else count it (the
        caller then refuses with its own 401/403). Never called for a correct credential."""
        client = client or client_address.get()
        self.check(scope, client)
        self.failed(scope, client)

    def reset(self) -> None:
        with self._lock:
            self._clients.clear()
            self._scopes.clear()

    # --- windows ---

    def _wait(self, oldest: float, now: float) -> int:
        return max(1, math.ceil(oldest + self.window - now))

    def _recent(self, table: OrderedDict, key, now: float) -> deque[float] | None:
        times = table.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del table[key]
            return None
        return times

    def _append(self, table: OrderedDict, key, now: float, budget: int, max_keys: int) -> None:
        times = table.get(key)
        if times is None:
            if len(table) >= max_keys:
                table.popitem(last=False)  # forget the least recently failed
            # Only the newest `budget` failures matter: the window is full once it holds that many.
            times = table[key] = deque(maxlen=budget)
        else:
            table.move_to_end(key)
        times.append(now)


failed_authentications = FailureLimiter()
