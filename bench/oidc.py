"""Benchmark of the product's sign-in at Gatehouse: ACS POST (Entra's signed answer to the product's
authorization request) → 303 with a code → token request → ID token, over HTTP on loopback against Azurite,
next to the storage round trips that sign-in needs, replayed bare on the same Azurite in the same run.

    .venv/bin/python bench/oidc.py [--sign-ins 100]

The app runs in this process behind tools.local_host (as bench/scim.py), so `tables.round_trips()` counts
every storage call of each request. The floor replays exactly the storage calls of the two requests, with the
same overlap (the ACS: tenant read → employee read → one transaction of the answered row and the session; the
token: client read → one transaction of the grant row and a merge of the session; bench/sign_in_cost.py counts
them), plus a request that
touches no storage (GET /api/openapi.json answered 304) for the local host's own HTTP cost. What is left
is our own work: XML signature checks, JWT signing, HMAC, JSON, parsing. The SAML checks alone take about a
millisecond (bench/acs.py), so "our work" includes them.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from azure.core import MatchConditions  # noqa: E402
from azure.data.tables import UpdateMode  # noqa: E402

from bench.in_process import serve_app  # noqa: E402
from tests.conftest import OPERATOR_KEY, Azurite, free_port  # noqa: E402
from tests.support import oidc_keys  # noqa: E402
from tests.support.idp import TestIdp, decode_authn_request  # noqa: E402

def start_gatehouse(azurite: Azurite) -> str:
    port = free_port()
    os.environ.update({"TABLES_CONNECTION_STRING": azurite.connection_string, "TABLES_ENDPOINT": "",
                       "PLATFORM_ADMIN_KEY": OPERATOR_KEY, "SESSION_SIGNING_KEY": "bench-" + uuid.uuid4().hex,
                       "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "ALLOW_PRIVATE_METADATA_URLS": "true",
                       "OIDC_SIGNING_KEYS": oidc_keys.setting("bench-op")})
    serve_app(port)
    return f"http://127.0.0.1:{port}"


class Tenant:
    """A tenant connected to a TestIdp, one provisioned employee, one registered client."""

    def __init__(self, base: str):
        operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        created = requests.post(f"{base}/api/tenants", json={"name": "Bench OIDC", "app_url": "https://bench.example"},
                                headers=operator, timeout=30).json()
        self.tenant_id, admin = created["tenant_id"], {"Authorization": f"Bearer {created['admin_key']}"}
        self.sp_entity_id, self.acs_url = created["sp_entity_id"], created["acs_url"]
        self.idp = TestIdp(key_label="bench-oidc")
        assert requests.post(f"{base}/api/tenants/{self.tenant_id}/sso/idp-metadata", headers=admin, timeout=30,
                             json={"metadata_xml": self.idp.metadata_xml().decode()}).status_code == 200
        token = requests.post(f"{base}/api/tenants/{self.tenant_id}/scim/token", headers=admin, timeout=30).json()
        self.object_id = str(uuid.uuid4())
        user = requests.post(f"{token['scim_tenant_url']}/Users", timeout=30, json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@bench.example",
            "externalId": self.object_id, "active": True, "emails": [{"type": "work", "value": "alice@bench.example"}]},
            headers={"Authorization": f"Bearer {token['secret_token']}", "Content-Type": "application/scim+json"})
        assert user.status_code == 201, user.text
        self.employee_id = user.json()["id"]
        client = requests.post(f"{base}/api/tenants/{self.tenant_id}/oidc/clients", headers=operator, timeout=30,
                               json={"redirect_uris": ["https://product.example/callback"]}).json()
        self.client_id, self.client_secret = client["client_id"], client["client_secret"]
        self.issuer = f"{base}/api/oidc/{self.tenant_id}"


def prepare(tenant: Tenant, http: requests.Session) -> dict:
    """The product's authorization request and Entra's signed answer to it (not timed)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    started = http.get(f"{tenant.issuer}/authorize", allow_redirects=False, timeout=30, params={
        "response_type": "code", "client_id": tenant.client_id, "redirect_uri": "https://product.example/callback",
        "scope": "openid email", "state": "s", "nonce": "n", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert started.status_code == 302, started.text
    request, relay_state = decode_authn_request(started.headers["Location"])
    cookies = "; ".join(header.split(";")[0] for header in started.raw.headers.getlist("Set-Cookie"))
    saml_response = tenant.idp.response(tenant.sp_entity_id, tenant.acs_url, "alice@bench.example", tenant.object_id,
                                        in_response_to=request.get("ID"))
    return {"form": {"SAMLResponse": saml_response, "RelayState": relay_state},
            "cookie": cookies, "verifier": verifier}  # the login binding and the sealed pending login


def round_trips() -> int:
    from shared_code.storage import tables

    return tables.round_trips()


CPU: dict[str, list[float]] = {"acs": [], "token": [], "floor_acs": [], "floor_token": [], "http": []}


def sign_in(tenant: Tenant, http: requests.Session, prepared: dict) -> tuple[float, float, int, int]:
    """One timed sign-in: (ACS ms, token ms, ACS round trips, token round trips); CPU ms into CPU."""
    before, start, cpu = round_trips(), time.perf_counter(), time.process_time()
    acs = http.post(tenant.acs_url, data=prepared["form"], headers={"Cookie": prepared["cookie"]},
                    allow_redirects=False, timeout=30)
    acs_ms, acs_trips = (time.perf_counter() - start) * 1000, round_trips() - before
    CPU["acs"].append((time.process_time() - cpu) * 1000)
    assert acs.status_code == 303, acs.text[:300]
    code = parse_qs(urlsplit(acs.headers["Location"]).query)["code"][0]
    before, start, cpu = round_trips(), time.perf_counter(), time.process_time()
    token = http.post(f"{tenant.issuer}/token", auth=(tenant.client_id, tenant.client_secret), timeout=30, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "https://product.example/callback",
        "code_verifier": prepared["verifier"]})
    token_ms, token_trips = (time.perf_counter() - start) * 1000, round_trips() - before
    CPU["token"].append((time.process_time() - cpu) * 1000)
    assert token.status_code == 200, token.text[:300]
    return acs_ms, token_ms, acs_trips, token_trips


def storage_floor(tenant: Tenant, count: int) -> tuple[list[float], list[float]]:
    """The same storage calls as the ACS and the token request, bare, one after the other as the app makes them."""
    from shared_code.storage import directory, tables

    pk = tenant.tenant_id
    acs, token = [], []
    for _ in range(count):
        key = uuid.uuid4().hex
        start, cpu = time.perf_counter(), time.process_time()
        tables.get(tables.TENANTS, pk, "tenant")  # the tenant (and its IdP)
        directory.find_user_by_external_id(pk, tenant.object_id, True)
        session = tables.transact(tables.OIDC, [
            ("create", {"PartitionKey": pk, "RowKey": f"floor-answered:{key}", "x": "y" * 20}),
            ("create", {"PartitionKey": pk, "RowKey": f"floor-session:{key}", "x": "y" * 100})])[1]["etag"]
        acs.append((time.perf_counter() - start) * 1000)
        CPU["floor_acs"].append((time.process_time() - cpu) * 1000)
        start, cpu = time.perf_counter(), time.process_time()
        tables.get(tables.OIDC, pk, f"client:{tenant.client_id}")
        tables.transact(tables.OIDC, [
            ("create", {"PartitionKey": pk, "RowKey": f"floor-code:{key}", "x": "y" * 300}),
            ("update", {"PartitionKey": pk, "RowKey": f"floor-session:{key}", "spent": True},
             {"mode": UpdateMode.MERGE, "etag": session, "match_condition": MatchConditions.IfNotModified})])
        token.append((time.perf_counter() - start) * 1000)
        CPU["floor_token"].append((time.process_time() - cpu) * 1000)
    return acs, token


def http_floor(base: str, http: requests.Session, count: int) -> list[float]:
    first = http.get(f"{base}/api/openapi.json", timeout=30)
    samples = []
    for _ in range(count):
        start, cpu = time.perf_counter(), time.process_time()
        answer = http.get(f"{base}/api/openapi.json", headers={"If-None-Match": first.headers["ETag"]}, timeout=30)
        samples.append((time.perf_counter() - start) * 1000)
        CPU["http"].append((time.process_time() - cpu) * 1000)
        assert answer.status_code == 304
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign-ins", type=int, default=100)
    args = parser.parse_args()
    median = statistics.median

    with Azurite.temporary(prefix="gatehouse-bench-oidc-") as azurite:
        base = start_gatehouse(azurite)
        tenant = Tenant(base)
        http = requests.Session()
        for _ in range(5):  # warm: imports (pysaml2, joserfc), connections, table creation
            sign_in(tenant, http, prepare(tenant, http))
        storage_floor(tenant, 3)
        # Interleaved, so a busy moment of the machine hits both alike.
        acs_ms, token_ms, acs_trips, token_trips, floor_acs, floor_token, bare = [], [], [], [], [], [], []
        for _ in range(args.sign_ins):
            a, t, at, tt = sign_in(tenant, http, prepare(tenant, http))
            acs_ms.append(a), token_ms.append(t), acs_trips.append(at), token_trips.append(tt)
            fa, ft = storage_floor(tenant, 1)
            floor_acs += fa
            floor_token += ft
            bare += http_floor(base, http, 2)

    http_ms = median(bare)
    print(f"The product's sign-in at Gatehouse over HTTP on loopback, Azurite, {args.sign_ins} sign-ins, sequential\n")
    print(f"{'request':<10} {'median':>9} {'p95':>9} {'round trips':>12} {'storage floor':>14} {'HTTP floor':>11}"
          f" {'our own work':>13} {'ratio to floor':>15}")
    total_ours = 0.0
    for name, samples, trips, floor in (("ACS POST", acs_ms, acs_trips, floor_acs),
                                        ("token", token_ms, token_trips, floor_token)):
        ours = median(samples) - median(floor) - http_ms
        total_ours += ours
        p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)
        print(f"{name:<10} {median(samples):7.1f}ms {p95:7.1f}ms {'/'.join(map(str, sorted(set(trips)))):>12}"
              f" {median(floor):12.1f}ms {http_ms:9.1f}ms {ours:+11.1f}ms"
              f" {median(samples) / (median(floor) + http_ms):14.2f}x")
    whole = median([a + t for a, t in zip(acs_ms, token_ms)])
    floor_whole = median([a + t for a, t in zip(floor_acs, floor_token)]) + 2 * http_ms
    print(f"\nwhole sign-in (ACS → code → token): {whole:.1f} ms; storage + HTTP floor {floor_whole:.1f} ms "
          f"→ ratio {whole / floor_whole:.2f}x, {whole - floor_whole:+.1f} ms of our own work "
          f"(goal: at most 1 ms; the SAML signature checks alone are ~1 ms, see bench/acs.py)")
    print("\nCPU time of this process (app, local host, HTTP client and the storage SDK; Azurite is another "
          "process), medians — steadier than wall time on a busy machine:")
    http_cpu = median(CPU["http"])
    cpu_total = 0.0
    for name, key, floor_key in (("ACS POST", "acs", "floor_acs"), ("token", "token", "floor_token")):
        ours = median(CPU[key]) - median(CPU[floor_key]) - http_cpu
        cpu_total += ours
        print(f"  {name:<9} {median(CPU[key]):6.2f} ms CPU; its storage calls bare {median(CPU[floor_key]):5.2f} ms, "
              f"a bare HTTP request {http_cpu:5.2f} ms → our own work {ours:+5.2f} ms "
              f"(ratio {median(CPU[key]) / (median(CPU[floor_key]) + http_cpu):.2f}x)")
    print(f"  whole sign-in: {cpu_total:+.2f} ms of CPU that is ours (SAML checks, JWT signing, parsing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
