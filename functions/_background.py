"""The adapter shared by timer and queue functions: the same storage deadline as an HTTP request, one log line.

An HTTP request's storage work is bounded by `tables.request_deadline` (functions/_http.py); a timer or a
queue message gets the same machinery with its own budget (`seconds`): every storage call in it at most
`tables.CALL_STORAGE_SECONDS`, all of them together at most `seconds`, so a hung store fails the invocation
in seconds instead of holding it until the function timeout. A failure is raised again: the host logs it,
and for a queue message retries it (host.json `maxDequeueCount`), then moves it to the poison queue.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Callable

from shared_code.jobs import fanout
from shared_code.storage import tables

log = logging.getLogger("gatehouse")


def background(seconds: float = fanout.STORAGE_SECONDS) -> Callable:
    def wrap(fn: Callable[..., Any]) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            started, outcome = time.perf_counter(), "ok"
            try:
                with tables.request_deadline(seconds):
                    return fn(*args, **kwargs)
            except Exception as error:
                outcome = type(error).__name__
                raise
            finally:
                log.info(json.dumps({"event": "background", "function": fn.__name__, "outcome": outcome,
                                     "ms": round((time.perf_counter() - started) * 1000, 2)}))

        return run

    return wrap
