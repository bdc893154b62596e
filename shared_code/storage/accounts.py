"""Which Table Storage account holds a row: the primary account, or one of the shards of `TABLES_SHARDS`.

Account 0 is the primary (`TABLES_CONNECTION_STRING`, else `TABLES_ENDPOINT`); accounts 1..N are the entries
of `TABLES_SHARDS`, a JSON array of connection strings (locally) or `https://` table endpoints (Azure, managed
identity), in order. Empty or unset: one account, exactly as before.

A tenant is placed on an account when it is created and stays there, because the account is written into its
id: a tenant on account k > 0 has an id ending in `-s<k>` (`acme-1a2b3c-s2`); an id without that marker (every
id made before shards existed, and every new tenant placed on the primary) lives on the primary. Every row of a
tenant has PartitionKey = its tenant id, so the account of any row is a pure function of its partition key:
no lookup table, no extra round trip, nothing to keep in step — and adding an account (appending to the array)
never moves anyone. Entries must therefore only ever be appended, never reordered or removed.

Rows that belong to no tenant live on the primary: tables keyed by something else (`entrakeys`, keyed by Entra
tenant) and partitions that are not tenant ids (the domain-audit sweeps' `~sweeps`).

The primary keeps a registry of the shards (`tenants` table, partition `~accounts`, one row per shard with its
endpoint), written the first time an instance starts with a new entry and compared at every start
(`tables.check_accounts`): an entry reordered, replaced or removed is reported as an error naming it.

Placement is uniform at random over all accounts (the primary included), which spreads tenants, and therefore
transactions, evenly; an account that fails the new tenant's first write is left for another
(storage/tenants.py). docs/scaling.md says how many accounts a number of tenants needs.
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

from shared_code.platform.errors import StorageUnavailable
from shared_code.platform.settings import get_settings

PRIMARY = 0
MAX_SHARDS = 99  # two digits of marker; far beyond what 100,000 tenants need (docs/scaling.md)
# `-s<k>` after the six hex digits of a generated id. Ids made before shards end in those hex digits, so no
# existing id can carry a marker; an Entra tenant GUID (12 hex digits at its end) or `~sweeps` cannot either.
_MARKER = re.compile(r"-[0-9a-f]{6}-s([1-9][0-9]?)$")


class StorageNotConfigured(StorageUnavailable):
    """The storage settings are unusable (an operator's mistake, not an outage): 503, naming the setting and
    what is wrong with it, never its secret parts."""

    def __init__(self, why: str):
        super().__init__(f"Storage is not configured correctly on this server: {why}", retry_after=60)
        self.why = why


@dataclass(frozen=True)
class Account:
    """One Table Storage account: a connection string (with its key) or an endpoint for managed identity."""

    index: int
    connection_string: str = ""
    endpoint: str = ""

    @property
    def where(self) -> str:
        """The account's table endpoint, normalised: what the registry of shards compares."""
        return _host_of(self).rstrip("/").lower()

    @property
    def label(self) -> str:
        """How logs and errors name it: the setting and position, and the endpoint host (never a key)."""
        where = "TABLES_CONNECTION_STRING/TABLES_ENDPOINT" if self.index == PRIMARY else \
            f"TABLES_SHARDS[{self.index - 1}]"
        return f"{where} ({_host_of(self)})"


def _host_of(account: Account) -> str:
    if account.endpoint:
        return account.endpoint
    fields = dict(part.split("=", 1) for part in account.connection_string.split(";") if "=" in part)
    if fields.get("TableEndpoint"):
        return fields["TableEndpoint"]
    scheme, suffix = fields.get("DefaultEndpointsProtocol", "https"), fields.get("EndpointSuffix", "core.windows.net")
    return f"{scheme}://{fields.get('AccountName', '?')}.table.{suffix}"


def _shard(index: int, value: object) -> Account:
    where = f"TABLES_SHARDS[{index - 1}]"
    if not isinstance(value, str) or not value.strip():
        raise StorageNotConfigured(f"{where} must be a non-empty string (a connection string or an https:// "
                                   "table endpoint).")
    value = value.strip()
    if value.startswith("https://") or value.startswith("http://"):
        if any(c in value for c in ";? "):
            raise StorageNotConfigured(f"{where} looks like an endpoint but carries more than a URL.")
        return Account(index, endpoint=value.rstrip("/"))
    fields = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
    if not fields.get("AccountName") and not fields.get("TableEndpoint"):
        raise StorageNotConfigured(f"{where} is neither an https:// table endpoint nor a connection string "
                                   "with AccountName/TableEndpoint.")
    return Account(index, connection_string=value)


@lru_cache(maxsize=4)
def _parse(primary_connection: str, primary_endpoint: str, raw: str) -> tuple[Account, ...]:
    primary = Account(PRIMARY, connection_string=primary_connection, endpoint=primary_endpoint)
    if not raw:
        return (primary,)
    try:
        values = json.loads(raw)
    except json.JSONDecodeError:
        raise StorageNotConfigured("TABLES_SHARDS is not valid JSON; it must be a JSON array of connection "
                                   "strings or https:// table endpoints (or empty).") from None
    if not isinstance(values, list):
        raise StorageNotConfigured("TABLES_SHARDS must be a JSON array of connection strings or https:// table "
                                   "endpoints (or empty).")
    if len(values) > MAX_SHARDS:
        raise StorageNotConfigured(f"TABLES_SHARDS names {len(values)} accounts; at most {MAX_SHARDS}.")
    if values and not (primary_connection or primary_endpoint):
        raise StorageNotConfigured("TABLES_SHARDS is set but the primary account is not: set "
                                   "TABLES_CONNECTION_STRING or TABLES_ENDPOINT.")
    found = [primary, *(_shard(index, value) for index, value in enumerate(values, start=1))]
    hosts = [account.where for account in found]
    for index, host in enumerate(hosts):
        if host in hosts[:index]:
            raise StorageNotConfigured(f"{found[index].label} is the same account as "
                                       f"{found[hosts.index(host)].label}; every account must be different.")
    return tuple(found)


def all_accounts() -> tuple[Account, ...]:
    """The primary, then every shard in setting order (parsed once per setting value)."""
    settings = get_settings()
    return _parse(settings.tables_connection_string, settings.tables_endpoint, settings.tables_shards)


def count() -> int:
    return len(all_accounts())


def index_of(partition: str) -> int:
    """The account holding rows of this partition key: the tenant's account for a tenant id, else the primary.
    A marker beyond the configured accounts (a made-up id) answers the primary, where no such tenant exists."""
    shards = count()
    if shards == 1:
        return PRIMARY
    match = _MARKER.search(partition or "")
    if match is None:
        return PRIMARY
    index = int(match.group(1))
    return index if index < shards else PRIMARY


def place(base_id: str, avoid: frozenset[int] = frozenset(), choose=secrets.randbelow) -> str:
    """A new tenant's id: `base_id` on an account chosen uniformly at random among those not in `avoid`
    (`choose(n)` picks 0..n-1)."""
    candidates = [index for index in range(count()) if index not in avoid] or list(range(count()))
    index = candidates[choose(len(candidates))]
    return base_id if index == PRIMARY else f"{base_id}-s{index}"
