"""Every benchmark in one run (`make bench`): each prints its numbers as ratios to a baseline measured in the
same run, and this script collects their output, with a description of the machine, into bench/RESULTS.md.

    .venv/bin/python bench/run_all.py [--only coldstart,acs,...] [--full-load] [--no-write]

Benchmarks, in order (see bench/README.md for what each ratio means):
  coldstart  bench/coldstart.py        fresh process to the first SCIM answer vs a bare `import azure.functions`
  acs        bench/acs.py              SAML response validation vs pysaml2 and python3-saml
  acs-http   bench/acs_http.py         the ACS over HTTP (IdP- and SP-initiated) vs GET metadata, under pytest
  scim       bench/scim.py             SCIM create / lookup / PATCH vs the in-memory scim2-server
  events     bench/events.py           SCIM create / PATCH with their events vs the storage floor; change →
                                       webhook delivery p50 / p95
  oidc       bench/oidc.py             the product's OIDC sign-in vs its bare storage round trips
  cost       bench/sign_in_cost.py     storage round trips and rows written per step of a sign-in (counted)
  filter     bench/filter.py           the costliest 4,096-character filters vs parsing `userName eq "…"`
  audit      bench/audit.py --employees 2000 --tenants 100   the domain audit per 1,000 employees vs the bare
                                       partition query
  concurrency bench/concurrency.py    throughput and p95 at 1, 2, 4, 8, 16 requests in flight per process, with
                                       storage as Azurite answers it and 8 ms further away
  scale      bench/scale.py            each background job through gatehouse-jobs on 300 tenants, storage 8 ms
                                       away: tenants/min per instance, the projection to 100,000 tenants
  load       bench/load.py --quick     tenants provisioned at once while employees sign in; app peak memory
  outage     bench/load.py --tenants 5 --users 100 --sign-ins 20 --outage 10   the same with Azurite stopped
                                       for 10 s mid-run: 503s meanwhile, then consistency and convergence

`--full-load` adds the full load run (20 tenants × 500 employees with a 30 s storage outage midway, about
15 minutes on 2 cores).

A benchmark whose script does not exist yet is listed as skipped; one that fails keeps its output and the
run goes on (the exit status is then 1). RESULTS.md keeps one section per benchmark, each saying when and at
which commit it ran: a run with `--only` replaces just its own sections.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
TIMEOUT_SECONDS = 1800

BENCHMARKS = [
    ("coldstart", "Cold start", ["bench/coldstart.py"]),
    ("acs", "ACS validation", ["bench/acs.py"]),
    ("acs-http", "ACS over HTTP on the local host",
     ["-m", "pytest", "bench/acs_http.py", "-p", "tests.conftest", "-p", "tests.sso.conftest", "-q", "-s",
      "-p", "no:cacheprovider"]),
    ("scim", "SCIM operations", ["bench/scim.py"]),
    ("events", "Directory events: request path next to the storage floor, change to webhook delivery",
     ["bench/events.py"]),
    ("oidc", "The product's sign-in (ACS → code → token) next to its storage round trips", ["bench/oidc.py"]),
    ("cost", "Storage round trips and rows per sign-in", ["bench/sign_in_cost.py"]),
    ("filter", "SCIM filter parsing at the longest length allowed", ["bench/filter.py"]),
    # Seeding 10,000 employees into Azurite takes many minutes here; 2,000 give the same per-1,000 figures.
    ("audit", "Domain audit per 1,000 employees", ["bench/audit.py", "--employees", "2000", "--tenants", "100"]),
    ("concurrency", "Requests in flight per process (Flex Consumption perInstanceConcurrency)", ["bench/concurrency.py"]),
    ("scale", "Background jobs through their queue, projected to 100,000 tenants (storage 8 ms away)",
     ["bench/scale.py"]),
    ("load", "Load (quick run) and the app's peak memory", ["bench/load.py", "--quick"]),
    ("outage", "Load with a storage outage in the middle",
     ["bench/load.py", "--tenants", "5", "--users", "100", "--sign-ins", "20", "--outage", "10"]),
]
FULL_LOAD = ("load-full", "Load, full run: 20 tenants × 500 employees at once, storage stopped for 30 s midway",
             ["bench/load.py", "--outage", "30"])


def machine() -> list[str]:
    """CPU model, cores, RAM, OS and Python of this machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal:")), 0)
    return [f"CPU: {cpu}, {os.cpu_count()} logical cores",
            f"RAM: {mem_kib / 1024 / 1024:.1f} GiB",
            f"OS: {platform.platform()}",
            f"Python: {platform.python_version()}"]


def when() -> str:
    """Date, commit and how busy the machine was when a benchmark started (the machine may be shared)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, load average {load:.2f}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def run(command: list[str]) -> tuple[int, str, float]:
    """Run one benchmark with this interpreter, echoing its output as it comes; (status, output, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    try:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        status = process.wait(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        status = -1
        lines.append(f"\n(stopped after {TIMEOUT_SECONDS} s)\n")
    return status, "".join(lines).rstrip(), time.perf_counter() - started


def write_results(description: list[str], sections: dict[str, str], order: list[str]) -> None:
    """RESULTS.md with this run's sections; sections of benchmarks not run this time are kept as they were."""
    kept: dict[str, str] = {}
    if RESULTS.exists():
        title = None
        for line in RESULTS.read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                title = line[3:].strip()
                kept[title] = ""
            elif title is not None:
                kept[title] += line + "\n"
    kept = {title: body.strip() for title, body in kept.items() if title != "Machine"}
    kept.update(sections)
    text = ["# Benchmark results", "",
            "The latest output of `make bench` (`bench/run_all.py`), one section per benchmark with when and at "
            "which commit it ran; how to read each ratio: [README.md](README.md).", "", "## Machine", ""]
    text += [f"- {line}" for line in description]
    for title in [t for t in order if t in kept] + [t for t in kept if t not in order]:
        text += ["", f"## {title}", "", kept[title]]
    RESULTS.write_text("\n".join(text) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated names: " + ",".join(name for name, _, _ in BENCHMARKS))
    parser.add_argument("--full-load", action="store_true", help="also the full load run (~15 min)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    chosen = set(args.only.split(",")) if args.only else {name for name, _, _ in BENCHMARKS}
    benchmarks = BENCHMARKS + [FULL_LOAD]
    if args.full_load:
        chosen.add(FULL_LOAD[0])

    description = machine()
    print("\n".join(description), flush=True)
    sections: dict[str, str] = {}
    failed = False
    for name, title, command in benchmarks:
        if name not in chosen:
            continue
        started_at = when()
        print(f"\n=== {title}: {' '.join(command)} ({started_at})", flush=True)
        if not (ROOT / command[0]).exists():
            print("skipped: the script does not exist yet")
            sections[title] = "skipped: the script does not exist yet"
            continue
        status, output, seconds = run(command)
        if status != 0:
            failed = True
            output += f"\n\n(exit status {status})"
        sections[title] = "\n".join([f"`{' '.join(['.venv/bin/python', *command])}`: {seconds:.0f} s, {started_at}",
                                     "", "```text", output, "```"])
    if not args.no_write:
        write_results(description, sections, [title for _, title, _ in BENCHMARKS + [FULL_LOAD]])
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
