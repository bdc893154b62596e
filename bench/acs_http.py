"""How long the ACS takes over real HTTP against Azurite, measured on a few hundred genuine sign-ins (responses
signed beforehand, so only the app's work is timed), as a ratio to `GET /api/sso/{tenant}/metadata` on the same
connection in the same run (one tenant read, no signature work). The numbers also go to
test-output/acs-timing.json. It runs under pytest to reuse the suite's fixtures (Azurite, the local host, a
tenant with its IdP), but it is a benchmark: it measures and asserts nothing about speed.

    .venv/bin/python -m pytest bench/acs_http.py -p tests.conftest -p tests.sso.conftest -q -s
"""
from __future__ import annotations

import json
import statistics
import time

import requests


IDP_INITIATED, SP_INITIATED = 300, 100


def _timed_post(http: requests.Session, url: str, form: dict, cookies: dict | None = None) -> float:
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
    started = time.perf_counter()
    response = http.post(url, data=form, headers=headers, allow_redirects=False, timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 303, response.text
    return elapsed


def _timed_get(http: requests.Session, url: str) -> float:
    started = time.perf_counter()
    response = http.get(url, timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed


def test_acs_over_http(sso, alice, test_output):
    http = requests.Session()  # keep-alive, as a browser does
    metadata_url = f"{sso.base_url}/api/sso/{sso.tenant_id}/metadata"
    baseline_ms = [_timed_get(http, metadata_url) for _ in range(IDP_INITIATED)]
    http.post(sso.acs_url, data={"SAMLResponse": sso.response_for(alice)}, allow_redirects=False, timeout=30)  # warm
    idp_responses = [sso.response_for(alice) for _ in range(IDP_INITIATED)]
    idp_ms = [_timed_post(http, sso.acs_url, {"SAMLResponse": r}) for r in idp_responses]

    logins = [sso.login() for _ in range(SP_INITIATED)]
    sp_forms = [({"SAMLResponse": sso.response_for(alice, in_response_to=login.request_id),
                  "RelayState": login.relay_state}, login.cookies) for login in logins]
    sp_ms = [_timed_post(http, sso.acs_url, form, cookies) for form, cookies in sp_forms]

    def summary(samples: list[float]) -> dict:
        ordered = sorted(samples)
        return {"n": len(ordered), "median_ms": round(statistics.median(ordered), 2),
                "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2), "max_ms": round(ordered[-1], 2)}

    report = {"baseline_metadata_get": summary(baseline_ms), "idp_initiated": summary(idp_ms),
              "sp_initiated": summary(sp_ms)}
    (test_output / "acs-timing.json").write_text(json.dumps(report, indent=2) + "\n")
    base = report["baseline_metadata_get"]["median_ms"]
    print(f"\nbaseline: GET metadata, median {base} ms over {IDP_INITIATED}")
    for name in ("idp_initiated", "sp_initiated"):
        row = report[name]
        print(f"ACS {name.replace('_', '-')}: median {row['median_ms']} ms (x{row['median_ms'] / base:.1f}), "
              f"p95 {row['p95_ms']} ms, n={row['n']}")
