"""SCIM PATCH (RFC 7644 §3.5.2) with the dialects Microsoft Entra speaks, applied to a resource's data.

Accepted, besides the RFC: op names in any case (`Add`, `Replace`, `Remove`); booleans as "True"/"False";
no-path operations whose value holds dotted (`name.givenName`) and URN-prefixed keys; filtered paths
(`emails[type eq "work"].value`) that create the value when none matches yet; the enterprise `manager` as a
bare id and its removal by an empty string; member removal by value list or by `members[value eq "…"]`.

`apply` returns a new dict and never changes anything outside the operations' paths; every operation is
checked before anything is stored, so a failing PATCH changes nothing. Group members are not part of the
data: `member_steps` turns member operations into steps the service applies to member rows, so a PATCH
costs storage work in proportion to the members it names, not to the size of the group.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from shared_code.scim.filter import (
    And,
    Compare,
    Node,
    Or,
    PatchPath,
    Resolved,
    ScimSyntaxError,
    matches_element,
    validate_value_filter,
    parse_patch_path,
    resolve,
)
from shared_code.scim.resources import check_resource, clean_single, clean_value, invalid
from shared_code.scim.schemas import GROUP, PATCH_OP, Attribute, ResourceKind

MAX_OPERATIONS = 1000
_OPS = ("add", "replace", "remove")


@dataclass(frozen=True)
class Operation:
    op: str  # add | replace | remove
    path: PatchPath | None
    value: Any
    where: str  # "Operations[2]" for messages
    label: str = ""  # the path as written

    @property
    def subject(self) -> str:
        return f"{self.where}: {self.label}"


def parse(body: Any, kind: ResourceKind) -> list[Operation]:
    """Validate a PatchOp message and expand no-path operations into one operation per attribute."""
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP.lower() not in {s.lower() for s in schemas if isinstance(s, str)}:
        raise invalid(f"schemas must be [{PATCH_OP!r}] for a PATCH.", "invalidSyntax")
    raw = next((v for k, v in body.items() if isinstance(k, str) and k.lower() == "operations"), None)
    if not isinstance(raw, list) or not raw:
        raise invalid("Operations must be a non-empty array of operations.", "invalidSyntax")
    if len(raw) > MAX_OPERATIONS:
        raise invalid(f"A PATCH may carry at most {MAX_OPERATIONS} operations.", "tooMany")
    operations: list[Operation] = []
    for index, item in enumerate(raw):
        where = f"Operations[{index}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object with op, path and value.", "invalidSyntax")
        fields = {k.lower(): v for k, v in item.items() if isinstance(k, str)}
        op = fields.get("op")
        if not isinstance(op, str) or op.lower() not in _OPS:
            raise invalid(f"{where}.op must be add, replace or remove, not {op!r}.", "invalidSyntax")
        op = op.lower()
        path_text = fields.get("path")
        value = fields.get("value")
        if path_text is None or (isinstance(path_text, str) and not path_text.strip()):
            if op == "remove":
                raise invalid(f"{where}: remove needs a path (the attribute to remove).", "noTarget")
            if not isinstance(value, dict):
                raise invalid(f"{where}: without a path, value must be an object of attributes.", "invalidValue")
            operations.extend(_expand(op, value, kind, where))
            continue
        if not isinstance(path_text, str):
            raise invalid(f"{where}.path must be a string.", "invalidPath")
        path = parse_patch_path(path_text, kind)
        if op != "remove" and "value" not in fields:
            raise invalid(f"{where}: {op} needs a value.", "invalidValue")
        operations.append(Operation(op, path, value, where, path_text.strip()))
    return operations


def _expand(op: str, value: dict, kind: ResourceKind, where: str) -> list[Operation]:
    """`{"op":"replace","value":{"name.givenName":…, "urn:…:User:employeeNumber":…, "urn:…:User":{…}}}`."""
    out = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise invalid(f"{where}.value keys must be attribute names.", "invalidPath")
        if key.lower() in ("schemas", "meta", "id"):
            continue  # clients echo whole resources; what the server owns is not theirs to patch
        out.append(Operation(op, parse_patch_path(key, kind), item, where, key))
    return out


# --- applying operations to data ---------------------------------------------------------------------------------

def apply(data: dict, operations: list[Operation], kind: ResourceKind) -> dict:
    """The data after the operations; raises a SCIM 400 naming the failing operation."""
    result = copy.deepcopy(data)
    for operation in operations:
        _apply_one(result, operation, kind)
    check_resource(kind, result)
    return result


def _apply_one(data: dict, operation: Operation, kind: ResourceKind) -> None:
    path = operation.path
    resolved = resolve(path.attr, kind, "invalidPath")
    attribute, where = resolved.attribute, operation.where
    if attribute.mutability == "readOnly" or (resolved.sub and resolved.sub.mutability == "readOnly"):
        raise invalid(f"{where}: {path.attr} is read-only.", "mutability")
    if path.filter is not None:
        _apply_filtered(data, operation, resolved)
        return
    container, key = _container(data, resolved.keys, create=operation.op != "remove")
    if container is None:
        return  # removing from an extension the resource does not have: nothing to remove
    if resolved.sub is not None:
        _apply_sub(container, key, operation, attribute, resolved.sub)
    elif operation.op == "remove":
        _remove(container, key, operation, attribute)
    else:
        _set(container, key, operation, attribute)
    if len(resolved.keys) == 2 and not data.get(resolved.keys[0]):
        data.pop(resolved.keys[0], None)  # an extension left empty is unassigned


def _container(data: dict, keys: tuple[str, ...], create: bool) -> tuple[dict | None, str]:
    if len(keys) == 1:
        return data, keys[0]
    box = data.get(keys[0])
    if not isinstance(box, dict):
        if not create:
            return None, keys[-1]
        box = data[keys[0]] = {}
    return box, keys[1]


def _set(container: dict, key: str, operation: Operation, attribute: Attribute) -> None:
    value = operation.value
    if attribute.multi_valued and not isinstance(value, list) and value is not None:
        value = [value]  # RFC 7644 §3.5.2.1: one value added to a multi-valued attribute
    value = clean_value(attribute, value, operation.subject)
    if attribute.name == "externalId" and isinstance(value, str) and not value.strip():
        value = None
    if value is None:
        container.pop(key, None)  # null / "" manager / []: unassigned (RFC 7643 §2.5)
        return
    current = container.get(key)
    if attribute.multi_valued:
        if operation.op == "add" and isinstance(current, list):
            merged = list(current)
            for item in value:
                if item not in merged:
                    merged.append(item)  # re-adding an existing value changes nothing
            value = clean_value(attribute, merged, operation.subject)
        container[key] = value
    elif attribute.type == "complex" and isinstance(current, dict):
        # add and replace on a complex attribute set the sub-attributes given, keep the others (§3.5.2.1/3).
        container[key] = {**current, **value}
    else:
        if attribute.mutability == "immutable" and current is not None and current != value:
            raise invalid(f"{operation.where}: {attribute.name} cannot be changed once set.", "mutability")
        container[key] = value


def _remove(container: dict, key: str, operation: Operation, attribute: Attribute) -> None:
    if attribute.required:
        raise invalid(f"{operation.where}: {attribute.name} is required and cannot be removed.", "mutability")
    current = container.get(key)
    if attribute.multi_valued and operation.value is not None and isinstance(current, list):
        # Entra: {"op":"Remove","path":"members","value":[{"value":"<id>"}]} removes only those values.
        values = operation.value if isinstance(operation.value, list) else [operation.value]
        listed = clean_value(attribute, values, operation.subject) or []
        remaining = [item for item in current if not any(_same_value(item, gone) for gone in listed)]
        if remaining:
            container[key] = remaining
        else:
            container.pop(key, None)
        return
    container.pop(key, None)


def _same_value(item: Any, gone: Any) -> bool:
    if isinstance(item, dict) and isinstance(gone, dict) and "value" in gone:
        return item.get("value") == gone["value"]
    return item == gone


def _apply_sub(container: dict, key: str, operation: Operation, attribute: Attribute, sub: Attribute) -> None:
    current = container.get(key)
    if operation.op == "remove":
        if sub.required:
            raise invalid(f"{operation.where}: {attribute.name}.{sub.name} is required.", "mutability")
        if isinstance(current, dict):
            current.pop(sub.name, None)
            if not current:
                container.pop(key, None)
        elif isinstance(current, list):
            container[key] = [{k: v for k, v in item.items() if k != sub.name} for item in current]
            container[key] = [item for item in container[key] if _has_content(item)] or None
            if container[key] is None:
                container.pop(key)
        return
    value = clean_value(sub, operation.value, operation.subject, parent=attribute)
    if attribute.multi_valued:
        if not isinstance(current, list) or not current:
            raise invalid(f"{operation.where}: {attribute.name} has no values whose {sub.name} could be set; "
                          f"use {attribute.name}[type eq \"…\"].{sub.name}.", "noTarget")
        for item in current:
            _set_sub(item, sub, value)
        container[key] = clean_value(attribute, current, operation.subject)
        return
    box = dict(current) if isinstance(current, dict) else {}
    _set_sub(box, sub, value)
    if attribute.name == "manager":
        box = clean_single(attribute, box, operation.subject) if box else None
    if box:
        container[key] = box
    else:
        container.pop(key, None)


def _set_sub(box: dict, sub: Attribute, value: Any) -> None:
    if value is None:
        box.pop(sub.name, None)
    else:
        box[sub.name] = value


def _has_content(item: dict) -> bool:
    """A multi-valued element left with only its label (type/primary/display) means nothing."""
    return any(k not in ("type", "primary", "display") for k in item)


def _apply_filtered(data: dict, operation: Operation, resolved: Resolved) -> None:
    """`emails[type eq "work"]` and `emails[type eq "work"].value`."""
    attribute, where, path = resolved.attribute, operation.subject, operation.path
    if attribute.type != "complex" or not attribute.multi_valued:
        raise invalid(f"{where}: a value filter needs a multi-valued complex attribute, "
                      f"{attribute.name} is not one.", "invalidPath")
    sub = None
    if path.sub is not None:
        sub = attribute.sub(path.sub)
        if sub is None:
            raise invalid(f"{where}: {path.sub} is not a sub-attribute of {attribute.name}.", "invalidPath")
        if sub.mutability == "readOnly":
            raise invalid(f"{where}: {attribute.name}.{sub.name} is read-only.", "mutability")
    try:
        current = [dict(item) for item in (_container(data, resolved.keys, False)[0] or {}).get(
            resolved.keys[-1], []) or []]
        hits = [i for i, item in enumerate(current) if matches_element(path.filter, item, attribute)]
    except ScimSyntaxError as error:
        raise invalid(f"{where}: {error.message}", "invalidFilter") from None
    container, key = _container(data, resolved.keys, create=True)

    if operation.op == "remove":
        if sub is None:
            current = [item for i, item in enumerate(current) if i not in hits]
        else:
            for i in hits:
                current[i].pop(sub.name, None)
            # Only a selected value left with nothing but its label goes; the others stay as they were.
            current = [item for i, item in enumerate(current) if i not in hits or _has_content(item)]
        if current:
            container[key] = current
        else:
            container.pop(key, None)
        return

    if sub is not None:
        value = clean_value(sub, operation.value, where, parent=attribute)
        if hits:
            for i in hits:
                _set_sub(current[i], sub, value)
        elif value is not None:
            # Entra sends `Add`/`Replace` on emails[type eq "work"].value before any work email exists;
            # the filter's equalities describe the value to create.
            seed = _equalities(path.filter, attribute)
            if seed is None:
                raise invalid(f"{where}: no value of {attribute.name} matches the filter.", "noTarget")
            current.append({**seed, sub.name: value})
    else:
        value = clean_single(attribute, operation.value, where)
        if hits:
            for i in hits:
                current[i] = value if operation.op == "replace" else {**current[i], **(value or {})}
            current = [item for item in current if item]
        elif operation.op == "add" and value is not None:
            seed = _equalities(path.filter, attribute)
            if seed is None:
                raise invalid(f"{where}: no value of {attribute.name} matches the filter.", "noTarget")
            current.append({**seed, **value})
        else:
            raise invalid(f"{where}: no value of {attribute.name} matches the filter.", "noTarget")
    cleaned = clean_value(attribute, current, where)
    if cleaned:
        container[key] = cleaned
    else:
        container.pop(key, None)


def _equalities(node: Node, attribute: Attribute) -> dict | None:
    """`type eq "work" and primary eq true` → {"type": "work", "primary": True}; None if not that shape."""
    if isinstance(node, Compare) and node.op == "eq" and node.path.urn is None and node.path.sub is None:
        sub = attribute.sub(node.path.name or "")
        if sub is None or node.value is None:
            return None
        return {sub.name: node.value}
    if isinstance(node, And):
        left, right = _equalities(node.left, attribute), _equalities(node.right, attribute)
        if left is None or right is None:
            return None
        return {**left, **right}
    return None


# --- group members ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemberStep:
    """One change to a group's member rows: add these, remove these, remove all, or remove those matching."""

    action: str  # add | remove | clear | remove_where
    members: tuple[dict, ...] = ()
    where: Node | None = None


def split_members(operations: list[Operation]) -> tuple[list[Operation], list[MemberStep]]:
    """Separate member operations (applied to member rows) from the rest (applied to the group's data)."""
    rest: list[Operation] = []
    steps: list[MemberStep] = []
    members_attribute = None
    for operation in operations:
        if operation.path.attr.name is None or operation.path.attr.name.lower() != "members" \
                or (operation.path.attr.urn and not operation.path.attr.urn.lower().endswith(":group")):
            rest.append(operation)
            continue
        members_attribute = members_attribute or GROUP.attribute("members")
        steps.extend(_member_steps(operation, members_attribute))
    return rest, steps


def _member_steps(operation: Operation, attribute: Attribute) -> list[MemberStep]:
    path, where = operation.path, operation.subject
    if path.attr.sub is not None or path.sub is not None:
        raise invalid(f"{where}: members can only be added or removed as a whole ({path.attr}).", "invalidPath")
    listed = None
    if operation.value is not None:
        values = operation.value if isinstance(operation.value, list) else [operation.value]
        listed = tuple(clean_value(attribute, values, where) or ())
    if path.filter is not None:
        try:
            validate_value_filter(path.filter, attribute)
        except ScimSyntaxError as error:
            raise invalid(f"{where}: {error.message}", "invalidFilter") from None
        ids = _member_ids(path.filter)
        removal = MemberStep("remove", tuple({"value": i} for i in ids)) if ids is not None \
            else MemberStep("remove_where", where=path.filter)
        if operation.op == "remove":
            return [removal]
        if operation.op == "replace":
            return [removal] + ([MemberStep("add", listed)] if listed else [])
        raise invalid(f"{where}: add members with path \"members\", not with a filter.", "invalidPath")
    if operation.op == "add":
        return [MemberStep("add", listed)] if listed else []
    if operation.op == "replace":
        return [MemberStep("clear")] + ([MemberStep("add", listed)] if listed else [])
    # remove: with a value list, only those members; without, all of them (RFC 7644 §3.5.2.2).
    return [MemberStep("remove", listed)] if listed is not None else [MemberStep("clear")]


def _member_ids(node: Node) -> list[str] | None:
    """`value eq "a" or value eq "b"` → ["a", "b"], so the removal needs no read of the whole group."""
    if isinstance(node, Compare) and node.op == "eq" and (node.path.name or "").lower() == "value" \
            and node.path.sub is None and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, Or):
        left, right = _member_ids(node.left), _member_ids(node.right)
        return None if left is None or right is None else left + right
    return None


def needs_current_members(steps: list[MemberStep]) -> bool:
    return any(step.action in ("clear", "remove_where") for step in steps)


def member_delta(steps: list[MemberStep], current: dict[str, dict] | None) -> tuple[dict[str, dict], set[str]]:
    """Net effect of the steps in order: (members to write, by id; ids to remove). `current` (id → member)
    is needed only when a step clears the group or removes by a filter other than on `value`."""
    attribute = GROUP.attribute("members")
    adds: dict[str, dict] = {}
    removes: set[str] = set()
    for step in steps:
        if step.action == "add":
            for member in step.members:
                removes.discard(member["value"])
                adds[member["value"]] = member
        elif step.action == "remove":
            for member in step.members:
                adds.pop(member["value"], None)
                removes.add(member["value"])
        else:
            alive = {k: v for k, v in (current or {}).items() if k not in removes}
            alive.update(adds)
            if step.action == "clear":
                gone = set(alive)
            else:
                gone = {k for k, v in alive.items() if matches_element(step.where, v, attribute)}
            for member_id in gone:
                adds.pop(member_id, None)
                removes.add(member_id)
    return adds, removes
