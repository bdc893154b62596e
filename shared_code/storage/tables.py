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

The HTTP transport ignores proxy and netrc settings from the environment: requests would otherwise read
os.environ and look for ~/.netrc on every round trip (a tenth of a simple request's CPU), and the app talks
only to its own storage account, never through a proxy.
"""
from __future__ import annotations

import os
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

from shared_code.errors import StorageUnavailable
from shared_code.settings import get_settings

T = TypeVar("T")

# Names of our tables. One table holds each concern; every row's PartitionKey is its tenant id.
TENANTS = "tenants"
DIRECTORY = "directory"
SIGN_INS = "signins"
AUDITS = "audits"
ENTRA_KEYS = "entrakeys"  # keyed by Entra tenant, not ours: Entra's published signing keys (storage/entra_keys.py)
OIDC = "oidc"
OIDC_LOGOUTS = "oidclogouts"

_lock = threading.RLock()  # table() holds it while _service_client() takes it again
_service: TableServiceClient | None = None
_clients: dict[str, TableClient] = {}


_round_trips = 0
UNREACHABLE_SECONDS = 1.0
_unreachable_until = 0.0  # time.monotonic() before which the store is taken to be unreachable


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


def _time_left() -> float | None:
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
    left = _time_left()
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


def _service_client() -> TableServiceClient:
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                settings = get_settings()
                options = dict(_CLIENT_OPTIONS)
                # With use_env_settings off, requests no longer reads REQUESTS_CA_BUNDLE itself: a store behind
                # a private CA (an emulator over HTTPS, a TLS-inspecting network) names it there, as for any
                # requests-based client. Unset on Azure, where the storage account has a public certificate.
                ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
                if ca_bundle:
                    options["connection_verify"] = ca_bundle
                if settings.tables_connection_string:
                    _service = TableServiceClient.from_connection_string(
                        settings.tables_connection_string, **options)
                elif settings.tables_endpoint:
                    from azure.identity import DefaultAzureCredential  # only on Azure: heavy import

                    _service = TableServiceClient(
                        endpoint=settings.tables_endpoint, credential=DefaultAzureCredential(), **options)
                else:
                    raise StorageUnavailable("Storage is not configured: set TABLES_CONNECTION_STRING or TABLES_ENDPOINT.")
    return _service


def reset_clients() -> None:
    """Forget cached clients (tests that switch settings call this)."""
    global _service, _unreachable_until
    with _lock:
        _service = None
        _clients.clear()
        _unreachable_until = 0.0


def table(name: str) -> TableClient:
    """The client for one of our tables (no round trip; the table is created when first found missing)."""
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                client = _service_client().get_table_client(name)
                _clients[name] = client
    return client


def _is_table_missing(error: Exception) -> bool:
    code = getattr(error, "error_code", None) or ""
    return "TableNotFound" in str(code) or "TableNotFound" in str(error)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn an unreachable or failing store into StorageUnavailable; let domain-level errors through."""
    global _unreachable_until
    if time.monotonic() < _unreachable_until:
        raise StorageUnavailable()  # it was unreachable a moment ago: answer now, try again after the pause
    left = _time_left()
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
        _unreachable_until = time.monotonic() + UNREACHABLE_SECONDS
        raise StorageUnavailable() from error
    except DeadlineExceeded as error:
        # Out of time. After a second of waiting in this call the store is not answering: pause like above. A
        # large request that ran out of budget while its round trips answered pauses nobody else.
        if time.monotonic() - started >= 1.0:
            _unreachable_until = time.monotonic() + UNREACHABLE_SECONDS
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


def call(name: str, operation: Callable[[TableClient], T]) -> T:
    """Run one operation on a table, creating the table once if it does not exist yet."""
    client = table(name)
    with storage_errors():
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
        return call(name, op)
    except ResourceNotFoundError:
        return None  # a missing table holds no rows


def query(name: str, filter: str, parameters: dict[str, Any] | None = None, select: list[str] | None = None,
          page_size: int | None = None) -> Iterator[dict]:
    """Rows matching an OData filter, paged lazily. Errors on later pages map to StorageUnavailable too."""
    client = table(name)
    with storage_errors():
        try:
            pages = client.query_entities(filter, parameters=parameters, select=select, results_per_page=page_size)
            iterator = iter(pages)
            first = next(iterator, None)
        except (ResourceNotFoundError, HttpResponseError) as error:
            if _is_table_missing(error):
                return iter(())
            raise
    return _guarded(first, iterator)


def _guarded(first: dict | None, rest: Iterator[dict]) -> Iterator[dict]:
    if first is None:
        return
    yield first
    while True:
        with storage_errors():
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
    return call(name, lambda client: client.create_entity(entity))


def upsert(name: str, entity: dict, replace: bool = False) -> dict:
    mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
    return call(name, lambda client: client.upsert_entity(entity, mode=mode))


def update(name: str, entity: dict, etag: str | None, replace: bool = False) -> dict:
    """Update an existing row; with an ETag, raises ResourceModifiedError when someone else changed it."""
    mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
    if etag:
        from azure.core import MatchConditions

        return call(name, lambda client: client.update_entity(
            entity, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified))
    return call(name, lambda client: client.update_entity(entity, mode=mode))


def delete(name: str, partition: str, row: str, etag: str | None = None) -> None:
    """Delete a row. Beware: azure-data-tables answers a 404 as success even with an ETag, so a delete can
    never make something one-time; spend a row with an If-Match `update` instead (see storage/sign_ins.py)."""
    if etag:
        from azure.core import MatchConditions

        call(name, lambda client: client.delete_entity(
            partition, row, etag=etag, match_condition=MatchConditions.IfNotModified))
    else:
        call(name, lambda client: client.delete_entity(partition, row))


def transact(name: str, operations: Iterable[tuple]) -> list:
    """One entity-group transaction (same table, same partition, at most 100 operations): all or nothing.
    Per operation a dict with its new `etag`; a failure raises TableTransactionError (`error_code`, `index`)."""
    operations = list(operations)
    if not operations:
        return []
    # Loaded on the first write, not at cold start: 0.5-0.9 ms from bytecode, ~3 ms compiled from source (the
    # deployed package has no __pycache__), and a cold instance's first request is usually a read.
    from shared_code.storage import batch

    return call(name, lambda client: batch.submit(client, operations))


def etag_of(entity: dict) -> str | None:
    metadata = getattr(entity, "metadata", None) or {}
    return metadata.get("etag")


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
