"""Local stand-in for the Azure Functions host: serves a v2 `FunctionApp` over HTTP on loopback.

Azure Functions Core Tools (`func start`) cannot be installed on our machines, so this module reproduces the
parts of the real host that Gatehouse relies on, using only the stdlib and `azure.functions`:

* the app is indexed once with `app.get_functions()`, exactly like the Python worker does;
* `local.settings.json` `Values` become environment variables before the app module is imported;
* HTTP routes use the host's ASP.NET-style templates (constraints, optional and catch-all parameters,
  case-insensitive literals, "more specific route wins") under the `host.json` route prefix;
* query keys that repeat are joined with commas, bodies arrive as raw bytes, responses may carry several
  `Set-Cookie` headers, unhandled exceptions become a bare 500;
* sync functions run in a thread pool and `async def` functions on one event loop, as in the worker;
* non-HTTP (timer) functions run on demand via `POST /admin/functions/{name}`, answering 202;
* timer functions also run on their schedule, and queue-triggered functions poll their queue
  (tools/local_triggers.py), as the real host runs them.

Deliberate deviation from the real host: a path that matches a route whose methods exclude the request's
method answers 405 with `Allow` (the real host answers 404 there, see azure-functions-host#10098).

CLI: `python -m tools.local_host [--app function_app] [--app-dir DIR] [--port N] [--settings PATH]`.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import decimal
import datetime
import importlib
import inspect
import json
import logging
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions import _abc as azf_abc
from azure.functions.decorators.core import InputBinding, OutputBinding
from azure.functions.decorators.http import HttpMethod, HttpOutput, HttpTrigger
from azure.functions.decorators.timer import TimerTrigger
from azure.functions.http import HttpRequest as WorkerHttpRequest
from azure.functions.timer import TimerRequest

__all__ = ["LocalHost", "RouteTemplate", "load_local_settings", "read_route_prefix", "main"]

log = logging.getLogger("gatehouse.local_host")

MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_PORT = 7071
DEFAULT_ROUTE_PREFIX = "api"
ALL_HTTP_METHODS = tuple(m.value for m in HttpMethod)
# Shown instead of anything the function raised: exception text can hold secrets and internals.
GENERIC_ERROR_BODY = b"Internal Server Error"
_NO_BODY_STATUSES = frozenset({204, 304})


# --------------------------------------------------------------------------------------------------------------
# Settings and host.json


def load_local_settings(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read `Values` from a `local.settings.json` and export them the way `func start` does.

    Variables already present in the environment win over the file. Returns the file's `Values`.
    A value that is not a string is rejected: Core Tools cannot read such a file either, and accepting it
    here would let `func start` break where this host works.
    """
    environ = os.environ if environ is None else environ
    with open(path, encoding="utf-8-sig") as fh:  # editors on Windows add a BOM; Core Tools accepts it
        document = json.load(fh)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if document.get("IsEncrypted") is True:
        raise ValueError(f"{path}: encrypted settings are not supported; run `func settings decrypt` first")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: 'Values' must be an object of strings")
    for name, value in values.items():
        if not isinstance(value, str):
            raise ValueError(f"{path}: Values.{name} must be a string (Core Tools rejects other types)")
    for name, value in values.items():
        environ.setdefault(name, value)
    return dict(values)


def _read_json_file(path: str) -> dict:
    with open(path, encoding="utf-8-sig") as fh:
        document = json.load(fh)
    return document if isinstance(document, dict) else {}


def read_route_prefix(host_json_path: str | os.PathLike) -> str:
    """The HTTP route prefix from `host.json` (`extensions.http.routePrefix`), `api` when unset."""
    document = _read_json_file(os.fspath(host_json_path))
    prefix = ((document.get("extensions") or {}).get("http") or {}).get("routePrefix")
    return DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/")


# --------------------------------------------------------------------------------------------------------------
# Route templates (the subset of ASP.NET Core routing the Functions host uses)

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


# --------------------------------------------------------------------------------------------------------------
# The indexed app


class _Out(azf_abc.Out):
    """What the worker hands a function for an output binding declared as a parameter."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _InvocationContext(azf_abc.Context):
    """The `context` argument the worker passes to functions that ask for it."""

    _thread_local = threading.local()

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._function_name)
    function_directory = property(lambda self: self._function_directory)
    thread_local_storage = property(lambda self: self._thread_local)
    trace_context = property(lambda self: None)
    retry_context = property(lambda self: None)


@dataclasses.dataclass
class _IndexedFunction:
    name: str
    user_function: Callable[..., Any]
    trigger: Any
    is_async: bool
    wants_context: bool
    output_parameters: tuple[str, ...]  # output bindings passed as Out[...] parameters
    input_parameters: tuple[str, ...]  # input bindings this host cannot fill (passed None)
    http_output_parameter: str | None = None  # an HTTP output bound to a parameter instead of $return
    route: RouteTemplate | None = None
    methods: frozenset[str] = frozenset()

    @property
    def trigger_type(self) -> str:
        return self.trigger.get_binding_name()


def _index_function(function: func.Function) -> _IndexedFunction:
    """Turn one indexed `Function` into what this host needs, checking its signature like the worker does."""
    name = function.get_function_name()
    user_function = function.get_user_function()
    trigger = function.get_trigger()
    parameters = inspect.signature(user_function).parameters
    outputs, inputs, http_output = [], [], None
    binding_names = set()
    for binding in function.get_bindings():
        if binding is trigger or binding.name == "$return":
            continue
        binding_names.add(binding.name)
        if isinstance(binding, HttpOutput):
            http_output = binding.name
        elif isinstance(binding, OutputBinding):
            outputs.append(binding.name)
        elif isinstance(binding, InputBinding):
            inputs.append(binding.name)
    binding_names.add(trigger.name)
    declared = set(parameters) - {"context"}
    if declared != binding_names:
        raise ValueError(
            f"function '{name}': parameters {sorted(declared)} do not match its bindings {sorted(binding_names)}"
        )
    if outputs or inputs:
        log.warning("function '%s': bindings %s are not emulated by the local host",
                    name, ", ".join(outputs + inputs))
    indexed = _IndexedFunction(
        name=name,
        user_function=user_function,
        trigger=trigger,
        is_async=inspect.iscoroutinefunction(user_function),
        wants_context="context" in parameters,
        output_parameters=tuple(outputs),
        input_parameters=tuple(inputs),
        http_output_parameter=http_output,
    )
    if isinstance(trigger, HttpTrigger):
        try:
            indexed.route = RouteTemplate(name if trigger.route is None else trigger.route)
        except ValueError as error:
            raise ValueError(f"function '{name}': route '{trigger.route}': {error}") from None
        methods = trigger.methods or ALL_HTTP_METHODS
        indexed.methods = frozenset(getattr(m, "value", m).upper() for m in methods)
    return indexed


@dataclasses.dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def _text_reply(status: int, text: str = "", headers: Iterable[tuple[str, str]] = ()) -> _Reply:
    content_type = [("Content-Type", "text/plain; charset=utf-8")] if text else []
    return _Reply(status, [*content_type, *headers], text.encode())


def _json_reply(status: int, document: Any) -> _Reply:
    return _Reply(status, [("Content-Type", "application/json; charset=utf-8")], json.dumps(document).encode())


def _allow_header(methods: Iterable[str]) -> str:
    return ", ".join(m for m in ALL_HTTP_METHODS if m in methods)


def _decoded_segments(path: str) -> list[str]:
    # Split before decoding so an encoded '/' (%2F) stays inside its segment; ASP.NET ignores one trailing '/'.
    segments = path.lstrip("/").split("/")
    if segments and segments[-1] == "":
        segments.pop()
    return [unquote(s) for s in segments]


def _merged(pairs: Iterable[tuple[str, str]], separator: str = ",") -> dict[str, str]:
    """Repeated keys joined like ASP.NET's StringValues.ToString(); keys compared case-insensitively."""
    merged: dict[str, str] = {}
    spelling: dict[str, str] = {}
    for key, value in pairs:
        folded = key.lower()
        if folded in spelling:
            merged[spelling[folded]] += separator + value
        else:
            spelling[folded] = key
            merged[key] = value
    return merged


class LocalHost:
    """Serves one `FunctionApp` like the Functions host: `serve(host, port)` blocks until `shutdown()`."""

    def __init__(self, app: func.FunctionRegister, route_prefix: str = DEFAULT_ROUTE_PREFIX,
                 app_dir: str | None = None, max_workers: int | None = None) -> None:
        self.app_dir = os.path.abspath(app_dir or os.getcwd())
        self.route_prefix = route_prefix.strip("/")
        self._prefix_segments = _decoded_segments(self.route_prefix) if self.route_prefix else []
        # get_functions() may be called only once per app: it registers every name to reject duplicates.
        functions = [_index_function(f) for f in app.get_functions()]
        self.functions = {f.name.lower(): f for f in functions}
        # Stable sort: equal precedence keeps registration order.
        self.http_functions = sorted((f for f in functions if f.route is not None), key=lambda f: f.route.precedence)
        if max_workers is None and os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").isdigit():
            max_workers = int(os.environ["PYTHON_THREADPOOL_THREAD_COUNT"]) or None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="function")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="function-loop", daemon=True)
        self._loop_thread.start()
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._serving = False
        self._stopping = False
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.port: int | None = None

    # ---- lifecycle

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Open the listening socket (port 0 picks a free one) and return the port."""
        server = _Server((host, port), _RequestHandler)
        server.local_host = self
        self._server = server
        self.port = server.server_address[1]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind if needed and answer requests until `shutdown()` (or an exception such as KeyboardInterrupt)."""
        if self._server is None:
            self.bind(host, port)
        with self._lock:
            if self._stopping:
                self._close()
                return
            self._serving = True
        self.ready.set()
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def shutdown(self) -> None:
        """Stop serving; safe to call from any thread but the one inside `serve()`, and more than once."""
        with self._lock:
            self._stopping = True
            serving, server = self._serving, self._server
        if serving and server is not None:
            server.shutdown()

    def _close(self) -> None:
        if self._server is not None:
            self._server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def wait_for_idle(self, timeout: float) -> bool:
        """Wait until no function is running (used on Ctrl-C); False if some are still busy after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._in_flight_lock:
                if self._in_flight == 0:
                    return True
            time.sleep(0.05)
        return False

    def describe_functions(self) -> list[str]:
        """Lines like Core Tools prints at start-up: `name: [GET,POST] http://.../api/route`."""
        lines = []
        for function in self.functions.values():
            if function.route is not None:
                path = "/".join(p for p in (self.route_prefix, function.route.template) if p)
                methods = ",".join(m for m in ALL_HTTP_METHODS if m in function.methods)
                lines.append(f"{function.name}: [{methods}] {self.url}/{path}")
            else:
                lines.append(f"{function.name}: {function.trigger_type} "
                             f"(run now: POST {self.url}/admin/functions/{function.name})")
        return lines

    # ---- invocation

    def _run(self, function: _IndexedFunction, trigger_value: Any) -> concurrent.futures.Future:
        """Start one invocation: sync functions in the pool, coroutines on the shared loop (as the worker does)."""
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {function.trigger.name: trigger_value}
        outputs = {name: _Out() for name in function.output_parameters}
        http_out = _Out() if function.http_output_parameter else None
        kwargs.update(outputs)
        kwargs.update({name: None for name in function.input_parameters})
        if http_out is not None:
            kwargs[function.http_output_parameter] = http_out
        context = _InvocationContext(invocation_id, function.name, self.app_dir)
        if function.wants_context:
            kwargs["context"] = context
        started = time.monotonic()
        log.info("Executing 'Functions.%s' (Id=%s)", function.name, invocation_id)

        def call_sync():
            _InvocationContext._thread_local.invocation_id = invocation_id
            return function.user_function(**kwargs)

        with self._in_flight_lock:
            self._in_flight += 1
        try:
            if function.is_async:
                future = asyncio.run_coroutine_threadsafe(function.user_function(**kwargs), self._loop)
            else:
                future = self._pool.submit(call_sync)
        except BaseException:
            with self._in_flight_lock:
                self._in_flight -= 1
            raise

        def finished(done: concurrent.futures.Future) -> None:
            with self._in_flight_lock:
                self._in_flight -= 1
            elapsed = (time.monotonic() - started) * 1000
            error = None if done.cancelled() else done.exception()
            if error is None:
                log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
                         function.name, invocation_id, elapsed)
            else:
                # The traceback goes to stderr only; callers get a bare 500.
                log.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n%s", function.name,
                          invocation_id, elapsed,
                          "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip())

        future.add_done_callback(finished)
        future.http_out = http_out  # read by the HTTP path when the function used an Out parameter
        return future

    def respond(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
                authority: str | None = None) -> _Reply:
        """Answer one HTTP request (already read in full) the way the Functions host would."""
        split = urlsplit(target)
        segments = _decoded_segments(split.path)
        if segments and segments[0].lower() == "admin":
            return self._respond_admin(method, segments, body)
        prefix_length = len(self._prefix_segments)
        if [s.lower() for s in segments[:prefix_length]] == [s.lower() for s in self._prefix_segments]:
            route_segments = segments[prefix_length:]
            allowed: set[str] = set()
            for function in self.http_functions:
                values = function.route.match(route_segments)
                if values is None:
                    continue
                if method in function.methods:
                    return self._invoke_http(function, method, split, headers, body, values, authority)
                allowed |= function.methods
            if allowed:
                return _text_reply(405, "", [("Allow", _allow_header(allowed))])
        if not segments:
            # The real host answers its root with a landing page; handy as a liveness check.
            return _text_reply(200, "Gatehouse local host is running.\n")
        return _text_reply(404)

    def _invoke_http(self, function: _IndexedFunction, method: str, split, headers, body: bytes,
                     route_values: dict[str, str], authority: str | None) -> _Reply:
        header_pairs = list(headers)
        request_headers = _merged(((k, v) for k, v in header_pairs if k.lower() != "cookie"))
        cookies = [v for k, v in header_pairs if k.lower() == "cookie"]
        if cookies:
            request_headers["Cookie"] = "; ".join(cookies)
        host = next((v for k, v in header_pairs if k.lower() == "host"), None) or authority
        url = f"http://{host}{split.path}" + (f"?{split.query}" if split.query else "")
        request = WorkerHttpRequest(
            method=method,
            url=url,
            headers=request_headers,
            params=_merged(parse_qsl(split.query, keep_blank_values=True)),
            route_params=route_values,
            body_type="bytes",
            body=body,
        )
        future = self._run(function, request)
        try:
            result = future.result()
        except Exception:  # already logged with its traceback by the done-callback
            return _text_reply(500, GENERIC_ERROR_BODY.decode())
        if result is None and future.http_out is not None:
            result = future.http_out.get()
        return self._http_reply(function, result)

    @staticmethod
    def _http_reply(function: _IndexedFunction, result: Any) -> _Reply:
        if isinstance(result, str):
            return _text_reply(200, result)
        if result is None:
            return _Reply(204, [])
        if not isinstance(result, azf_abc.HttpResponse):
            log.error("function '%s' returned %s; the HTTP output accepts HttpResponse or str",
                      function.name, type(result).__name__)
            return _text_reply(500, GENERIC_ERROR_BODY.decode())
        status = int(result.status_code)
        if not 100 <= status <= 599:
            log.error("function '%s' returned status %s", function.name, status)
            return _text_reply(500, GENERIC_ERROR_BODY.decode())
        # Framing headers are ours to set; a function's copy would contradict the body we send.
        headers = [(k, str(v)) for k, v in result.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        if not any(k.lower() == "content-type" for k, _ in headers):
            mimetype = result.mimetype
            headers.append(("Content-Type",
                            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype))
        return _Reply(status, headers, result.get_body() or b"")

    def _respond_admin(self, method: str, segments: list[str], body: bytes) -> _Reply:
        lowered = [s.lower() for s in segments]
        if lowered == ["admin", "host", "status"]:
            if method != "GET":
                return _text_reply(405, "", [("Allow", "GET")])
            return _json_reply(200, {"state": "Running"})
        if len(lowered) == 3 and lowered[1] == "functions":
            function = self.functions.get(lowered[2])
            if function is None:
                return _text_reply(404)
            if method != "POST":
                return _text_reply(405, "", [("Allow", "POST")])
            try:
                invocation = json.loads(body) if body.strip() else {}
            except ValueError:
                return _text_reply(400, 'The body must be JSON like {"input": ""}.')
            if not isinstance(invocation, dict):
                return _text_reply(400, 'The body must be JSON like {"input": ""}.')
            if not isinstance(function.trigger, TimerTrigger):
                return _text_reply(400, f"The local host invokes only timer functions here; "
                                        f"'{function.name}' has a {function.trigger_type}.")
            # Like the real host: accepted now, runs in the background; failures show in the log.
            self._run(function, TimerRequest(past_due=False))
            return _Reply(202, [])
        return _text_reply(404)


# --------------------------------------------------------------------------------------------------------------
# HTTP server


class _BadRequest(Exception):
    pass


class _TooLarge(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold the process open on Ctrl-C
    request_queue_size = 128  # many clients connecting at once must not overflow the listen backlog
    local_host: LocalHost

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve our own name (getfqdn), which can stall on odd DNS setups.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        # A client hanging up mid-response is routine (browsers, timeouts); anything else deserves a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        log.exception("error while serving %s", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "Gatehouse-LocalHost"
    disable_nagle_algorithm = True  # headers and body go out as two writes; don't let Nagle delay the second
    timeout = 120  # idle keep-alive connections are dropped eventually

    server: _Server

    def _declared_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        if not value.strip().isdigit():
            raise _BadRequest("invalid Content-Length")
        return int(value)

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it.
        try:
            length = self._declared_length()
        except _BadRequest:
            length = None
        if length is not None and length > MAX_REQUEST_BODY_BYTES:
            self._send(_text_reply(413, "Request body too large."), close=True)
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._declared_length()
        if not length:
            return b""
        if length > MAX_REQUEST_BODY_BYTES:
            raise _TooLarge
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("client closed the connection mid-body")
        return body

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("invalid chunk size") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are ignored
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BODY_BYTES:
                raise _TooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _dispatch(self) -> None:
        started = time.monotonic()
        try:
            body = self._read_body()
        except _TooLarge:
            self._send(_text_reply(413, "Request body too large."), close=True)
            self._discard_incoming()
            return
        except _BadRequest as error:
            self._send(_text_reply(400, str(error)), close=True)
            return
        except ConnectionError:
            self.close_connection = True  # the client went away mid-body; nobody to answer
            return
        authority = f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        try:
            reply = self.server.local_host.respond(self.command, self.path, self.headers.items(), body, authority)
        except Exception:
            log.exception("local host failed on %s %s", self.command, self.path)
            reply = _text_reply(500, GENERIC_ERROR_BODY.decode())
        self._send(reply)
        log.info('"%s %s" %d %dms', self.command, self.path, reply.status, (time.monotonic() - started) * 1000)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _send(self, reply: _Reply, close: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        informational = reply.status < 200
        if reply.status != 204 and not informational:
            self.send_header("Content-Length", str(len(reply.body)))
        if close:
            self.send_header("Connection", "close")  # also makes the handler close after this reply
        self.end_headers()
        if self.command != "HEAD" and reply.status not in _NO_BODY_STATUSES and not informational:
            self.wfile.write(reply.body)

    def _discard_incoming(self) -> None:
        """Read and drop what the client is still sending, so it sees our 413 instead of a connection reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline, discarded = time.monotonic() + 3.0, 0
            while time.monotonic() < deadline and discarded < 8 * MAX_REQUEST_BODY_BYTES:
                data = self.connection.recv(65536)
                if not data:
                    break
                discarded += len(data)
        except OSError:
            pass

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_request(self, code="-", size="-") -> None:
        pass  # _dispatch logs each request with its duration

    def log_message(self, format: str, *args: Any) -> None:
        log.warning("%s - %s", self.address_string(), format % args)


# --------------------------------------------------------------------------------------------------------------
# CLI


def _find_app(module: Any) -> func.FunctionRegister:
    """The module's one top-level FunctionApp, found the way the Python worker finds it."""
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise ValueError(f"{module.__name__}: expected exactly one top-level FunctionApp, found {len(apps)}")
    return apps[0]


def _resolve_port(cli_port: int | None, settings_path: str) -> int:
    """--port, else PORT, else local.settings.json Host.LocalHttpPort (as `func start` uses it), else 7071."""
    if cli_port is not None:
        return cli_port
    if os.environ.get("PORT"):
        if not os.environ["PORT"].isdigit():
            raise SystemExit(f"error: PORT must be a number, got {os.environ['PORT']!r}")
        return int(os.environ["PORT"])
    try:
        host_section = _read_json_file(settings_path).get("Host") or {}
        if str(host_section.get("LocalHttpPort", "")).isdigit():
            return int(host_section["LocalHttpPort"])
    except (OSError, ValueError):
        pass
    return DEFAULT_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.local_host", description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="function_app", help="module that defines the FunctionApp")
    parser.add_argument("--app-dir", default=".", help="the Function App's root (host.json); default: cwd")
    parser.add_argument("--port", type=int, help="default: $PORT, else Host.LocalHttpPort, else 7071")
    parser.add_argument("--settings", help="local.settings.json to load; default: the one in the app dir")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[%(asctime)s] %(message)s")
    # The Azure SDK logs every storage call's headers at INFO, which would drown the function logs.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    app_dir = os.path.abspath(args.app_dir)
    settings_path = os.path.abspath(args.settings or os.path.join(app_dir, "local.settings.json"))
    # Read before the settings are exported: a PORT inside Values must not move the listener.
    port = _resolve_port(args.port, settings_path)

    # The worker runs with the app root as working directory and first on sys.path.
    os.chdir(app_dir)
    sys.path.insert(0, app_dir)
    if os.path.exists(settings_path):
        try:
            load_local_settings(settings_path)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    elif args.settings:
        print(f"error: settings file not found: {settings_path}", file=sys.stderr)
        return 2
    else:
        log.warning("no local.settings.json in %s; starting with the current environment only", app_dir)

    host_json = os.path.join(app_dir, "host.json")
    if os.path.exists(host_json):
        route_prefix = read_route_prefix(host_json)
    else:
        log.warning("no host.json in %s; using route prefix '%s'", app_dir, DEFAULT_ROUTE_PREFIX)
        route_prefix = DEFAULT_ROUTE_PREFIX

    try:
        local_host = LocalHost(_find_app(importlib.import_module(args.app)), route_prefix, app_dir)
        local_host.bind("127.0.0.1", port)
    except OSError as error:
        print(f"error: cannot listen on 127.0.0.1:{port}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    print("Functions:\n", flush=True)
    for line in local_host.describe_functions():
        print(f"\t{line}\n", flush=True)
    print(f"Gatehouse local host listening on {local_host.url}", flush=True)

    stopping = threading.Event()

    def stop(signum, frame):
        # Ask the serving loop to end from another thread (socketserver's way) rather than raising in whatever
        # the main thread is doing; a second Ctrl-C or SIGTERM while stopping ends the process at once.
        if stopping.is_set():
            os._exit(130 if signum == signal.SIGINT else 143)
        stopping.set()
        threading.Thread(target=local_host.shutdown, name="shutdown", daemon=True).start()

    # Both signals explicitly: a host started with SIGINT ignored (a background job) still stops on Ctrl-C.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from tools.local_triggers import Triggers  # timers on their schedule, queue functions polling their queue

    triggers = Triggers(local_host, app_dir)
    triggers.start()
    local_host.serve()
    triggers.stop()
    log.info("stopping")
    if not local_host.wait_for_idle(timeout=2.0):
        # A function still running would keep the pool's threads (and the process) alive; the real host
        # also kills its worker on shutdown.
        log.warning("functions still running; exiting without waiting for them")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
