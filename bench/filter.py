"""How long the SCIM filter parser takes on the longest filter allowed in its costliest shapes, as a ratio to
parsing Entra's everyday `userName eq "…"` in the same run (the test suite checks what the parser answers
for these filters; this measures how long it takes, so a filter cannot be used to hold a worker).

    .venv/bin/python bench/filter.py [--runs 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared_code.platform.errors import BadRequest  # noqa: E402
from shared_code.scim.filter import parse_filter  # noqa: E402
from tests.properties.test_filter_laws import COSTLIEST_FILTERS  # noqa: E402

BASELINE = 'userName eq "alice@contoso.example"'


def median_ms(text: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            parse_filter(text)
        except BadRequest:
            pass
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    baseline = median_ms(BASELINE, runs * 10)
    print(f"baseline: {BASELINE} parses in {baseline * 1000:.1f} µs (median of {runs * 10})")
    print(f"{'filter (4,096 characters at most)':48} {'median ms':>10} {'× baseline':>11}")
    for text in COSTLIEST_FILTERS:
        ms = median_ms(text, runs)
        print(f"{text[:40]!r:48} {ms:10.2f} {ms / baseline:11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
