"""The OpenAPI 3.1 description of Gatehouse's HTTP API for programs: operator, tenant admin, SCIM and mobile.

Served by `functions/openapi.py` at `GET /api/openapi.json`. This module knows the paths, who may call each
operation (security) and its responses; the JSON bodies of the operator, tenant-admin, wizard and mobile APIs
are the pydantic models that validate them (`shared_code/bodies/`), published with `model_schema(Model)`, so
the document and the validation cannot disagree. The SCIM bodies are derived here from the SCIM declarations
(`shared_code/scim/schemas.py`) instead: see `_scim_request`.
`tests/test_openapi.py` holds every route the app registers against the paths here and `EXCLUDED_ROUTES`, and
`tests/test_schemathesis.py` sends generated requests to check the app answers as described here.

Request schemas say exactly what the server accepts (no more, no less) where JSON Schema can say it;
what it cannot (a domain that is a public suffix, a manager id that names no user) is a documented 4xx.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from shared_code import tenants
from shared_code.bodies import domain_audit as domain_bodies
from shared_code.bodies import employees as employee_bodies
from shared_code.bodies import idp_connection as idp_bodies
from shared_code.bodies import mobile as mobile_bodies
from shared_code.bodies import setup_access as setup_bodies
from shared_code.bodies import tenants as tenant_bodies
from shared_code.scim import patch as scim_patch
from shared_code.scim import resources as scim_resources
from shared_code.scim import service as scim_service
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

JSON, SCIM = "application/json", "application/scim+json"

# Routes the app registers that are deliberately not described here, with the reason (route, method or "*").
EXCLUDED_ROUTES: dict[tuple[str, str], str] = {
    ("openapi.json", "GET"): "this document itself",
    ("setup/{tenant}", "GET"): "the setup wizard page (HTML for a person's browser)",
    ("setup-assets/{name}", "GET"): "the wizard's static CSS/JS under content-hashed names",
    ("scim/{tenant}/v2/{*rest}", "*"): "SCIM-shaped 404/405 for paths and methods no SCIM endpoint has",
    ("scim/{tenant}/v2/ServiceProviderConfig", "POST PUT PATCH DELETE"): "registered only to answer a SCIM 405",
    ("scim/{tenant}/v2/Schemas", "POST PUT PATCH DELETE"): "registered only to answer a SCIM 405",
    ("scim/{tenant}/v2/Schemas/{schema_id}", "POST PUT PATCH DELETE"): "registered only to answer a SCIM 405",
    ("scim/{tenant}/v2/ResourceTypes", "POST PUT PATCH DELETE"): "registered only to answer a SCIM 405",
    ("scim/{tenant}/v2/ResourceTypes/{name}", "POST PUT PATCH DELETE"): "registered only to answer a SCIM 405",
    ("sso/{tenant}/login", "*"): "browser: SP-initiated sign-in, a redirect to Entra",
    ("sso/{tenant}/acs", "*"): "browser: Entra posts the SAML response here (form, HTML answers)",
    ("sso/{tenant}/metadata", "*"): "SAML SP metadata (XML for Entra, described by the SAML metadata spec)",
    ("sso/{tenant}/me", "*"): "browser: the signed-in employee, by session cookie",
    # OpenID Provider (issue 13): protocol endpoints, described by the issuer's discovery document instead.
    ("oidc/{tenant}/authorize", "*"): "browser: OpenID Connect authorization endpoint (redirects)",
    ("oidc/{tenant}/token", "*"): "OAuth 2.0 token endpoint (RFC 6749 form body, client authentication)",
    ("oidc/{tenant}/userinfo", "*"): "OpenID Connect UserInfo (the OP's access token, RFC 6750)",
    ("oidc/{tenant}/logout", "*"): "browser: RP-initiated logout (redirects or a page)",
    ("oidc/{tenant}/.well-known/openid-configuration", "OPTIONS"): "CORS preflight (204, no body)",
    ("oidc/{tenant}/.well-known/oauth-authorization-server", "OPTIONS"): "CORS preflight (204, no body)",
    ("oidc/{tenant}/jwks", "OPTIONS"): "CORS preflight (204, no body)",
    ("sso/{tenant}/slo", "*"): "browser: SAML single logout with Entra (HTTP-Redirect binding)",
    # The development IdP (issue 24): registered only with DEV_IDP=true on http://, never in production; it plays
    # Entra (SAML metadata and pages, Entra's key set and ID tokens), so it is described by Entra's documents.
    ("dev-idp/{tenant}/metadata", "*"): "development IdP: App Federation Metadata (SAML metadata XML)",
    ("dev-idp/{tenant}/saml2", "*"): "development IdP: browser sign-in and logout pages (SAML HTTP-Redirect)",
    ("dev-idp/{tenant}/logout", "*"): "development IdP: browser, an Entra-initiated logout (a redirect)",
    ("dev-idp/{tenant}/discovery/v2.0/keys", "*"): "development IdP: Entra's v2.0 key set (JWKS)",
    ("dev-idp/{tenant}/id-token", "*"): "development IdP: an Entra v2.0 ID token, as MSAL gets one",
}

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
    models it nests (its `$defs`). Requests are described as validated, responses as serialised. One line
    per body in an operation:

        body=_json_body(model_schema(clients.NewClient)),
        responses={**_ok(model_schema(clients.RegisteredClient, response=True), "The client.", "201"), …}

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

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
_ETAG = {"ETag": {"description": "The resource's version, W/\"n\".", "schema": {"type": "string"}}}

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
_STATUS = {"BadRequest": "400", "Unauthorized": "401", "Forbidden": "403", "NotFound": "404", "Conflict": "409",
           "PreconditionFailed": "412", "PayloadTooLarge": "413", "Unprocessable": "422",
           "TooManyRequests": "429", "StorageUnavailable": "503", "NotImplemented": "501"}


def _error_responses() -> dict:
    responses = {}
    for name, description in _JSON_ERRORS.items():
        response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref("Error")}}}
        if name in ("StorageUnavailable", "TooManyRequests"):
            response["headers"] = _RETRY_AFTER
        responses[name] = response
    for name, description in _SCIM_ERRORS.items():
        response = {"description": description, "content": {SCIM: {"schema": _ref("ScimError")}}}
        if name in ("ScimStorageUnavailable", "ScimTooManyRequests"):
            response["headers"] = _RETRY_AFTER
        if name == "ScimUnauthorized":
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if name == "ScimPreconditionFailed":
            response["headers"] = _ETAG
        responses[name] = response
    return responses


def _errors(*names: str, scim: bool = False) -> dict:
    prefix = "Scim" if scim else ""
    return {_STATUS[name]: _ref(prefix + name, "responses") for name in names}


def _json_body(schema: dict, description: str = "") -> dict:
    body = {"required": True, "content": {JSON: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def _ok(schema: dict, description: str, status: str = "200", headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return {status: response}


def _scim_ok(schema: dict, description: str, status: str = "200", headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {SCIM: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return {status: response}


def _operation(operation_id: str, summary: str, tag: str, security: list, responses: dict, *,
               parameters: list | None = None, body: dict | None = None, description: str = "") -> dict:
    if security:
        # Wrong credentials are counted per tenant and client; over budget, a wrong one is answered 429.
        scim = security == SCIM_TOKEN
        responses = {**responses, "429": _ref(("Scim" if scim else "") + "TooManyRequests", "responses")}
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag],
                                 "security": security, "responses": dict(sorted(responses.items()))}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    return operation


OPERATOR = [{"operatorKey": []}]
ADMIN = [{"adminKey": []}]
ADMIN_OR_OPERATOR = [{"adminKey": []}, {"operatorKey": []}]
SCIM_TOKEN = [{"scimToken": []}]
ANONYMOUS: list = []

_TENANT = _ref("tenant", "parameters")
_ID = _ref("id", "parameters")
_EMPLOYEE = _ref("employee", "parameters")
_DOMAIN = {"name": "domain", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 1024},
           "description": "A domain name such as contoso.com (Unicode or punycode)."}
_ATTRIBUTES = [_ref("attributes", "parameters"), _ref("excludedAttributes", "parameters")]


def _admin_paths() -> dict:
    sso = model_schema(tenant_bodies.SsoSetup, response=True)
    employee = model_schema(employee_bodies.Employee, response=True)
    audit_run = model_schema(domain_bodies.AuditRun, response=True)
    corporate_domains = model_schema(domain_bodies.CorporateDomainList, response=True)
    domain_verification = model_schema(domain_bodies.DomainVerification, response=True)
    mobile_setup = model_schema(mobile_bodies.MobileSetup, response=True)
    wizard_session = model_schema(setup_bodies.WizardSession, response=True)
    admin_errors = _errors("Unauthorized", "Forbidden", "StorageUnavailable")
    return {
        "/tenants": {"post": _operation(
            "create_tenant", "Create a tenant", "Operator", OPERATOR,
            {**_ok(model_schema(tenant_bodies.CreatedTenant, response=True),
                   "The tenant; its admin key is shown only here.", "201"),
             **_errors("BadRequest", "Unauthorized", "Forbidden", "Conflict", "PayloadTooLarge",
                       "StorageUnavailable")},
            body=_json_body(model_schema(tenant_bodies.NewTenant)))},
        "/tenants/{tenant}/sso": {"parameters": [_TENANT], "get": _operation(
            "get_sso_setup", "The tenant's SSO setup: URLs to paste into Entra, status and each step's state",
            "Tenant admin", ADMIN_OR_OPERATOR,
            {**_ok(sso, "The setup."), **_errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")})},
        "/tenants/{tenant}/scim/token": {"parameters": [_TENANT], "post": _operation(
            "rotate_scim_token", "Issue a new SCIM secret token (the previous one stops working)",
            "Tenant admin", ADMIN,
            {**_ok(model_schema(tenant_bodies.ScimToken, response=True),
                   "Paste both into Entra's provisioning settings; the token is shown only here.", "201"),
             **admin_errors})},
        "/tenants/{tenant}/default-department": {"parameters": [_TENANT], "put": _operation(
            "set_default_department", "Where SCIM-created employees without a department land",
            "Tenant admin", ADMIN,
            {**_ok(model_schema(tenant_bodies.SavedDepartment, response=True), "Saved."),
             **_errors("BadRequest", "Unauthorized", "Forbidden", "PayloadTooLarge", "StorageUnavailable")},
            body=_json_body(model_schema(tenant_bodies.DefaultDepartment)))},
        "/tenants/{tenant}/sso/enable": {"parameters": [_TENANT], "post": _operation(
            "enable_sso", "Enforce SSO for every employee (cannot be undone by the tenant)", "Tenant admin", ADMIN,
            {**_ok(sso, "Enabled (or already enabled)."),
             **_errors("Unauthorized", "Forbidden", "Conflict", "StorageUnavailable")},
            description="409 until Entra is connected and the self-check sign-in has passed.")},
        "/tenants/{tenant}/sso/cancel": {"parameters": [_TENANT], "post": _operation(
            "cancel_sso_setup", "Abandon an unfinished setup: back to draft", "Tenant admin", ADMIN,
            {**_ok(sso, "Back to draft."), **_errors("Unauthorized", "Forbidden", "Conflict", "StorageUnavailable")},
            description="409 once SSO is enabled: only the operator can turn it back.")},
        "/tenants/{tenant}/sso/disable": {"parameters": [_TENANT], "post": _operation(
            "operator_disable_sso", "The operator's way back from enabled (a support case)", "Operator", OPERATOR,
            {**_ok(model_schema(tenant_bodies.DisabledSso, response=True),
                   "Back to testing (or draft), and what was done."),
             **_errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")})},
        "/tenants/{tenant}/setup-link": {"parameters": [_TENANT], "post": _operation(
            "create_setup_link", "A one-time, expiring link to the setup wizard for the tenant admin",
            "Operator", OPERATOR,
            {**_ok(model_schema(setup_bodies.SetupLink, response=True),
                   "The link (its token is in the fragment, so it never reaches a server log).", "201"),
             **_errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")},
            description="Issuing a link replaces the previous one. 503 also when SESSION_SIGNING_KEY is not set.")},
        "/tenants/{tenant}/sso/idp-metadata": {"parameters": [_TENANT], "post": _operation(
            "connect_idp_metadata", "Connect Entra: check its federation metadata (by URL or pasted XML) and "
                                    "store it", "Tenant admin", ADMIN_OR_OPERATOR,
            {**_ok(model_schema(idp_bodies.IdpConnection, response=True), "Connected."),
             **_errors("BadRequest", "Unauthorized", "Forbidden", "Conflict", "PayloadTooLarge", "Unprocessable",
                       "StorageUnavailable")},
            body=_json_body(model_schema(idp_bodies.IdpMetadataSource),
                            "Exactly one of metadata_url and metadata_xml."),
            description="422 with a message a person can act on: unreachable URL, not metadata, no signing "
                        "certificate, expired certificate, both or neither field. 409 once SSO is enabled and "
                        "the metadata names another identity provider.")},
        "/tenants/{tenant}/sso/test-link": {"parameters": [_TENANT], "post": _operation(
            "create_self_check_link", "A one-time self-check sign-in link for the admin", "Tenant admin", ADMIN,
            {**_ok(model_schema(idp_bodies.SelfCheckLink, response=True), "The link; it works once."),
             **_errors("Unauthorized", "Forbidden", "Conflict", "StorageUnavailable")},
            description="409 until Entra is connected (POST …/sso/idp-metadata).")},
        "/tenants/{tenant}/domains": {"parameters": [_TENANT], **{
            "put": _operation(
                "put_corporate_domains", "Set the corporate email domains", "Domain audit", ADMIN,
                {**_ok(corporate_domains, "Saved, normalised (lower case, IDN as Unicode, sorted)."),
                 **_errors("BadRequest", "Unauthorized", "Forbidden", "PayloadTooLarge", "Unprocessable",
                           "StorageUnavailable")},
                body=_json_body(model_schema(domain_bodies.CorporateDomainsUpdate)),
                description="422 names the first offending entry (field domains[i]) and why: a public mail "
                            "provider, a public suffix, an IP address, not a domain name, and so on."),
            "get": _operation(
                "get_corporate_domains", "The corporate email domains", "Domain audit", ADMIN,
                {**_ok(corporate_domains, "The domains ([] until set)."), **admin_errors}),
        }},
        "/tenants/{tenant}/domains/{domain}/verification": {"parameters": [_TENANT, _DOMAIN], "post": _operation(
            "start_domain_verification", "The DNS TXT record that proves the tenant owns a domain", "Domain audit",
            ADMIN, {**_ok(domain_verification, "The record to create (the same on every call)."),
                    **_errors("Unauthorized", "Forbidden", "Unprocessable", "StorageUnavailable")},
            description="422 when the domain is not one a company can own (a public mail provider, a public "
                        "suffix, not a domain name).")},
        "/tenants/{tenant}/domains/{domain}/verification/check": {"parameters": [_TENANT, _DOMAIN], "post": _operation(
            "check_domain_verification", "Look the TXT record up; verified, or what is missing", "Domain audit",
            ADMIN, {**_ok(domain_verification, "Verified: employees' emails in this domain carry email_verified."),
                    **_errors("Unauthorized", "Forbidden", "NotFound", "Conflict", "Unprocessable"),
                    "503": {"description": "DNS (or storage) did not answer in time; retry after Retry-After.",
                            "headers": _RETRY_AFTER, "content": {JSON: {"schema": _ref("Error")}}}},
            description="404 before POST …/verification; 409 when the record is missing, holds another value, or "
                        "another tenant verified the domain first (a domain belongs to one tenant).")},
        "/tenants/{tenant}/domain-audit": {"parameters": [_TENANT], **{
            "post": _operation(
                "run_domain_audit", "Run the domain audit now", "Domain audit", ADMIN,
                {**_ok(audit_run, "The finished run."),
                 **_errors("Unauthorized", "Forbidden", "Conflict", "StorageUnavailable")},
                description="409 until the corporate domains are set."),
            "get": _operation(
                "get_domain_audit", "The latest domain audit: every active employee outside the domains",
                "Domain audit", ADMIN,
                {**_ok(audit_run, "The latest run, or status never_run."), **admin_errors}),
        }},
        "/tenants/{tenant}/employees/{id}": {"parameters": [_TENANT, _EMPLOYEE], **{
            "get": _operation(
                "get_employee", "One employee, with the audit's verdict on their email", "Employees", ADMIN,
                {**_ok(employee, "The employee."),
                 **_errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")}),
            "patch": _operation(
                "change_employee_email", "Fix an employee's work email", "Employees", ADMIN,
                {**_ok(employee, "The employee; `warning` when Entra provisions them (it will "
                                         "overwrite the email unless it is changed in Entra too)."),
                 **_errors("BadRequest", "Unauthorized", "Forbidden", "NotFound", "PayloadTooLarge",
                           "Unprocessable", "StorageUnavailable")},
                body=_json_body(model_schema(employee_bodies.EmailChange))),
        }},
        "/tenants/{tenant}/employees/{id}/allow": {"parameters": [_TENANT, _EMPLOYEE], **{
            method: _operation(
                operation_id, summary, "Employees", ADMIN,
                {**_ok(employee, "The employee."),
                 **_errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")})
            for method, operation_id, summary in (
                ("post", "allow_employee_outside_domains",
                 "\"Allow\": accept that an employee outside the domains cannot sign in"),
                ("delete", "undo_allow_employee_outside_domains", "Undo \"Allow\""))
        }},
        "/tenants/{tenant}/employees/{id}/admin": {"parameters": [_TENANT, _EMPLOYEE], **{
            "put": _operation(
                "grant_employee_admin_rights", "Grant admin rights", "Employees", ADMIN,
                {**_ok(employee, "The employee."),
                 **_errors("Unauthorized", "Forbidden", "NotFound", "Conflict", "StorageUnavailable")},
                description="409 for a dismissed employee (active=false)."),
            "delete": _operation(
                "revoke_employee_admin_rights", "Revoke admin rights", "Employees", ADMIN,
                {**_ok(employee, "The employee."),
                 **_errors("Unauthorized", "Forbidden", "NotFound", "Conflict", "StorageUnavailable")},
                description="409 when an Entra group mapped to the admin role gives the right (remove them from "
                            "the group in Entra, or change the role mappings)."),
        }},
        "/tenants/{tenant}/mobile": {"parameters": [_TENANT], **{
            "put": _operation(
                "put_mobile_config", "Store what Entra shows for the iOS and Android apps", "Mobile", ADMIN,
                {**_ok(mobile_setup, "Validated against the app's identifiers and stored (parts not sent "
                                            "are kept)."),
                 **_errors("BadRequest", "Unauthorized", "Forbidden", "PayloadTooLarge", "Unprocessable",
                           "StorageUnavailable")},
                body=_json_body(model_schema(mobile_bodies.MobileSetupUpdate)),
                description="Every refusal is a 422 whose `field` is a dotted path such as "
                            "msal_configuration.redirect_uri."),
            "get": _operation(
                "get_mobile_config", "The stored mobile settings and the app identifiers to enter in Entra",
                "Mobile", ADMIN, {**_ok(mobile_setup, "The settings (nulls until configured)."),
                                  **admin_errors}),
        }},
        "/mobile/{tenant}/config": {"parameters": [_TENANT], "get": _operation(
            "serve_mobile_config", "The MSAL configuration for one platform (what the mobile app reads)", "Mobile",
            ANONYMOUS,
            {**_ok({"anyOf": [model_schema(mobile_bodies.IosAppConfig, response=True),
                              model_schema(mobile_bodies.AndroidAppConfig, response=True)]},
                   "iOS: client_id, redirect_uri, authority, bundle_id. Android: the MSAL configuration file. Both: "
                   "token_exchange, where the app trades the Entra ID token for the product's tokens.",
                   headers={**_ETAG, "Cache-Control": {"schema": {"type": "string"}}}),
             "304": {"description": "If-None-Match names the current configuration.", "headers": _ETAG},
             **_errors("BadRequest", "NotFound", "Conflict", "StorageUnavailable")},
            parameters=[{"name": "platform", "in": "query", "required": True,
                         "schema": {"enum": ["ios", "android"]}},
                        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
            description="404 until the tenant admin has set up that platform (an unknown tenant looks the "
                        "same); 409 when the app's identifiers changed since.")},
        "/setup/{tenant}/session": {"parameters": [_TENANT], **{
            "post": _operation(
                "open_setup_session", "Spend a setup link's token on a wizard session (sets its cookie)",
                "Setup wizard", ANONYMOUS,
                {**_ok(wizard_session, "The session; the cookie is HttpOnly, the CSRF token is for "
                                              "X-CSRF-Token.", "201",
                       headers={"Set-Cookie": {"schema": {"type": "string"}}}),
                 **_errors("BadRequest", "Forbidden", "PayloadTooLarge", "StorageUnavailable")},
                body=_json_body(model_schema(setup_bodies.SetupLinkToken)),
                description="403 when the token is unknown, replaced, used already or expired."),
            "get": _operation(
                "read_setup_session", "The current wizard session (a reloaded page gets its CSRF token back)",
                "Setup wizard", ANONYMOUS,
                {**_ok(wizard_session, "The session of the cookie sent."), **_errors("Unauthorized")}),
            "delete": _operation(
                "close_setup_session", "Forget the wizard session cookie", "Setup wizard", ANONYMOUS,
                {"204": {"description": "The cookie is cleared."}, **_errors("NotFound")}),
        }},
    }


def _scim_paths() -> dict:
    scim = {"scim": True}
    paths: dict[str, Any] = {}
    for kind in (USER_KIND, GROUP_KIND):
        plural = kind.endpoint.strip("/")
        name = kind.name
        one = name.lower()
        collection = f"/scim/{{tenant}}/v2/{plural}"
        item = f"{collection}/{{id}}"
        max_body = scim_service.MAX_USER_BODY if kind is USER_KIND else scim_service.MAX_GROUP_BODY
        write_errors = _errors("BadRequest", "Unauthorized", "Conflict", "PayloadTooLarge", "StorageUnavailable",
                               **scim)
        etag_headers = {**_ETAG, "Location": {"schema": {"type": "string", "format": "uri"}}}
        list_parameters = [_ref(f"{name}Filter", "parameters"), _ref("startIndex", "parameters"),
                           _ref("count", "parameters"), _ref(f"{name}Attributes", "parameters"),
                           _ref(f"{name}ExcludedAttributes", "parameters")]
        single_parameters = [_ref(f"{name}Attributes", "parameters"), _ref(f"{name}ExcludedAttributes", "parameters")]
        body_note = f"At most {max_body // 1024} KiB."
        paths[collection] = {"parameters": [_TENANT], **{
            "get": _operation(
                f"scim_list_{plural.lower()}", f"Query {plural} (always 200 with a ListResponse)", "SCIM",
                SCIM_TOKEN,
                {**_scim_ok(_ref(f"{name}List"), "One page of matches; an empty list when nothing matches."),
                 **_errors("BadRequest", "Unauthorized", "StorageUnavailable", **scim)},
                parameters=list_parameters,
                description=f"`count` is capped at {MAX_RESULTS}; `startIndex` below 1 means 1."),
            "post": _operation(
                f"scim_create_{one}", f"Create a {name}", "SCIM", SCIM_TOKEN,
                {**_scim_ok(_ref(name), f"The new {name}. A retried create (same {'userName' if kind is USER_KIND else 'displayName'}"
                                        " and externalId) answers the existing one.", "201", etag_headers),
                 **write_errors},
                parameters=single_parameters,
                body={"required": True, "description": body_note,
                      "content": {SCIM: {"schema": _ref(f"{name}Request")},
                                  JSON: {"schema": _ref(f"{name}Request")}}}),
        }}
        paths[f"{collection}/.search"] = {"parameters": [_TENANT], "post": _operation(
            f"scim_search_{plural.lower()}", f"Query {plural} with a SearchRequest body (RFC 7644 §3.4.3)", "SCIM",
            SCIM_TOKEN,
            {**_scim_ok(_ref(f"{name}List"), "One page of matches."),
             **_errors("BadRequest", "Unauthorized", "PayloadTooLarge", "StorageUnavailable", **scim)},
            body={"required": True, "content": {SCIM: {"schema": _ref(f"{name}Search")},
                                                JSON: {"schema": _ref(f"{name}Search")}}})}
        conditional = [_ref("ifMatch", "parameters")]
        patch_ok = (_scim_ok(_ref(name), f"The {name} as it is now.", headers=_ETAG) if kind is USER_KIND else
                    {"204": {"description": "Applied (no body: Entra does not want the member list back).",
                             "headers": _ETAG}})
        paths[item] = {"parameters": [_TENANT, _ID], **{
            "get": _operation(
                f"scim_get_{one}", f"Read a {name}", "SCIM", SCIM_TOKEN,
                {**_scim_ok(_ref(name), f"The {name}.", headers=_ETAG),
                 "304": {"description": "If-None-Match names the current version.", "headers": _ETAG},
                 **_errors("BadRequest", "Unauthorized", "NotFound", "StorageUnavailable", **scim)},
                parameters=single_parameters + [_ref("ifNoneMatch", "parameters")]),
            "put": _operation(
                f"scim_replace_{one}", f"Replace a {name}", "SCIM", SCIM_TOKEN,
                {**_scim_ok(_ref(name), f"The {name} as stored.", headers=_ETAG),
                 **write_errors, **_errors("NotFound", "PreconditionFailed", **scim)},
                parameters=single_parameters + conditional,
                body={"required": True, "description": body_note,
                      "content": {SCIM: {"schema": _ref(f"{name}Request")},
                                  JSON: {"schema": _ref(f"{name}Request")}}}),
            "patch": _operation(
                f"scim_patch_{one}", f"Change a {name} with a PatchOp", "SCIM", SCIM_TOKEN,
                {**patch_ok, **write_errors, **_errors("NotFound", "PreconditionFailed", **scim)},
                parameters=(single_parameters if kind is USER_KIND else []) + conditional,
                body={"required": True, "description": body_note,
                      "content": {SCIM: {"schema": _ref(f"{name}Patch")}, JSON: {"schema": _ref(f"{name}Patch")}}}),
            "delete": _operation(
                f"scim_delete_{one}", f"Delete a {name} (Entra's hard delete)", "SCIM", SCIM_TOKEN,
                {"204": {"description": "Deleted."},
                 **_errors("Unauthorized", "NotFound", "PreconditionFailed", "StorageUnavailable", **scim)},
                parameters=conditional),
        }}
    discovery = {
        "ServiceProviderConfig": ("scim_service_provider_config", "What this SCIM server supports", "ScimDocument"),
        "Schemas": ("scim_list_schemas", "The schemas of Users, Groups and the enterprise extension",
                    "ScimDocumentList"),
        "Schemas/{schema_id}": ("scim_get_schema", "One schema, by its URN (case-insensitive)", "ScimDocument"),
        "ResourceTypes": ("scim_list_resource_types", "The resource types User and Group", "ScimDocumentList"),
        "ResourceTypes/{name}": ("scim_get_resource_type", "One resource type, by name", "ScimDocument"),
    }
    for suffix, (operation_id, summary, schema) in discovery.items():
        parameters = [_TENANT]
        not_found = {}
        if "{" in suffix:
            parameter = suffix.split("{")[1].rstrip("}")
            parameters.append({"name": parameter, "in": "path", "required": True, "schema": {"type": "string"}})
            not_found = _errors("NotFound", **scim)
        paths[f"/scim/{{tenant}}/v2/{suffix}"] = {"parameters": parameters, "get": _operation(
            operation_id, summary, "SCIM discovery", SCIM_TOKEN,
            {**_scim_ok(_ref(schema), summary + "."), **not_found,
             **_errors("Unauthorized", "StorageUnavailable", **scim)})}
    paths["/scim/{tenant}/v2/.search"] = {"parameters": [_TENANT], "post": _operation(
        "scim_search_everything", "Query Users and Groups together with a SearchRequest (RFC 7644 §3.4.3)",
        "SCIM", SCIM_TOKEN,
        {**_scim_ok(_ref("ResourceList"), "Users, then groups. A filter or attribute only one type has applies "
                                          "to that type; one that neither has is a 400."),
         **_errors("BadRequest", "Unauthorized", "PayloadTooLarge", "StorageUnavailable", **scim)},
        body={"required": True, "content": {SCIM: {"schema": _ref("ResourceSearch")},
                                            JSON: {"schema": _ref("ResourceSearch")}}})}
    return paths


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
    from shared_code.webhooks import endpoint as webhook

    schemas = _pydantic_schemas(events_api.EventPage, events_api.Event, webhook.WebhookRequest,
                                webhook.WebhookSecret, webhook.WebhookStatus, webhook.TestDelivery,
                                events_api.WebhookTestEvent, *events_api.DATA_MODELS)
    # `data` by `type` (JSON Schema 2020-12 if/then: OpenAPI 3.1 validators and receivers' tools read it).
    schemas["Event"]["allOf"] = [
        {"if": {"properties": {"type": {"enum": types}}},
         "then": {"properties": {"data": _ref(model.__name__)}}}
        for model, types in events_api.DATA_MODELS.items()]
    return schemas


def _events_paths() -> dict:
    from shared_code.events import api as events_api

    return {
        "/tenants/{tenant}/events": {"parameters": [_TENANT], "get": _operation(
            "list_events", "The tenant's directory events, oldest first, from a cursor", "Events",
            ADMIN_OR_OPERATOR,
            {**_ok(_ref("EventPage"), "Up to `limit` events after the cursor, and the cursor to read on."),
             **_errors("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Unprocessable",
                       "StorageUnavailable")},
            parameters=[
                {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 64},
                 "description": "A `next` this API returned; without it, reading starts at the oldest event "
                                "kept (events are kept 30 days)."},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": events_api.MAX_LIMIT,
                            "default": events_api.DEFAULT_LIMIT}}],
            description="A reader that keeps `next` and polls sees every event exactly once, in `sequence` "
                        "order, even while changes are being written (sequence numbers are handed out in "
                        "commit order). Event types and their `data`: " + ", ".join(
                            events_api.EVENT_TYPES) + ". Webhooks deliver the same events with the same ids.")},
        **_webhook_paths(),
    }


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


def _webhook_paths() -> dict:
    errors = _errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")
    delivery = ("Each event of the Events API is POSTed as its JSON (the `Event` schema), in sequence order, at "
                "least once (dedupe by `webhook-id`, the event id), signed per Standard Webhooks 1.0: headers "
                "`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "
                "id.timestamp.body>` (two, space-separated, for 24 h after a rotation). A 2xx is delivered; "
                "anything else is retried with exponential backoff and jitter (a 429/503 Retry-After is honoured) "
                "for up to 3 days, then the endpoint is disabled; a 410 disables it at once. A PUT re-enables it "
                "and delivery resumes where it stopped. Timeout 10 s per attempt.")
    return {
        "/tenants/{tenant}/webhook": {
            "parameters": [_TENANT],
            "put": _operation(
                "put_webhook", "Set the tenant's webhook endpoint (creates it with a new secret, or changes its "
                               "URL and re-enables it)", "Events", OPERATOR,
                {**_ok(_ref("WebhookSecret"), "The endpoint and its signing secret."),
                 **_errors("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Unprocessable",
                           "PayloadTooLarge", "StorageUnavailable")},
                body=_json_body(_ref("WebhookRequest")), description=delivery),
            "get": _operation(
                "get_webhook", "The webhook: enabled or why not, delivery position, the last attempts", "Events",
                OPERATOR, {**_ok(_ref("WebhookStatus"), "The endpoint's state (never its secret)."), **errors}),
            "delete": _operation(
                "delete_webhook", "Remove the webhook (the Events API keeps every event)", "Events", OPERATOR,
                {"204": {"description": "Removed."}, **errors}),
        },
        "/tenants/{tenant}/webhook/rotate-secret": {"parameters": [_TENANT], "post": _operation(
            "rotate_webhook_secret", "A new signing secret; the previous one keeps signing too for 24 h", "Events",
            OPERATOR, {**_ok(_ref("WebhookSecret"), "The new secret and when the old one stops signing."),
                       **errors})},
        "/tenants/{tenant}/webhook/test": {"parameters": [_TENANT], "post": _operation(
            "test_webhook", "Send one signed `webhook.test` delivery now", "Events", OPERATOR,
            {**_ok(_ref("TestDelivery"), "What the receiver answered."), **errors})},
    }


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


def _oidc_paths() -> dict:
    from shared_code.oidc import clients  # the models of the product's clients (pydantic, in their package)

    errors = _errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")
    client_id = {"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}
    client = model_schema(clients.Client, response=True)
    created = model_schema(clients.ClientCreated, response=True)
    return {
        "/tenants/{tenant}/oidc/clients": {"parameters": [_TENANT], **{
            "post": _operation(
                "create_oidc_client", "Register the product as an OpenID Connect client of this tenant", "OpenID "
                "Provider", OPERATOR,
                {**_ok(created, "The client; its secret is shown only here.", "201"),
                 **errors, **_errors("BadRequest", "PayloadTooLarge", "Unprocessable")},
                body=_json_body(model_schema(clients.ClientRegistration))),
            "get": _operation("list_oidc_clients", "The tenant's clients", "OpenID Provider", OPERATOR,
                              {**_ok(model_schema(clients.ClientList, response=True), "Every client (no secrets)."),
                               **errors}),
        }},
        "/tenants/{tenant}/oidc/clients/{client_id}": {"parameters": [_TENANT, client_id], **{
            "get": _operation("get_oidc_client", "One client", "OpenID Provider", OPERATOR,
                              {**_ok(client, "The client (no secret)."), **errors}),
            "delete": _operation("delete_oidc_client", "Delete a client", "OpenID Provider", OPERATOR,
                                 {"204": {"description": "Deleted; its tokens stop being issued."}, **errors}),
        }},
        "/tenants/{tenant}/oidc/clients/{client_id}/secret": {"parameters": [_TENANT, client_id], **{
            "post": _operation("rotate_oidc_client_secret", "A new client secret (the old one stops working)",
                               "OpenID Provider", OPERATOR,
                               {**_ok(created, "The client with its new secret, shown once."),
                                **errors, **_errors("BadRequest")}),
        }},
        "/oidc/{tenant}/.well-known/openid-configuration": {"parameters": [_TENANT], "get": _operation(
            "oidc_discovery", "The tenant's OpenID Provider configuration", "OpenID Provider", ANONYMOUS,
            {**_ok(_ref("OidcDiscovery"), "Discovery metadata of the issuer {PUBLIC_BASE_URL}/api/oidc/{tenant}. "
                   "Readable from any origin (CORS `*`, OPTIONS preflight), as are the JWKS, token and UserInfo "
                   "endpoints. The authorization endpoint takes GET or POST (form); PKCE S256 is required of "
                   "native clients, a web client may send a nonce instead; `state` is optional; `prompt` none "
                   "(silent: login_required without an Entra session), login and `max_age` (judged by Entra's "
                   "AuthnInstant, reported as auth_time; amr from Entra's authentication methods); id_token_hint. "
                   "UserInfo takes the access token in the Authorization header or a POSTed `access_token` form "
                   "field and releases claims by scope. The end-session endpoint also works with client_id and a "
                   "registered post_logout_redirect_uri, or with no parameters (a signed-out page). Token "
                   "exchange honours requested_token_type (access_token or id_token, named in issued_token_type) "
                   "and refuses an audience/resource other than the issuer or the client (invalid_target)."),
             **_errors("NotFound", "StorageUnavailable")})},
        "/oidc/{tenant}/.well-known/oauth-authorization-server": {"parameters": [_TENANT], "get": _operation(
            "oidc_authorization_server_metadata", "The same metadata for OAuth clients (RFC 8414)", "OpenID Provider",
            ANONYMOUS,
            {**_ok(_ref("OidcDiscovery"), "The discovery document, next to the issuer for clients that look for RFC "
                   "8414 metadata there."),
             **_errors("NotFound", "StorageUnavailable")})},
        "/oidc/{tenant}/jwks": {"parameters": [_TENANT], "get": _operation(
            "oidc_jwks", "The issuer's signing keys (JWKS)", "OpenID Provider", ANONYMOUS,
            {"200": {"description": "Every published public key; kid = RFC 7638 thumbprint.",
                     "content": {"application/jwk-set+json": {"schema": _ref("OidcJwks")}}},
             **_errors("NotFound", "StorageUnavailable")})},
    }


# ---- issue 23: the directory listing and role mappings ------------------------------------------------------------

def _directory_paths() -> dict:
    from shared_code.bodies import directory as directory_bodies
    from shared_code.events import api as events_api

    errors = _errors("BadRequest", "Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")
    paging = [
        {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 4096},
         "description": "The `next` of the previous page (signed: any other value is a 400); leave out to start."},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                    "maximum": events_api.MAX_LIMIT,
                                                    "default": events_api.DEFAULT_LIMIT}}]
    how = ("List every page once, then read GET …/events?after=<events_after>: nothing that changed while you "
           "listed is missed (events_after is the event log's position taken before the first page; every change "
           "after it is an event after it, carrying the whole current state).")
    mappings = model_schema(directory_bodies.RoleMappingsAnswer, response=True)
    return {
        "/tenants/{tenant}/directory/employees": {"parameters": [_TENANT], "get": _operation(
            "list_directory_employees", "Every employee (the whole employee, as events carry them), paged",
            "Directory", ADMIN_OR_OPERATOR,
            {**_ok(model_schema(directory_bodies.EmployeePage, response=True), "A page of employees."), **errors},
            parameters=paging, description=how)},
        "/tenants/{tenant}/directory/groups": {"parameters": [_TENANT], "get": _operation(
            "list_directory_groups", "Every group Entra provisioned, paged", "Directory", ADMIN_OR_OPERATOR,
            {**_ok(model_schema(directory_bodies.GroupPage, response=True), "A page of groups."), **errors},
            parameters=paging, description=how + " Memberships are in the employees' `group_ids`.")},
        "/tenants/{tenant}/role-mappings": {"parameters": [_TENANT], **{
            "get": _operation(
                "get_role_mappings", "The product's roles, the Entra groups mapped to them, and every group",
                "Directory", ADMIN, {**_ok(mappings, "The mappings."),
                                     **_errors("Unauthorized", "Forbidden", "StorageUnavailable")}),
            "put": _operation(
                "set_role_mappings", "Map Entra groups to the product's roles (the whole mapping)", "Directory",
                ADMIN, {**_ok(mappings, "The mappings; every member's roles are recomputed (with their "
                                        "employee.roles_changed events)."),
                        **_errors("BadRequest", "Unauthorized", "Forbidden", "PayloadTooLarge", "Unprocessable",
                                  "StorageUnavailable")},
                body=_json_body(model_schema(directory_bodies.RoleMappings)),
                description="An employee's roles are their groups' roles plus the admin right a tenant admin "
                            "granted; a dismissed employee has none; a rehire does not bring the admin right "
                            "back until a tenant admin grants it again (the answer's `rehire_rule`)."),
        }},
        "/tenants/{tenant}/product-roles": {"parameters": [_TENANT], "put": _operation(
            "set_product_roles", "Declare the product's roles for this tenant (instead of PRODUCT_ROLES)",
            "Directory", OPERATOR,
            {**_ok(model_schema(directory_bodies.ProductRolesAnswer, response=True), "The tenant's roles now."),
             **_errors("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "PayloadTooLarge",
                       "Unprocessable", "StorageUnavailable")},
            body=_json_body(model_schema(directory_bodies.ProductRoles)),
            description="409 while a role to be dropped is still mapped to a group.")},
    }


# ---- issue 11: credential revocation ---------------------------------------------------------------------------

def _credential_paths() -> dict:
    from shared_code.bodies.tenants import AdminKeyRotated

    return {
        "/tenants/{tenant}/admin-key": {"parameters": [_TENANT], "post": _operation(
            "rotate_admin_key", "Rotate the tenant's admin key: a new one, the previous one stops working",
            "Operator", OPERATOR,
            {**_ok(model_schema(AdminKeyRotated, response=True), "The new admin key; shown only here.", "201"),
             **_errors("Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")})},
    }


def _jobs_paths() -> dict:
    from shared_code.bodies import jobs

    return {"/jobs": {"get": _operation(
        "list_jobs", "The background jobs: each job's latest run and every tenant whose work is failing",
        "Operator", OPERATOR,
        {**_ok(model_schema(jobs.JobsReport, response=True), "Runs and open failures."),
         **_errors("Unauthorized", "Forbidden", "StorageUnavailable")},
        description="Each job's timer walks the tenants onto the Storage Queue `gatehouse-jobs`; a failing "
                    "tenant is retried, then its message goes to `gatehouse-jobs-poison` (`poisoned`). A "
                    "failure is listed until the tenant's work succeeds again (docs/scaling.md).")}}


@lru_cache(maxsize=4)
def _document_text(base_url: str) -> str:
    paths = {**_admin_paths(), **_scim_paths(), **_oidc_paths(), **_credential_paths(), **_events_paths(),
             **_directory_paths()}
    paths.update(_jobs_paths())
    document = {
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
        "tags": [{"name": "Operator"}, {"name": "Tenant admin"}, {"name": "Setup wizard"},
                 {"name": "Domain audit"}, {"name": "Employees"}, {"name": "SCIM"}, {"name": "SCIM discovery"},
                 {"name": "Mobile"}, {"name": "OpenID Provider"}],
        "paths": paths,
        "components": _components(),
    }
    document["components"]["schemas"].update(_events_components())
    document["tags"].append({"name": "Events"})
    document["webhooks"] = _webhooks()
    document["tags"].append({"name": "Directory"})
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def document(base_url: str) -> dict:
    """The OpenAPI document with its server at `base_url` (PUBLIC_BASE_URL)."""
    return copy.deepcopy(json.loads(_document_text(base_url)))


def document_bytes(base_url: str) -> bytes:
    """The served form (built once per instance and base URL)."""
    return _document_text(base_url).encode("utf-8")
