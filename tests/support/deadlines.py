"""How long past its own deadline a test lets the code take before calling the deadline broken.

A deadline under test is read from the code (its constant, or the timeout the test passed it) and asserted
with this margin, never with a number of its own: what the test checks is that the deadline ends the wait
(a missing one waits for the server, which the tests' servers make last a minute or more), not how fast the
machine is. Fifteen seconds holds on a 2-core machine running several test suites at once (load average
above 10), where a process can stall for seconds. Timings themselves are measured in bench/.
"""
from __future__ import annotations

MARGIN_SECONDS = 15.0


def bound(deadline_seconds: float) -> float:
    """The longest a call given `deadline_seconds` may take in a test."""
    return deadline_seconds + MARGIN_SECONDS
