"""Benchmark of SCIM provisioning: median and p95 latency of what Entra does most — create a user, look it up
by userName, deactivate it with PATCH — next to the in-memory reference server scim2-server, measured in the
same run on the same machine, with the storage round trips of each Gatehouse request counted by the Table
client's per-call policy (`tables.round_trips()`), not estimated.

    .venv/bin/python bench/scim.py [--requests 200] [--members 0]

Both servers run in this process on loopback, each behind its own threaded HTTP server (Gatehouse through
tools.local_host serving the real function_app, on a private Azurite; scim2-server through wsgiref), and
both are called over HTTP by the same `requests` session code, one request at a time, so every round trip
counted between two requests belongs to the request in between.

`--members N` also builds a group of N members (users seeded straight into the directory's rows, members
added over HTTP 10,000 per PATCH) and times a one-member add and remove on it next to a three-member group.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.in_process import serve_app  # noqa: E402
from tests.conftest import OPERATOR_KEY, Azurite, free_port  # noqa: E402

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
HEADERS = {"Content-Type": "application/scim+json", "Accept": "application/scim+json"}


def start_gatehouse(azurite: Azurite) -> str:
    port = free_port()
    os.environ.update({"TABLES_CONNECTION_STRING": azurite.connection_string, "TABLES_ENDPOINT": "",
                       "PLATFORM_ADMIN_KEY": OPERATOR_KEY, "SESSION_SIGNING_KEY": "bench-" + uuid.uuid4().hex,
                       "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "ALLOW_PRIVATE_METADATA_URLS": "true"})
    serve_app(port)
    base = f"http://127.0.0.1:{port}"
    tenant = requests.post(f"{base}/api/tenants", json={"name": "Bench", "app_url": "https://bench.example.com"},
                           headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=30).json()
    token = requests.post(f"{base}/api/tenants/{tenant['tenant_id']}/scim/token",
                          headers={"Authorization": f"Bearer {tenant['admin_key']}"}, timeout=30).json()
    return token["scim_tenant_url"], token["secret_token"]


def start_reference() -> tuple[str, str]:
    """scim2-server, in memory, RFC 7643 default schemas, bearer token required (as ours)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from scim2_models import ScimProvider
    from scim2_server.memory import InMemoryStorage
    from scim2_server.service import ScimService
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):  # noqa: D401 - wsgiref hook
            pass

    config = load_default_service_provider_config()
    config.authentication_schemes = [BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(load_default_schemas().values(), load_default_resource_types().values(),
                                           config=config)
    token = uuid.uuid4().hex
    app = BearerTokenApplication(InMemoryStorage(), provider, service=ScimService(provider, secret=token),
                                 bearer_tokens=[token])
    port = free_port()
    server = make_server("127.0.0.1", port, app, server_class=Server, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}/v2", token


def round_trips() -> int:
    from shared_code.storage import tables

    return tables.round_trips()


def measure(base: str, token: str, count: int) -> dict[str, tuple[list[float], list[int]]]:
    """Per operation: latencies (ms) and storage round trips, for `count` users."""
    http = requests.Session()
    http.headers.update({**HEADERS, "Authorization": f"Bearer {token}"})
    results: dict[str, tuple[list[float], list[int]]] = {k: ([], []) for k in ("create", "filter", "deactivate")}

    def timed(name: str, method: str, url: str, **kwargs) -> requests.Response:
        before = round_trips()
        start = time.perf_counter()
        response = http.request(method, url, timeout=60, **kwargs)
        results[name][0].append((time.perf_counter() - start) * 1000)
        results[name][1].append(round_trips() - before)
        assert response.status_code < 300, (name, response.status_code, response.text[:300])
        return response

    for i in range(count):
        user_name = f"bench.{uuid.uuid4().hex[:10]}@contoso.example"
        created = timed("create", "POST", f"{base}/Users", json={
            "schemas": [CORE], "userName": user_name, "externalId": str(uuid.uuid4()), "active": True,
            "displayName": f"Bench {i}", "emails": [{"type": "work", "value": user_name, "primary": True}]}).json()
        found = timed("filter", "GET", f"{base}/Users", params={"filter": f'userName eq "{user_name}"'}).json()
        assert found["totalResults"] == 1
        timed("deactivate", "PATCH", f"{base}/Users/{created['id']}", json={
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    return results


def storage_floor(count: int) -> tuple[float, float, float, float, float]:
    """Median ms of a bare point read and of a bare 3-row transaction on the same Azurite, same run: what
    each round trip costs before any Gatehouse code runs (the part an in-memory server never pays). Also the
    same transaction through the SDK's `submit_transaction`, and the CPU ms of each way of sending it."""
    from shared_code.storage import tables

    def rows() -> list[tuple]:
        return [("create", {"PartitionKey": "bench-floor", "RowKey": uuid.uuid4().hex, "scim": "x" * 400})
                for _ in range(3)]

    reads, writes, sdk_writes = [], [], []
    cpu = {"ours": 0.0, "sdk": 0.0}
    for _ in range(count):
        start = time.perf_counter()
        tables.get(tables.DIRECTORY, "bench-floor", "nothing")
        reads.append((time.perf_counter() - start) * 1000)
        start, started_cpu = time.perf_counter(), time.process_time()
        tables.transact(tables.DIRECTORY, rows())
        writes.append((time.perf_counter() - start) * 1000)
        cpu["ours"] += time.process_time() - started_cpu
        start, started_cpu = time.perf_counter(), time.process_time()
        tables.table(tables.DIRECTORY).submit_transaction(rows())
        sdk_writes.append((time.perf_counter() - start) * 1000)
        cpu["sdk"] += time.process_time() - started_cpu
    return (statistics.median(reads), statistics.median(writes), statistics.median(sdk_writes),
            cpu["ours"] * 1000 / count, cpu["sdk"] * 1000 / count)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)


def big_group(base: str, token: str, members: int) -> None:
    from shared_code.storage import directory, tables

    http = requests.Session()
    http.headers.update({**HEADERS, "Authorization": f"Bearer {token}"})
    tenant_id = base.rstrip("/").split("/")[-2]
    started = time.perf_counter()
    ids, ops, stamp = [], [], directory.now()
    for i in range(members):
        # The rows a SCIM create writes (user row and its userName copy), 50 users per transaction.
        record = directory.UserRecord(directory.new_id(), {"userName": f"m{i}@contoso.example"}, stamp, stamp, 1)
        ids.append(record.id)
        ops += [("create", row) for row in directory._user_rows(tenant_id, record).values()]
    for k in range(0, len(ops), directory.BATCH):
        tables.transact(tables.DIRECTORY, ops[k:k + directory.BATCH])
    seeded = time.perf_counter() - started

    def group(name: str, size: int) -> str:
        gid = http.post(f"{base}/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                                "displayName": name}).json()["id"]
        for start in range(0, size, 10_000):
            r = http.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH_OP], "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": i} for i in ids[start:min(start + 10_000, size)]]}]},
                timeout=3600)
            assert r.status_code == 204, r.text[:300]
        return gid

    started = time.perf_counter()
    big = group("Everyone", members)
    filled = time.perf_counter() - started
    small = group("Few", 3)
    newcomer = ids[-1] if members > 3 else ids[0]
    print(f"\ngroup of {members:,} members: users seeded in {seeded:.1f}s, members added over HTTP in {filled:.1f}s")
    for name, gid in (("3 members", small), (f"{members:,} members", big)):
        for label, body in (
                ("add one member", [{"op": "Add", "path": "members", "value": [{"value": newcomer}]}]),
                ("remove one member", [{"op": "remove", "path": f'members[value eq "{newcomer}"]'}])):
            before, start = round_trips(), time.perf_counter()
            response = http.patch(f"{base}/Groups/{gid}", json={"schemas": [PATCH_OP], "Operations": body})
            ms = (time.perf_counter() - start) * 1000
            assert response.status_code == 204, response.text
            print(f"  {name:>16}: {label:<18} {ms:7.1f} ms  {round_trips() - before} storage round trips")
    before, start = round_trips(), time.perf_counter()
    lean = http.get(f"{base}/Groups/{big}", params={"excludedAttributes": "members"})
    print(f"  GET the {members:,}-member group with excludedAttributes=members: "
          f"{(time.perf_counter() - start) * 1000:.1f} ms, {round_trips() - before} round trips, "
          f"{len(lean.content)} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="users created, found and deactivated")
    parser.add_argument("--members", type=int, default=0, help="also build a group of this many members")
    args = parser.parse_args()

    with Azurite.temporary(prefix="gatehouse-bench-scim-") as azurite:
        gatehouse_url, gatehouse_token = start_gatehouse(azurite)
        reference_url, reference_token = start_reference()
        measure(gatehouse_url, gatehouse_token, 5)  # warm both: imports, connections, table creation
        measure(reference_url, reference_token, 5)
        ours = measure(gatehouse_url, gatehouse_token, args.requests)
        theirs = measure(reference_url, reference_token, args.requests)
        read_ms, write_ms, sdk_write_ms, cpu_ms, sdk_cpu_ms = storage_floor(max(args.requests // 2, 20))

        print(f"SCIM latency over HTTP on loopback, {args.requests} requests each, sequential "
              f"(Gatehouse on Azurite vs scim2-server in memory)\n")
        print(f"{'operation':<12} {'Gatehouse median/p95':>22} {'reference median/p95':>22} {'ratio median/p95':>18}"
              f" {'storage round trips':>22}")
        for name, label in (("create", "create"), ("filter", "userName eq"), ("deactivate", "PATCH active")):
            mine, trips = ours[name]
            ref = theirs[name][0]
            counts = sorted(set(trips))
            shown = "/".join(map(str, counts))
            print(f"{label:<12} {statistics.median(mine):9.1f} /{p95(mine):7.1f} ms"
                  f" {statistics.median(ref):9.1f} /{p95(ref):7.1f} ms"
                  f" {statistics.median(mine) / statistics.median(ref):8.2f}x /{p95(mine) / p95(ref):5.2f}x"
                  f" {shown:>9} (1 auth + {'/'.join(str(c - 1) for c in counts)})")
        floors = {"create": read_ms + write_ms, "filter": read_ms, "deactivate": read_ms + write_ms}
        print(f"\nstorage floor in this run: point read {read_ms:.1f} ms, 3-row transaction {write_ms:.1f} ms; "
              f"the least each operation can take on this Azurite (token check overlapped with the first read):")
        for name, label in (("create", "create"), ("filter", "userName eq"), ("deactivate", "PATCH active")):
            mine = statistics.median(ours[name][0])
            print(f"  {label:<12} floor {floors[name]:6.1f} ms, Gatehouse {mine:6.1f} ms: "
                  f"{mine - floors[name]:+.1f} ms of our own work and HTTP")
        print(f"the floor's 3-row transaction through shared_code/storage/batch.py: {write_ms:.1f} ms, {cpu_ms:.1f} ms "
              f"of CPU; through the SDK's submit_transaction: {sdk_write_ms:.1f} ms, {sdk_cpu_ms:.1f} ms of CPU "
              f"→ SDK/ours {sdk_write_ms / write_ms:.2f}x time, {sdk_cpu_ms / cpu_ms:.2f}x CPU")
        if args.members:
            big_group(gatehouse_url, gatehouse_token, args.members)
    return 0


if __name__ == "__main__":
    sys.exit(main())
