"""Benchmark of Gatehouse at many tenants: each background job run through its queue, the projection to 1,000,
10,000 and 100,000 tenants next to the period the job must fit in, and the storage traffic per account at peak.

    .venv/bin/python bench/scale.py [--tenants 300] [--rtt 0.008] [--rows 10] [--fetch-latency 0.2]
                                    [--bigger]      # 3,000 tenants: ~25 minutes on 2 cores

It starts a private Azurite (Tables and Queues) behind a latency proxy (bench/concurrency.py: every storage
answer arrives `--rtt` later, 8 ms by default, about a round trip inside an Azure region), seeds `--tenants`
tenants straight through the stores' row layouts (not timed, not through the proxy): per tenant the tenant
row with corporate domains and a metadata URL, `--rows` expired sign-in rows and as many expired OIDC rows,
5 events older than 30 days, a few employees and a webhook endpoint. The metadata URL is served on loopback
`--fetch-latency` late (Entra's federation metadata answers in about that).

Then each job as Azure runs it: its timer function walks the tenants onto `gatehouse-jobs`, and this process
works the queue as one Functions instance does (the local host's queue runner with host.json's batchSize and
newBatchThreshold), timed until the queue is empty. Reported per job: tenants per minute per instance, and
for N tenants the minutes one instance needs and the instances that finish within the job's period. Per-
tenant work that grows with the tenant's rows (the purges) is projected by its round trips: 200 employees
signing in 10 times a day leave `--realistic-rows` rows per tenant per 6-hour purge (see docs/scaling.md).

Finally the product's sign-in (authorize → ACS → token, bench/oidc.py's flow) and Entra's SCIM operations
(bench/scim.py's) are run on the app in this process to count their storage round trips, and the storage
transactions per second per account at business-hour peak are derived for each tenant count.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.concurrency import LatencyProxy  # noqa: E402
from tests.conftest import DEV_ACCOUNT_KEY, OPERATOR_KEY, Azurite, free_port  # noqa: E402

SCALES = (1_000, 10_000, 100_000)
EMPLOYEES, SIGN_INS_PER_DAY, ENTRA_CYCLE_MINUTES = 200, 10, 40
ACCOUNT_TRANSACTIONS_PER_SECOND = 20_000  # Azure Storage's scalability target per account
BUSINESS_HOURS, PEAK_FACTOR = 8, 1.5  # a day's sign-ins fall in 8 hours; the busiest hour has 1.5× their mean
# The jobs: timer function, job name, the period it must complete in (minutes).
JOBS = [
    ("purge_sign_in_state", "purge_sign_in_state", 6 * 60),
    ("events_purge", "events_purge", 24 * 60),
    ("domain_audit_timer", "domain_audit", 24 * 60),
    ("refresh_idp_metadata", "refresh_idp_metadata", 24 * 60),
    ("webhook_sweep", "webhook_check", 60),
]


def connection(port: int, service: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};"
            f"{service}Endpoint=http://127.0.0.1:{port}/devstoreaccount1;")


def use_storage(tables_connection: str, queues_connection: str) -> None:
    os.environ.update({"TABLES_CONNECTION_STRING": tables_connection, "GATEHOUSE_QUEUES": queues_connection})
    from shared_code.platform import queues
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    get_settings.cache_clear()
    tables.reset_clients()
    queues.reset()


# ---- seeding ------------------------------------------------------------------------------------------------------

class MetadataServer:
    """The IdP's federation metadata on loopback, answered `delay` seconds late."""

    def __init__(self, xml: bytes, delay: float):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(xml)))
                self.end_headers()
                self.wfile.write(xml)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/federationmetadata.xml"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def seed(count: int, rows: int, metadata_url: str, idp_entity_id: str) -> list[str]:
    from shared_code.events import log as event_log
    from shared_code.storage import oidc, sign_ins, tables
    from shared_code.storage import tenants as tenant_store
    from shared_code.webhooks import endpoint
    from tests.audit.directory_seed import entra_user, seed_employees

    past = datetime.now(timezone.utc) - timedelta(days=1)

    def one(index: int) -> str:
        tenant_id = f"scale-{index:06d}-{uuid.uuid4().hex[:4]}"
        tenant_store.insert_tenant_record(tenant_id, {
            "name": tenant_id, "app_url": "https://bench.example", "status": "enabled",
            "created_at": "2026-01-01T00:00:00+00:00", "metadata_url": metadata_url,
            "idp": {"entity_id": idp_entity_id}, "domains": {"domains": ["contoso.example"],
                                                             "include_subdomains": False}})
        for table in (sign_ins.TABLE, oidc.TABLE):
            keys = [{"PartitionKey": tenant_id, "RowKey": f"request:{uuid.uuid4().hex}", "expires_at": past}
                    for _ in range(rows)]
            for start in range(0, len(keys), 100):
                tables.transact(table, [("create", row) for row in keys[start:start + 100]])
        tables.transact(event_log.TABLE, [("create", {
            "PartitionKey": tenant_id, "RowKey": event_log.event_key(i), "kind": "event", "id": uuid.uuid4().hex,
            "type": "employee.updated", "occurred_at": "2020-01-01T00:00:00.000Z", "sequence": i, "data": "{}"})
            for i in range(1, 6)])
        seed_employees(tenant_id, [entra_user(f"e{i}.{tenant_id}@contoso.example") for i in range(5)],
                       index_rows=False)
        tables.insert(endpoint.TABLE, {"PartitionKey": tenant_id, "RowKey": endpoint.ROW, "enabled": True,
                                       "url": "https://product.example/hook", "delivered": 10**6})
        return tenant_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


# ---- running a job through its queue -----------------------------------------------------------------------

def run_job(host, timer: str) -> tuple[float, float, int]:
    """(walk seconds, total seconds, storage round trips) of one run: the timer, then the queue until empty."""
    from azure.functions.timer import TimerRequest

    from shared_code.platform import queues
    from shared_code.jobs import fanout
    from shared_code.storage import tables

    before = tables.round_trips()
    started = time.perf_counter()
    host.run(host.functions[timer], TimerRequest(past_due=False)).result()
    walked = time.perf_counter() - started
    queue = queues.client(fanout.QUEUE)
    while queue.get_queue_properties().approximate_message_count:  # in-flight messages are counted too
        time.sleep(0.1)
    return walked, time.perf_counter() - started, tables.round_trips() - before


def work_queue(host) -> None:
    """This process works `gatehouse-jobs` as one Functions instance would."""
    from tools.local_host.triggers import Triggers

    triggers = Triggers(host)
    function = host.functions["run_job"]
    threading.Thread(target=triggers._queue, args=(function,), daemon=True).start()  # noqa: SLF001


# ---- sign-ins and SCIM --------------------------------------------------------------------------------------

def sign_in_round_trips(base: str, count: int) -> dict[str, float]:
    import requests

    from bench import oidc as oidc_bench

    tenant, http = oidc_bench.Tenant(base), requests.Session()
    per = {"authorize": [], "acs": [], "token": []}
    for _ in range(count):
        before = oidc_bench.round_trips()
        prepared = oidc_bench.prepare(tenant, http)
        per["authorize"].append(oidc_bench.round_trips() - before)
        _, _, acs, token = oidc_bench.sign_in(tenant, http, prepared)
        per["acs"].append(acs)
        per["token"].append(token)
        http.cookies.clear()
    return {name: statistics.median(values) for name, values in per.items()}


def scim_round_trips(base: str, count: int) -> dict[str, float]:
    import requests

    from bench import scim as scim_bench

    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    created = requests.post(f"{base}/api/tenants", json={"name": "Scale SCIM", "app_url": "https://bench.example"},
                            headers=operator, timeout=30).json()
    admin = {"Authorization": f"Bearer {created['admin_key']}"}
    token = requests.post(f"{base}/api/tenants/{created['tenant_id']}/scim/token", headers=admin, timeout=30).json()
    results = scim_bench.measure(token["scim_tenant_url"], token["secret_token"], count)
    return {name: statistics.median(trips) for name, (_, trips) in results.items()}


# ---- the report ------------------------------------------------------------------------------------------------

def report(measured: dict, args, sign_in: dict, scim: dict) -> None:
    print(f"\nJobs through gatehouse-jobs, {args.tenants} tenants, storage {args.rtt * 1000:.0f} ms away, "
          f"one instance (host.json batchSize + newBatchThreshold in flight)")
    print(f"{'job':<22}{'walk s':>8}{'total s':>9}{'trips/tenant':>13}{'tenants/min':>13}  period   "
          + "".join(f"{f'{n:,}: min on 1 / inst.':>26}" for n in SCALES) + f"{'walk at 100,000':>17}")
    background_trips_per_second = {n: 0.0 for n in SCALES}
    for job, (walk, total, trips, rate, period, scale_factor) in measured.items():
        cells = []
        for n in SCALES:
            minutes = n / rate * scale_factor
            cells.append(f"{minutes:>14,.0f} / {max(1, math.ceil(minutes / period)):>6}")
            background_trips_per_second[n] += n * trips / args.tenants * scale_factor / (period * 60)
        # The walk is one chain of timer and continuation messages: it must fit in the period on its own.
        walk_minutes = walk / args.tenants * SCALES[-1] / 60
        print(f"{job:<22}{walk:>8.1f}{total:>9.1f}{trips / args.tenants:>13.1f}{rate:>13,.0f}  "
              f"{period / 60:>4.0f} h  " + "".join(f"{c:>26}" for c in cells) + f"{walk_minutes:>13,.0f} min")
    per_sign_in = sum(sign_in.values())
    print(f"\nStorage round trips per product sign-in: authorize {sign_in['authorize']:.0f} + ACS "
          f"{sign_in['acs']:.0f} + token {sign_in['token']:.0f} = {per_sign_in:.0f}")
    print("Per SCIM operation: " + ", ".join(f"{name} {trips:.0f}" for name, trips in scim.items()))
    scim_per_op = statistics.mean(scim.values())
    print(f"\nStorage transactions/s at business-hour peak ({EMPLOYEES} employees × {SIGN_INS_PER_DAY} sign-ins "
          f"a day in {BUSINESS_HOURS} h, ×{PEAK_FACTOR:g} in the busiest hour; Entra's {ENTRA_CYCLE_MINUTES}-minute "
          f"cycle with 1 % of employees changed per cycle; the background jobs spread over their periods)")
    print(f"{'tenants':>10}{'sign-ins':>12}{'SCIM':>10}{'jobs':>10}{'total':>10}{'accounts (20k/s)':>18}")
    for n in SCALES:
        sign_ins = n * EMPLOYEES * SIGN_INS_PER_DAY / (BUSINESS_HOURS * 3600) * PEAK_FACTOR * per_sign_in
        scim_ops = n * EMPLOYEES * 0.01 / (ENTRA_CYCLE_MINUTES * 60) * scim_per_op
        jobs = background_trips_per_second[n]
        total = sign_ins + scim_ops + jobs
        print(f"{n:>10,}{sign_ins:>12,.0f}{scim_ops:>10,.0f}{jobs:>10,.0f}{total:>10,.0f}"
              f"{math.ceil(total / (ACCOUNT_TRANSACTIONS_PER_SECOND * 0.5)):>18}")
    print("(accounts: at most half of an account's 20,000 transactions/s at peak, the rest is headroom)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=300)
    # Few rows per tenant on purpose: Azurite answers a partition query by scanning the whole table (Table
    # Storage seeks to the partition), so thousands of rows per tenant would time Azurite, not the purge. The
    # realistic tenant's purge is projected from its round trips instead (--realistic-rows).
    parser.add_argument("--rows", type=int, default=10, help="expired sign-in rows and OIDC rows per tenant")
    parser.add_argument("--realistic-rows", type=int, default=1500,
                        help="rows of each sign-in table a tenant leaves per 6-hour purge at 200 × 10 sign-ins/day")
    parser.add_argument("--rtt", type=float, default=0.008)
    parser.add_argument("--fetch-latency", type=float, default=0.2)
    parser.add_argument("--sign-ins", type=int, default=10)
    parser.add_argument("--scim-ops", type=int, default=10)
    parser.add_argument("--bigger", action="store_true", help="3,000 tenants (~25 minutes on 2 cores)")
    args = parser.parse_args()
    if args.bigger:
        args.tenants = 3000
    from tests.support.idp import TestIdp

    with Azurite.temporary(prefix="gatehouse-scale-") as azurite:
        port = free_port()
        os.environ.update({"TABLES_ENDPOINT": "", "PLATFORM_ADMIN_KEY": OPERATOR_KEY,
                           "SESSION_SIGNING_KEY": "bench-" + uuid.uuid4().hex,
                           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "ALLOW_PRIVATE_METADATA_URLS": "true",
                           "WEBHOOK_SWEEP_SCHEDULE": "0 0 0 1 1 *", "IDP_METADATA_REFRESH_SCHEDULE": "0 0 0 1 1 *",
                           "DOMAIN_AUDIT_SCHEDULE": "0 0 0 1 1 *", "OIDC_BACKCHANNEL_RETRY_SCHEDULE": "0 0 0 1 1 *"})
        from tests.support import oidc_keys

        os.environ["OIDC_SIGNING_KEYS"] = oidc_keys.setting("bench-op")
        idp = TestIdp(key_label="bench-scale")
        metadata = MetadataServer(idp.metadata_xml(), args.fetch_latency)
        use_storage(azurite.connection_string, azurite.queue_connection_string)
        started = time.perf_counter()
        seed(args.tenants, args.rows, metadata.url, idp.entity_id)
        print(f"seeded {args.tenants} tenants in {time.perf_counter() - started:.0f} s")

        tables_proxy, queues_proxy = LatencyProxy(azurite.port, args.rtt), LatencyProxy(azurite.queue_port, args.rtt)
        use_storage(connection(tables_proxy.port, "Table"), connection(queues_proxy.port, "Queue"))
        from bench.in_process import serve_app

        host = serve_app(port)
        work_queue(host)
        measured = {}
        for timer, job, period in JOBS:
            walk, total, trips = run_job(host, timer)
            rate = args.tenants / total * 60
            # The purges' work grows with the rows to delete: one query page per 1,000 and one transaction per
            # 100 per table; scale this run's time per tenant by the round trips a realistic tenant needs.
            factor = 1.0
            if job == "purge_sign_in_state":
                measured_trips = trips / args.tenants
                extra = 2 * (math.ceil(args.realistic_rows / 100) - math.ceil(args.rows / 100)
                             + math.ceil(args.realistic_rows / 1000) - math.ceil(args.rows / 1000))
                factor = (measured_trips + extra) / measured_trips
            measured[job] = (walk, total, trips, rate, period, factor)
            print(json.dumps({"job": job, "walk_s": round(walk, 2), "total_s": round(total, 2),
                              "round_trips": trips, "tenants_per_minute": round(rate)}), flush=True)
        sign_in = sign_in_round_trips(f"http://127.0.0.1:{port}", args.sign_ins)
        scim = scim_round_trips(f"http://127.0.0.1:{port}", args.scim_ops)
        report(measured, args, sign_in, scim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
