"""SCIM filters and attribute paths (RFC 7644 §3.4.2.2, §3.5.2): parse text to a small AST, evaluate it
against a resource dict, and find the equality (`userName eq "x"`) that lets the service answer with a
point read instead of a scan.

Attribute names and keywords are case-insensitive; string comparisons follow each attribute's `caseExact`
(so `userName` values compare case-insensitively). Anything that is not a filter we understand is a
`400 invalidFilter` naming what was wrong — never a crash and never a silent empty result.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from shared_code.platform.errors import BadRequest
from shared_code.scim.schemas import Attribute, ResourceKind

MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 32
COMPARE_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")


class ScimSyntaxError(BadRequest):
    """A filter or path that cannot be parsed or names something we do not have."""


@dataclass(frozen=True)
class AttrPath:
    """`[urn:]attr[.sub]` as written; `name` is None for a bare extension URN (a PATCH path may be one)."""

    urn: str | None
    name: str | None
    sub: str | None = None

    def __str__(self) -> str:
        text = ".".join(p for p in (self.name, self.sub) if p)
        return f"{self.urn}:{text}" if self.urn and text else (self.urn or text)


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Any


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Or:
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Not:
    inner: "Node"


@dataclass(frozen=True)
class ValuePath:
    """`attr[filter]`: true when one value of the multi-valued `attr` matches `filter` (relative paths)."""

    path: AttrPath
    filter: "Node"


Node = Union[Compare, Present, And, Or, Not, ValuePath]


# --- tokens -----------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w:.$]))
  | (?P<punct>[()\[\]])
  | (?P<word>[A-Za-z_$][\w\-.:$]*)
  | (?P<dotword>\.[A-Za-z_$][\w\-$]*)
""", re.VERBOSE)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(text: str, scim_type: str) -> list[_Token]:
    out, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if not match:
            raise ScimSyntaxError(f"Unexpected character {text[at]!r} at position {at + 1}.", scim_type=scim_type)
        kind = match.lastgroup
        if kind != "space":
            out.append(_Token(kind, match.group(), at))
        at = match.end()
    return out


def split_path(word: str, at: int, scim_type: str, kind: ResourceKind | None = None) -> AttrPath:
    """Split `urn:...:attr.sub` / `attr.sub`. URNs contain dots ("2.0"), so the URN ends at the last colon."""
    if word.lower().startswith("urn:"):
        head, _, tail = word.rpartition(":")
        if kind is not None and kind.schema_for(word) is not None:
            return AttrPath(word, None)  # a bare extension URN
        if not tail or not head:
            raise ScimSyntaxError(f"Attribute path {word!r} is incomplete.", scim_type=scim_type)
        urn, rest = head, tail
    else:
        urn, rest = None, word
    parts = rest.split(".")
    if len(parts) > 2 or not all(re.fullmatch(r"[A-Za-z$][\w\-$]*", p) for p in parts):
        raise ScimSyntaxError(f"{word!r} at position {at + 1} is not an attribute path.", scim_type=scim_type)
    return AttrPath(urn, parts[0], parts[1] if len(parts) == 2 else None)


# --- parser -----------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str, scim_type: str, kind: ResourceKind | None):
        self.text, self.scim_type, self.kind = text, scim_type, kind
        self.tokens = _tokens(text, scim_type)
        self.i = 0
        self.depth = 0

    def fail(self, message: str) -> ScimSyntaxError:
        return ScimSyntaxError(message, scim_type=self.scim_type)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise self.fail("The filter ends too early.")
        self.i += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise self.fail(f"Expected {text!r} at position {token.at + 1}, found {token.text!r}.")

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() in words:
            return token.text.lower()
        return None

    def parse(self) -> Node:
        if not self.tokens:
            raise self.fail("The filter is empty.")
        node = self.or_expr(inside=False)
        if self.peek() is not None:
            token = self.peek()
            raise self.fail(f"Unexpected {token.text!r} at position {token.at + 1}.")
        return node

    def or_expr(self, inside: bool) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"The filter nests deeper than {MAX_DEPTH} levels.")
        node = self.and_expr(inside)
        while self.keyword("or"):
            self.take()
            node = Or(node, self.and_expr(inside))
        self.depth -= 1
        return node

    def and_expr(self, inside: bool) -> Node:
        node = self.unary(inside)
        while self.keyword("and"):
            self.take()
            node = And(node, self.unary(inside))
        return node

    def unary(self, inside: bool) -> Node:
        token = self.peek()
        if token is None:
            raise self.fail("The filter ends where an expression was expected.")
        if self.keyword("not") and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1].text == "(":
            self.take()
            self.expect("(")
            inner = self.or_expr(inside)
            self.expect(")")
            return Not(inner)
        if token.text == "(":
            self.take()
            inner = self.or_expr(inside)
            self.expect(")")
            return inner
        return self.attr_expr(inside)

    def attr_expr(self, inside: bool) -> Node:
        token = self.take()
        if token.kind != "word":
            raise self.fail(f"Expected an attribute name at position {token.at + 1}, found {token.text!r}.")
        path = split_path(token.text, token.at, self.scim_type)
        nxt = self.peek()
        if nxt is not None and nxt.text == "[":
            if inside:
                raise self.fail("A value filter cannot contain another value filter.")
            if path.sub:
                raise self.fail(f"A value filter applies to an attribute, not to {path}.")
            self.take()
            inner = self.or_expr(inside=True)
            self.expect("]")
            node: Node = ValuePath(path, inner)
            after = self.peek()
            if after is not None and after.kind == "dotword":
                # `emails[type eq "work"].value eq "x"` (Entra's matching shape) is the same as
                # `emails[type eq "work" and value eq "x"]`.
                self.take()
                sub = AttrPath(None, after.text[1:])
                return ValuePath(path, And(inner, self.comparison(sub)))
            return node
        return self.comparison(path)

    def comparison(self, path: AttrPath) -> Node:
        token = self.take()
        op = token.text.lower()
        if token.kind == "word" and op == "pr":
            return Present(path)
        if token.kind != "word" or op not in COMPARE_OPS:
            raise self.fail(f"Expected an operator ({', '.join(COMPARE_OPS)}, pr) after {path}, "
                            f"found {token.text!r}.")
        value_token = self.take()
        return Compare(path, op, self.literal(value_token))

    def literal(self, token: _Token) -> Any:
        if token.kind == "string":
            try:
                return json.loads(token.text, strict=False)
            except ValueError:
                raise self.fail(f"The string at position {token.at + 1} has an invalid escape.") from None
        if token.kind == "number":
            return json.loads(token.text)
        word = token.text.lower()
        if token.kind == "word" and word in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[word]
        raise self.fail(f"Expected a value (a quoted string, number, true, false or null) at position "
                        f"{token.at + 1}, found {token.text!r}.")


def parse_filter(text: str) -> Node:
    """Parse a filter; raises `400 invalidFilter` with the reason."""
    if not isinstance(text, str):
        raise ScimSyntaxError("The filter must be a string.", scim_type="invalidFilter")
    if len(text) > MAX_FILTER_LENGTH:
        raise ScimSyntaxError(f"The filter is longer than {MAX_FILTER_LENGTH} characters.",
                              scim_type="invalidFilter")
    return _Parser(text, "invalidFilter", None).parse()


@dataclass(frozen=True)
class PatchPath:
    """A PATCH target: `attr[.sub]`, `urn:…:attr[.sub]`, a bare extension URN, or `attr[filter][.sub]`."""

    attr: AttrPath
    filter: Node | None = None
    sub: str | None = None  # the sub-attribute after a value filter


def parse_patch_path(text: str, kind: ResourceKind) -> PatchPath:
    """Parse a PATCH `path`; raises `400 invalidPath` with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise ScimSyntaxError("The operation's path must be a non-empty string.", scim_type="invalidPath")
    if len(text) > MAX_FILTER_LENGTH:
        raise ScimSyntaxError("The path is too long.", scim_type="invalidPath")
    parser = _Parser(text, "invalidPath", kind)
    token = parser.take()
    if token.kind != "word":
        raise parser.fail(f"{text!r} is not an attribute path.")
    attr = split_path(token.text, token.at, "invalidPath", kind)
    result = PatchPath(attr)
    if parser.peek() is not None and parser.peek().text == "[":
        if attr.sub or attr.name is None:
            raise parser.fail(f"A value filter applies to an attribute, not to {attr}.")
        parser.take()
        try:
            inner = parser.or_expr(inside=True)
        except ScimSyntaxError as exc:
            raise ScimSyntaxError(f"The value filter in {text!r} is invalid: {exc.message}",
                                  scim_type="invalidFilter") from None
        parser.expect("]")
        sub = None
        if parser.peek() is not None and parser.peek().kind == "dotword":
            sub = parser.take().text[1:]
        result = PatchPath(attr, inner, sub)
    if parser.peek() is not None:
        raise parser.fail(f"Unexpected {parser.peek().text!r} in path {text!r}.")
    return result


# --- resolving paths against the schema ---------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    """Where an attribute lives in a resource dict: `keys` from the root, its definition and the sub-attribute."""

    keys: tuple[str, ...]
    attribute: Attribute
    sub: Attribute | None = None


def resolve(path: AttrPath, kind: ResourceKind, scim_type: str) -> Resolved:
    """Map a written path to canonical keys and definitions; unknown names are errors of `scim_type`."""
    if path.urn is not None:
        schema = kind.schema_for(path.urn)
        if schema is None:
            raise ScimSyntaxError(f"{path.urn!r} is not a schema of {kind.name} resources.", scim_type=scim_type)
        if path.name is None:
            # A whole extension behaves as one complex attribute keyed by its URN.
            return Resolved((schema.id,), Attribute(schema.id, "complex", sub_attributes=schema.attributes))
        attribute = schema.attribute(path.name)
        keys = (attribute.name,) if schema is kind.core else (schema.id, attribute.name if attribute else "")
    else:
        attribute = kind.core.attribute(path.name) or kind.common(path.name)
        keys = (attribute.name,) if attribute else ()
    if attribute is None:
        raise ScimSyntaxError(f"{path} is not an attribute of {kind.name} resources.", scim_type=scim_type)
    sub = None
    if path.sub is not None:
        sub = attribute.sub(path.sub)
        if sub is None:
            raise ScimSyntaxError(f"{path} is not an attribute of {kind.name} resources.", scim_type=scim_type)
    return Resolved(keys, attribute, sub)


def resolve_sub(path: AttrPath, parent: Attribute, scim_type: str) -> Attribute:
    """Resolve a path inside a value filter (`emails[type eq "work"]`): a sub-attribute of `parent`."""
    if path.urn is not None or path.sub is not None or path.name is None:
        raise ScimSyntaxError(f"Inside {parent.name}[...] use a sub-attribute name, not {path}.", scim_type=scim_type)
    sub = parent.sub(path.name)
    if sub is None:
        raise ScimSyntaxError(f"{path.name} is not a sub-attribute of {parent.name}.", scim_type=scim_type)
    return sub


def lookup(resource: dict, keys: tuple[str, ...]) -> Any:
    value: Any = resource
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# --- evaluation ---------------------------------------------------------------------------------------

def matches(node: Node, resource: dict, kind: ResourceKind) -> bool:
    """Whether `resource` (a SCIM dict including id, externalId and meta) satisfies the filter."""
    if isinstance(node, And):
        return matches(node.left, resource, kind) and matches(node.right, resource, kind)
    if isinstance(node, Or):
        return matches(node.left, resource, kind) or matches(node.right, resource, kind)
    if isinstance(node, Not):
        return not matches(node.inner, resource, kind)
    if isinstance(node, ValuePath):
        resolved = resolve(node.path, kind, "invalidFilter")
        if resolved.attribute.type != "complex":
            raise ScimSyntaxError(f"{node.path}[...] needs a complex attribute.", scim_type="invalidFilter")
        value = lookup(resource, resolved.keys)
        elements = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        return any(isinstance(e, dict) and _matches_element(node.filter, e, resolved.attribute) for e in elements)
    resolved = resolve(node.path, kind, "invalidFilter")
    definition, values = _candidates(resolved, resource)
    return _test(node, definition, values)


def matches_element(node: Node, element: dict, parent: Attribute) -> bool:
    """Evaluate a value filter (`members[value eq "x"]`) against one value of `parent`."""
    return _matches_element(node, element, parent)


def _matches_element(node: Node, element: dict, parent: Attribute) -> bool:
    if isinstance(node, And):
        return _matches_element(node.left, element, parent) and _matches_element(node.right, element, parent)
    if isinstance(node, Or):
        return _matches_element(node.left, element, parent) or _matches_element(node.right, element, parent)
    if isinstance(node, Not):
        return not _matches_element(node.inner, element, parent)
    if isinstance(node, ValuePath):
        raise ScimSyntaxError("A value filter cannot contain another value filter.", scim_type="invalidFilter")
    sub = resolve_sub(node.path, parent, "invalidFilter")
    value = element.get(sub.name)
    return _test(node, sub, [] if value is None else [value])


def _candidates(resolved: Resolved, resource: dict) -> tuple[Attribute, list]:
    """The values a comparison looks at: every value of a multi-valued attribute, its `value` sub-attribute
    when a complex multi-valued attribute is compared directly (`emails co "@x"`)."""
    value = lookup(resource, resolved.keys)
    attribute, sub = resolved.attribute, resolved.sub
    if value is None:
        return sub or attribute, []
    items = value if attribute.multi_valued and isinstance(value, list) else [value]
    if attribute.type == "complex":
        target = sub or attribute.sub("value")
        if target is None:
            raise ScimSyntaxError(f"{attribute.name} is complex: compare one of its sub-attributes, "
                                  f"e.g. {attribute.name}.{attribute.sub_attributes[0].name}.",
                                  scim_type="invalidFilter")
        return target, [i.get(target.name) for i in items if isinstance(i, dict) and i.get(target.name) is not None]
    return attribute, items


def _test(node: Compare | Present, definition: Attribute, values: list) -> bool:
    if isinstance(node, Present):
        return any(v not in (None, "", [], {}) for v in values)
    op, wanted = node.op, node.value
    if wanted is None:
        if op == "eq":
            return not values
        if op == "ne":
            return bool(values)
        raise ScimSyntaxError(f"{node.path} {op} null: only eq and ne compare with null.", scim_type="invalidFilter")
    if op == "ne":
        return not any(_compare("eq", definition, v, wanted, node.path) for v in values)
    return any(_compare(op, definition, v, wanted, node.path) for v in values)


def _compare(op: str, definition: Attribute, actual: Any, wanted: Any, path: AttrPath) -> bool:
    kind = definition.type
    if kind == "boolean":
        if op != "eq":
            raise ScimSyntaxError(f"{path} is a boolean: compare it with eq or ne.", scim_type="invalidFilter")
        wanted = _boolean_literal(wanted, path)
        return actual is wanted or (isinstance(actual, str) and actual.lower() == str(wanted).lower())
    if kind in ("integer", "decimal"):
        if isinstance(wanted, bool) or not isinstance(wanted, (int, float)):
            raise ScimSyntaxError(f"{path} is a number: compare it with a number.", scim_type="invalidFilter")
        if op in ("co", "sw", "ew"):
            raise ScimSyntaxError(f"{path} is a number: {op} applies to strings.", scim_type="invalidFilter")
        return isinstance(actual, (int, float)) and _order(op, actual, wanted)
    if not isinstance(wanted, str):
        raise ScimSyntaxError(f"{path} is a {kind}: compare it with a quoted string.", scim_type="invalidFilter")
    if not isinstance(actual, str):
        return False
    if kind == "dateTime":
        if op in ("co", "sw", "ew"):
            return _strings(op, actual, wanted)
        try:
            return _order(op, _instant(actual), _instant(wanted))
        except ValueError:
            raise ScimSyntaxError(f"{wanted!r} is not a dateTime (e.g. 2024-05-01T12:00:00Z).",
                                  scim_type="invalidFilter") from None
    if not definition.case_exact:
        actual, wanted = actual.casefold(), wanted.casefold()
    return _strings(op, actual, wanted)


def _strings(op: str, actual: str, wanted: str) -> bool:
    if op == "co":
        return wanted in actual
    if op == "sw":
        return actual.startswith(wanted)
    if op == "ew":
        return actual.endswith(wanted)
    return _order(op, actual, wanted)


def _order(op: str, a: Any, b: Any) -> bool:
    return {"eq": a == b, "gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def _boolean_literal(value: Any, path: AttrPath) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ScimSyntaxError(f"{path} is a boolean: compare it with true or false.", scim_type="invalidFilter")


def validate(node: Node, kind: ResourceKind) -> None:
    """Check every attribute the filter names, so a filter on an unknown attribute fails even on an empty
    directory (a typo must not look like 'no such user')."""
    if isinstance(node, (And, Or)):
        validate(node.left, kind)
        validate(node.right, kind)
    elif isinstance(node, Not):
        validate(node.inner, kind)
    elif isinstance(node, ValuePath):
        resolved = resolve(node.path, kind, "invalidFilter")
        if resolved.attribute.type != "complex":
            raise ScimSyntaxError(f"{node.path}[...] needs a complex attribute.", scim_type="invalidFilter")
        validate_value_filter(node.filter, resolved.attribute)
    else:
        resolved = resolve(node.path, kind, "invalidFilter")
        if resolved.attribute.type == "complex" and resolved.sub is None and resolved.attribute.sub("value") is None:
            raise ScimSyntaxError(f"{node.path} is complex: compare one of its sub-attributes.",
                                  scim_type="invalidFilter")
        if isinstance(node, Compare):
            # Type errors in the literal are reported even when nothing would be compared.
            definition = resolved.sub or (resolved.attribute.sub("value") if resolved.attribute.type == "complex"
                                          else resolved.attribute)
            _test(node, definition, [_sample(definition)])


def validate_value_filter(node: Node, parent: Attribute) -> None:
    if isinstance(node, (And, Or)):
        validate_value_filter(node.left, parent)
        validate_value_filter(node.right, parent)
    elif isinstance(node, Not):
        validate_value_filter(node.inner, parent)
    elif isinstance(node, ValuePath):
        raise ScimSyntaxError("A value filter cannot contain another value filter.", scim_type="invalidFilter")
    else:
        sub = resolve_sub(node.path, parent, "invalidFilter")
        if isinstance(node, Compare):
            _test(node, sub, [_sample(sub)])


def _sample(definition: Attribute) -> Any:
    return {"boolean": True, "integer": 0, "decimal": 0.0, "dateTime": "1970-01-01T00:00:00Z"}.get(
        definition.type, "")


def equality(node: Node, names: tuple[str, ...]) -> tuple[str, str] | None:
    """An `attr eq "value"` that every match must satisfy (the filter itself, or a term of an `and` chain),
    for one of `names` (core attributes without sub-attribute). Lets `userName eq "x"` be a point read."""
    if isinstance(node, Compare) and node.op == "eq" and isinstance(node.value, str) and node.path.sub is None:
        core = node.path.urn is None or node.path.urn.lower() in (
            "urn:ietf:params:scim:schemas:core:2.0:user", "urn:ietf:params:scim:schemas:core:2.0:group")
        for name in names:
            if core and node.path.name and node.path.name.lower() == name.lower():
                return name, node.value
        return None
    if isinstance(node, And):
        found = [equality(node.left, names), equality(node.right, names)]
        found = [f for f in found if f]
        if found:
            return min(found, key=lambda f: names.index(f[0]))
    return None
