"""How many HTTP requests one app process should take at once: Flex Consumption's per-instance concurrency.

    .venv/bin/python bench/concurrency.py [--levels 1,2,4,8,16] [--requests 320] [--storage-rtt-ms 0,8]

Flex Consumption sends a Python app one HTTP request per instance at a time unless
`functionAppConfig.scaleAndConcurrency.triggers.http.perInstanceConcurrency` says otherwise (infra/modules/
functionapp.bicep). This measures what the app does with 1, 2, 4, 8 and 16 requests in flight in one process:
a private Azurite and the real app on the local host (tools.local_host, as `make run` serves it; sync functions
run on the worker's thread pool as in the Python worker), one tenant with `--users` employees, then at each level
that many client threads in a closed loop (each sends its next request when the last one is answered) over
Entra's and the browsers' mix: a SCIM lookup by userName, a read by id, a PATCH, and a signed SAML sign-in at the
ACS (responses signed before the level starts, so the client's signing is not in the timing).

Azurite runs on the same cores and answers in well under a millisecond, while Table Storage answers from the
network (a few milliseconds a round trip, during which the worker thread only waits). So each level runs once
with storage as Azurite answers it and once with `--storage-rtt-ms` added to every storage answer by a small
proxy in front of Azurite (a latency shift, not a bandwidth limit): the second run is closer to an instance on
Azure, whose CPU is its own and whose storage is across the network.

Reported per level: requests/s, p50 and p95 latency, the app's CPU ms per request, and throughput as a share of
the best level of the same run. Every answer must be the expected status; the run exits 1 otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.load import OPERATOR_KEY, cpu_seconds, percentile  # noqa: E402
from tests.conftest import Azurite, LocalHost, free_port  # noqa: E402
from tests.support.idp import TestIdp  # noqa: E402

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
DOMAIN = "contoso-concurrency.example"
MIX = ("scim: lookup", "scim: read", "scim: patch", "sso: ACS sign-in")


# ---- storage latency --------------------------------------------------------------------------------------

class LatencyProxy:
    """TCP proxy in front of Azurite that delivers every byte Azurite sends `rtt` seconds later (a shift in
    time, in order, not a per-chunk sleep): each storage round trip then takes `rtt` longer, as over a network."""

    def __init__(self, upstream_port: int, rtt: float):
        self.upstream_port, self.rtt = upstream_port, rtt
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, name="latency-proxy", daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        for sock in (writer.get_extra_info("socket"), up_writer.get_extra_info("socket")):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._pipe(reader, up_writer, 0.0), self._pipe(up_reader, writer, self.rtt),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((time.monotonic() + delay, data))
        finally:
            queue.put_nowait(None)
            await asyncio.gather(delivering, return_exceptions=True)
            writer.close()


# ---- the app and one tenant ------------------------------------------------------------------------------

def start_app(table_port: int, log: Path) -> LocalHost:
    port = free_port()
    connection = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
                  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                  f"TableEndpoint=http://127.0.0.1:{table_port}/devstoreaccount1;")
    settings = {
        "TABLES_CONNECTION_STRING": connection, "TABLES_ENDPOINT": "",
        "PLATFORM_ADMIN_KEY": OPERATOR_KEY, "SESSION_SIGNING_KEY": "bench-" + uuid.uuid4().hex,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "DOMAIN_AUDIT_SCHEDULE": "0 0 3 * * *",
        "IDP_METADATA_REFRESH_SCHEDULE": "0 30 2 * * *", "ALLOW_PRIVATE_METADATA_URLS": "false",
        "MOBILE_IOS_BUNDLE_ID": "com.example.gatehouse", "MOBILE_ANDROID_PACKAGE_NAME": "com.example.gatehouse",
        "MOBILE_ANDROID_SIGNATURE_HASH": "2pmj9i4rSx0yEb/viWBYkE/ZQrk=", "PORT": str(port),
    }
    host = LocalHost(settings, log)
    host.start()
    return host


class Tenant:
    """One tenant provisioned over SCIM with `users` employees, its IdP connected, ready for sign-ins."""

    def __init__(self, base: str, users: int):
        self.base, self.idp, http = base, TestIdp(key_label="bench-concurrency"), requests.Session()
        created = http.post(f"{base}/api/tenants", json={"name": "Concurrency", "app_url": "https://app.example.com"},
                            headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        created.raise_for_status()
        body = created.json()
        self.tenant_id, self.sp_entity_id, self.acs_url = body["tenant_id"], body["sp_entity_id"], body["acs_url"]
        admin = {"Authorization": f"Bearer {body['admin_key']}"}
        api = f"{base}/api/tenants/{self.tenant_id}"
        token = http.post(f"{api}/scim/token", headers=admin).json()["secret_token"]
        http.post(f"{api}/sso/idp-metadata", headers=admin,
                  json={"metadata_xml": self.idp.metadata_xml().decode()}).raise_for_status()
        http.put(f"{api}/domains", headers=admin, json={"domains": [DOMAIN]}).raise_for_status()
        self.scim = f"{base}/api/scim/{self.tenant_id}/v2"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON, "Accept": SCIM_JSON}
        self.users: list[dict] = []
        for i in range(users):
            name, object_id = f"employee{i}@{DOMAIN}", str(uuid.uuid4())
            made = http.post(f"{self.scim}/Users", headers=self.headers, json={
                "schemas": [CORE_USER], "userName": name, "externalId": object_id, "active": True,
                "displayName": f"Employee {i}", "emails": [{"primary": True, "type": "work", "value": name}]})
            made.raise_for_status()
            self.users.append({"userName": name, "objectId": object_id, "id": made.json()["id"]})


# ---- one level --------------------------------------------------------------------------------------------

def run_level(tenant: Tenant, concurrency: int, count: int, app_pid: int) -> dict:
    """`count` requests of the mix from `concurrency` closed-loop clients; latencies, errors, wall and CPU."""
    sign_ins = [tenant.idp.response(tenant.sp_entity_id, tenant.acs_url, u["userName"], u["objectId"])
                for u in (tenant.users[(k * 7) % len(tenant.users)] for k in range(count // len(MIX) + 1))]
    lock, latencies, errors = threading.Lock(), {op: [] for op in MIX}, []
    issued = iter(range(count))
    local = threading.local()

    def one(k: int) -> None:
        http = getattr(local, "http", None) or requests.Session()
        local.http = http
        op, user = MIX[k % len(MIX)], tenant.users[(k * 13) % len(tenant.users)]
        started = time.perf_counter()
        if op == "scim: lookup":
            answer = http.get(f"{tenant.scim}/Users", headers=tenant.headers,
                              params={"filter": f'userName eq "{user["userName"]}"'})
            expected = (200,)
        elif op == "scim: read":
            answer, expected = http.get(f"{tenant.scim}/Users/{user['id']}", headers=tenant.headers), (200,)
        elif op == "scim: patch":
            answer = http.patch(f"{tenant.scim}/Users/{user['id']}", headers=tenant.headers, json={
                "schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "displayName", "value": f"E {k}"}]})
            expected = (200, 204)
        else:
            with lock:
                saml = sign_ins.pop()
            answer = http.post(tenant.acs_url, data={"SAMLResponse": saml}, allow_redirects=False)
            expected = (302, 303)
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            latencies[op].append(elapsed)
            if answer.status_code not in expected:
                errors.append(f"{op}: {answer.status_code} {answer.text[:120]}")

    def client() -> None:
        while True:
            with lock:
                k = next(issued, None)
            if k is None:
                return
            one(k)

    cpu_before, started = cpu_seconds(app_pid), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    cpu = (cpu_seconds(app_pid) or 0) - (cpu_before or 0)
    every = [v for values in latencies.values() for v in values]
    return {"concurrency": concurrency, "requests": len(every), "wall": wall, "rps": len(every) / wall,
            "p50": percentile(every, 0.50), "p95": percentile(every, 0.95),
            "p95_by_op": {op: percentile(v, 0.95) for op, v in latencies.items() if v},
            "cpu_ms": cpu * 1000 / max(1, len(every)), "errors": errors}


def report(title: str, rows: list[dict]) -> None:
    best = max(row["rps"] for row in rows)
    print(f"\n{title}")
    print("  in flight   requests/s   of best   p50 ms   p95 ms   app CPU ms/request   p95 by operation (ms)")
    for row in rows:
        by_op = ", ".join(f"{op.split(': ')[1]} {ms:.0f}" for op, ms in row["p95_by_op"].items())
        print(f"  {row['concurrency']:>9}   {row['rps']:>10.1f}   {row['rps'] / best:>7.2f}   {row['p50']:>6.1f}"
              f"   {row['p95']:>6.1f}   {row['cpu_ms']:>18.1f}   {by_op}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,2,4,8,16", help="requests in flight per process, comma-separated")
    parser.add_argument("--requests", type=int, default=320, help="requests per level (a multiple of 4)")
    parser.add_argument("--users", type=int, default=100, help="employees of the tenant")
    parser.add_argument("--storage-rtt-ms", default="0,8",
                        help="added storage round-trip times, one run each (0 = Azurite as it is)")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    rtts = [float(v) for v in args.storage_rtt_ms.split(",")]
    print(f"{os.cpu_count()} cores shared by the client, the app and Azurite; load average "
          f"{os.getloadavg()[0]:.2f}; {args.requests} requests per level, mix: {', '.join(MIX)}")

    failed = False
    with Azurite.temporary(prefix="gatehouse-concurrency-") as azurite:
        for rtt in rtts:
            proxy = LatencyProxy(azurite.port, rtt / 1000) if rtt else None
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"gatehouse-concurrency-{uuid.uuid4().hex[:8]}.log"
            host = start_app(proxy.port if proxy else azurite.port, log)
            try:
                tenant = Tenant(host.url, args.users)
                run_level(tenant, 4, 40, host.process.pid)  # warm-up: first SAML request imports pysaml2
                rows = []
                for level in levels:
                    rows.append(run_level(tenant, level, args.requests, host.process.pid))
                    for error in rows[-1]["errors"][:5]:
                        print(f"  error at {level}: {error}")
                    failed |= bool(rows[-1]["errors"])
                title = ("storage as Azurite answers it (sub-millisecond, on the same cores)" if not rtt else
                         f"storage {rtt:g} ms further away (every storage answer delayed by {rtt:g} ms)")
                report(title, rows)
            finally:
                host.stop()
                log.unlink(missing_ok=True)
    if failed:
        print("\nFAILED: some answers were not the expected status")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
