"""`@describe`: each HTTP function declares its OpenAPI operation beside its `@bp.route`, and nowhere else.

    @bp.function_name("create_tenant")
    @bp.route(route="tenants", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    @describe(summary="Create a tenant", tag="Operator", security=OPERATOR, request=bodies.NewTenant,
              responses={**ok(bodies.CreatedTenant, "The tenant; …", "201"), **errors("Conflict")})
    @handler()
    def create_tenant(req): …

The route, methods and operationId (the function's name) are the ones `@bp.route` and `@bp.function_name`
register: they are not written again. A function left out of the document says why: `@describe(excluded="…")`.
The decorator only attaches plain data (`shared_code.openapi.operations.Operation`) to the function, so importing
a blueprint stays as cheap as before; `document_bytes` walks the registered functions and hands them to the
generic builder (`shared_code.openapi.document`) on the first GET /api/openapi.json.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import azure.functions as func

import functions
from shared_code.openapi.operations import (
    ETAG,
    SCIM_TOKEN,
    ModelRef,
    Operation,
    errors,
    json_body,
    no_content,
    ref,
    scim_body,
    scim_ok,
)

ATTRIBUTE = "openapi_operation"


def describe(operation: Operation | None = None, **fields: Any) -> Callable:
    """Attach `operation` (or an `Operation(**fields)`) to the function below it. `request=` may name a model
    directly (`request=bodies.NewTenant`): it is a required JSON body. The refusals every operation of its kind
    answers (401/403/429 with a key, 400/413 with a body, 503) are added by the builder
    (`shared_code.openapi.document.implied_refusals`); `responses=` names the others."""
    if operation is None:
        operation = Operation(**fields)
    if isinstance(operation.request, ModelRef):
        operation = operation.but(request=json_body(operation.request))
    if not operation.described and not operation.excluded:
        raise ValueError("describe the operation (summary=…) or say why it is left out (excluded=…)")
    if operation.method and not operation.excluded:
        raise ValueError(f"only {operation.method} is described: say why the other methods are left out (excluded=…)")

    def attach(fn: Callable) -> Callable:
        setattr(fn, ATTRIBUTE, operation)
        return fn

    return attach


def declaration_of(function: Any) -> Operation | None:
    """The operation a registered function declares (`function_app.app.get_functions()` items or blueprint ones)."""
    return getattr(function.get_user_function(), ATTRIBUTE, None)


def endpoints(app: func.FunctionApp | None = None) -> list:
    """Every HTTP function the app registers, with its route, methods and declaration (`shared_code.openapi.document.Endpoint`).

    Read through a scratch FunctionApp over the same blueprints: the app's own `get_functions()` belongs to the
    host, which may call it only once. A test, in a process of its own, passes `function_app.app` to read the
    app itself."""
    from shared_code.openapi.document import Endpoint  # the builder loads with the document, not with the blueprints

    if app is None:
        app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
        for blueprint in functions.blueprints():
            app.register_functions(blueprint)
    found = []
    for function in app.get_functions():
        trigger = function.get_trigger()
        if not function.is_http_function():
            continue
        methods = tuple(getattr(m, "value", m).upper() for m in (trigger.methods or [])) or ("*",)
        found.append(Endpoint(function.get_function_name(), trigger.route or function.get_function_name(),
                              methods, declaration_of(function)))
    return found


@lru_cache(maxsize=4)
def document_bytes(base_url: str) -> bytes:
    """The served document (built once per instance and base URL)."""
    from shared_code.openapi import document as openapi  # the builder and pydantic: only for the first GET /api/openapi.json

    return openapi.document_bytes(base_url, endpoints())


# ---- SCIM: the operations of /Users and /Groups, derived from the resource kind ---------------------------------

def scim_resource_operations(kind, max_body: int, max_results: int) -> dict[str, Operation]:
    """One Operation per verb of a SCIM resource endpoint (`kind` is a `shared_code.scim.schemas.ResourceKind`);
    the bodies are the `{name}Request`, `{name}Patch` and `{name}Search` schemas the builder derives from the SCIM
    declarations."""
    plural, name = kind.endpoint.strip("/"), kind.name
    key = kind.key
    scim = {"scim": True}
    write_errors = errors("BadRequest", "Unauthorized", "Conflict", "PayloadTooLarge", "StorageUnavailable", **scim)
    etag_headers = {**ETAG, "Location": {"schema": {"type": "string", "format": "uri"}}}
    attributes = [ref(f"{name}Attributes", "parameters"), ref(f"{name}ExcludedAttributes", "parameters")]
    conditional = [ref("ifMatch", "parameters")]
    body_note = f"At most {max_body // 1024} KiB."
    resource_id = {"id": ref("id", "parameters")}
    patch_ok = (scim_ok(ref(name), f"The {name} as it is now.", headers=ETAG) if name == "User" else
                no_content("Applied (no body: Entra does not want the member list back).", headers=ETAG))

    def operation(summary: str, responses: dict, **fields: Any) -> Operation:
        return Operation(summary=summary, tag="SCIM", security=SCIM_TOKEN, responses=responses, **fields)

    return {
        "list": operation(
            f"Query {plural} (always 200 with a ListResponse)",
            {**scim_ok(ref(f"{name}List"), "One page of matches; an empty list when nothing matches."),
             **errors("BadRequest", **scim)},
            parameters=[ref(f"{name}Filter", "parameters"), ref("startIndex", "parameters"),
                        ref("count", "parameters"), *attributes],
            description=f"`count` is capped at {max_results}; `startIndex` below 1 means 1."),
        "create": operation(
            f"Create a {name}",
            {**scim_ok(ref(name), f"The new {name}. A retried create (same {key} and externalId) answers the "
                                  f"existing one.", "201", etag_headers),
             **write_errors},
            parameters=attributes, request=scim_body(f"{name}Request", body_note)),
        "search": operation(
            f"Query {plural} with a SearchRequest body (RFC 7644 §3.4.3)",
            {**scim_ok(ref(f"{name}List"), "One page of matches.")},
            request=scim_body(f"{name}Search")),
        "get": operation(
            f"Read a {name}",
            {**scim_ok(ref(name), f"The {name}.", headers=ETAG),
             **no_content("If-None-Match names the current version.", "304", ETAG),
             **errors("BadRequest", "NotFound", **scim)},
            parameters=attributes + [ref("ifNoneMatch", "parameters")], path_parameters=resource_id),
        "replace": operation(
            f"Replace a {name}",
            {**scim_ok(ref(name), f"The {name} as stored.", headers=ETAG),
             **write_errors, **errors("NotFound", "PreconditionFailed", **scim)},
            parameters=attributes + conditional, request=scim_body(f"{name}Request", body_note),
            path_parameters=resource_id),
        "patch": operation(
            f"Change a {name} with a PatchOp",
            {**patch_ok, **write_errors, **errors("NotFound", "PreconditionFailed", **scim)},
            parameters=(attributes if name == "User" else []) + conditional,
            request=scim_body(f"{name}Patch", body_note), path_parameters=resource_id),
        "delete": operation(
            f"Delete a {name} (Entra's hard delete)",
            {**no_content("Deleted."),
             **errors("NotFound", "PreconditionFailed", **scim)},
            parameters=conditional, path_parameters=resource_id),
    }
