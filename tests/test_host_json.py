"""host.json as Azure reads it: request telemetry reaches Application Insights, sampling keeps what it says it
keeps, and the webhook queue is drained gently (issue 17)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = json.loads((ROOT / "host.json").read_text())
LEVELS = ["Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"]


def _level(category: str) -> str:
    """The level the host applies to a category: the longest configured prefix wins, then `default`."""
    levels = HOST["logging"]["logLevel"]
    for name in sorted(levels, key=len, reverse=True):
        if name != "default" and (category == name or category.startswith(name + ".")):
            return levels[name]
    return levels.get("default", "Information")


def _timespan(value: str) -> dt.timedelta:
    hours, minutes, seconds = (float(part) for part in value.split(":"))
    return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


def test_requests_reach_application_insights():
    # Host.Results is the category behind the `requests` table, written at Information: any stricter level
    # drops every request, its duration and its success from Application Insights.
    assert LEVELS.index(_level("Host.Results")) <= LEVELS.index("Information")
    # Host.Aggregator writes the per-function counts and durations (customMetrics), also at Information.
    assert LEVELS.index(_level("Host.Aggregator")) <= LEVELS.index("Information")
    # The app's own log lines (category Function.<name>.User) at Information.
    assert LEVELS.index(_level("Function.tenants_create.User")) <= LEVELS.index("Information")


def test_sampling_never_drops_requests_or_exceptions():
    sampling = HOST["logging"]["applicationInsights"]["samplingSettings"]
    if sampling.get("isEnabled", True):
        excluded = {t.strip() for t in sampling.get("excludedTypes", "").split(";")}
        assert {"Request", "Exception"} <= excluded, (
            "with sampling on, requests and exceptions must be excluded so failure rate and latency are exact")
        assert "includedTypes" not in sampling, "includedTypes would sample only those types and keep the rest"


def test_queue_messages_are_base64_as_the_producer_sends_them():
    # The producer uses azure-storage-queue's TextBase64EncodePolicy (DESIGN.md item 5).
    assert HOST["extensions"]["queues"]["messageEncoding"] == "base64"


def test_one_burst_cannot_flood_a_customer_endpoint():
    queues = HOST["extensions"]["queues"]
    # At most batchSize + newBatchThreshold deliveries in flight per instance (the defaults are 16 + 8).
    assert queues["batchSize"] + queues["newBatchThreshold"] <= 8
    # A failed delivery waits before its next try (the default 0 retries at once, hammering a failing endpoint),
    # and a message that keeps failing ends in webhook-deliveries-poison after a bounded number of tries.
    assert _timespan(queues["visibilityTimeout"]) >= dt.timedelta(seconds=30)
    assert 3 <= queues["maxDequeueCount"] <= 10
    # New deliveries are picked up within seconds when the queue was idle (the default backs off to a minute).
    assert _timespan(queues["maxPollingInterval"]) <= dt.timedelta(seconds=10)


def test_the_jobs_know_when_a_message_goes_to_the_poison_queue():
    """A background job records a failure as poisoned on the last try the host gives it."""
    from shared_code.jobs import fanout

    assert HOST["extensions"]["queues"]["maxDequeueCount"] == fanout.MAX_DEQUEUE_COUNT
