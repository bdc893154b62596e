"""The OpenAPI 3.1 description of Gatehouse's HTTP API for programs, assembled from the functions' declarations.

Each HTTP function in `functions/` declares its operation beside its `@bp.route` (`functions/_openapi.py`'s
`@describe`: summary, security, request and response models, or why it is left out); `functions/_openapi.py` walks
the registered functions and hands each one's route, methods and declaration to `document_bytes` here, on the first
GET /api/openapi.json. This module has no route list of its own: it turns endpoints into paths (path parameters
from the route template, the operationId from the function's name), adds what every operation shares (a 429 for
wrong credentials), and publishes the components the declarations refer to: the pydantic models they name
(`shared_code/bodies/`, `model_schema`: the document and the validation cannot disagree), the shared error
responses and parameters, and the schemas no model declares — the SCIM bodies, derived from the SCIM
declarations (`shared_code/scim/schemas.py`, see `_scim_request`), the events and OpenID Provider documents.
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

from shared_code import tenants
from shared_code.openapi_operations import (
    ETAG,
    JSON,
    RETRY_AFTER,
    SCIM,
    SCIM_TOKEN,
    Deferred,
    ModelRef,
    Operation,
    path_parameter,
)
from shared_code.scim import patch as scim_patch
from shared_code.scim import resources as scim_resources
from shared_code.scim.schemas import (
    ENTERPRISE_USER,
    ENTRA_GROUP,
    GROUP_KIND,
    LIST_RESPONSE,
    MAX_RESULTS,
    PATCH_OP,
    SEARCH_REQUEST,
    USER_KIND,
    Attribute,
    ResourceKind,
)

# ---- JSON Schema building blocks -------------------------------------------------------------------------------

# Control characters are refused in key strings; Python's str.isspace() also counts \x1c-\x1f and \x85,
# which ECMA-262's \s (used by JSON Schema validators) does not, so they are spelled out.
_NO_CONTROL = r"[^\x00-\x1f\x7f]"
_VISIBLE = r"[^\s\x00-\x1f\x7f\x85]"
_KEY_STRING = rf"^{_NO_CONTROL}*{_VISIBLE}{_NO_CONTROL}*$"
_RESOURCE_ID = r"^[0-9a-f]{32}$"
_TRUE_FALSE = r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$"


def _ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict, required: tuple[str, ...] = (), *, closed: bool = False, **extra: Any) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _text(max_length: int, **extra: Any) -> dict:
    return {"type": "string", "maxLength": max_length, **extra}


# ---- bodies from their models ------------------------------------------------------------------------------------

# Name → (model, mode) of every model the document refers to; `_components` publishes their schemas.
MODELS: dict[str, tuple[type, str]] = {}
MODEL_REF = "#/components/schemas/{model}"


def model_schema(model: type, *, response: bool = False) -> dict:
    """A `$ref` to `model`'s JSON Schema (`model_json_schema`), registered under components/schemas with the
    models it nests (its `$defs`). Requests are described as validated, responses as serialised. Declarations
    name models (`ModelRef`, `models("shared_code.bodies.x").Y`); the builder calls this for each one.

    tests/test_bodies.py checks every model under shared_code/bodies/ is described, and as its own schema."""
    mode = "serialization" if response else "validation"
    known = MODELS.setdefault(model.__name__, (model, mode))
    if known != (model, mode):
        raise ValueError(f"two bodies are called {model.__name__}: {known} and {(model, mode)}")
    return _ref(model.__name__)


def _model_components() -> dict[str, dict]:
    schemas: dict[str, dict] = {}
    for name, (model, mode) in sorted(MODELS.items()):
        schema = model.model_json_schema(ref_template=MODEL_REF, mode=mode)
        for nested, definition in {**schema.pop("$defs", {}), name: schema}.items():
            if schemas.setdefault(nested, definition) != definition:
                raise ValueError(f"two different schemas are called {nested}")
    return schemas


# ---- SCIM schemas, derived from the declarations ---------------------------------------------------------------
#
# The SCIM bodies stay declared here, not as pydantic models: SCIM attribute names are case-insensitive,
# booleans arrive as "True"/"False" strings from Entra, a PATCH has two dialects and paths with filters, and
# the schemas below are derived from the same declarations the SCIM engine validates with
# (`shared_code/scim/schemas.py`) and tuned against scim2-tester and Entra's own request shapes; a model
# would be a third description of them. The SCIM engine also stays free of pydantic (cold start).

def _scim_value(attribute: Attribute, parent: Attribute | None = None) -> dict:
    """What `resources.clean_single` accepts for one (non-null) value of `attribute`."""
    kind = attribute.type
    if kind == "boolean":
        # Entra's default mapping sends "True"/"False" as strings.
        return {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": _TRUE_FALSE}]}
    if kind == "complex":
        return _scim_complex(attribute)
    schema = _text(scim_resources.MAX_STRING)
    if kind == "binary":
        schema["pattern"] = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
        schema["contentEncoding"] = "base64"
    elif kind == "reference" and "external" in attribute.reference_types:
        schema["pattern"] = r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$"
        schema["format"] = "uri"
    if parent is not None and parent.name == "emails" and attribute.name == "value":
        schema["pattern"] = r"^[^@\s\x1c-\x1f\x85]+@[^@\s\x1c-\x1f\x85]+$"
    if attribute.description:
        schema["description"] = attribute.description
    return schema


def _member_reference(attribute: Attribute) -> dict:
    """A manager or group member: the id of a user of this tenant (other sub-attributes are ignored)."""
    properties: dict[str, Any] = {"value": {"type": "string", "pattern": _RESOURCE_ID,
                                            "description": "The id of a User of this tenant."}}
    for sub in attribute.sub_attributes:
        if sub.name == "type":
            properties["type"] = _nullable({"type": "string", "pattern": "^[Uu][Ss][Ee][Rr]$"})
        elif sub.name != "value":
            properties[sub.name] = {"description": "Ignored on input: derived from value."}
    return _obj(properties, ("value",), closed=True)


def _scim_complex(attribute: Attribute) -> dict:
    if attribute.name in ("manager", "members"):
        return _member_reference(attribute)
    properties = {}
    for sub in attribute.sub_attributes:
        if sub.mutability == "readOnly":
            properties[sub.name] = {"description": "Read-only: ignored on input."}
        else:
            properties[sub.name] = _nullable(_scim_value(sub, attribute))
    # An empty object means "unassigned"; unknown sub-attributes are refused.
    return _obj(properties, closed=True, description=attribute.description or attribute.name)


def _primary_true() -> dict:
    return _obj({"primary": {"anyOf": [{"const": True},
                                       {"type": "string", "pattern": r"^\s*[Tt][Rr][Uu][Ee]\s*$"}]}},
                ("primary",))


def _scim_attribute(attribute: Attribute, *, in_patch: bool = False) -> dict:
    """The schema of an attribute's value in a body (null always means "unassigned"). A PATCH may add one
    value to a multi-valued attribute without wrapping it in an array (RFC 7644 §3.5.2.1); a POST/PUT may not."""
    if attribute.mutability == "readOnly":
        return {"description": "Read-only: ignored on input."}
    if attribute.name == "manager":
        return _nullable({"anyOf": [
            {"type": "string", "pattern": r"^([0-9a-f]{32}|\s*)$",
             "description": "Entra's shape: the manager's id; an empty string removes the manager."},
            _member_reference(attribute)]})
    item = _scim_value(attribute)
    if not attribute.multi_valued:
        return _nullable(item)
    limit = 100_000 if attribute.name == "members" else scim_resources.MAX_VALUES
    array: dict[str, Any] = {"type": "array", "items": _nullable(item), "maxItems": limit}
    if any(sub.name == "primary" for sub in attribute.sub_attributes):
        # At most one primary value (minContains 0: an array without one is fine).
        array.update({"contains": _primary_true(), "minContains": 0, "maxContains": 1})
    alternatives = [array, item, {"type": "null"}] if in_patch else [array, {"type": "null"}]
    return {"anyOf": alternatives, "description": attribute.description}


def _key_attribute(max_length: int, *, allow_blank: bool) -> dict:
    pattern = rf"^{_NO_CONTROL}*$" if allow_blank else _KEY_STRING
    return {"type": "string", "minLength": 0 if allow_blank else 1, "maxLength": max_length, "pattern": pattern}


def _scim_request(kind: ResourceKind) -> dict:
    """The body of POST /Users|/Groups and PUT …/{id}."""
    core_ids = [kind.core.id] + [s.id for s in kind.extensions] + ([ENTRA_GROUP] if kind is GROUP_KIND else [])
    properties: dict[str, Any] = {
        "schemas": {"type": "array", "items": {"enum": core_ids}, "contains": {"const": kind.core.id}},
        "id": {"description": "Read-only: ignored on input."},
        "meta": {"description": "Read-only: ignored on input (Entra sends meta.resourceType)."},
    }
    for attribute in kind.core.attributes:
        properties[attribute.name] = _scim_attribute(attribute)
    key = "userName" if kind is USER_KIND else "displayName"
    properties[key] = _key_attribute(scim_resources.MAX_KEY_STRING, allow_blank=False)
    # A user's blank externalId is dropped; a group's must name something.
    properties["externalId"] = _nullable(_key_attribute(scim_resources.MAX_KEY_STRING,
                                                        allow_blank=kind is USER_KIND))
    conditions = []
    for extension in kind.extensions:
        properties[extension.id] = _nullable(_obj(
            {a.name: _scim_attribute(a) for a in extension.attributes} | {"schemas": {}}, closed=True,
            description=f"{extension.name} attributes; {extension.id} must then be listed in schemas."))
        conditions.append({"if": _obj({extension.id: {"type": "object"}}, (extension.id,)),
                           "then": _obj({"schemas": {"contains": {"const": extension.id}}})})
    schema = _obj(properties, ("schemas", key), closed=True,
                  description=f"A {kind.name} as Entra sends it. Attribute names are case-insensitive; "
                              f"read-only attributes are ignored; unknown attributes are a 400 invalidSyntax.")
    if conditions:
        schema["allOf"] = conditions
    return schema


def _scim_resource(kind: ResourceKind) -> dict:
    """What the server returns: the stored attributes plus id, schemas and meta (all always present)."""
    return _obj({
        "schemas": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "id": {"type": "string", "pattern": _RESOURCE_ID},
        "externalId": {"type": "string"},
        "meta": _obj({
            "resourceType": {"const": kind.name},
            "created": {"type": "string", "format": "date-time"},
            "lastModified": {"type": "string", "format": "date-time"},
            "location": {"type": "string"},
            "version": {"type": "string", "pattern": r'^W/"\d+"$'},
        }, ("resourceType", "created", "lastModified", "location", "version")),
    }, ("schemas", "id"), description=f"A {kind.name} resource; `attributes` / `excludedAttributes` trim it.")


def _attribute_names(kind: ResourceKind) -> list[str]:
    names = ["id", "externalId", "meta"]
    for attribute in kind.core.attributes:
        names.append(attribute.name)
        names.extend(f"{attribute.name}.{sub.name}" for sub in attribute.sub_attributes if sub.name != "$ref")
    for extension in kind.extensions:
        names.append(extension.id)
        names.extend(f"{extension.id}:{a.name}" for a in extension.attributes)
    return names


def _attribute_list_pattern(*kinds: ResourceKind) -> str:
    """Comma-separated attribute names; blanks around names and empty entries are ignored by the server."""
    names = sorted({name for kind in kinds for name in _attribute_names(kind)})
    alternatives = "|".join(name.replace(".", r"\.").replace("$", r"\$") for name in names)
    entry = rf"\s*({alternatives})?\s*"
    return rf"^{entry}(,{entry})*$"


def _simple_paths(kind: ResourceKind, *, types: tuple[str, ...], removable: bool = False) -> list[str]:
    """PATCH paths to single-valued attributes of these types (sub-attributes as `name.sub`)."""
    key = "userName" if kind is USER_KIND else "displayName"
    paths = []
    for prefix, attributes in [("", kind.core.attributes)] + [(f"{e.id}:", e.attributes) for e in kind.extensions]:
        for attribute in attributes:
            if attribute.multi_valued or attribute.mutability == "readOnly" or attribute.name == "manager":
                continue
            if attribute.type in types and not (removable and attribute.name == key):
                paths.append(prefix + attribute.name)
            if attribute.type == "complex":
                paths.extend(f"{prefix}{attribute.name}.{sub.name}" for sub in attribute.sub_attributes
                             if sub.type in types and not sub.multi_valued)
    if "string" in types:
        paths.append("externalId")
    return paths


def _patch_request(kind: ResourceKind) -> dict:
    """PatchOp (RFC 7644 §3.5.2) in the shapes Entra sends, in both its dialects."""
    add_replace = {"type": "string", "pattern": r"^([Aa][Dd][Dd]|[Rr][Ee][Pp][Ll][Aa][Cc][Ee])$"}
    remove = {"type": "string", "pattern": r"^[Rr][Ee][Mm][Oo][Vv][Ee]$"}
    text_paths = _simple_paths(kind, types=("string",))
    flag_paths = _simple_paths(kind, types=("boolean",))
    multi = [a for a in kind.core.attributes if a.multi_valued and a.name != "members"]
    operations: list[dict] = []
    if text_paths:
        key = "userName" if kind is USER_KIND else "displayName"
        settable = [p for p in text_paths if p not in (key, "externalId")]
        if settable:
            operations.append(_obj({"op": add_replace, "path": {"enum": settable},
                                    "value": _nullable(_text(scim_resources.MAX_STRING))},
                                   ("op", "path", "value"), title="Set a text attribute"))
        operations.append(_obj({"op": add_replace, "path": {"const": key},
                                "value": _key_attribute(scim_resources.MAX_KEY_STRING, allow_blank=False)},
                               ("op", "path", "value"), title=f"Set {key}"))
        operations.append(_obj({"op": add_replace, "path": {"const": "externalId"},
                                "value": _nullable(_key_attribute(scim_resources.MAX_KEY_STRING,
                                                                  allow_blank=kind is USER_KIND))},
                               ("op", "path", "value"), title="Set externalId"))
    if flag_paths:
        operations.append(_obj({"op": add_replace, "path": {"enum": flag_paths},
                                "value": _nullable(_scim_value(Attribute("active", "boolean")))},
                               ("op", "path", "value"),
                               title="Set a flag (active=false is a dismissal)"))
    removable = _simple_paths(kind, types=("string", "boolean"), removable=True)
    removable += [a.name for a in multi]
    operations.append(_obj({"op": remove, "path": {"enum": removable}}, ("op", "path"),
                           title="Remove an attribute"))
    if kind is USER_KIND:
        emails = next(a for a in kind.core.attributes if a.name == "emails")
        operations.append(_obj({
            "op": add_replace,
            "path": {"enum": ['emails[type eq "work"].value', 'emails[type eq "home"].value',
                              'emails[type eq "other"].value']},
            "value": _scim_value(emails.sub("value"), emails)}, ("op", "path", "value"),
            title="Set an email by type (Entra's mapping of mail)"))
        operations.append(_obj({
            "op": add_replace,
            "path": {"enum": ['phoneNumbers[type eq "work"].value', 'phoneNumbers[type eq "mobile"].value',
                              'phoneNumbers[type eq "fax"].value', 'addresses[type eq "work"].formatted',
                              'addresses[type eq "work"].streetAddress', 'addresses[type eq "work"].locality',
                              'addresses[type eq "work"].region', 'addresses[type eq "work"].postalCode',
                              'addresses[type eq "work"].country']},
            "value": _text(scim_resources.MAX_STRING)}, ("op", "path", "value"),
            title="Set a phone number or address part by type"))
        manager = f"{ENTERPRISE_USER}:manager"
        operations.append(_obj({"op": add_replace, "path": {"const": manager},
                                "value": _scim_attribute(USER_KIND.extensions[0].attribute("manager"))},
                               ("op", "path", "value"),
                               title="Set the manager (a bare id, as Entra sends it; \"\" removes it)"))
        operations.append(_obj({"op": remove, "path": {"const": manager}}, ("op", "path"),
                               title="Remove the manager"))
    for attribute in multi:
        operations.append(_obj({"op": add_replace, "path": {"const": attribute.name},
                                "value": _scim_attribute(attribute, in_patch=True)}, ("op", "path", "value"),
                               title=f"Add to or replace {attribute.name}"))
    if kind is GROUP_KIND:
        members = kind.core.attribute("members")
        member_list = {"type": "array", "items": _member_reference(members), "minItems": 1}
        operations.append(_obj({"op": {"type": "string", "pattern": r"^([Aa][Dd][Dd]|[Rr][Ee][Mm][Oo][Vv][Ee])$"},
                                "path": {"const": "members"}, "value": member_list}, ("op", "path", "value"),
                               title="Add or remove members (Entra's default dialect)"))
        operations.append(_obj({"op": remove, "path": {"type": "string",
                                                       "pattern": r'^members\[value eq "[0-9a-f]{32}"\]$'}},
                               ("op", "path"), title="Remove one member (aadOptscim062020)"))
    # No path: the value holds attributes by path ("name.givenName", "urn:…:User:department").
    no_path_values = {p: _nullable(_text(scim_resources.MAX_STRING)) for p in text_paths
                      if p not in ("userName", "displayName")}
    no_path_values |= {p: _nullable(_scim_value(Attribute("active", "boolean"))) for p in flag_paths}
    no_path_values |= {"schemas": {}, "id": {}, "meta": {}}
    no_path = {"type": ["string", "null"], "pattern": r"^\s*$", "description": "Absent, null or blank."}
    operations.append(_obj({"op": add_replace, "path": no_path,
                            "value": _obj(no_path_values, closed=True, minProperties=1)},
                           ("op", "value"), title="Several attributes at once, without a path"))
    return _obj({
        "schemas": {"type": "array", "items": {"type": "string"}, "contains": {"const": PATCH_OP}},
        "Operations": {"type": "array", "minItems": 1, "maxItems": scim_patch.MAX_OPERATIONS,
                       "items": {"anyOf": operations}},
    }, ("schemas", "Operations"), description="Operation names are case-insensitive. Every operation is "
                                              "checked before anything is stored: a failing PATCH changes "
                                              "nothing.")


def _list_response(item: str) -> dict:
    return _obj({
        "schemas": {"type": "array", "items": {"const": LIST_RESPONSE}},
        "totalResults": {"type": "integer", "minimum": 0},
        "startIndex": {"type": "integer", "minimum": 1},
        "itemsPerPage": {"type": "integer", "minimum": 0},
        "Resources": {"type": "array", "items": _ref(item)},
    }, ("schemas", "totalResults", "startIndex", "itemsPerPage", "Resources"))


def _search_request(kind: ResourceKind) -> dict:
    names = _attribute_list_pattern(kind)
    return _obj({
        "schemas": {"type": "array", "items": {"type": "string"}, "contains": {"const": SEARCH_REQUEST}},
        "filter": _filter(kind),
        "startIndex": {"type": "integer"},
        "count": {"type": "integer"},
        "attributes": {"type": "string", "pattern": names},
        "excludedAttributes": {"type": "string", "pattern": names},
        "sortBy": {"description": "Accepted and ignored (any value): sorting is not supported."},
        "sortOrder": {"description": "Accepted and ignored (any value)."},
    }, ("schemas",), closed=True, description="Member names are case-insensitive.")


def _filter(*kinds: ResourceKind) -> dict:
    names = {"id", "externalId"} | {"userName" if kind is USER_KIND else "displayName" for kind in kinds}
    keys = "|".join(sorted(names))
    # Values without control characters: no stored key has them, and the table service refuses them in a key.
    value = r'"[^"\\\x00-\x1f\x7f-\x9f]*"'
    return {"type": "string", "maxLength": 1000,
            "pattern": rf'^(\s*|({keys}) eq {value}( and ({keys}) eq {value})?)$',
            "description": "What Entra sends: `attribute eq \"value\"` (at most two joined by `and`), answered "
                           "with one point read; empty means no filter. The server also evaluates the rest of "
                           "RFC 7644 §3.4.2.2 (co, sw, pr, gt, or, not, value filters); a filter it cannot parse "
                           "is a 400 invalidFilter."}


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
    "PayloadTooLarge": "The body is larger than 1 MiB.",
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
    "ScimNotImplemented": "Not supported by this server.",
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


def _components() -> dict:
    schemas: dict[str, Any] = {
        "Error": _ERROR,
        "ScimError": _SCIM_ERROR,
        "ScimDocument": _obj({"schemas": {"type": "array", "items": {"type": "string"}}}, ("schemas",)),
        "ScimDocumentList": _obj({
            "schemas": {"type": "array", "items": {"const": LIST_RESPONSE}},
            "totalResults": {"type": "integer"},
            "Resources": {"type": "array", "items": _ref("ScimDocument")},
        }, ("schemas", "totalResults", "Resources")),
    }
    parameters: dict[str, Any] = {
        "tenant": {"name": "tenant", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": tenants.TENANT_ID.pattern},
                   "description": "The tenant id from POST /tenants."},
        "employee": {"name": "id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
                     "description": "The employee's id (their SCIM User id)."},
        "id": {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "The resource id (32 hex characters); anything else is a 404."},
        # An empty value is read as absent (the default), as lenient SCIM clients expect; the schema says so.
        "startIndex": {"name": "startIndex", "in": "query", "schema": {"anyOf": [{"type": "integer"}, {"const": ""}]},
                       "description": "1-based index of the first result (RFC 7644 §3.4.2.4); empty means 1."},
        "count": {"name": "count", "in": "query", "schema": {"anyOf": [{"type": "integer"}, {"const": ""}]},
                  "description": f"Page size, 0–{MAX_RESULTS} (more is read as {MAX_RESULTS}); empty means the "
                                 "default."},
        "ifMatch": {"name": "If-Match", "in": "header", "schema": {"type": "string"},
                    "description": "Apply only if the resource is at this version (ETag)."},
        "ifNoneMatch": {"name": "If-None-Match", "in": "header", "schema": {"type": "string"},
                        "description": "Answer 304 if the resource is still at this version."},
    }
    schemas["ResourceList"] = _list_response("User")
    schemas["ResourceList"]["properties"]["Resources"]["items"] = {"anyOf": [_ref("User"), _ref("Group")]}
    # Each query must make sense for one of the two types (users and groups).
    schemas["ResourceSearch"] = {"anyOf": [_ref("UserSearch"), _ref("GroupSearch")]}
    for kind in (USER_KIND, GROUP_KIND):
        name = kind.name
        schemas[f"{name}Request"] = _scim_request(kind)
        schemas[name] = _scim_resource(kind)
        schemas[f"{name}Patch"] = _patch_request(kind)
        schemas[f"{name}List"] = _list_response(name)
        schemas[f"{name}Search"] = _search_request(kind)
        schemas[f"{name}Attributes"] = {"type": "string", "pattern": _attribute_list_pattern(kind),
                                        "description": "Comma-separated attribute names (RFC 7644 §3.4.2.5)."}
        schemas[f"{name}Filter"] = _filter(kind)
        parameters[f"{name}Filter"] = {"name": "filter", "in": "query", "schema": _ref(f"{name}Filter")}
        for parameter in ("attributes", "excludedAttributes"):
            parameters[f"{name}{parameter[0].upper()}{parameter[1:]}"] = {
                "name": parameter, "in": "query", "schema": _ref(f"{name}Attributes")}
    schemas.update(_model_components())
    schemas.update(_oidc_schemas())
    schemas.update(_events_components())
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

def _pydantic_schemas(*models) -> dict:
    """Component schemas of pydantic models, their nested models lifted into components too."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _events_components() -> dict:
    from shared_code.events import api as events_api

    # The events themselves (what the Events API pages and the `webhooks` section deliver); the webhook
    # endpoint's own bodies are named by its functions' declarations.
    schemas = _pydantic_schemas(events_api.EventPage, events_api.Event, events_api.WebhookTestEvent,
                                *events_api.DATA_MODELS)
    # `data` by `type` (JSON Schema 2020-12 if/then: OpenAPI 3.1 validators and receivers' tools read it).
    schemas["Event"]["allOf"] = [
        {"if": {"properties": {"type": {"enum": types}}},
         "then": {"properties": {"data": _ref(model.__name__)}}}
        for model, types in events_api.DATA_MODELS.items()]
    return schemas


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


def _resolve(node: Any) -> Any:
    """The declaration's plain data as JSON: named models become `$ref`s (and components), deferred values are
    computed."""
    if isinstance(node, Deferred):
        return _resolve(node.compute())
    if isinstance(node, ModelRef):
        return model_schema(getattr(importlib.import_module(node.module), node.name), response=node.response)
    if isinstance(node, dict):
        return {key: _resolve(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_resolve(value) for value in node]
    return node


def _operation(endpoint: Endpoint) -> dict:
    declared = endpoint.operation
    responses = _resolve(declared.responses)
    if declared.security:
        # Wrong credentials are counted per tenant and client; over budget, a wrong one is answered 429.
        scim = tuple(declared.security) == SCIM_TOKEN
        responses = {**responses, "429": _ref(("Scim" if scim else "") + "TooManyRequests", "responses")}
    if declared.tag not in TAGS:
        raise ValueError(f"{endpoint.name}: tag {declared.tag!r} is not one of the document's sections {TAGS}")
    operation: dict[str, Any] = {"operationId": endpoint.name, "summary": declared.summary, "tags": [declared.tag],
                                 "security": [{scheme: []} for scheme in declared.security],
                                 "responses": dict(sorted(responses.items()))}
    description = _resolve(declared.description)
    if description:
        operation["description"] = description
    parameters = _resolve(declared.parameters)
    if parameters:
        operation["parameters"] = parameters
    if declared.request:
        operation["requestBody"] = _resolve(declared.request)
    return operation


def _path_parameters(endpoint: Endpoint) -> list[dict]:
    names = _ROUTE_PARAMETER.findall(endpoint.route)
    return [_resolve(endpoint.operation.path.get(name) or _SHARED_PATH_PARAMETERS.get(name) or path_parameter(name))
            for name in names]


def _paths(endpoints: list[Endpoint]) -> dict:
    undeclared = [f"{e.name} ({' '.join(e.methods)} /api/{e.route})" for e in endpoints if e.operation is None]
    if undeclared:
        raise ValueError("declare these beside their @bp.route with @describe(...) (or describe(excluded=...)): "
                         + ", ".join(undeclared))
    paths: dict[str, dict] = {}
    # Grouped by section (as a reader and a fuzzer meet them), in the app's order within one.
    section = {tag: index for index, tag in enumerate(TAGS)}
    for endpoint in sorted(endpoints, key=lambda e: section.get(e.operation.tag, len(TAGS))):
        methods = [m for m in endpoint.methods if endpoint.operation.describes(m)]
        if not methods:
            continue
        path = "/" + endpoint.route
        item = paths.setdefault(path, {})
        parameters = _path_parameters(endpoint)
        if parameters and item.setdefault("parameters", parameters) != parameters:
            raise ValueError(f"{endpoint.name} declares {path}'s path parameters unlike the other functions there")
        for method in methods:
            if method.lower() in item:
                raise ValueError(f"{endpoint.name}: {method} {path} is described twice")
            item[method.lower()] = _operation(endpoint)
    return paths


def document(base_url: str, endpoints: list[Endpoint]) -> dict:
    """The OpenAPI document of `endpoints` with its server at `base_url` (PUBLIC_BASE_URL)."""
    paths = _paths(endpoints)  # first: it registers the models the components publish
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
        "components": _components(),
        "webhooks": _webhooks(),
    }


def document_bytes(base_url: str, endpoints: list[Endpoint]) -> bytes:
    """The served form: compact UTF-8 JSON."""
    return json.dumps(document(base_url, endpoints), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
