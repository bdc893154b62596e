"""What one sign-in costs in storage: round trips and rows written per step, counted, not timed.

    .venv/bin/python bench/sign_in_cost.py [--sign-ins 20]

The app runs in this process (bench/in_process.py) on an Azurite of its own, so `tables.round_trips()` counts
every storage call of each request (retries included), and a snapshot of every row of every table (with its
ETag) before and after each request tells which rows it created and which it changed. Two journeys:

- the product's sign-in: GET /oidc/{t}/authorize → Entra's signed answer POSTed to the ACS → 303 with a code →
  POST /oidc/{t}/token (the goal of issue 20: at most 7 round trips and 3 rows);
- an employee's own SP-initiated sign-in: GET /sso/{t}/login → ACS → session cookie.

Every row written carries its own `expires_at`; none is a pending request the purge must find and delete
before it could be reused, so the purge can drop them in bulk.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.oidc import Tenant, start_gatehouse  # noqa: E402
from tests.conftest import Azurite  # noqa: E402
from tests.support.idp import decode_authn_request  # noqa: E402


def snapshot(connection_string: str) -> dict[tuple[str, str, str], str]:
    """(table, PartitionKey, RowKey) → ETag of every row of every table."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(connection_string)
    return {(table.name, row["PartitionKey"], row["RowKey"]): row.metadata.get("etag")
            for table in service.list_tables() for row in service.get_table_client(table.name).list_entities()}


class Meter:
    """Round trips and rows written by whatever runs between `start` and `stop`."""

    def __init__(self, connection_string: str):
        self.connection_string = connection_string
        self.steps: dict[str, list[tuple[int, list[str], list[str]]]] = {}

    def measure(self, step: str, action):
        from shared_code.storage import tables

        before, trips = snapshot(self.connection_string), tables.round_trips()
        result = action()
        trips = tables.round_trips() - trips
        after = snapshot(self.connection_string)
        created = sorted(f"{k[0]}:{k[2].split(':')[0]}" for k in after.keys() - before.keys())
        changed = sorted(f"{k[0]}:{k[2].split(':')[0]}" for k in after.keys() & before.keys() if after[k] != before[k])
        self.steps.setdefault(step, []).append((trips, created, changed))
        return result

    def report(self, steps: list[str], title: str) -> tuple[int, int]:
        print(f"\n{title}")
        print(f"{'step':<12} {'round trips':>12} {'rows created':>13} {'rows changed':>13}   which rows")
        total_trips = total_rows = 0
        for step in steps:
            runs = self.steps[step]
            trips = sorted({run[0] for run in runs})
            created = sorted({len(run[1]) for run in runs})
            changed = sorted({len(run[2]) for run in runs})
            kinds = Counter()
            for run in runs:
                kinds.update(f"+{kind}" for kind in run[1])
                kinds.update(f"~{kind}" for kind in run[2])
            which = ", ".join(f"{kind} ×{count / len(runs):g}" for kind, count in sorted(kinds.items())) or "none"
            print(f"{step:<12} {'/'.join(map(str, trips)):>12} {'/'.join(map(str, created)):>13} "
                  f"{'/'.join(map(str, changed)):>13}   {which}")
            total_trips += max(trips)
            total_rows += max(created)
        print(f"{'whole':<12} {total_trips:>12} {total_rows:>13}")
        return total_trips, total_rows


def cookies_of(response: requests.Response) -> str:
    return "; ".join(header.split(";")[0] for header in response.raw.headers.getlist("Set-Cookie"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign-ins", type=int, default=20)
    args = parser.parse_args()
    with Azurite.temporary(prefix="gatehouse-bench-cost-") as azurite:
        base = start_gatehouse(azurite)
        tenant = Tenant(base)
        meter = Meter(azurite.connection_string)
        http = requests.Session()
        verifier = "v" * 43
        import base64
        import hashlib

        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        for round_ in range(args.sign_ins + 1):  # the first creates the tables: not counted
            record = round_ > 0
            run = meter.measure if record else (lambda _step, action: action())
            started = run("authorize", lambda: http.get(f"{tenant.issuer}/authorize", allow_redirects=False,
                                                        timeout=30, params={
                "response_type": "code", "client_id": tenant.client_id, "scope": "openid email",
                "redirect_uri": "https://product.example/callback", "state": "s", "nonce": "n",
                "code_challenge": challenge, "code_challenge_method": "S256"}))
            assert started.status_code == 302, started.text
            request, relay_state = decode_authn_request(started.headers["Location"])
            saml = tenant.idp.response(tenant.sp_entity_id, tenant.acs_url, "alice@bench.example", tenant.object_id,
                                       in_response_to=request.get("ID"))
            acs = run("ACS POST", lambda: http.post(tenant.acs_url, data={"SAMLResponse": saml,
                                                                          "RelayState": relay_state},
                                                    headers={"Cookie": cookies_of(started)}, allow_redirects=False,
                                                    timeout=30))
            assert acs.status_code == 303, acs.text[:300]
            code = parse_qs(urlsplit(acs.headers["Location"]).query)["code"][0]
            token = run("token", lambda: http.post(f"{tenant.issuer}/token", timeout=30,
                                                   auth=(tenant.client_id, tenant.client_secret), data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": "https://product.example/callback",
                "code_verifier": verifier}))
            assert token.status_code == 200, token.text[:300]
            # The employee's own sign-in (a Gatehouse session, no product in between).
            login = run("login", lambda: http.get(f"{base}/api/sso/{tenant.tenant_id}/login", allow_redirects=False,
                                                  timeout=30))
            request, relay_state = decode_authn_request(login.headers["Location"])
            saml = tenant.idp.response(tenant.sp_entity_id, tenant.acs_url, "alice@bench.example", tenant.object_id,
                                       in_response_to=request.get("ID"))
            signed_in = run("ACS (own)", lambda: http.post(tenant.acs_url, data={"SAMLResponse": saml,
                                                                                 "RelayState": relay_state},
                                                           headers={"Cookie": cookies_of(login)},
                                                           allow_redirects=False, timeout=30))
            assert signed_in.status_code == 303, signed_in.text[:300]
    print(f"Storage cost of one sign-in, {args.sign_ins} of each on Azurite (a/b: the values seen; "
          "+ created, ~ changed; table:row kind)")
    trips, rows = meter.report(["authorize", "ACS POST", "token"],
                               "The product's sign-in (authorize → ACS → token):")
    meter.report(["login", "ACS (own)"], "An employee's own SP-initiated sign-in (login → ACS → session cookie):")
    print(f"\ngoal for the product's sign-in: at most 7 round trips and 3 rows → {trips} and {rows}: "
          f"{'OK' if trips <= 7 and rows <= 3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
