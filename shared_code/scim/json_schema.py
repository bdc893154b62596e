"""SCIM bodies as JSON Schema, derived from the SCIM declarations (`schemas.py`) for the OpenAPI document.

The SCIM bodies are not pydantic models: SCIM attribute names are case-insensitive, booleans arrive as
"True"/"False" strings from Entra, a PATCH has two dialects and paths with filters, and the schemas here are
derived from the same declarations the SCIM engine validates with and tuned against scim2-tester and Entra's own
request shapes; a model would be a third description of them (and the SCIM engine stays free of pydantic: cold
start). `components()` gives the schemas and parameters that the SCIM functions' declarations refer to by name
(`UserRequest`, `UserPatch`, `UserFilter`, …); `shared_code/openapi/document.py` publishes them. Loaded only when the
document is built.
"""
from __future__ import annotations

from typing import Any

from shared_code.openapi.json_schema import obj as _obj, ref as _ref
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

# Control characters are refused in key strings; Python's str.isspace() also counts \x1c-\x1f and \x85,
# which ECMA-262's \s (used by JSON Schema validators) does not, so they are spelled out.
_NO_CONTROL = r"[^\x00-\x1f\x7f]"
_VISIBLE = r"[^\s\x00-\x1f\x7f\x85]"
_KEY_STRING = rf"^{_NO_CONTROL}*{_VISIBLE}{_NO_CONTROL}*$"
_RESOURCE_ID = r"^[0-9a-f]{32}$"
_TRUE_FALSE = r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$"


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _text(max_length: int, **extra: Any) -> dict:
    return {"type": "string", "maxLength": max_length, **extra}


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
    key = kind.key
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
    key = kind.key
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
        key = kind.key
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
    names = {"id", "externalId"} | {kind.key for kind in kinds}
    keys = "|".join(sorted(names))
    # Values without control characters: no stored key has them, and the table service refuses them in a key.
    value = r'"[^"\\\x00-\x1f\x7f-\x9f]*"'
    return {"type": "string", "maxLength": 1000,
            "pattern": rf'^(\s*|({keys}) eq {value}( and ({keys}) eq {value})?)$',
            "description": "What Entra sends: `attribute eq \"value\"` (at most two joined by `and`), answered "
                           "with one point read; empty means no filter. The server also evaluates the rest of "
                           "RFC 7644 §3.4.2.2 (co, sw, pr, gt, or, not, value filters); a filter it cannot parse "
                           "is a 400 invalidFilter."}


def components() -> tuple[dict[str, Any], dict[str, Any]]:
    """The SCIM schemas and parameters (components/schemas, components/parameters) under the names the SCIM
    functions' declarations use."""
    schemas: dict[str, Any] = {
        "ScimDocument": _obj({"schemas": {"type": "array", "items": {"type": "string"}}}, ("schemas",)),
        "ScimDocumentList": _obj({
            "schemas": {"type": "array", "items": {"const": LIST_RESPONSE}},
            "totalResults": {"type": "integer"},
            "Resources": {"type": "array", "items": _ref("ScimDocument")},
        }, ("schemas", "totalResults", "Resources")),
    }
    parameters: dict[str, Any] = {
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
    return schemas, parameters
