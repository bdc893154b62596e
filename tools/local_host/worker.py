"""The Python worker's part of the local host: index a `FunctionApp` once (checking each function's parameters
against its bindings, as the worker does) and invoke its functions — sync ones in a thread pool, `async def`
ones on one event loop — with the `context` and `Out[...]` arguments they ask for. A function whose
`AzureWebJobs.<name>.Disabled` setting (or `AzureWebJobs__<name>__Disabled`, the form Linux plans take) is true is
not loaded, as the real host does not load it: its route answers 404 and its trigger never fires."""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import logging
import os
import threading
import time
import traceback
import uuid
from typing import Any, Callable

import azure.functions as func
from azure.functions import _abc as azf_abc
from azure.functions.decorators.core import InputBinding, OutputBinding
from azure.functions.decorators.http import HttpOutput, HttpTrigger

from tools.local_host.routing import RouteTemplate, http_route

log = logging.getLogger("gatehouse.local_host")


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
class IndexedFunction:
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


def _index_function(function: func.Function) -> IndexedFunction:
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
    indexed = IndexedFunction(
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
        indexed.route, indexed.methods = http_route(name, trigger)
    return indexed


def disabled(function_name: str) -> bool:
    """Whether the app settings turn this function off, as the host reads `AzureWebJobs.<name>.Disabled`."""
    return any(os.environ.get(f"AzureWebJobs{sep}{function_name}{sep}Disabled", "").strip().lower() in ("true", "1")
               for sep in (".", "__"))


class Worker:
    """One app's functions, indexed, and the means to run them: `run(function, trigger_value)` starts an
    invocation and answers its future."""

    def __init__(self, app: func.FunctionRegister, app_dir: str | None = None,
                 max_workers: int | None = None) -> None:
        self.app_dir = os.path.abspath(app_dir or os.getcwd())
        # get_functions() may be called only once per app: it registers every name to reject duplicates.
        self.functions = {f.name.lower(): f for f in (_index_function(f) for f in app.get_functions())
                          if not disabled(f.name)}
        if max_workers is None and os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").isdigit():
            max_workers = int(os.environ["PYTHON_THREADPOOL_THREAD_COUNT"]) or None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="function")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="function-loop", daemon=True)
        self._loop_thread.start()
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    def close(self) -> None:
        """Run nothing more: queued invocations are cancelled, running ones finish on their own."""
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

    def run(self, function: IndexedFunction, trigger_value: Any) -> concurrent.futures.Future:
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

