"""Waiting for what the app does on its own (a queue message, a timer, a background thread): the first truthy
value of a condition, polled until a deadline. A ceiling for a loaded machine, never a speed check (that is bench/)."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "the condition",
               every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"never happened within {timeout} s: {what}")
        time.sleep(every)
