"""Benchmark of directory events: what writing the event costs a SCIM request, and how long a change takes
to reach a live webhook receiver.

    .venv/bin/python bench/events.py [--requests 100] [--deliveries 40]

1. Request path. SCIM create and PATCH (deactivate) over HTTP, each writing its events in its own
   transaction, next to the storage floor measured in the same run on the same Azurite: a bare point read
   plus a bare transaction of the same number of rows. Round trips are counted by the Table client's
   per-call policy; the goal is none beyond the floor's (the event log's head is cached per instance).
2. Delivery. A webhook to a receiver on loopback (verifying every signature with `standardwebhooks`); the
   app's queue trigger and timers run as the local host runs them (polling Azurite's queue as host.json
   says). Time from the SCIM answer to the receiver's arrival, p50 and p95: changes one at a time with a
   pause between (the queue poller has backed off, as in real life), then a burst.

Gatehouse runs in this process (tools.local_host serving the real function_app on a private Azurite).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "events"))

import requests  # noqa: E402

from bench.in_process import serve_app  # noqa: E402
from tests.conftest import OPERATOR_KEY, Azurite, free_port  # noqa: E402

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
HEADERS = {"Content-Type": "application/scim+json", "Accept": "application/scim+json"}


def start(azurite: Azurite):
    """The app on a free port; answers its URL and a function that starts its queue and timer triggers."""
    port = free_port()
    os.environ.update({"TABLES_CONNECTION_STRING": azurite.connection_string, "TABLES_ENDPOINT": "",
                       "GATEHOUSE_QUEUES": azurite.queue_connection_string, "WEBHOOK_SWEEP_SCHEDULE": "0 */1 * * * *",
                       "PLATFORM_ADMIN_KEY": OPERATOR_KEY, "SESSION_SIGNING_KEY": "bench-" + uuid.uuid4().hex,
                       "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "ALLOW_PRIVATE_METADATA_URLS": "true",
                       "DOMAIN_AUDIT_SCHEDULE": "0 0 3 * * *", "IDP_METADATA_REFRESH_SCHEDULE": "0 30 2 * * *"})
    from tools.local_host.triggers import Triggers

    host = serve_app(port)
    return f"http://127.0.0.1:{port}", lambda: Triggers(host).start()


def new_tenant(base: str) -> tuple[str, str, str]:
    tenant = requests.post(f"{base}/api/tenants", json={"name": "Bench", "app_url": "https://bench.example.com"},
                           headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=30).json()
    token = requests.post(f"{base}/api/tenants/{tenant['tenant_id']}/scim/token",
                          headers={"Authorization": f"Bearer {tenant['admin_key']}"}, timeout=30).json()
    return tenant["tenant_id"], token["scim_tenant_url"], token["secret_token"]


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(round(0.95 * len(samples))) - 1)]


def request_path(scim_url: str, token: str, count: int) -> dict[str, tuple[list[float], list[int]]]:
    from shared_code.storage import tables

    http = requests.Session()
    http.headers.update({**HEADERS, "Authorization": f"Bearer {token}"})
    results: dict[str, tuple[list[float], list[int]]] = {"create": ([], []), "deactivate": ([], [])}

    def timed(name, method, url, **kwargs):
        before, started = tables.round_trips(), time.perf_counter()
        response = http.request(method, url, timeout=60, **kwargs)
        results[name][0].append((time.perf_counter() - started) * 1000)
        results[name][1].append(tables.round_trips() - before)
        assert response.status_code < 300, response.text[:300]
        return response

    for i in range(count):
        user_name = f"bench.{uuid.uuid4().hex[:10]}@contoso.example"
        created = timed("create", "POST", f"{scim_url}/Users", json={
            "schemas": [CORE], "userName": user_name, "externalId": str(uuid.uuid4()), "active": True,
            "displayName": f"Bench {i}", "emails": [{"type": "work", "value": user_name, "primary": True}]}).json()
        timed("deactivate", "PATCH", f"{scim_url}/Users/{created['id']}", json={
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    return results


def interleaved(scim_url: str, token: str, count: int):
    """The request path with events and, alternating every 10 requests so a busy moment hits both alike,
    the same code with the event rows left out of the transaction (the log's `transact` short-circuited)."""
    from shared_code.events import log as event_log
    from shared_code.storage import tables

    real = event_log.transact

    def without_events(tenant_id, ops, changes, **kwargs):
        return tables.transact(event_log.TABLE, ops)

    merged = [{"create": ([], []), "deactivate": ([], [])} for _ in range(2)]
    for start in range(0, count, 10):
        for index, transact in enumerate((real, without_events)):
            event_log.transact = transact
            try:
                part = request_path(scim_url, token, min(10, count - start))
            finally:
                event_log.transact = real
            for name, (latencies, trips) in part.items():
                merged[index][name][0].extend(latencies)
                merged[index][name][1].extend(trips)
    return merged


def floor(count: int, rows: int) -> tuple[float, float]:
    """Median ms of a bare point read and of a bare `rows`-row transaction, same Azurite, same run."""
    from shared_code.storage import tables

    reads, writes = [], []
    for _ in range(count):
        started = time.perf_counter()
        tables.get(tables.DIRECTORY, "bench-floor", "nothing")
        reads.append((time.perf_counter() - started) * 1000)
        ops = [("create", {"PartitionKey": "bench-floor", "RowKey": uuid.uuid4().hex, "scim": "x" * 400})
               for _ in range(rows)]
        started = time.perf_counter()
        tables.transact(tables.DIRECTORY, ops)
        writes.append((time.perf_counter() - started) * 1000)
    return statistics.median(reads), statistics.median(writes)


def delivery(base: str, tenant_id: str, scim_url: str, token: str, count: int, pause: float,
             burst: int) -> tuple[list[float], list[float]]:
    from product import WebhookReceiver

    receiver = WebhookReceiver()
    receiver.secret = requests.put(f"{base}/api/tenants/{tenant_id}/webhook", json={"url": receiver.url},
                                   headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=30).json()["secret"]
    http = requests.Session()
    http.headers.update({**HEADERS, "Authorization": f"Bearer {token}"})

    def change() -> tuple[float, str]:
        response = http.post(f"{scim_url}/Users", json={"schemas": [CORE], "active": True,
                                                        "userName": f"d.{uuid.uuid4().hex[:10]}@contoso.example"},
                             timeout=60)
        return time.time(), response.json()["id"]

    def arrival(user_id: str) -> float:
        deadline = time.time() + 60
        while time.time() < deadline:
            for at, event in list(receiver.arrivals):
                if event["data"].get("id") == user_id:
                    return at
            time.sleep(0.002)
        raise RuntimeError("not delivered within 60 s")

    spaced = []
    for _ in range(count):
        time.sleep(pause)
        at, user_id = change()
        spaced.append((arrival(user_id) - at) * 1000)
    started = [change() for _ in range(burst)]
    bursts = [(arrival(user_id) - at) * 1000 for at, user_id in started]
    assert receiver.rejected_signatures == 0 and receiver.copy.out_of_order == []
    receiver.stop()
    return spaced, bursts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="users created and deactivated")
    parser.add_argument("--deliveries", type=int, default=40, help="changes timed one at a time to delivery")
    parser.add_argument("--pause", type=float, default=1.5, help="seconds between the timed changes")
    args = parser.parse_args()

    with Azurite.temporary(prefix="gatehouse-bench-events-") as azurite:
        base, start_triggers = start(azurite)
        tenant_id, scim_url, token = new_tenant(base)
        # The request path first, with no trigger running in this process, so that every round trip counted
        # belongs to the request (the notifier still enqueues after each commit: off the path, and no table).
        request_path(scim_url, token, 5)  # warm: imports, connections, tables, the log's head
        ours, without = interleaved(scim_url, token, args.requests)
        read_ms, write_ms = floor(max(args.requests // 2, 20), 6)
        _, four_rows_ms = floor(max(args.requests // 2, 20), 4)
        print(f"SCIM with events over HTTP on loopback, {args.requests} requests each, sequential, on Azurite\n")
        # create: user, username and externalid rows, the email copy, the event and the log's head = 6 rows in
        # one transaction; PATCH active: the same 4 user rows, the event(s) and the head (5-7 rows).
        floors = {"create": (read_ms + write_ms, 2), "deactivate": (2 * read_ms + write_ms, 3)}
        print(f"storage floor in this run: point read {read_ms:.1f} ms, 6-row transaction {write_ms:.1f} ms "
              f"(4 rows, as without the event and the log's head: {four_rows_ms:.1f} ms)")
        for name, label, what in (("create", "create", "token read + transaction"),
                                  ("deactivate", "PATCH active", "token read + user read + transaction")):
            latencies, trips = ours[name]
            floor_ms, floor_trips = floors[name]
            bare, bare_trips = without[name]
            print(f"  {label:<13} with events median {statistics.median(latencies):6.1f} ms, p95 {p95(latencies):6.1f} ms,"
                  f" round trips {'/'.join(map(str, sorted(set(trips))))}")
            print(f"  {'':<13} without       {statistics.median(bare):6.1f} ms, p95 {p95(bare):6.1f} ms, round trips "
                  f"{'/'.join(map(str, sorted(set(bare_trips))))}  (the same code, events not written)")
            print(f"  {'':<13} floor ({what}) {floor_ms:6.1f} ms, {floor_trips} round trips")
        start_triggers()
        spaced, burst = delivery(base, tenant_id, scim_url, token, args.deliveries, args.pause, 20)
        print(f"\nchange → webhook delivery (SCIM answer to the receiver's arrival, queue polled per host.json):")
        print(f"  one at a time, {args.pause:.1f} s apart, n={len(spaced)}: p50 {statistics.median(spaced):6.0f} ms, "
              f"p95 {p95(spaced):6.0f} ms, max {max(spaced):6.0f} ms")
        print(f"  a burst of {len(burst)}: p50 {statistics.median(burst):6.0f} ms, p95 {p95(burst):6.0f} ms, "
              f"max {max(burst):6.0f} ms", flush=True)
        import logging

        logging.disable(logging.CRITICAL)  # a delivery still running when Azurite stops is not a result
    return 0


if __name__ == "__main__":
    sys.exit(main())
