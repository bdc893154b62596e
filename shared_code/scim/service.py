"""The SCIM service: one function per SCIM operation on Users and Groups, from parsed inputs to a `Reply`.

It checks everything a client sends before it touches storage (bad input changes nothing), answers
Entra's `userName eq "x"` / `displayName eq "x"` / `id eq "x"` with one point read, keeps creates
idempotent for a client that retries after a timeout (same userName and externalId → the existing user),
honours `If-Match` / `If-None-Match` against `meta.version`, and applies the employee rules that live with
the directory (dismissal on active=false, the tenant's default department on create).
"""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from shared_code.platform.errors import GatehouseError, NotFound, PreconditionFailed, StorageUnavailable, Unauthorized
from shared_code.scim import patch
from shared_code.scim.filter import Node, ValuePath, equality, matches, parse_filter, validate
from shared_code.scim.resources import (
    clean_body,
    invalid,
    is_resource_id,
    location,
    parse_attribute_list,
    project,
    render,
    version_tag,
    wants,
)
from shared_code.scim.schemas import (
    ENTERPRISE_USER,
    GROUP_KIND,
    LIST_RESPONSE,
    MAX_RESULTS,
    SEARCH_REQUEST,
    USER_KIND,
    ResourceKind,
)
from shared_code.platform.settings import get_settings
from shared_code.storage import directory
from shared_code.tenancy.tenants import TENANT_ID, Tenant, authenticate_scim

DEFAULT_COUNT = 100
MAX_USER_BODY = 64 * 1024  # a user is a few KiB; a row holds at most 64 KiB
MAX_GROUP_BODY = 1024 * 1024  # room for ~15,000 members in one request


@dataclass
class Reply:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


class MethodNotAllowed(GatehouseError):
    status, code = 405, "method_not_allowed"


def authenticate(tenant_id: str, token: str | None) -> Tenant:
    """The tenant for its SCIM secret token; 401 (with the Bearer challenge) for anything else."""
    try:
        return authenticate_scim(tenant_id, token)
    except Unauthorized as error:
        error.headers = {**error.headers, "WWW-Authenticate": 'Bearer realm="Gatehouse SCIM"'}
        raise


_token_checks = ThreadPoolExecutor(max_workers=16, thread_name_prefix="scim-token-check")


class Caller:
    """Who sends a SCIM request: the tenant its URL names and, once its token is verified, that tenant.

    The token check is a storage read; it runs while the request's own first read is in flight, so a lookup
    costs one round trip of latency instead of two. Nothing read is used, returned or written before
    `tenant` has answered (it raises 401 for a bad token), and an error such as 404 is raised only after it.
    """

    def __init__(self, tenant_id: str, token: str | None, tenant: Tenant | None = None):
        self.tenant_id = tenant_id
        self._tenant = tenant
        self._check = None
        if tenant is None:
            # In the request's context: the check reads the caller's address (failed-authentication limit).
            self._check = _token_checks.submit(contextvars.copy_context().run, authenticate, tenant_id, token)

    @classmethod
    def of(cls, tenant: Tenant) -> "Caller":
        """A caller whose token was already checked (cores and tests that hold the Tenant)."""
        return cls(tenant.tenant_id, None, tenant)

    @property
    def may_prefetch(self) -> bool:
        # Only a well-formed tenant id is used as a partition key before the token check answers.
        return bool(TENANT_ID.match(self.tenant_id or ""))

    @property
    def tenant(self) -> Tenant:
        if self._tenant is None:
            self._tenant = self._check.result()
        return self._tenant


def parsed(caller: Caller, parse: Callable[[], Any]) -> Any:
    """Parse a request while the token check runs; a bad token still answers 401 before any 400."""
    try:
        return parse()
    except GatehouseError:
        caller.tenant  # noqa: B018
        raise


def base_url(tenant: Tenant | Caller) -> str:
    return f"{get_settings().public_base_url}/api/scim/{tenant.tenant_id}/v2"


# --- queries ---------------------------------------------------------------------------------------------------

def _integer(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):  # int(2.5) would be 2
        raise invalid(f"{name} must be an integer.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"{name} must be an integer, not {value!r}.") from None


def _mentions_members(node: Node | None) -> bool:
    if node is None:
        return False
    if isinstance(node, ValuePath):
        return (node.path.name or "").lower() == "members"
    for child in ("left", "right", "inner"):
        if hasattr(node, child) and _mentions_members(getattr(node, child)):
            return True
    return (getattr(getattr(node, "path", None), "name", "") or "").lower() == "members"


@dataclass
class _Query:
    """A parsed query on one resource type."""

    kind: ResourceKind
    node: Node | None
    include: list
    exclude: list


def _parse_query(kind: ResourceKind, filter: Any, attributes: Any, excluded: Any) -> _Query:
    node = None
    if filter is not None and (not isinstance(filter, str) or filter.strip()):
        node = parse_filter(filter)
        validate(node, kind)
    return _Query(kind, node, parse_attribute_list(kind, attributes, "attributes"),
                  parse_attribute_list(kind, excluded, "excludedAttributes"))


def _paging(start_index: Any, count: Any) -> tuple[int, int]:
    return (max(_integer(start_index, "startIndex", 1), 1),  # RFC 7644 §3.4.2.4: below 1 means 1
            min(max(_integer(count, "count", DEFAULT_COUNT), 0), MAX_RESULTS))


def _found(caller: Caller, q: _Query) -> Iterator[tuple[_Query, Any, dict, list | None]]:
    """The matching resources in id order: one point read when the filter pins userName, externalId, id
    or a group's displayName (overlapping the token check), else a range scan of the tenant's partition."""
    tid, url, is_user = caller.tenant_id, base_url(caller), q.kind is USER_KIND
    node = q.node
    lookup = equality(node, ("id", "externalId", "userName") if is_user else ("id", "displayName")) if node else None
    if lookup is not None and caller.may_prefetch:
        attribute, value = lookup
        if attribute == "id" and not is_resource_id(value):
            records: Iterator = iter(())
        elif is_user:
            records = iter([r for r in [directory.find_user_record(tid, attribute, value)] if r])
        elif attribute == "displayName":
            records = iter([r for r in [directory.find_group_by_name(tid, value)] if r])
        else:
            records = iter([r for r in [directory.get_group_record(tid, value)] if r])
    else:
        caller.tenant  # noqa: B018 - a scan starts only for a verified caller
        records = directory.iter_user_records(tid) if is_user else directory.iter_group_records(tid)
    caller.tenant  # noqa: B018 - the point read above overlapped the token check; nothing is used before it
    # Members are read only when the filter or the answer needs them (a group may have 50,000).
    filter_members = not is_user and _mentions_members(node)
    for record in records:
        members = list(directory.iter_members(tid, record.id)) if filter_members else None
        resource = _render(q.kind, record, url, members)
        if node is None or matches(node, resource, q.kind):
            yield q, record, resource, members


def _list_response(caller: Caller, found: Iterator, start: int, size: int) -> Reply:
    page, total = [], 0
    for item in found:
        total += 1
        if start <= total < start + size:
            page.append(item)
    resources = []
    for q, record, resource, members in page:
        if q.kind is GROUP_KIND and members is None and wants(q.include, q.exclude, "members"):
            resource = _render(q.kind, record, base_url(caller),
                               list(directory.iter_members(caller.tenant_id, record.id)))
        resources.append(project(resource, q.include, q.exclude))
    return Reply(200, {"schemas": [LIST_RESPONSE], "totalResults": total, "startIndex": start,
                       "itemsPerPage": len(resources), "Resources": resources})


def query(caller: Caller, kind: ResourceKind, *, filter: Any = None, start_index: Any = None, count: Any = None,
          attributes: Any = None, excluded: Any = None) -> Reply:
    """GET /Users|/Groups and POST …/.search: always a 200 ListResponse (or 400 for a bad request)."""
    if not caller.may_prefetch:
        caller.tenant  # noqa: B018 - 401 before anything else
    q = parsed(caller, lambda: _parse_query(kind, filter, attributes, excluded))
    start, size = parsed(caller, lambda: _paging(start_index, count))
    return _list_response(caller, _found(caller, q), start, size)


def search_everything(caller: Caller, body: Any) -> Reply:
    """POST /.search (RFC 7644 §3.4.3): users, then groups. A filter or attribute that only one resource
    type has applies to that type (the other contributes nothing); one that neither has is a 400."""
    caller.tenant  # noqa: B018
    fields = _search_fields(body)
    queries, errors = [], []
    for kind in (USER_KIND, GROUP_KIND):
        try:
            queries.append(_parse_query(kind, fields.get("filter"), fields.get("attributes"),
                                        fields.get("excludedattributes")))
        except GatehouseError as error:
            errors.append(error)
    if not queries:
        raise errors[0]
    start, size = _paging(fields.get("startindex"), fields.get("count"))
    return _list_response(caller, (item for q in queries for item in _found(caller, q)), start, size)


def _search_fields(body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid("The body must be a SearchRequest object.", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST.lower() not in {s.lower() for s in schemas if isinstance(s, str)}:
        raise invalid(f"schemas must be [{SEARCH_REQUEST!r}].", "invalidSyntax")
    known = {"schemas", "filter", "startindex", "count", "attributes", "excludedattributes", "sortby", "sortorder"}
    unknown = sorted(str(k) for k in body if not isinstance(k, str) or k.lower() not in known)
    if unknown:
        raise invalid(f"A SearchRequest has no {', '.join(unknown)}.", "invalidSyntax")
    return {k.lower(): v for k, v in body.items()}


def search(caller: Caller, kind: ResourceKind, body: Any) -> Reply:
    """POST /Users/.search, /Groups/.search (RFC 7644 §3.4.3)."""
    caller.tenant  # noqa: B018 - a scan may follow: verify first
    fields = _search_fields(body)
    return query(caller, kind, filter=fields.get("filter"), start_index=fields.get("startindex"),
                 count=fields.get("count"), attributes=fields.get("attributes"),
                 excluded=fields.get("excludedattributes"))


# --- one resource ---------------------------------------------------------------------------------------------------

def _render(kind: ResourceKind, record, url: str, members: list[dict] | None = None) -> dict:
    return render(kind, record.id, record.data, created=record.created, last_modified=record.last_modified,
                  version=record.version, base_url=url, members=members)


def _not_found(kind: ResourceKind, resource_id: str) -> NotFound:
    shown = resource_id if len(resource_id) <= 64 else resource_id[:64] + "…"
    return NotFound(f"{kind.name} {shown!r} not found.")


def _projection(kind: ResourceKind, params: dict) -> tuple[list, list]:
    """`attributes` / `excludedAttributes`, parsed before anything is written (a bad one changes nothing)."""
    return (parse_attribute_list(kind, params.get("attributes"), "attributes"),
            parse_attribute_list(kind, params.get("excludedAttributes"), "excludedAttributes"))


def _single(kind: ResourceKind, tenant: Tenant | Caller, record, projection: tuple[list, list],
            status: int = 200, members: list[dict] | None = None) -> Reply:
    url = base_url(tenant)
    include, exclude = projection
    if kind is GROUP_KIND and members is None and wants(include, exclude, "members"):
        members = list(directory.iter_members(tenant.tenant_id, record.id))
    resource = project(_render(kind, record, url, members), include, exclude)
    headers = {"ETag": version_tag(record.version)}
    if status == 201:
        headers["Location"] = location(url, kind, record.id)
    return Reply(status, resource, headers)


def _tags(header: str | None) -> list[str]:
    return [t.strip() for t in (header or "").split(",") if t.strip()]


def _same_version(tag: str, version: int) -> bool:
    # Weak comparison (RFC 9110 §8.8.3.2): W/"3" and "3" name the same version.
    return tag == "*" or tag.removeprefix("W/") == f'"{version}"'


def _check_if_match(if_match: str | None, record) -> None:
    tags = _tags(if_match)
    if tags and not any(_same_version(t, record.version) for t in tags):
        raise PreconditionFailed(f"The resource has changed: its version is now {version_tag(record.version)}. "
                                 "GET it and retry with the new version.",
                                 headers={"ETag": version_tag(record.version)})


def get(caller: Caller, kind: ResourceKind, resource_id: str, params: dict,
        if_none_match: str | None = None) -> Reply:
    projection = parsed(caller, lambda: _projection(kind, params))
    record = _read(caller, kind, resource_id)
    if any(_same_version(t, record.version) for t in _tags(if_none_match)):
        return Reply(304, None, {"ETag": version_tag(record.version)})
    return _single(kind, caller, record, projection)


def _read(caller: Caller, kind: ResourceKind, resource_id: str):
    """Read one resource (overlapping the token check), then require the check to have passed."""
    record = None
    if is_resource_id(resource_id) and caller.may_prefetch:
        record = (directory.get_user_record if kind is USER_KIND else directory.get_group_record)(
            caller.tenant_id, resource_id)
    caller.tenant  # noqa: B018 - 401 wins over 404, and nothing read is used before this
    if record is None:
        raise _not_found(kind, resource_id)
    return record


def _retrying(attempt: Callable[[], Any]) -> Any:
    for _ in range(directory.ATTEMPTS):
        try:
            return attempt()
        except directory.Changed:
            continue
    raise StorageUnavailable("This resource is being changed by several requests at once; please retry.",
                             retry_after=1)


# --- users ------------------------------------------------------------------------------------------------------

def _check_manager(tenant: Tenant, user_id: str | None, old: dict | None, new: dict) -> dict:
    """A manager must be another user of this tenant (checked only when it changes: one point read). Answers
    `save_user`'s keyword for the manager's display name as of now (nothing when the manager is unchanged)."""
    manager = ((new.get(ENTERPRISE_USER) or {}).get("manager") or {}).get("value")
    before = (((old or {}).get(ENTERPRISE_USER) or {}).get("manager") or {}).get("value")
    if manager is None or manager == before:
        return {}
    if manager == user_id:
        raise invalid("A user cannot be their own manager.")
    found = directory.get_user(tenant.tenant_id, manager)
    if found is None:
        raise invalid(f"manager {manager!r} is not a user of this tenant.")
    return {"manager_name": found.display_name}


def create_user(caller: Caller, body: Any, params: dict) -> Reply:
    tenant = caller.tenant
    data = clean_body(USER_KIND, body)
    projection = _projection(USER_KIND, params)
    department = (data.get(ENTERPRISE_USER) or {}).get("department")
    if department is None and tenant.default_department:
        data.setdefault(ENTERPRISE_USER, {})["department"] = tenant.default_department
    manager = _check_manager(tenant, None, None, data)
    try:
        record = directory.create_user(tenant.tenant_id, data, **manager)
    except directory.Taken:
        # Entra retries a POST that timed out but succeeded: the same userName and externalId mean the same
        # employee, so answer with it instead of a 409 that would repeat every cycle.
        existing = directory.find_user_record(tenant.tenant_id, "userName", data["userName"])
        if existing is not None and data.get("externalId") and \
                existing.data.get("externalId") == data["externalId"]:
            return _single(USER_KIND, tenant, existing, projection, status=201)
        raise
    return _single(USER_KIND, tenant, record, projection, status=201)


def replace_user(caller: Caller, user_id: str, body: Any, params: dict, if_match: str | None) -> Reply:
    tenant = caller.tenant
    data = clean_body(USER_KIND, body)
    projection = _projection(USER_KIND, params)

    def attempt():
        record = _read(caller, USER_KIND, user_id)
        _check_if_match(if_match, record)
        if data == record.data:
            return record
        manager = _check_manager(tenant, record.id, record.data, data)
        return directory.save_user(tenant.tenant_id, record, data, **manager)
    return _single(USER_KIND, caller, _retrying(attempt), projection)


def patch_user(caller: Caller, user_id: str, body: Any, params: dict, if_match: str | None) -> Reply:
    if not caller.may_prefetch:
        caller.tenant  # noqa: B018
    operations = parsed(caller, lambda: patch.parse(body, USER_KIND))
    projection = parsed(caller, lambda: _projection(USER_KIND, params))

    def attempt():
        record = _read(caller, USER_KIND, user_id)
        tenant = caller.tenant
        _check_if_match(if_match, record)
        data = patch.apply(record.data, operations, USER_KIND)
        if data == record.data:
            return record  # Entra re-sends values it already set: nothing to write
        manager = _check_manager(tenant, record.id, record.data, data)
        return directory.save_user(tenant.tenant_id, record, data, **manager)
    return _single(USER_KIND, caller, _retrying(attempt), projection)


def delete(caller: Caller, kind: ResourceKind, resource_id: str, if_match: str | None) -> Reply:
    tenant = caller.tenant
    if not is_resource_id(resource_id):
        raise _not_found(kind, resource_id)
    remove = directory.delete_user if kind is USER_KIND else directory.delete_group
    if not remove(tenant.tenant_id, resource_id, check=lambda record: _check_if_match(if_match, record)):
        raise _not_found(kind, resource_id)
    return Reply(204)  # a deleted (or dismissed) employee's sessions end from their event (shared_code/sign_in/trust.py)


# --- groups -----------------------------------------------------------------------------------------------------

def _members_of(data: dict) -> list[dict]:
    members = data.pop("members", None) or []
    return sorted({m["value"]: m for m in members}.values(), key=lambda m: m["value"])


def create_group(caller: Caller, body: Any, params: dict) -> Reply:
    tenant = caller.tenant
    data = clean_body(GROUP_KIND, body)
    projection = _projection(GROUP_KIND, params)
    members = _members_of(data)
    try:
        record = directory.create_group(tenant.tenant_id, data, members)
    except directory.Taken:
        existing = directory.find_group_by_name(tenant.tenant_id, data["displayName"])
        if existing is not None and data.get("externalId") and \
                existing.data.get("externalId") == data["externalId"]:
            # A retried create (same name, same Entra objectId): the group it created the first time.
            return _single(GROUP_KIND, tenant, existing, projection, status=201)
        raise
    return _single(GROUP_KIND, tenant, record, projection, status=201, members=members)


def replace_group(caller: Caller, group_id: str, body: Any, params: dict, if_match: str | None) -> Reply:
    tenant = caller.tenant
    data = clean_body(GROUP_KIND, body)
    desired = {m["value"]: m for m in _members_of(data)}
    projection = _projection(GROUP_KIND, params)

    def attempt():
        record = _read(caller, GROUP_KIND, group_id)
        _check_if_match(if_match, record)
        current = {m["value"]: m for m in directory.iter_members(tenant.tenant_id, group_id)}
        adds = {k: m for k, m in desired.items() if current.get(k) != m}
        removes = set(current) - set(desired)
        return directory.save_group(tenant.tenant_id, record, data, adds, removes, known_members=current)
    record = _retrying(attempt)
    members = sorted(desired.values(), key=lambda m: m["value"]) if wants(*projection, "members") else None
    return _single(GROUP_KIND, tenant, record, projection, members=members)


def patch_group(caller: Caller, group_id: str, body: Any, if_match: str | None) -> Reply:
    """Group PATCH answers 204 (what Entra advises: no member list in the answer)."""
    if not caller.may_prefetch:
        caller.tenant  # noqa: B018
    operations = parsed(caller, lambda: patch.parse(body, GROUP_KIND))
    rest, steps = parsed(caller, lambda: patch.split_members(operations))

    def attempt():
        record = _read(caller, GROUP_KIND, group_id)
        tenant = caller.tenant
        _check_if_match(if_match, record)
        data = patch.apply(record.data, rest, GROUP_KIND) if rest else record.data
        current = None
        if patch.needs_current_members(steps):
            current = {m["value"]: m for m in directory.iter_members(tenant.tenant_id, group_id)}
        adds, removes = patch.member_delta(steps, current)
        return directory.save_group(tenant.tenant_id, record, data, adds, removes, known_members=current)
    record = _retrying(attempt)
    return Reply(204, None, {"ETag": version_tag(record.version)})


def method_not_allowed(method: str, allowed: str) -> MethodNotAllowed:
    return MethodNotAllowed(f"{method} is not supported here; use {allowed}.", headers={"Allow": allowed})


def no_such_endpoint(path: str) -> NotFound:
    return NotFound(f"There is no SCIM endpoint {path!r}. Endpoints: /Users, /Groups, /ServiceProviderConfig, "
                    "/Schemas, /ResourceTypes.")
