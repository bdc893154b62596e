"""HTTP routing as the Functions host does it: route templates (the subset of ASP.NET Core routing the host
uses: inline constraints, optional, default and catch-all parameters, complex segments like `{name}.{ext}`,
case-insensitive literals) and the choice among an app's routes under the route prefix, the most specific
template first."""
from __future__ import annotations

import dataclasses
import datetime
import decimal
import re
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import unquote

from azure.functions.decorators.http import HttpMethod, HttpTrigger

ALL_HTTP_METHODS = tuple(m.value for m in HttpMethod)


_INTEGER = re.compile(r"\s*[+-]?\d+\s*\Z")
_DOUBLE = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*\Z|\s*(NaN|[+-]?Infinity)\s*\Z")
_DECIMAL = re.compile(r"\s*[+-]?(\d[\d,]*(\.\d*)?|\.\d+)\s*\Z")
_HEX = "[0-9a-fA-F]"
_GUID_D = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_GUID = re.compile(rf"\s*({_GUID_D}|{_HEX}{{32}}|\{{{_GUID_D}\}}|\({_GUID_D}\))\s*\Z")
_ALPHA = re.compile(r"[a-zA-Z]*\Z")


def _as_integer(value: str, bits: int) -> int | None:
    if not _INTEGER.match(value):
        return None
    number = int(value)
    limit = 1 << (bits - 1)
    return number if -limit <= number < limit else None


def _is_datetime(value: str) -> bool:
    try:
        datetime.datetime.fromisoformat(value.strip())
        return True
    except ValueError:
        return False


def _int_args(args: str, count: int, constraint: str) -> list[int]:
    parts = [p.strip() for p in args.split(",")] if args else []
    if len(parts) != count or not all(_INTEGER.match(p) for p in parts):
        raise ValueError(f"constraint '{constraint}' takes {count} integer argument(s)")
    return [int(p) for p in parts]


def _make_constraint(name: str, args: str | None) -> Callable[[str], bool]:
    """A predicate for one inline constraint, named as in ASP.NET Core (case-insensitive)."""
    key = name.lower()
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: _as_integer(v, 32) is not None,
        "long": lambda v: _as_integer(v, 64) is not None,
        "bool": lambda v: v.strip().lower() in ("true", "false"),
        "guid": lambda v: bool(_GUID.match(v)),
        "alpha": lambda v: bool(_ALPHA.match(v)),
        "double": lambda v: bool(_DOUBLE.match(v)),
        "float": lambda v: bool(_DOUBLE.match(v)),
        "decimal": lambda v: bool(_DECIMAL.match(v)),
        "datetime": _is_datetime,
        "required": lambda v: v != "",
    }
    if key in simple:
        if args:
            raise ValueError(f"constraint '{name}' takes no arguments")
        return simple[key]
    if key in ("minlength", "maxlength", "min", "max"):
        (bound,) = _int_args(args or "", 1, name)
        return {
            "minlength": lambda v: len(v) >= bound,
            "maxlength": lambda v: len(v) <= bound,
            "min": lambda v: (n := _as_integer(v, 64)) is not None and n >= bound,
            "max": lambda v: (n := _as_integer(v, 64)) is not None and n <= bound,
        }[key]
    if key == "length":
        bounds = _int_args(args or "", 2 if args and "," in args else 1, name)
        low, high = (bounds[0], bounds[0]) if len(bounds) == 1 else bounds
        return lambda v: low <= len(v) <= high
    if key == "range":
        low, high = _int_args(args or "", 2, name)
        return lambda v: (n := _as_integer(v, 64)) is not None and low <= n <= high
    if key == "regex":
        # ASP.NET compiles these case-insensitive and does not anchor them.
        pattern = re.compile(args or "", re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    raise ValueError(f"unknown route constraint '{name}'")


@dataclasses.dataclass(frozen=True)
class _Parameter:
    name: str
    constraints: tuple[Callable[[str], bool], ...] = ()
    optional: bool = False
    catch_all: bool = False
    default: str | None = None

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


@dataclasses.dataclass(frozen=True)
class _Segment:
    """One path segment of a template: a literal, a single parameter, or a complex mix like `{name}.{ext}`."""

    literal: str | None = None
    parameter: _Parameter | None = None
    pattern: re.Pattern | None = None
    pattern_parameters: tuple[_Parameter, ...] = ()

    @property
    def precedence_digit(self) -> int:
        # ASP.NET Core RoutePrecedence.ComputeInbound: lower digits match first.
        if self.pattern is not None:
            return 4
        if self.literal is not None:
            return 1
        digit = 5 if self.parameter.catch_all else 3
        return digit - 1 if self.parameter.constraints else digit


def _split_template(template: str) -> list[list[tuple[str, str]]]:
    """Tokenise a template into segments of ('literal', text) / ('parameter', text) parts.

    Braces are escaped by doubling them, both in literals and inside parameters (regex constraints)."""
    segments: list[list[tuple[str, str]]] = [[]]
    literal, i = "", 0
    while i < len(template):
        char = template[i]
        if char == "/":
            if literal:
                segments[-1].append(("literal", literal))
                literal = ""
            segments.append([])
            i += 1
        elif char in "{}" and template[i + 1 : i + 2] == char:
            literal += char
            i += 2
        elif char == "}":
            raise ValueError("unmatched '}'")
        elif char == "{":
            if literal:
                segments[-1].append(("literal", literal))
                literal = ""
            text, i = "", i + 1
            while True:
                if i >= len(template):
                    raise ValueError("unterminated '{'")
                char = template[i]
                if char in "{}" and template[i + 1 : i + 2] == char:
                    text, i = text + char, i + 2
                elif char == "}":
                    i += 1
                    break
                elif char == "{":
                    raise ValueError("'{' inside a parameter must be written '{{'")
                else:
                    text, i = text + char, i + 1
            if segments[-1] and segments[-1][-1][0] == "parameter":
                raise ValueError("two parameters in one segment need a literal between them")
            segments[-1].append(("parameter", text))
        else:
            literal += char
            i += 1
    if literal:
        segments[-1].append(("literal", literal))
    return segments


def _parse_parameter(text: str) -> _Parameter:
    catch_all = text.startswith("*")
    body = text.lstrip("*") if catch_all else text
    name_match = re.match(r"[^:=?*]+", body)
    if not name_match:
        raise ValueError(f"parameter '{{{text}}}' has no name")
    name, rest = name_match.group(0).strip(), body[name_match.end() :]
    constraints = []
    while rest.startswith(":"):
        constraint_match = re.match(r":([A-Za-z_]\w*)", rest)
        if not constraint_match:
            raise ValueError(f"bad constraint in '{{{text}}}'")
        rest = rest[constraint_match.end() :]
        args = None
        if rest.startswith("("):
            # The argument ends at the ')' followed by another constraint, a default, a final '?' or the end,
            # so regex arguments may contain parentheses of their own.
            end = next(
                (j for j in range(1, len(rest)) if rest[j] == ")"
                 and (j + 1 == len(rest) or rest[j + 1] in ":=" or rest[j + 1 :] == "?")),
                None,
            )
            if end is None:
                raise ValueError(f"unterminated constraint argument in '{{{text}}}'")
            args, rest = rest[1:end], rest[end + 1 :]
        constraints.append(_make_constraint(constraint_match.group(1), args))
    optional, default = False, None
    if rest == "?":
        optional = True
    elif rest.startswith("="):
        default = rest[1:]
    elif rest:
        raise ValueError(f"cannot parse parameter '{{{text}}}'")
    if catch_all and optional:
        raise ValueError("a catch-all parameter cannot be marked optional")
    return _Parameter(name, tuple(constraints), optional, catch_all, default)


class RouteTemplate:
    """An HTTP trigger route such as `tenants/{tenant:guid}/files/{*path}`, matched like the real host."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.segments: list[_Segment] = []
        names: set[str] = set()
        raw_segments = _split_template(self.template) if self.template else []
        for index, parts in enumerate(raw_segments):
            if not parts:
                raise ValueError("empty segment ('//')")
            segment = self._build_segment(parts)
            for parameter in (segment.parameter,) if segment.parameter else segment.pattern_parameters:
                if parameter.name.lower() in names:
                    raise ValueError(f"parameter '{parameter.name}' appears twice")
                names.add(parameter.name.lower())
                if parameter.catch_all and index != len(raw_segments) - 1:
                    raise ValueError("a catch-all parameter must be the last segment")
            self.segments.append(segment)
        self.precedence = sum(
            (decimal.Decimal(s.precedence_digit) / (10 ** i) for i, s in enumerate(self.segments)),
            decimal.Decimal(0),
        )

    @staticmethod
    def _build_segment(parts: list[tuple[str, str]]) -> _Segment:
        if len(parts) == 1:
            kind, text = parts[0]
            return _Segment(literal=text) if kind == "literal" else _Segment(parameter=_parse_parameter(text))
        regex, parameters = "", []
        for kind, text in parts:
            if kind == "literal":
                regex += re.escape(text)
                continue
            parameter = _parse_parameter(text)
            if parameter.catch_all or parameter.optional or parameter.default is not None:
                raise ValueError("parameters inside a mixed segment must be plain (no '*', '?' or '=')")
            regex += "(.+)"  # greedy, like ASP.NET's right-to-left matching of complex segments
            parameters.append(parameter)
        return _Segment(pattern=re.compile(regex + r"\Z", re.IGNORECASE | re.DOTALL),
                        pattern_parameters=tuple(parameters))

    def match(self, path_segments: list[str]) -> dict[str, str] | None:
        """Route values for the decoded path segments (after the route prefix), or None when it doesn't match."""
        values: dict[str, str] = {}
        position = 0
        for segment in self.segments:
            parameter = segment.parameter
            if parameter is not None and parameter.catch_all:
                rest = "/".join(path_segments[position:])
                position = len(path_segments)
                if rest:
                    if not parameter.accepts(rest):
                        return None
                    values[parameter.name] = rest
                elif parameter.default is not None:
                    values[parameter.name] = parameter.default
                break
            if position >= len(path_segments):
                if parameter is not None and (parameter.optional or parameter.default is not None):
                    if parameter.default is not None:
                        values[parameter.name] = parameter.default
                    continue
                return None
            value = path_segments[position]
            position += 1
            if segment.literal is not None:
                if value.casefold() != segment.literal.casefold():
                    return None
            elif parameter is not None:
                if value == "" or not parameter.accepts(value):
                    return None
                values[parameter.name] = value
            else:
                found = segment.pattern.match(value)
                if not found:
                    return None
                for part, part_value in zip(segment.pattern_parameters, found.groups()):
                    if not part.accepts(part_value):
                        return None
                    values[part.name] = part_value
        return values if position == len(path_segments) else None

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"



def http_route(function_name: str, trigger: HttpTrigger) -> tuple[RouteTemplate, frozenset[str]]:
    """An HTTP trigger's route template and methods; a trigger without a route is served at the function's name,
    one without methods answers them all."""
    try:
        route = RouteTemplate(function_name if trigger.route is None else trigger.route)
    except ValueError as error:
        raise ValueError(f"function '{function_name}': route '{trigger.route}': {error}") from None
    methods = trigger.methods or ALL_HTTP_METHODS
    return route, frozenset(getattr(m, "value", m).upper() for m in methods)


def decoded_segments(path: str) -> list[str]:
    """A request path's segments, percent-decoded one by one."""
    # Split before decoding so an encoded '/' (%2F) stays inside its segment; ASP.NET ignores one trailing '/'.
    segments = path.lstrip("/").split("/")
    if segments and segments[-1] == "":
        segments.pop()
    return [unquote(s) for s in segments]


def allow_header(methods: Iterable[str]) -> str:
    """An `Allow` header's value, the methods in the host's order."""
    return ", ".join(m for m in ALL_HTTP_METHODS if m in methods)


class Routed(Protocol):
    """A function as the router sees it: its route (None: not an HTTP function) and methods."""

    route: RouteTemplate | None
    methods: frozenset[str]


@dataclasses.dataclass(frozen=True)
class RouteMatch:
    """What a request found: the function to run and its route values, or else (`function` None) the methods
    of the routes whose template matches the path, empty when none does."""

    function: Any = None
    values: dict[str, str] = dataclasses.field(default_factory=dict)
    allowed: frozenset[str] = frozenset()


class Router:
    """An app's HTTP functions under the route prefix, tried in the host's order: most specific route first."""

    def __init__(self, functions: Iterable[Routed], route_prefix: str) -> None:
        self.route_prefix = route_prefix.strip("/")
        self._prefix_segments = decoded_segments(self.route_prefix) if self.route_prefix else []
        # Stable sort: equal precedence keeps registration order.
        self.functions = sorted((f for f in functions if f.route is not None), key=lambda f: f.route.precedence)

    def find(self, method: str, segments: list[str]) -> RouteMatch:
        """The route for a request's method and decoded path segments (prefix included)."""
        prefix_length = len(self._prefix_segments)
        if [s.lower() for s in segments[:prefix_length]] != [s.lower() for s in self._prefix_segments]:
            return RouteMatch()
        route_segments = segments[prefix_length:]
        allowed: set[str] = set()
        for function in self.functions:
            values = function.route.match(route_segments)
            if values is None:
                continue
            if method in function.methods:
                return RouteMatch(function, values)
            allowed |= function.methods
        return RouteMatch(allowed=frozenset(allowed))
