"""Table Storage client: connection, tables created on first use, ETags, errors mapped to domain errors.

Connection: `TABLES_CONNECTION_STRING` (Azurite locally), else `TABLES_ENDPOINT` with `DefaultAzureCredential`
(managed identity on Azure; `azure.identity` is imported only on that path because it costs ~240 ms of cold
start). An unreachable or failing store raises `StorageUnavailable` (503 + Retry-After) and nothing is
half-written: multi-row changes go through one entity-group transaction.

Every HTTP request has one deadline for all of its storage work, attempts and retries together
(`request_deadline`, set by functions/_http.py, `REQUEST_STORAGE_SECONDS`), and each storage call within it
(all its attempts) at most `CALL_STORAGE_SECONDS`: each attempt's connect and read timeouts are cut to the time
left, and a call that finds none left raises StorageUnavailable. A hung store (one that accepts connections and
never answers, like a SIGSTOPped Azurite) then gives a 503 about `CALL_STORAGE_SECONDS` after the call that
meets it began, and never later than the request's deadline, instead of the client's read timeout times its
attempts (60 s: Entra counts that as a failed request); a large but healthy request (500 members added in one
PATCH: several transactions) may still use the whole request budget.

After a round trip fails to reach the store at all, or gets no answer in time (its retries spent, or the
deadline gone), every storage call on this instance fails at once for `UNREACHABLE_SECONDS` instead of trying
again: during an outage each request then answers its 503 in milliseconds instead of holding a worker through
the retries while the others queue behind it.

Shards (`TABLES_SHARDS`, shared_code/storage/accounts.py): every function here finds the account of the row it
touches from the row's PartitionKey (a tenant id names its account), so callers never name an account and no
call costs a round trip to find one. A query without a `PartitionKey eq @pk` filter (the timers' walks over
every tenant) runs on every account and yields the rows merged in (PartitionKey, RowKey) order, as one account
would. The outage pause below is per account: one unreachable shard does not fail the others' tenants.

The HTTP transport ignores proxy and netrc settings from the environment: requests would otherwise read
os.environ and look for ~/.netrc on every round trip (a tenth of a simple request's CPU), and the app talks
only to its own storage account, never through a proxy.
"""
from __future__ import annotations

import heapq
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Iterator, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared_code.platform.errors import StorageUnavailable
from shared_code.storage import accounts

T = TypeVar("T")

# Names of our tables. One table holds each concern; every row's PartitionKey is its tenant id.
TENANTS = "tenants"
DIRECTORY = "directory"
SIGN_INS = "signins"
AUDITS = "audits"
ENTRA_KEYS = "entrakeys"  # keyed by Entra tenant, not ours: Entra's published signing keys (storage/entra_keys.py)
OIDC = "oidc"
OIDC_LOGOUTS = "oidclogouts"
WEBHOOKS = "webhooks"  # a tenant's webhook endpoint, and the event log consumers' positions
_ONE_PARTITION = re.compile(r"^PartitionKey eq @pk( and |$)")
# Tables that hold no tenant's rows (keyed by something else): always on the primary account.
_PRIMARY_ONLY = frozenset({ENTRA_KEYS})
DOMAIN_CLAIMS = "domainclaims"  # partition = tenant (its verifications), or "claim" (one row per domain: who owns it)

_lock = threading.RLock()  # table() holds it while _service_client() takes it again
_services: dict[int, TableServiceClient] = {}  # by account index (accounts.py)
_clients: dict[tuple[int, str], TableClient] = {}


_round_trips = 0
UNREACHABLE_SECONDS = 1.0
_unreachable_until: dict[int, float] = {}  # per account: time.monotonic() before which it is taken to be unreachable
_log = logging.getLogger("gatehouse")


# Seconds one HTTP request may spend on storage in all (leaves room in the 10 s answer for the rest of the work),
# and one storage call of it, all attempts together (a healthy round trip takes milliseconds).
REQUEST_STORAGE_SECONDS = 9.0
CALL_STORAGE_SECONDS = 5.0
_deadline: ContextVar[float | None] = ContextVar("storage_deadline", default=None)
_call_deadline: ContextVar[float | None] = ContextVar("storage_call_deadline", default=None)


class DeadlineExceeded(Exception):
    """The request's storage time is spent. Not an AzureError, so the SDK's retry policy does not retry it."""


@contextmanager
def request_deadline(seconds: float = REQUEST_STORAGE_SECONDS) -> Iterator[None]:
    """Bound every storage call made inside (in this context) to `seconds` from now, all attempts together."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left() -> float | None:
    deadline = _deadline.get()
    if deadline is None:
        return None
    call = _call_deadline.get()
    return min(deadline, call if call is not None else deadline) - time.monotonic()


def _before_each_attempt(request) -> None:
    """The SDK's raw_request_hook, run before every attempt (retries included, after the retry policy): counts
    round trips for the benchmarks and cuts this attempt's connect and read timeouts to the request's time left."""
    global _round_trips
    _round_trips += 1
    left = time_left()
    if left is None:
        return
    if left <= 0.05:
        raise DeadlineExceeded()
    options = request.context.options
    options["connection_timeout"] = min(options.get("connection_timeout") or _CONNECT_SECONDS, left)
    options["read_timeout"] = min(options.get("read_timeout") or _READ_SECONDS, left)


def round_trips() -> int:
    return _round_trips


# Azure SDK defaults retry for ~1 minute; a request should instead fail fast into an honest 503. (Without a
# request deadline, e.g. in a timer, an attempt may take the full read timeout.)
_CONNECT_SECONDS, _READ_SECONDS = 3, 20
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 1,
    "connection_timeout": _CONNECT_SECONDS,
    "read_timeout": _READ_SECONDS,
    "raw_request_hook": _before_each_attempt,
    "use_env_settings": False,  # no proxy/netrc lookups per round trip (see the module docstring)
}


def _service_client(index: int = accounts.PRIMARY) -> TableServiceClient:
    service = _services.get(index)
    if service is None:
        with _lock:
            service = _services.get(index)
            if service is None:
                account = accounts.all_accounts()[index]
                options = dict(_CLIENT_OPTIONS)
                # With use_env_settings off, requests no longer reads REQUESTS_CA_BUNDLE itself: a store behind
                # a private CA (an emulator over HTTPS, a TLS-inspecting network) names it there, as for any
                # requests-based client. Unset on Azure, where the storage account has a public certificate.
                ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
                if ca_bundle:
                    options["connection_verify"] = ca_bundle
                if account.connection_string:
                    service = TableServiceClient.from_connection_string(account.connection_string, **options)
                elif account.endpoint:
                    service = TableServiceClient(endpoint=account.endpoint, credential=_credential(), **options)
                else:
                    raise StorageUnavailable("Storage is not configured: set TABLES_CONNECTION_STRING or TABLES_ENDPOINT.")
                _services[index] = service
    return service


_shared_credential = None


def _credential():
    """One DefaultAzureCredential for every account (one token cache: storage tokens are per resource type,
    so shards on managed identity cost no extra token request)."""
    global _shared_credential
    if _shared_credential is None:
        from azure.identity import DefaultAzureCredential  # only on Azure: heavy import

        _shared_credential = DefaultAzureCredential()
    return _shared_credential


def reset_clients() -> None:
    """Forget cached clients (tests that switch settings call this)."""
    global _shared_credential
    with _lock:
        _services.clear()
        _clients.clear()
        _unreachable_until.clear()
        _shared_credential = None


def account_of(name: str, partition: str | None) -> int:
    """THE routing rule: the account that holds rows of `partition` in table `name` (accounts.py)."""
    if partition is None or name in _PRIMARY_ONLY:
        return accounts.PRIMARY
    return accounts.index_of(partition)


def table(name: str, partition: str | None = None) -> TableClient:
    """The client for one of our tables on the account of `partition` (the primary without one). No round
    trip; the table is created when first found missing."""
    return _table_on(account_of(name, partition), name)


def _table_on(index: int, name: str) -> TableClient:
    client = _clients.get((index, name))
    if client is None:
        with _lock:
            client = _clients.get((index, name))
            if client is None:
                client = _service_client(index).get_table_client(name)
                _clients[(index, name)] = client
    return client


def _is_table_missing(error: Exception) -> bool:
    code = getattr(error, "error_code", None) or ""
    return "TableNotFound" in str(code) or "TableNotFound" in str(error)


def _pause(index: int, error: BaseException | None) -> None:
    """Take account `index` as unreachable for UNREACHABLE_SECONDS; say which account it was when it is a shard
    (an unreachable shard is most often a wrong entry in TABLES_SHARDS)."""
    _unreachable_until[index] = time.monotonic() + UNREACHABLE_SECONDS
    if index != accounts.PRIMARY:
        _log.error("storage account %s cannot be reached: %s", accounts.all_accounts()[index].label,
                   type(error).__name__ if error is not None else "no answer in time")


@contextmanager
def storage_errors(index: int = accounts.PRIMARY) -> Iterator[None]:
    """Turn an unreachable or failing store (account `index`) into StorageUnavailable; let domain-level errors
    through."""
    if time.monotonic() < _unreachable_until.get(index, 0.0):
        raise StorageUnavailable()  # it was unreachable a moment ago: answer now, try again after the pause
    left = time_left()
    if left is not None and left <= 0.05:
        raise StorageUnavailable()  # this request's storage time is spent
    started = time.monotonic()
    call = _call_deadline.set(started + CALL_STORAGE_SECONDS if left is not None else None)
    try:
        yield
    except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError, TableTransactionError):
        raise
    except (ServiceRequestError, ServiceResponseTimeoutError) as error:
        # No connection, or no answer in time (a hung store), after the client's retries.
        _pause(index, error)
        raise StorageUnavailable() from error
    except DeadlineExceeded as error:
        # Out of time. After a second of waiting in this call the store is not answering: pause like above. A
        # large request that ran out of budget while its round trips answered pauses nobody else.
        if time.monotonic() - started >= 1.0:
            _pause(index, None)
        raise StorageUnavailable() from error
    except (ServiceResponseError, ClientAuthenticationError) as error:
        raise StorageUnavailable() from error
    except HttpResponseError as error:
        if error.status_code is None or error.status_code >= 500 or error.status_code in (408, 429):
            raise StorageUnavailable() from error
        raise
    except AzureError as error:
        raise StorageUnavailable() from error
    except (ConnectionError, TimeoutError, OSError) as error:
        raise StorageUnavailable() from error
    finally:
        _call_deadline.reset(call)


def call(name: str, operation: Callable[[TableClient], T], partition: str | None = None) -> T:
    """Run one operation on a table (on the account of `partition`), creating the table once if it does not
    exist yet."""
    client = table(name, partition)
    with storage_errors(account_of(name, partition)):
        try:
            return operation(client)
        except (ResourceNotFoundError, TableTransactionError, HttpResponseError) as error:
            if not _is_table_missing(error):
                raise
        try:
            client.create_table()
        except ResourceExistsError:
            pass
        return operation(client)


# ---- conveniences over `call`; each is exactly one round trip -------------------------------------------

def get(name: str, partition: str, row: str, select: list[str] | None = None) -> dict | None:
    """A point read; None when the row does not exist."""
    def op(client: TableClient):
        try:
            return client.get_entity(partition, row, select=select)
        except ResourceNotFoundError as error:
            if _is_table_missing(error):
                raise
            return None
    try:
        return call(name, op, partition)
    except ResourceNotFoundError:
        return None  # a missing table holds no rows


def query(name: str, filter: str, parameters: dict[str, Any] | None = None, select: list[str] | None = None,
          page_size: int | None = None) -> Iterator[dict]:
    """Rows matching an OData filter, paged lazily. Errors on later pages map to StorageUnavailable too.

    A filter on one partition (`PartitionKey eq @pk`) runs on that partition's account; any other runs on
    every account, the rows merged in (PartitionKey, RowKey) order as a single account returns them."""
    if _ONE_PARTITION.match(filter) and parameters and "pk" in parameters:
        return _query_on(account_of(name, parameters["pk"]), name, filter, parameters, select, page_size)
    everywhere = range(1 if name in _PRIMARY_ONLY else accounts.count())
    if len(everywhere) == 1:
        return _query_on(accounts.PRIMARY, name, filter, parameters, select, page_size)
    if select is not None:  # the merge orders by the keys
        select = [*select, *(key for key in ("PartitionKey", "RowKey") if key not in select)]
    return heapq.merge(*(_query_on(index, name, filter, parameters, select, page_size) for index in everywhere),
                       key=lambda row: (row["PartitionKey"], row["RowKey"]))


def _query_on(index: int, name: str, filter: str, parameters: dict[str, Any] | None, select: list[str] | None,
              page_size: int | None) -> Iterator[dict]:
    client = _table_on(index, name)
    with storage_errors(index):
        try:
            pages = client.query_entities(filter, parameters=parameters, select=select, results_per_page=page_size)
            iterator = iter(pages)
            first = next(iterator, None)
        except (ResourceNotFoundError, HttpResponseError) as error:
            if _is_table_missing(error):
                return iter(())
            raise
    return _guarded(first, iterator, index)


def _guarded(first: dict | None, rest: Iterator[dict], index: int) -> Iterator[dict]:
    if first is None:
        return
    yield first
    while True:
        with storage_errors(index):
            item = next(rest, None)
        if item is None:
            return
        yield item


def partition_range(name: str, partition: str, prefix: str, select: list[str] | None = None,
                    page_size: int | None = None) -> Iterator[dict]:
    """Every row of a partition whose RowKey starts with `prefix` (a range scan, not a table scan)."""
    return query(
        name,
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        {"pk": partition, "lo": prefix, "hi": prefix + "\uffff"},
        select=select,
        page_size=page_size,
    )


def insert(name: str, entity: dict) -> dict:
    """Create a row; raises ResourceExistsError when it exists."""
    return call(name, lambda client: client.create_entity(entity), entity["PartitionKey"])


def upsert(name: str, entity: dict, replace: bool = False) -> dict:
    mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
    return call(name, lambda client: client.upsert_entity(entity, mode=mode), entity["PartitionKey"])


def update(name: str, entity: dict, etag: str | None, replace: bool = False) -> dict:
    """Update an existing row; with an ETag, raises ResourceModifiedError when someone else changed it."""
    mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
    if etag:
        from azure.core import MatchConditions

        return call(name, lambda client: client.update_entity(
            entity, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified), entity["PartitionKey"])
    return call(name, lambda client: client.update_entity(entity, mode=mode), entity["PartitionKey"])


def delete(name: str, partition: str, row: str, etag: str | None = None) -> None:
    """Delete a row. Beware: azure-data-tables answers a 404 as success even with an ETag, so a delete can
    never make something one-time; spend a row with an If-Match `update` instead (see storage/sign_ins.py)."""
    if etag:
        from azure.core import MatchConditions

        call(name, lambda client: client.delete_entity(
            partition, row, etag=etag, match_condition=MatchConditions.IfNotModified), partition)
    else:
        call(name, lambda client: client.delete_entity(partition, row), partition)


def transact(name: str, operations: Iterable[tuple]) -> list:
    """One entity-group transaction (same table, same partition, at most 100 operations): all or nothing.
    Per operation a dict with its new `etag`; a failure raises TableTransactionError (`error_code`, `index`)."""
    operations = list(operations)
    if not operations:
        return []
    # Loaded on the first write, not at cold start: 0.5-0.9 ms from bytecode, ~3 ms compiled from source (the
    # deployed package has no __pycache__), and a cold instance's first request is usually a read.
    from shared_code.storage import batch

    return call(name, lambda client: batch.submit(client, operations), operations[0][1]["PartitionKey"])


def drop_table(name: str) -> None:
    """Delete a whole table on every account (a time-sliced table whose rows have all expired lives on every
    account its tenants do); a table already gone is fine. One round trip per account."""
    for index in range(1 if name in _PRIMARY_ONLY else accounts.count()):
        with storage_errors(index):
            _table_on(index, name).delete_table()  # the SDK answers a missing table as success


def table_names(prefix: str = "") -> list[str]:
    """The names of our tables that start with `prefix`, on any account (sorted, each once)."""
    names: set[str] = set()
    for index in range(accounts.count()):
        with storage_errors(index):
            names.update(t.name for t in _service_client(index).query_tables(
                "TableName ge @lo and TableName lt @hi", parameters={"lo": prefix, "hi": prefix + "{"}))
    return sorted(names)


def etag_of(entity: dict) -> str | None:
    metadata = getattr(entity, "metadata", None) or {}
    return metadata.get("etag")


# ---- the accounts at startup ------------------------------------------------------------------------------

ACCOUNTS_PARTITION = "~accounts"  # the registry of shards, in the primary's `tenants` table (accounts.py)


def check_accounts() -> list[str]:
    """One round trip to every account (a point read of a row that never exists), and the shards compared with
    the primary's registry of them: a sentence for each account that cannot be used or is not the one its
    position named when tenants were placed, naming its setting and endpoint (never a key). Empty when all is
    well; then shards new to the registry are added to it."""
    problems = _reachable()
    if not problems:
        problems = _registered()
    return problems


def _registered() -> list[str]:
    found = accounts.all_accounts()
    registry = {row["RowKey"]: row.get("endpoint") for row in _query_on(
        accounts.PRIMARY, TENANTS, "PartitionKey eq @pk", {"pk": ACCOUNTS_PARTITION}, None, None)}
    problems = []
    for account in found[1:]:
        known = registry.get(f"shard{account.index}")
        if known is not None and known != account.where:
            problems.append(f"storage account {account.label} is not the account that was at this position when "
                            f"tenants were placed ({known}): TABLES_SHARDS entries may only be appended, never "
                            "reordered or replaced. Put the entries back in their order.")
    for key, endpoint in sorted(registry.items()):
        if key.startswith("shard") and key[5:].isdigit() and int(key[5:]) >= len(found):
            problems.append(f"TABLES_SHARDS has no entry {int(key[5:]) - 1} any more, but tenants were placed on "
                            f"it ({endpoint}): those tenants cannot be found. Put the entry back.")
    if problems:
        return problems
    for account in found[1:]:
        if f"shard{account.index}" not in registry:
            try:
                insert(TENANTS, {"PartitionKey": ACCOUNTS_PARTITION, "RowKey": f"shard{account.index}",
                                 "endpoint": account.where})
            except ResourceExistsError:
                pass  # another instance registered it at the same moment (the next start compares it)
    return []


def _reachable() -> list[str]:
    problems = []
    for account in accounts.all_accounts():
        try:
            with storage_errors(account.index):
                _table_on(account.index, TENANTS).get_entity("~probe", "~probe")
        except ResourceNotFoundError:
            pass  # it answered: no such row (or no table yet)
        except HttpResponseError as error:
            problems.append(f"storage account {account.label} refused the app ({error.status_code} "
                            f"{getattr(error, 'error_code', '') or ''}): check its key or the app's role on it.")
        except StorageUnavailable as error:
            cause = error.__cause__
            problems.append(f"storage account {account.label} cannot be reached"
                            f"{f' ({type(cause).__name__})' if cause is not None else ''}: check the setting.")
    return problems


def check_at_startup() -> None:
    """Called once when the app loads. A malformed TABLES_SHARDS raises StorageNotConfigured, so the app does
    not start on a configuration that would put tenants on the wrong account. With shards, every account is
    then tried once in the background (nothing is added to a cold start's first request) and each one that
    cannot be used is logged as an error naming its setting; the single-account setup does nothing here."""
    if len(accounts.all_accounts()) > 1:
        threading.Thread(target=_log_account_problems, name="gatehouse-storage-check", daemon=True).start()


def _log_account_problems() -> None:
    try:
        for problem in check_accounts():
            _log.error("TABLES_SHARDS startup check: %s", problem)
    except Exception as error:  # noqa: BLE001 - a background check must never take the instance down
        _log.error("TABLES_SHARDS startup check could not run: %s", type(error).__name__)
def delete_rows(name: str, partition: str, keys: Iterable[str]) -> int:
    """Delete rows of one partition, up to 100 per entity-group transaction (what expiry costs: a hundredth of
    a round trip per row). A row already gone (spent or purged meanwhile) fails its transaction, which is sent
    again without it. Answers how many rows were deleted here."""
    keys = list(keys)
    deleted = 0
    for start in range(0, len(keys), 100):
        chunk = keys[start:start + 100]
        while chunk:
            try:
                transact(name, [("delete", {"PartitionKey": partition, "RowKey": key}) for key in chunk])
            except TableTransactionError as error:
                if "ResourceNotFound" not in str(getattr(error, "error_code", "")) or not 0 <= error.index < len(chunk):
                    raise
                chunk = chunk[:error.index] + chunk[error.index + 1:]
                continue
            deleted += len(chunk)
            break
    return deleted
