"""Fixtures for the background jobs: the real Function App in this process on an Azurite of its own, with its
timers called as the host calls them and its queues drained by the local host's own queue runner.

Its own Azurite, so that the suite's shared local host (which polls the shared Azurite's queues) never takes
these tests' messages; the settings of this process are switched to it for the module and back afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Azurite, storage_of

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class JobsApp:
    """The Function App served in-process (tools/local_host/) with the local host's queue runner."""

    host: object
    triggers: object
    azurite: Azurite

    def timer(self, name: str) -> None:
        """Run a timer function now, as the host does on its schedule."""
        from azure.functions.timer import TimerRequest

        self.host.run(self.host.functions[name], TimerRequest(past_due=False)).result()

    def poll(self, function: str = "run_job") -> int:
        """One batch of the function's queue, as the host takes it (failures released, then poisoned)."""
        found = self.host.functions[function]
        return self.triggers.poll_once(found, *self.triggers.queue_clients(found))

    def drain(self, function: str = "run_job", limit: int = 2000) -> int:
        """Run the function on its queue until the queue is empty; answers how many batches it took."""
        for batch in range(limit):
            if not self.poll(function):
                return batch
        raise AssertionError(f"the {function} queue did not empty in {limit} batches")

    def take(self, function: str = "run_job") -> list[dict]:
        """Take the messages waiting on the function's queue, run the function on each, and answer them
        (decoded): what a test needs when it must see every message exactly once."""
        from shared_code.platform import queues
        from tools.local_host.triggers import _message

        found = self.host.functions[function]
        queue, _ = self.triggers.queue_clients(found)
        taken = list(queue.receive_messages(max_messages=32, visibility_timeout=600))
        for message in taken:
            self.host.run(found, _message(message)).result()
            queue.delete_message(message)
        return [queues.decode(_message(m).get_body()) for m in taken]

    def wake_up_for(self, tenant_id: str) -> dict:
        """The wake-up message the notifier sends (from its own thread) after a commit of `tenant_id`'s."""
        import time

        from shared_code.webhooks import queue

        deadline = time.monotonic() + 10
        while not (found := [m for m in self.messages(queue.QUEUE) if m.get("tenant") == tenant_id]):
            assert time.monotonic() < deadline, "no wake-up message came after the commit"
            time.sleep(0.05)
        return found[0]

    def messages(self, queue: str) -> list[dict]:
        """The messages waiting on `queue` (decoded), without taking them."""
        from shared_code.platform import queues

        client = queues.client(queue)
        try:
            return [queues.decode(m.content) for m in client.peek_messages(max_messages=32)]
        except Exception:  # noqa: BLE001 - a queue not created yet holds nothing
            return []

    def call(self, name: str, method: str, path: str, key: str):
        import azure.functions as func

        request = func.HttpRequest(method, f"http://127.0.0.1/api/{path}", headers={"authorization": f"Bearer {key}"},
                                   body=b"", route_params={})
        return self.host.run(self.host.functions[name], request).result()


@pytest.fixture(scope="session")
def in_process_host(app_settings):
    import function_app
    from tools.local_host import LocalHost
    from tools.local_host.triggers import Triggers

    host = LocalHost(function_app.app, app_dir=str(ROOT))
    triggers = Triggers(host)
    triggers.options["visibility_timeout"] = 0  # a failed message is retried at once (host.json: a minute later)
    triggers.options["batch_size"] = 4
    return host, triggers


@pytest.fixture(scope="module")
def jobs_app(in_process_host, app_settings) -> Iterator[JobsApp]:
    with Azurite.temporary(prefix="gatehouse-jobs-") as azurite, storage_of(azurite):
        yield JobsApp(*in_process_host, azurite)


@pytest.fixture
def make_tenants(jobs_app):
    """`make_tenants(n, prefix)`: n tenants created by the tenants core, ids in key order."""
    from shared_code.tenancy import tenants

    def create(count: int, prefix: str = "Jobs") -> list[str]:
        return sorted(tenants.create_tenant(f"{prefix} {i}", "https://app.example.com")[0].tenant_id
                      for i in range(count))

    return create


def long_ago(days: float = 2) -> datetime:
    from datetime import timedelta

    return datetime.now(timezone.utc) - timedelta(days=days)
