"""User and Group resources: validate what a client sends, keep it in one canonical shape, render it back.

The stored shape ("data") is the resource's own attributes under their schema names — core attributes at the
top, each extension under its URN — without `id`, `meta` or `schemas` (the server owns those) and without
group members (those live in their own rows). Values are stored exactly as sent: no email or phone
normalisation. The only conversions are the ones Entra needs: booleans sent as "True"/"False" strings, and
a manager sent as a bare id.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from shared_code.platform.errors import BadRequest
from shared_code.scim.filter import ScimSyntaxError, split_path, resolve
from shared_code.scim.schemas import (
    ENTRA_GROUP,
    GROUP_KIND,
    USER_KIND,
    Attribute,
    ResourceKind,
)

MAX_STRING = 2048  # far above any Entra attribute; keeps a row far below Table Storage's 64 KiB
MAX_KEY_STRING = 256  # userName, externalId, displayName of a group: they become RowKeys (1 KiB max)
MAX_VALUES = 100  # values of one multi-valued user attribute
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID = re.compile(r"^[0-9a-f]{32}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# Derived from `value` when rendering; what a client sends for them is ignored.
_DERIVED_REFS = {("manager", "$ref"), ("members", "$ref")}


def invalid(message: str, scim_type: str = "invalidValue") -> BadRequest:
    return BadRequest(message, scim_type=scim_type)


def is_resource_id(value: Any) -> bool:
    """Ids are 32 lowercase hex characters; anything else cannot name a resource (no storage call needed)."""
    return isinstance(value, str) and bool(_ID.match(value))


# --- values -------------------------------------------------------------------------------------------------

def clean_value(attribute: Attribute, value: Any, where: str, unknown: str = "invalidValue",
                parent: Attribute | None = None) -> Any:
    """A validated copy of `value` for `attribute`; None when it means "unassigned" (null, [], {})."""
    if value is None:
        return None
    if attribute.multi_valued:
        if not isinstance(value, list):
            raise invalid(f"{where} must be an array.")
        limit = 100_000 if attribute.name == "members" else MAX_VALUES
        if len(value) > limit:
            raise invalid(f"{where} has more than {limit} values.", "tooMany")
        items = [clean_single(attribute, item, f"{where}[{i}]", unknown, parent) for i, item in enumerate(value)]
        items = [item for item in items if item is not None]
        if sum(1 for item in items if isinstance(item, dict) and item.get("primary") is True) > 1:
            raise invalid(f"{where}: at most one value may have primary set to true.")
        return items or None
    return clean_single(attribute, value, where, unknown, parent)


def clean_single(attribute: Attribute, value: Any, where: str, unknown: str = "invalidValue",
                 parent: Attribute | None = None) -> Any:
    if value is None:
        return None
    kind = attribute.type
    if kind == "complex":
        if attribute.name == "manager" and isinstance(value, str):
            # Entra sends the manager as a bare id, and removes it with an empty string.
            value = {"value": value} if value.strip() else None
            if value is None:
                return None
        if not isinstance(value, dict):
            raise invalid(f"{where} must be an object with sub-attributes "
                          f"({', '.join(s.name for s in attribute.sub_attributes)}).")
        cleaned: dict[str, Any] = {}
        for key, sub_value in value.items():
            if attribute.name.startswith("urn:") and isinstance(key, str) and key.lower() == "schemas":
                continue  # an extension object may repeat its own URN in "schemas"
            sub = attribute.sub(key) if isinstance(key, str) else None
            if sub is None:
                raise invalid(f"{where}.{key} is not a sub-attribute of {attribute.name} "
                              f"(known: {', '.join(s.name for s in attribute.sub_attributes)}).", unknown)
            if sub.mutability == "readOnly" or (attribute.name, sub.name) in _DERIVED_REFS:
                continue
            sub_clean = clean_value(sub, sub_value, f"{where}.{sub.name}", unknown, attribute)
            if sub_clean is not None:
                cleaned[sub.name] = sub_clean
        if attribute.name in ("manager", "members"):
            member = cleaned.get("value")
            if not isinstance(member, str) or not member:
                raise invalid(f"{where}.value is required: the id of a user in this tenant.")
            if not is_resource_id(member):
                raise invalid(f"{where}.value {member!r} is not the id of a user in this tenant.")
            if "type" in cleaned and cleaned["type"].lower() != "user":
                raise invalid(f"{where}.type must be 'User': only users can be members.")
        return cleaned or None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        # Entra's default mapping sends "True"/"False" (and "true"/"false") as strings.
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise invalid(f"{where} must be true or false, not {value!r}.")
    if kind in ("string", "reference", "binary"):
        if not isinstance(value, str):
            raise invalid(f"{where} must be a string, not {type(value).__name__}.")
        if len(value) > MAX_STRING:
            raise invalid(f"{where} is longer than {MAX_STRING} characters.")
        if kind == "binary":
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise invalid(f"{where} must be base64 (it is binary).") from None
        if kind == "reference" and "external" in attribute.reference_types and not re.match(
                r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", value):
            raise invalid(f"{where} must be an absolute URI, e.g. https://example.com/me.")
        if parent is not None and parent.name == "emails" and attribute.name == "value" and not _EMAIL.match(value):
            raise invalid(f"{where} {value!r} is not an email address (expected name@domain).")
        return value
    raise invalid(f"{where} cannot be written.", "mutability")


def _key_string(data: dict, name: str, where: str, required: bool) -> None:
    value = data.get(name)
    if value is None:
        if required:
            raise invalid(f"{where} is required.")
        return
    if not value.strip():
        raise invalid(f"{where} must not be empty.")
    if len(value) > MAX_KEY_STRING:
        raise invalid(f"{where} is longer than {MAX_KEY_STRING} characters.")
    if _CONTROL.search(value):
        raise invalid(f"{where} must not contain control characters.")


def check_resource(kind: ResourceKind, data: dict) -> None:
    """Rules on the whole resource, after a create, replace or patch."""
    if kind is USER_KIND:
        _key_string(data, "userName", "userName", required=True)
    else:
        _key_string(data, "displayName", "displayName", required=True)
    _key_string(data, "externalId", "externalId", required=False)


# --- bodies -------------------------------------------------------------------------------------------------

def clean_body(kind: ResourceKind, body: Any) -> dict:
    """The canonical data of a POST or PUT body. Read-only attributes (`id`, `meta`, ...) are ignored as
    RFC 7643 §2.2 asks; unknown attributes and schemas are `400 invalidSyntax`, bad values `invalidValue`."""
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.", "invalidSyntax")
    schemas = body.get("schemas")
    declared = {s.id.lower(): s for s in (kind.core, *kind.extensions)}
    allowed = set(declared) | ({ENTRA_GROUP.lower()} if kind is GROUP_KIND else set())
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise invalid(f"schemas is required: a list containing {kind.core.id!r}.", "invalidSyntax")
    listed = {s.lower() for s in schemas}
    if kind.core.id.lower() not in listed:
        raise invalid(f"schemas must contain {kind.core.id!r} for a {kind.name}.", "invalidSyntax")
    unknown = sorted(s for s in schemas if s.lower() not in allowed)
    if unknown:
        raise invalid(f"schemas lists {', '.join(map(repr, unknown))}, which {kind.name} resources do not have "
                      f"(supported: {', '.join(s.id for s in (kind.core, *kind.extensions))}).", "invalidSyntax")

    data: dict[str, Any] = {}
    for key, value in body.items():
        if not isinstance(key, str):
            raise invalid("Attribute names must be strings.", "invalidSyntax")
        lowered = key.lower()
        if lowered == "schemas":
            continue
        extension = declared.get(lowered)
        if extension is not None and extension is not kind.core:
            if value is None:
                continue
            if lowered not in listed:
                raise invalid(f"{key} data is present but {key!r} is missing from schemas.", "invalidSyntax")
            if not isinstance(value, dict):
                raise invalid(f"{key} must be an object.", "invalidValue")
            part = _clean_attributes(kind, extension.id, value, key)
            if part:
                data.setdefault(extension.id, {}).update(part)
            continue
        try:
            resolved = resolve(split_path(key, 0, "invalidSyntax"), kind, "invalidSyntax")
        except ScimSyntaxError:
            raise invalid(f"{key!r} is not an attribute of {kind.name} resources (see /Schemas).",
                          "invalidSyntax") from None
        if resolved.sub is not None:
            raise invalid(f"{key!r}: send {resolved.attribute.name} as an object.", "invalidSyntax")
        attribute = resolved.attribute
        if attribute.mutability == "readOnly":
            continue
        cleaned = clean_value(attribute, value, key, "invalidSyntax")
        if cleaned is None:
            continue
        if len(resolved.keys) == 2:
            data.setdefault(resolved.keys[0], {})[resolved.keys[1]] = cleaned
        else:
            data[attribute.name] = cleaned
    if kind is USER_KIND and isinstance(data.get("externalId"), str) and not data["externalId"].strip():
        del data["externalId"]  # an empty externalId identifies nothing
    check_resource(kind, data)
    return data


def _clean_attributes(kind: ResourceKind, urn: str, value: dict, where: str) -> dict:
    schema = kind.schema_for(urn)
    cleaned: dict[str, Any] = {}
    for key, sub_value in value.items():
        if isinstance(key, str) and key.lower() == "schemas":
            continue  # an extension object may repeat its own URN in "schemas"
        attribute = schema.attribute(key) if isinstance(key, str) else None
        if attribute is None:
            raise invalid(f"{where}:{key} is not an attribute of {schema.name} (see /Schemas).", "invalidSyntax")
        if attribute.mutability == "readOnly":
            continue
        item = clean_value(attribute, sub_value, f"{where}:{attribute.name}", "invalidSyntax")
        if item is not None:
            cleaned[attribute.name] = item
    return cleaned


# --- rendering ----------------------------------------------------------------------------------------------

def location(base_url: str, kind: ResourceKind, resource_id: str) -> str:
    return f"{base_url}{kind.endpoint}/{resource_id}"


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def render(kind: ResourceKind, resource_id: str, data: dict, *, created: str, last_modified: str, version: int,
           base_url: str, members: list[dict] | None = None) -> dict:
    """The SCIM representation: schemas, id, the data, derived `$ref`s and `meta`."""
    schemas = [kind.core.id] + [s.id for s in kind.extensions if s.id in data]
    resource: dict[str, Any] = {"schemas": schemas, "id": resource_id}
    if "externalId" in data:
        resource["externalId"] = data["externalId"]
    for key, value in data.items():
        if key != "externalId":
            resource[key] = value
    for extension in kind.extensions:
        manager = (resource.get(extension.id) or {}).get("manager")
        if isinstance(manager, dict) and "value" in manager:
            resource[extension.id] = {**resource[extension.id], "manager": {
                **manager, "$ref": location(base_url, USER_KIND, manager["value"])}}
    if members is not None:
        resource["members"] = [{**m, "$ref": location(base_url, USER_KIND, m["value"])} for m in members]
    resource["meta"] = {
        "resourceType": kind.name,
        "created": created,
        "lastModified": last_modified,
        "location": location(base_url, kind, resource_id),
        "version": version_tag(version),
    }
    return resource


# --- attributes / excludedAttributes (RFC 7644 §3.4.2.5) --------------------------------------------------------

def parse_attribute_list(kind: ResourceKind, text: Any, parameter: str) -> list[tuple[tuple[str, ...], str | None]]:
    """`attributes=userName,name.givenName,urn:…:User:department` → [(keys, sub), ...]."""
    if text is None:
        return []
    if isinstance(text, list):
        names = [n for n in text]
    elif isinstance(text, str):
        names = text.split(",")
    else:
        raise invalid(f"{parameter} must be a comma-separated list of attribute names.")
    out = []
    for name in names:
        if not isinstance(name, str):
            raise invalid(f"{parameter} must list attribute names.")
        name = name.strip()
        if not name:
            continue
        try:
            path = split_path(name, 0, "invalidValue", kind)
            resolved = resolve(path, kind, "invalidValue")
        except ScimSyntaxError:
            raise invalid(f"{parameter}: {name!r} is not an attribute of {kind.name} resources.") from None
        out.append((resolved.keys, resolved.sub.name if resolved.sub else None))
    return out


def project(resource: dict, include: list, exclude: list) -> dict:
    """Keep what `attributes` asks for (plus `schemas` and `id`, returned always) or drop what
    `excludedAttributes` names; RFC 7644 makes the two mutually exclusive, `attributes` wins here."""
    if include:
        kept: dict[str, Any] = {"schemas": resource["schemas"], "id": resource["id"]}
        for keys, sub in include:
            _copy(resource, kept, keys, sub)
        return kept
    if exclude:
        pruned = dict(resource)
        for keys, sub in exclude:
            if keys in (("id",), ("schemas",)):
                continue
            _drop(pruned, keys, sub)
        return pruned
    return resource


def _copy(source: dict, target: dict, keys: tuple[str, ...], sub: str | None) -> None:
    if len(keys) == 2:
        inner = source.get(keys[0])
        if isinstance(inner, dict):
            box = target.setdefault(keys[0], {})
            _copy(inner, box, keys[1:], sub)
            if not box:
                del target[keys[0]]
        return
    (key,) = keys
    if key not in source:
        return
    value = source[key]
    if sub is None:
        target[key] = value
    elif isinstance(value, list):
        picked = [{sub: v[sub]} for v in value if isinstance(v, dict) and sub in v]
        if picked:
            target[key] = picked
    elif isinstance(value, dict) and sub in value:
        target.setdefault(key, {})[sub] = value[sub]


def _drop(resource: dict, keys: tuple[str, ...], sub: str | None) -> None:
    if len(keys) == 2:
        inner = resource.get(keys[0])
        if isinstance(inner, dict):
            inner = dict(inner)
            _drop(inner, keys[1:], sub)
            resource[keys[0]] = inner
        return
    (key,) = keys
    if key not in resource:
        return
    if sub is None:
        del resource[key]
    elif isinstance(resource[key], list):
        resource[key] = [{k: v for k, v in item.items() if k != sub} for item in resource[key]]
    elif isinstance(resource[key], dict):
        resource[key] = {k: v for k, v in resource[key].items() if k != sub}


def wants(include: list, exclude: list, attribute: str) -> bool:
    """Whether a projection returns `attribute` (lets the service skip reading 50,000 member rows)."""
    if include:
        return any(keys[0] == attribute for keys, _ in include)
    return not any(keys == (attribute,) and sub is None for keys, sub in exclude)
