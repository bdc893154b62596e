"""What one HTTP operation says about itself for the OpenAPI document: plain data, cheap to import.

Each function in `functions/` declares its operation beside its `@bp.route` (`functions/_openapi.py`'s `@describe`);
`shared_code/openapi/document.py` walks the declarations and assembles the document. Everything here is inert until the
document is built on the first GET /api/openapi.json: pydantic models are named (`models("shared_code.bodies.x").Y`),
not imported, and values only known to heavy modules are `later(...)`, so declaring costs a cold start nothing.
"""
from __future__ import annotations

from typing import Any, Callable

from shared_code.openapi.json_schema import ref
from shared_code.platform import errors as platform_errors

JSON, SCIM = "application/json", "application/scim+json"

# Who may call an operation: the security schemes of the document (components/securitySchemes).
OPERATOR = ("operatorKey",)
ADMIN = ("adminKey",)
ADMIN_OR_OPERATOR = ("adminKey", "operatorKey")
SCIM_TOKEN = ("scimToken",)
ANONYMOUS: tuple[str, ...] = ()

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
ETAG = {"ETag": {"description": "The resource's version, W/\"n\".", "schema": {"type": "string"}}}


class ModelRef:
    """A pydantic model by name, imported only when the document is built. Described as serialised (an answer)
    unless it is a request body (`request=` / `json_body`), which is described as validated."""
    __slots__ = ("module", "name", "response")

    def __init__(self, module: str, name: str, response: bool = True) -> None:
        self.module, self.name, self.response = module, name, response

    def as_request(self) -> ModelRef:
        return ModelRef(self.module, self.name, response=False)

    def __repr__(self) -> str:
        return f"ModelRef({self.module}.{self.name}, response={self.response})"


class models:  # noqa: N801 - reads as a module of models: `bodies = models("shared_code.bodies.tenants")`
    """`models("shared_code.bodies.tenants").NewTenant` names that model without importing its module."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> ModelRef:
        if name.startswith("_"):
            raise AttributeError(name)
        return ModelRef(self._module, name)


class Deferred:
    """A value computed when the document is built (a limit or list that lives in a module loaded on demand)."""
    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute


def later(compute: Callable[[], Any]) -> Deferred:
    return Deferred(compute)


class Operation:
    """One function's operation. `excluded` says why a function (or, with `method`, its other methods) is
    deliberately left out of the document; `path_parameters` gives those of the route's that are not plain strings
    (`tenant` is always the shared tenant parameter). A plain class, not a dataclass: a dataclass is generated
    code, and every blueprint module builds these at import (cold start)."""
    __slots__ = ("summary", "tag", "security", "responses", "request", "parameters", "description",
                 "path_parameters", "method", "excluded")

    def __init__(self, summary: str = "", tag: str = "", security: tuple[str, ...] = ANONYMOUS,
                 responses: dict | None = None, request: Any = None, parameters: Any = (), description: Any = "",
                 path_parameters: dict | None = None, method: str | None = None, excluded: str = "") -> None:
        self.summary, self.tag, self.security = summary, tag, tuple(security)
        self.responses = responses or {}
        self.request, self.parameters, self.description = request, parameters, description
        self.path_parameters = path_parameters or {}
        self.method, self.excluded = method, excluded

    def but(self, **changes: Any) -> Operation:
        """A copy with `changes`."""
        return Operation(**{**{name: getattr(self, name) for name in self.__slots__}, **changes})

    @property
    def described(self) -> bool:
        return bool(self.summary)

    def describes(self, method: str) -> bool:
        """Whether `method` (one the function is registered for) is in the document."""
        return self.described and (self.method is None or self.method.upper() == method.upper())

    def why_excluded(self, method: str) -> str:
        return "" if self.describes(method) else self.excluded


# ---- building blocks a declaration uses ---------------------------------------------------------------------

def errors(*names: str, scim: bool = False) -> dict:
    """The shared error responses by name (components/responses), keyed by the status of the error class of that
    name (`shared_code.platform.errors`)."""
    prefix = "Scim" if scim else ""
    return {str(getattr(platform_errors, name).status): ref(prefix + name, "responses") for name in names}


def json_body(schema: Any, description: str = "") -> dict:
    if isinstance(schema, ModelRef):
        schema = schema.as_request()
    body: dict[str, Any] = {"required": True, "content": {JSON: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def scim_body(schema_name: str, description: str = "") -> dict:
    """A SCIM request body (either media type) whose schema is a component derived from the SCIM declarations."""
    body: dict[str, Any] = {"required": True}
    if description:
        body["description"] = description
    body["content"] = {SCIM: {"schema": ref(schema_name)}, JSON: {"schema": ref(schema_name)}}
    return body


def ok(schema: Any, description: str, status: str = "200", headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return {status: response}


def scim_ok(schema: Any, description: str, status: str = "200", headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {SCIM: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return {status: response}


def no_content(description: str, status: str = "204", headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description}
    if headers:
        response["headers"] = headers
    return {status: response}


def path_parameter(name: str, schema: dict | None = None, description: str = "") -> dict:
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True,
                                 "schema": schema if schema is not None else {"type": "string"}}
    if description:
        parameter["description"] = description
    return parameter
