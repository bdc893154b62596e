"""The OpenAPI 3.1 description of Gatehouse's HTTP API for programs, assembled from the functions' declarations.

Each HTTP function in `functions/` declares its operation beside its `@bp.route` (`functions/_openapi.py`'s
`@describe`: summary, security, request and response models, or why it is left out); `functions/_openapi.py` walks
the registered functions and hands each one's route, methods and declaration to `document_bytes` here, on the first
GET /api/openapi.json. This module has no route list of its own: it turns endpoints into paths (path parameters
from the route template, the operationId from the function's name), adds the refusals every operation of its kind shares
(`implied_refusals`: 401/403/429 with a key, 400/413 with a body, 503), and publishes the components the declarations refer to: the pydantic models they name
(`shared_code/bodies/`, `model_schema`: the document and the validation cannot disagree) and the events' models
(`shared_code/events/api.py`, what the `webhooks` section delivers), the shared error responses and parameters,
and the schemas no model declares — the SCIM bodies (`shared_code/scim/json_schema.py`, derived from the SCIM
declarations) and the OpenID Provider documents.
`tests/test_openapi.py` holds every route the app registers against the document, and `tests/test_schemathesis.py`
sends generated requests to check the app answers as described.

Request schemas say exactly what the server accepts (no more, no less) where JSON Schema can say it;
what it cannot (a domain that is a public suffix, a manager id that names no user) is a documented 4xx.
"""
from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from typing import Any

from shared_code.tenancy import tenants
from shared_code.openapi.json_schema import obj as _obj, ref as _ref
from shared_code.openapi.operations import (
    ETAG,
    JSON,
    RETRY_AFTER,
    SCIM,
    SCIM_TOKEN,
    Deferred,
    ModelRef,
    Operation,
    errors,
    path_parameter,
)
from shared_code.scim import json_schema as scim_json_schema

# ---- bodies from their models ------------------------------------------------------------------------------------

MODEL_REF = "#/components/schemas/{model}"

# Name → (model, mode) of every model one document refers to: filled while its paths are built, published by
# `_components`. One per build (`build`), so nothing carries over from one document to the next.
Models = dict[str, tuple[type, str]]


def model_schema(model: type, models: Models, *, response: bool = False) -> dict:
    """A `$ref` to `model`'s JSON Schema (`model_json_schema`), registered in `models` to be published under
    components/schemas with the models it nests (its `$defs`). Requests are described as validated, responses as
    serialised. Declarations name models (`ModelRef`, `models("shared_code.bodies.x").Y`); the builder calls this
    for each one.

    tests/test_bodies.py checks every model under shared_code/bodies/ is described, and as its own schema."""
    mode = "serialization" if response else "validation"
    known = models.setdefault(model.__name__, (model, mode))
    if known != (model, mode):
        raise ValueError(f"two bodies are called {model.__name__}: {known} and {(model, mode)}")
    return _ref(model.__name__)


def _model_components(models: Models) -> dict[str, dict]:
    schemas: dict[str, dict] = {}
    for name, (model, mode) in sorted(models.items()):
        schema = model.model_json_schema(ref_template=MODEL_REF, mode=mode)
        for nested, definition in {**schema.pop("$defs", {}), name: schema}.items():
            if schemas.setdefault(nested, definition) != definition:
                raise ValueError(f"two different schemas are called {nested}")
    return schemas


# ---- the document --------------------------------------------------------------------------------------------

_ERROR = _obj({
    "error": {"type": "string", "description": "A stable code, e.g. bad_request, unauthorized."},
    "message": {"type": "string", "description": "What went wrong, in words a person can act on."},
    "correlation_id": {"type": "string", "description": "Quote it to support; it is in our logs."},
    "field": {"type": "string", "description": "The request field the message is about, when there is one."},
}, ("error", "message", "correlation_id"))

_SCIM_ERROR = _obj({
    "schemas": {"type": "array", "items": {"const": "urn:ietf:params:scim:api:messages:2.0:Error"}},
    "status": {"type": "string", "pattern": r"^\d{3}$"},
    "scimType": {"type": "string"},
    "detail": {"type": "string"},
}, ("schemas", "status", "detail"))

_JSON_ERRORS = {
    "BadRequest": "The request is malformed: the body is not a JSON object, or a field is missing or invalid.",
    "Unauthorized": "No credentials: send `Authorization: Bearer <key>`.",
    "Forbidden": "The credentials are not valid here (another tenant's key looks the same as a wrong key).",
    "NotFound": "No such tenant or resource.",
    "Conflict": "The request conflicts with the tenant's state; the message says what to do first.",
    "PayloadTooLarge": "The body is larger than the operation allows (1 MiB unless its body says more).",
    "Unprocessable": "The values are well-formed but cannot be used; the message and `field` say why.",
    "TooManyRequests": "Too many requests for this tenant; wait for Retry-After seconds.",
    "StorageUnavailable": "Table Storage cannot be reached or is busy; nothing was half-written. Retry.",
}
_SCIM_ERRORS = {
    "ScimBadRequest": "RFC 7644 §3.12: invalidSyntax, invalidValue, invalidFilter, invalidPath, noTarget, "
                      "mutability or tooMany.",
    "ScimUnauthorized": "The SCIM secret token is missing or not valid for this tenant.",
    "ScimNotFound": "No such resource (ids are 32 hex characters).",
    "ScimConflict": "scimType uniqueness: another resource has this userName / displayName.",
    "ScimPreconditionFailed": "If-Match names a version that is no longer current; ETag holds the current one.",
    "ScimPayloadTooLarge": "The body is larger than the operation allows.",
    "ScimTooManyRequests": "Too many requests for this tenant; wait for Retry-After seconds.",
    "ScimStorageUnavailable": "Table Storage cannot be reached, or the resource is being changed by several "
                              "requests at once; nothing was half-written. Retry after Retry-After seconds.",
}
def _error_responses() -> dict:
    responses = {}
    for name, description in _JSON_ERRORS.items():
        response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref("Error")}}}
        if name in ("StorageUnavailable", "TooManyRequests"):
            response["headers"] = RETRY_AFTER
        responses[name] = response
    for name, description in _SCIM_ERRORS.items():
        response = {"description": description, "content": {SCIM: {"schema": _ref("ScimError")}}}
        if name in ("ScimStorageUnavailable", "ScimTooManyRequests"):
            response["headers"] = RETRY_AFTER
        if name == "ScimUnauthorized":
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if name == "ScimPreconditionFailed":
            response["headers"] = ETAG
        responses[name] = response
    return responses


def _components(models: Models) -> dict:
    schemas: dict[str, Any] = {"Error": _ERROR, "ScimError": _SCIM_ERROR}
    parameters: dict[str, Any] = {
        "tenant": {"name": "tenant", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": tenants.TENANT_ID.pattern},
                   "description": "The tenant id from POST /tenants."},
        "employee": {"name": "id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
                     "description": "The employee's id (their SCIM User id)."},
    }
    scim_schemas, scim_parameters = scim_json_schema.components()
    schemas.update(scim_schemas)
    parameters.update(scim_parameters)
    _register_events(models)
    schemas.update(_model_components(models))
    _data_by_type(schemas["Event"])
    schemas.update(_oidc_schemas())
    return {
        "securitySchemes": {
            "operatorKey": {"type": "http", "scheme": "bearer",
                            "description": "The operator's key (the PLATFORM_ADMIN_KEY setting)."},
            "adminKey": {"type": "http", "scheme": "bearer",
                         "description": "The tenant admin key from POST /tenants. The setup wizard's session "
                                        "cookie (with X-CSRF-Token on changes) is accepted instead."},
            "scimToken": {"type": "http", "scheme": "bearer",
                          "description": "The tenant's SCIM secret token from POST /tenants/{tenant}/scim/token, "
                                         "as Entra sends it."},
        },
        "schemas": schemas,
        "parameters": parameters,
        "responses": _error_responses(),
    }


# ---- directory events and webhooks (issue 14): schemas from the pydantic models of shared_code/events ----------

def _register_events(models: Models) -> None:
    """The events themselves (what the Events API pages and the `webhooks` section deliver), published as answers
    like every model a declaration names; the Events API and the webhook endpoint name their own bodies."""
    from shared_code.events import api as events_api

    for model in (events_api.Event, events_api.WebhookTestEvent, *events_api.DATA_MODELS):
        model_schema(model, models, response=True)


def _data_by_type(event: dict) -> None:
    """The Event schema's `data` by `type` (JSON Schema 2020-12 if/then: OpenAPI 3.1 validators and receivers'
    tools read it), which the model cannot say."""
    from shared_code.events import api as events_api

    event["allOf"] = [
        {"if": {"properties": {"type": {"enum": types}}},
         "then": {"properties": {"data": _ref(model.__name__)}}}
        for model, types in events_api.DATA_MODELS.items()]


def _webhooks() -> dict:
    """OpenAPI 3.1 `webhooks`: what the product's endpoint receives, one entry per event type (the event with
    that type's `data`), and the test delivery."""
    from shared_code.events import api as events_api

    def delivery(event_type: str, schema: dict, summary: str) -> dict:
        return {"post": {
            "operationId": f"webhook_{event_type.replace('.', '_')}", "summary": summary, "tags": ["Events"],
            "description": "Signed per Standard Webhooks 1.0 (`webhook-id`, `webhook-timestamp`, "
                           "`webhook-signature`); answer 2xx once applied (at least once: dedupe by `id`).",
            "requestBody": {"required": True, "content": {JSON: {"schema": schema}}},
            "responses": {"2XX": {"description": "Delivered."},
                          "410": {"description": "Gone: the endpoint is disabled at once."},
                          "default": {"description": "Anything else is retried with backoff for up to 3 days."}}}}

    hooks = {}
    for model, types in events_api.DATA_MODELS.items():
        for event_type in types:
            schema = {"allOf": [_ref("Event"), _obj({"type": {"const": event_type}, "data": _ref(model.__name__)},
                                                    ("type", "data"))]}
            hooks[event_type] = delivery(event_type, schema, f"{event_type}: {(model.__doc__ or '').strip()}")
    hooks["webhook.test"] = delivery("webhook.test", _ref("WebhookTestEvent"),
                                     "webhook.test: sent by POST …/webhook/test only")
    return hooks


# ---- the OpenID Provider (issue 13): the product's clients, discovery and JWKS -------------------------------

def _oidc_schemas() -> dict:
    """Discovery and JWKS are standard documents (OpenID Connect Discovery 1.0, RFC 7517): only their shape."""
    return {
        "OidcDiscovery": {"type": "object", "required": ["issuer", "authorization_endpoint", "token_endpoint",
                                                         "jwks_uri", "response_types_supported"],
                          "description": "OpenID Connect Discovery 1.0 provider metadata."},
        "OidcJwks": _obj({"keys": {"type": "array", "items": {"type": "object", "required": ["kty", "kid"]}}},
                         ("keys",)),
    }


# ---- the document, from the endpoints' declarations ------------------------------------------------------------

# The document's sections, in the order readers meet them; every declared tag must be one of them.
TAGS = ("Operator", "Tenant admin", "Setup wizard", "Domain audit", "Employees", "SCIM", "SCIM discovery", "Mobile",
        "OpenID Provider", "Events", "Directory")

# Path parameters shared by many routes (components/parameters); others are declared with the operation.
_SHARED_PATH_PARAMETERS = {"tenant": _ref("tenant", "parameters")}
_ROUTE_PARAMETER = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")


@dataclass(frozen=True)
class Endpoint:
    """One HTTP function as the app registers it: its name (the operationId), route template (under /api),
    methods, and the operation it declares (None: it declared nothing, which is an error)."""
    name: str
    route: str
    methods: tuple[str, ...]
    operation: Operation | None


def _resolve(node: Any, models: Models) -> Any:
    """The declaration's plain data as JSON: named models become `$ref`s (registered in `models`), deferred values
    are computed."""
    if isinstance(node, Deferred):
        return _resolve(node.compute(), models)
    if isinstance(node, ModelRef):
        return model_schema(getattr(importlib.import_module(node.module), node.name), models,
                            response=node.response)
    if isinstance(node, dict):
        return {key: _resolve(value, models) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_resolve(value, models) for value in node]
    return node


def implied_refusals(declared: Operation) -> dict:
    """The refusals an operation answers because of what it is, so no declaration lists them: every operation
    reads storage (503); one that takes a key refuses a missing one (401), a wrong one (403; SCIM answers 401 to
    both) and, once wrong ones are over budget, any (429); one that takes a body refuses what is not valid JSON
    (400) or too large (413). What depends on the endpoint (404, 409, 422) is declared beside its function."""
    scim = tuple(declared.security) == SCIM_TOKEN
    names = ["StorageUnavailable"]
    if declared.security:
        names += ["Unauthorized", "TooManyRequests"] + ([] if scim else ["Forbidden"])
    if declared.request:
        names += ["BadRequest", "PayloadTooLarge"]
    return errors(*names, scim=scim)


def _operation(endpoint: Endpoint, models: Models) -> dict:
    declared = endpoint.operation
    responses = {**implied_refusals(declared), **_resolve(declared.responses, models)}  # a declared text wins
    if declared.tag not in TAGS:
        raise ValueError(f"{endpoint.name}: tag {declared.tag!r} is not one of the document's sections {TAGS}")
    operation: dict[str, Any] = {"operationId": endpoint.name, "summary": declared.summary, "tags": [declared.tag],
                                 "security": [{scheme: []} for scheme in declared.security],
                                 "responses": dict(sorted(responses.items()))}
    description = _resolve(declared.description, models)
    if description:
        operation["description"] = description
    parameters = _resolve(declared.parameters, models)
    if parameters:
        operation["parameters"] = parameters
    if declared.request:
        operation["requestBody"] = _resolve(declared.request, models)
    return operation


def _path_parameters(endpoint: Endpoint, models: Models) -> list[dict]:
    names = _ROUTE_PARAMETER.findall(endpoint.route)
    declared = endpoint.operation.path_parameters
    return [_resolve(declared.get(name) or _SHARED_PATH_PARAMETERS.get(name) or path_parameter(name), models)
            for name in names]


def _paths(endpoints: list[Endpoint], models: Models) -> dict:
    undeclared = [f"{e.name} ({' '.join(e.methods)} /api/{e.route})" for e in endpoints if e.operation is None]
    if undeclared:
        raise ValueError("declare these beside their @bp.route with @describe(...) (or describe(excluded=...)): "
                         + ", ".join(undeclared))
    paths: dict[str, dict] = {}
    # Grouped by section (as a reader and a fuzzer meet them), in the app's order within one.
    section = {tag: index for index, tag in enumerate(TAGS)}
    for endpoint in sorted(endpoints, key=lambda e: section.get(e.operation.tag, len(TAGS))):
        methods = [m for m in endpoint.methods if endpoint.operation.describes(m)]
        declared = endpoint.operation.method
        if declared and declared.upper() not in endpoint.methods:
            # Else the operation would vanish from the document while its function reads as described.
            raise ValueError(f"{endpoint.name} describes {declared.upper()}, which it is not registered for "
                             f"(it is registered for {' '.join(endpoint.methods)})")
        if not methods:
            continue
        path = "/" + endpoint.route
        item = paths.setdefault(path, {})
        parameters = _path_parameters(endpoint, models)
        if parameters and item.setdefault("parameters", parameters) != parameters:
            raise ValueError(f"{endpoint.name} declares {path}'s path parameters unlike the other functions there")
        for method in methods:
            if method.lower() in item:
                raise ValueError(f"{endpoint.name}: {method} {path} is described twice")
            item[method.lower()] = _operation(endpoint, models)
    return paths


def document(base_url: str, endpoints: list[Endpoint]) -> dict:
    """The OpenAPI document of `endpoints` with its server at `base_url` (PUBLIC_BASE_URL)."""
    return build(base_url, endpoints)[0]


def build(base_url: str, endpoints: list[Endpoint]) -> tuple[dict, Models]:
    """The document, and the pydantic models it publishes (name → (model, "validation" | "serialization"))."""
    models: Models = {}
    paths = _paths(endpoints, models)  # first: it registers the models the components publish
    used = {tag for item in paths.values() for operation in item.values() if isinstance(operation, dict)
            for tag in operation.get("tags", ())}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Gatehouse",
            "version": "1",
            "summary": "SAML SSO with Microsoft Entra and SCIM 2.0 provisioning, per customer tenant.",
            "description": "Programs' API: the operator creates tenants; each tenant's admin sets up SSO; "
                           "Entra provisions employees over SCIM; the mobile apps read their MSAL configuration. "
                           "Browser endpoints (sign-in, ACS, SP metadata, the setup wizard page) are not "
                           "described here. Errors are JSON `{error, message, correlation_id}` (SCIM: the "
                           "RFC 7644 error schema); 503 with Retry-After means retry, nothing was half-written.",
        },
        "servers": [{"url": f"{base_url}/api"}],
        "tags": [{"name": tag} for tag in TAGS if tag in used],
        "paths": paths,
        "components": _components(models),
        "webhooks": _webhooks(),
    }, models


def document_bytes(base_url: str, endpoints: list[Endpoint]) -> bytes:
    """The served form: compact UTF-8 JSON."""
    return json.dumps(document(base_url, endpoints), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
