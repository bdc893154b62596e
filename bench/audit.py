"""Benchmark of the domain audit: cost per 1,000 employees of one large tenant, and per tenant of the timer's
sweep over many small ones, each printed next to a baseline measured in the same run on the same data.

    .venv/bin/python bench/audit.py [--employees 10000] [--outside-share 0.5] [--tenants 1000]
                                    [--tenant-size 10] [--workers 4] [--repeat 3]

It starts a private Azurite (tests.conftest.Azurite, on a free port, removed afterwards) and seeds it straight
through the directory's row layout, many users per transaction (tests/audit/directory_seed.py), because
provisioning 10,000 users over SCIM would take minutes and store the same rows. The large tenant gets only
its `user:` rows unless --full-directory: the audit reads nothing else, and Azurite (unlike Table Storage)
scans the whole table for every query page and the whole partition for every written key.

Large tenant: the baseline is the bare partition query the audit needs (the employee columns of active user
rows, 1,000 per page); then the audit's steps on top of it and the whole run as the POST stores it.
Many tenants: the baseline is one such query per tenant on the same thread pool; then the work of the timer's
job (`domain_audit` in shared_code/jobs/catalog.py: its queue messages, `--workers` at once as on one
instance), which also writes each run's rows.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import Azurite  # noqa: E402


def configure(azurite: Azurite) -> None:
    os.environ.update({"TABLES_CONNECTION_STRING": azurite.connection_string, "TABLES_ENDPOINT": "",
                       "PLATFORM_ADMIN_KEY": "bench", "SESSION_SIGNING_KEY": "bench"})
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    get_settings.cache_clear()
    tables.reset_clients()


def timed(fn, repeat: int) -> tuple[float, object, int]:
    """Median seconds over `repeat` calls, the last result, and the storage round trips of one call."""
    from shared_code.storage import tables

    samples, result, trips = [], None, 0
    for _ in range(repeat):
        before = tables.round_trips()
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
        trips = tables.round_trips() - before
    return statistics.median(samples), result, trips


def new_tenant(tenant_id: str, domains: list[str]) -> None:
    from shared_code.storage import tenants as tenant_store

    tenant_store.insert_tenant_record(tenant_id, {"name": tenant_id, "app_url": "https://bench.example",
                                                  "status": "draft", "created_at": "2026-01-01T00:00:00+00:00",
                                                  "domains": {"domains": domains, "include_subdomains": False}})


def raw_partition_query(tenant_id: str) -> int:
    """The baseline: exactly the rows and columns the audit needs, with nothing done to them."""
    from shared_code.storage import directory, tables

    rows = tables.query(tables.DIRECTORY, "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi and active eq true",
                        {"pk": tenant_id, "lo": directory.USER, "hi": directory.USER + "\uffff"},
                        select=directory._EMPLOYEE_COLUMNS, page_size=1000)
    return sum(1 for _ in rows)


def storage_shape(tenant_id: str) -> dict:
    """Rows of the tenant's audit partition and the largest property / entity, as the service counts them."""
    from shared_code.storage import audits

    rows = audits.raw_rows(tenant_id)
    largest_property = max((len(v.encode("utf-16-le")) for row in rows for v in row.values() if isinstance(v, str)),
                           default=0)
    largest_entity = max((sum(len(k.encode("utf-16-le")) + (len(v.encode("utf-16-le")) if isinstance(v, str) else 8)
                              for k, v in row.items()) for row in rows), default=0)
    return {"rows": len(rows), "largest_property": largest_property, "largest_entity": largest_entity}


def bench_large_tenant(employees: int, outside_share: float, repeat: int, full_directory: bool) -> None:
    from shared_code.directory import domain_audit
    from shared_code.directory.domains import normalise_domains
    from shared_code.storage import audits, directory
    from tests.audit.directory_seed import mixed_directory, seed_employees

    tenant_id = "bench-large-000001"
    new_tenant(tenant_id, ["contoso.example"])
    start = time.perf_counter()
    seed_employees(tenant_id, mixed_directory(employees, outside_share), index_rows=full_directory)
    print(f"seeded {employees} employees ({outside_share:.0%} outside{', with index rows' if full_directory else ''})"
          f" in {time.perf_counter() - start:.1f} s\n", flush=True)

    corporate = normalise_domains(["contoso.example"])
    people = list(directory.iter_active_people(tenant_id))
    per_k = 1000 / employees

    print(f"Large tenant: {employees} employees, {outside_share:.0%} outside")
    print(f"{'step':44} {'median ms':>9} {'ms / 1,000 emp':>15} {'x baseline':>11} {'round trips':>12}", flush=True)
    base, count, base_trips = timed(lambda: raw_partition_query(tenant_id), repeat)
    assert count == employees, count

    def row(name: str, seconds: float, trips: int) -> None:
        print(f"{name:44} {seconds * 1000:9.1f} {seconds * 1000 * per_k:15.1f} {seconds / base:11.2f} {trips:12d}",
              flush=True)
    row("raw partition query (baseline)", base, base_trips)
    row("iter_active_people (rows -> Employee)",
        *_t(lambda: sum(1 for _ in directory.iter_active_people(tenant_id)), repeat))
    row("judge, in memory (no storage)", *_t(lambda: domain_audit.judge(people, corporate), repeat))
    audit_time, run, audit_trips = timed(lambda: domain_audit.run_audit(tenant_id, domain_audit.ON_DEMAND), repeat)
    row("run_audit: store, query, judge, write", audit_time, audit_trips)
    row("latest_audit: read back (the GET)", *_t(lambda: audits.latest_run(tenant_id), repeat))
    print(f"  {run.checked} checked, {run.outside_count} outside, {run.allowed} allowed")
    shape = storage_shape(tenant_id)
    print(f"\nstored: {shape['rows']} audit rows for {repeat} runs; largest property {shape['largest_property']:,} B "
          f"(limit 65,536), largest entity ~{shape['largest_entity']:,} B (limit 1,048,576)\n")


def _t(fn, repeat):
    seconds, _, trips = timed(fn, repeat)
    return seconds, trips


def bench_many_tenants(tenants: int, size: int, workers: int, one_worker: bool) -> None:
    from shared_code.jobs import catalog, fanout
    from tests.audit.directory_seed import mixed_directory, seed_employees

    ids = [f"bench-small-{i:06d}" for i in range(tenants)]
    start = time.perf_counter()

    def seed(tenant_id: str) -> None:
        new_tenant(tenant_id, ["contoso.example"])
        seed_employees(tenant_id, mixed_directory(size, 0.2, prefix=tenant_id + "-"))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(seed, ids))
    print(f"seeded {tenants} tenants of {size} employees in {time.perf_counter() - start:.1f} s\n", flush=True)

    def baseline() -> int:
        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(raw_partition_query, ids))

    print(f"The timer's job over {tenants} tenants of {size} employees (its queue messages' work)")
    print(f"{'step':44} {'total s':>9} {'ms / tenant':>12} {'x baseline':>11} {'round trips':>12}", flush=True)
    base, _, base_trips = timed(baseline, 1)
    _row(f"raw query per tenant, {workers} workers (baseline)", base, tenants, base, base_trips)
    sweeps = [workers] + ([1] if one_worker else [])
    job = catalog.jobs()[catalog.DOMAIN_AUDIT]
    shards = [ids[i:i + job.per_message] for i in range(0, len(ids), job.per_message)]

    def messages(count: int) -> int:
        with ThreadPoolExecutor(count) as pool:  # `count` queue messages in flight, as on one instance
            return sum(len(result.done) for result in pool.map(
                lambda shard: fanout.work(job, {"job": job.name, "tenants": shard}), shards))

    for count in sweeps:
        seconds, audited, trips = timed(lambda: messages(count), 1)
        _row(f"domain_audit job, {count} message{'s' if count > 1 else ''} at once", seconds, audited, base, trips)
        print(f"  {audited} of {tenants} audited in messages of {job.per_message} tenants", flush=True)
    print()


def _row(name: str, seconds: float, tenants: int, base: float, trips: int) -> None:
    print(f"{name:44} {seconds:9.2f} {seconds * 1000 / max(tenants, 1):12.2f} {seconds / base:11.2f} {trips:12d}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--outside-share", type=float, default=0.5)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--tenant-size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one-worker", action="store_true", help="also time the job with one message at a time")
    parser.add_argument("--full-directory", action="store_true",
                        help="seed the large tenant's index rows too (Azurite then needs ~30 minutes for 10,000)")
    args = parser.parse_args(argv)

    # A stopped benchmark (SIGTERM) still stops its Azurite, through the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with Azurite.temporary(prefix="gatehouse-bench-audit-") as azurite:
        configure(azurite)
        print(f"Azurite on port {azurite.port} ({azurite.location}); Python {sys.version.split()[0]}; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n", flush=True)
        # Many small tenants first, so that the large one is not among them.
        if args.tenants:
            bench_many_tenants(args.tenants, args.tenant_size, args.workers, args.one_worker)
        if args.employees:
            bench_large_tenant(args.employees, args.outside_share, args.repeat, args.full_directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
