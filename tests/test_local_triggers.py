"""The local host runs non-HTTP triggers on its own, as the real Functions host does: timers on their
NCRONTAB schedule, queue functions polling their queue (base64 messages), with host.json's visibility
timeout and maxDequeueCount, after which a failing message is moved to `<queue>-poison`."""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from tests.conftest import free_port, stop_process_group, wait_for_port
from tests.support.waiting import wait_until
from tools.local_host.triggers import Schedule

ROOT = Path(__file__).resolve().parent.parent
QUEUE_APP = Path(__file__).resolve().parent / "queue_app"


@pytest.mark.parametrize("expression, after, expected", [
    ("0 */1 * * * *", "2026-12-02T18:00:30", "2026-12-02T18:01:00"),
    ("*/5 * * * * *", "2026-12-02T18:00:30", "2026-12-02T18:00:35"),
    ("0 0 3 * * *", "2026-12-02T18:00:00", "2026-12-03T03:00:00"),
    ("0 30 9 * * MON-FRI", "2026-12-05T10:00:00", "2026-12-07T09:30:00"),  # Saturday → Monday
    ("0 0 0 1 1 *", "2026-12-02T00:00:00", "2027-01-01T00:00:00"),
])
def test_ncrontab_next_occurrence(expression, after, expected):
    assert Schedule(expression).next_after(dt.datetime.fromisoformat(after)) == dt.datetime.fromisoformat(expected)


def test_ncrontab_needs_six_fields():
    with pytest.raises(ValueError):
        Schedule("*/5 * * * *")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_queue_messages_run_their_function_and_a_failing_one_ends_in_the_poison_queue(azurite, tmp_path):
    log = tmp_path / "triggers.log"
    queue_name = f"work-{os.getpid()}-{int(time.time())}"
    port = free_port()
    env = {**os.environ, "WORK_QUEUES": azurite.queue_connection_string, "WORK_QUEUE": queue_name,
           "TICK_SCHEDULE": "* * * * * *", "TRIGGER_LOG": str(log), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "tools.local_host", "--app-dir", str(QUEUE_APP), "--port",
                                str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for_port(port, process=process, timeout=60)
        queue = QueueClient.from_connection_string(azurite.queue_connection_string, queue_name,
                                                   message_encode_policy=TextBase64EncodePolicy())
        try:
            queue.create_queue()
        except Exception:  # noqa: BLE001 - the host may have created it first
            pass
        queue.send_message("hello")
        queue.send_message("fail")
        wait_until(lambda: any(e.get("body") == "hello" for e in _lines(log)))
        poison = QueueClient.from_connection_string(azurite.queue_connection_string, f"{queue_name}-poison")
        wait_until(lambda: _peek(poison))
        failing = [e for e in _lines(log) if e.get("body") == "fail"]
        assert [e["dequeue_count"] for e in failing] == [1, 2]  # host.json maxDequeueCount: 2
        assert base64.b64decode(_peek(poison)[0].content) == b"fail"  # moved as it came: base64
        assert [e for e in _lines(log) if e.get("body") == "hello"][0]["dequeue_count"] == 1
        wait_until(lambda: sum(e["kind"] == "tick" for e in _lines(log)) >= 2)  # the timer, on its own
    finally:
        stop_process_group(process, __import__("signal").SIGTERM)


def _peek(queue):
    try:
        return list(queue.peek_messages(max_messages=5))
    except Exception:  # noqa: BLE001 - not created yet
        return []
