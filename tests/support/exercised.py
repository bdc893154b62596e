"""Hypothesis properties that return early on a refused case say how many cases they really exercised.

A law checked only on the cases that got past `except BadRequest: return` is only as strong as the number of
those cases: a strategy that drifts into producing nothing valid would leave the law green and unchecked. A
property decorated with `requires_exercised(n)` (above `@given`) calls `exercised()` once a case got past its
refusals; it fails when fewer than `n` cases did, naming how many were generated. Both counts also show in
hypothesis' statistics (`pytest --hypothesis-show-statistics`) as events.
"""
from __future__ import annotations

import functools
from contextvars import ContextVar
from dataclasses import dataclass

import hypothesis


@dataclass
class _Tally:
    generated: int = 0
    exercised: int = 0


_current: ContextVar[_Tally | None] = ContextVar("exercised_tally", default=None)


def exercised() -> None:
    """The current case reached the law's assertions."""
    hypothesis.event("exercised")
    tally = _current.get()
    if tally is not None:
        tally.exercised += 1


def refused(reason: str = "refused") -> None:
    """The current case was refused before the law could say anything (only an event; not counted)."""
    hypothesis.event(reason)


def requires_exercised(at_least: int):
    """Fail the property when fewer than `at_least` generated cases called `exercised()`."""

    def decorate(property_test):
        inner = property_test.hypothesis.inner_test

        @functools.wraps(inner)
        def counting(*args, **kwargs):
            tally = _current.get()
            if tally is not None:
                tally.generated += 1
            return inner(*args, **kwargs)

        # Hypothesis calls `.hypothesis.inner_test` for every case (the hook plugins such as pytest-trio use).
        property_test.hypothesis.inner_test = counting

        @functools.wraps(property_test)
        def run(*args, **kwargs):
            tally = _Tally()
            token = _current.set(tally)
            try:
                property_test(*args, **kwargs)
            finally:
                _current.reset(token)
            assert tally.exercised >= at_least, (
                f"{property_test.__name__}: only {tally.exercised} of {tally.generated} generated cases got past "
                f"the refusals (at least {at_least} needed): the law was hardly checked")

        return run

    return decorate
