"""Load test: many tenants provisioned by Entra at once while their employees sign in, against the real app.

    .venv/bin/python bench/load.py [--tenants 20] [--users 500] [--sign-ins 50] [--rate 25] [--workers 4]
                                   [--quick] [--keep-data] [--outage SECONDS [--outage-after SHARE]]

It starts a private Azurite persisting to disk (a temp directory, removed afterwards unless --keep-data) and
the Function App on the local host in its own process (tools.local_host, as `make run` serves it), then:

1. setup, per tenant: the operator creates it; its admin issues the SCIM token, connects an Entra-like
   TestIdp (pasted metadata XML) and sets the corporate domains;
2. one provisioning cycle per tenant, all tenants at once, shaped like Entra's: for each employee a lookup
   `GET /Users?filter=userName eq "…"` (no match) and a `POST /Users`; groups looked up by displayName,
   created without members, then members added in PATCHes of 25; every employee updated (the no-path
   `replace` of aadOptscim062020 plus a filtered email path); a tenth deactivated (Entra's default
   `Replace active "False"`). Each tenant's job sends from `--workers` threads and is held to `--rate`
   requests/s (Entra asks gallery apps to sustain 25 per tenant);
3. meanwhile, once a tenant's employees exist, its employees sign in: a signed IdP-initiated SAML response
   from the tenant's TestIdp POSTed to the ACS (303 + session cookie), then `GET /sso/{tenant}/me` with that
   session; a few dismissed employees try too and must be refused (403).

With `--outage`, Azurite is stopped in the middle of the run (once `--outage-after`, 0.7, of the expected
requests are answered; SIGINT, so its data stays on disk) and started again after that many seconds. Meanwhile
every SCIM answer must be a fast 503 SCIM error with Retry-After and every ACS answer a 503 HTML page with
Retry-After; the job retries after Retry-After, as Entra retries what failed (a browser signs in again with a
new SAML response). Afterwards `tools.check_consistency --all` must report 0 problems, and every tenant's
directory must be what its job intended: all employees, the tenth dismissed, every group with its members.

Every answer must be the expected one: any other status is an error, and the run exits 1 if there is one.
Reported: per operation the count, throughput and p50/p95/p99 latency; per tenant the achieved SCIM rate
(min / median / max over tenants); and the app process's memory: resident size when idle after start and its
high-water mark (VmHWM) after the run, as a ratio.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.conftest import Azurite, LocalHost, check_consistency, free_port  # noqa: E402
from tests.support.idp import TestIdp  # noqa: E402

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"
MEMBERS_PER_PATCH = 25
ENTRA_TIMEOUT = 60  # Entra treats a request as failed after about a minute
OPERATOR_KEY = "bench-operator-" + uuid.uuid4().hex
DOMAIN = "contoso-load.example"


# ---- measuring ---------------------------------------------------------------------------------------------

OUTAGE_GRACE = 5.0  # seconds after storage answers again in which a request begun earlier may still get a 503


@dataclass
class Outage:
    """A storage outage in the middle of the run and the answers given while it lasted."""

    seconds: float
    after_requests: int
    began: float | None = None  # perf_counter when Azurite was stopped
    ended: float | None = None  # perf_counter when the app answered from storage again
    answers: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # 503s per operation
    slowest_ms: float = 0.0

    def covers(self, started: float) -> bool:
        """Whether a request begun at `started` may meet the outage."""
        return self.began is not None and (self.ended is None or started < self.ended + OUTAGE_GRACE)


@dataclass
class Recorder:
    """Latencies per operation and every unexpected answer; thread-safe."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    outage: Outage | None = None

    def answered(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.latencies.values())

    def call(self, op: str, http: requests.Session, method: str, url: str, expect: tuple[int, ...],
             retry_outage: bool = True, **kwargs) -> requests.Response | None:
        """One request; None unless it got an expected answer. During an outage a 503 is checked and, with
        `retry_outage`, the same request is sent again after Retry-After (else the 503 is returned)."""
        while True:
            started = time.perf_counter()
            try:
                response = http.request(method, url, timeout=ENTRA_TIMEOUT, allow_redirects=False, **kwargs)
            except requests.RequestException as error:
                with self.lock:
                    self.errors.append(f"{op}: {type(error).__name__}: {error}")
                return None
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 503 and self.outage is not None and self.outage.covers(started):
                self._outage_answer(op, elapsed, response)
                if not retry_outage:
                    return response
                time.sleep(min(float(response.headers.get("Retry-After") or 1), 2.0))
                continue
            with self.lock:
                self.latencies[op].append(elapsed)
                if response.status_code not in expect:
                    self.errors.append(f"{op}: {method} {url} → {response.status_code} {response.text[:300]}")
            return response if response.status_code in expect else None

    def _outage_answer(self, op: str, elapsed: float, response: requests.Response) -> None:
        """A 503 while storage is down must be honest and fast, in the shape its client understands."""
        kind = response.headers.get("Content-Type", "")
        wrong = []
        if not response.headers.get("Retry-After", "").isdigit():
            wrong.append("no Retry-After")
        if op.startswith("scim:") and not (kind.startswith(SCIM_JSON) and
                                            response.json().get("schemas") == [SCIM_ERROR]):
            wrong.append(f"not a SCIM error ({kind})")
        if op.startswith("sso: ACS") and not kind.startswith("text/html"):
            wrong.append(f"not a page ({kind})")
        with self.lock:
            self.outage.answers[op] += 1
            self.outage.slowest_ms = max(self.outage.slowest_ms, elapsed)
            if wrong:
                self.errors.append(f"{op}: 503 during the outage: {', '.join(wrong)}")


class CpuMeter:
    """CPU seconds used so far by the app, Azurite and this load generator; Azurite's survive its restart."""

    def __init__(self, app_pid: int, azurite: Azurite):
        self.app_pid, self.azurite = app_pid, azurite
        self.azurite_before = 0.0  # what Azurite processes that have stopped used
        self.azurite_down = False

    def azurite_stopping(self) -> None:
        self.azurite_before += cpu_seconds(self.azurite.process.pid) or 0.0
        self.azurite_down = True

    def azurite_started(self) -> None:
        self.azurite_down = False

    def read(self) -> dict[str, float | None]:
        process = None if self.azurite_down else self.azurite.process
        azurite = cpu_seconds(process.pid) if process is not None else 0.0
        return {"app (local host)": cpu_seconds(self.app_pid),
                "Azurite": None if azurite is None else self.azurite_before + azurite,
                "load generator": cpu_seconds(os.getpid())}


class Pacer:
    """Holds one tenant's provisioning job to `rate` requests per second across its worker threads.

    Slots are spaced 1/rate apart; a worker that was held up by a slow answer may use the slots it missed in
    the last second (a burst of at most `rate` requests), so a job that falls behind can catch up to the asked
    rate the way a client with a rate target does, and never runs ahead of it by more than a second.
    """

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(self.next_slot, now - 1.0)
            self.next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat); None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int, field_name: str) -> int | None:
    """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM); None where /proc does not exist."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# ---- one tenant --------------------------------------------------------------------------------------------

class TenantLoad:
    """One customer tenant: its Entra provisioning job and its employees' browsers."""

    def __init__(self, index: int, base: str, recorder: Recorder, args: argparse.Namespace):
        self.index, self.base, self.rec, self.args = index, base, recorder, args
        self.http = requests.Session()
        self.idp = TestIdp(key_label=f"bench-load-{index % 4}")  # keys cached on disk; four are enough
        self.pacer = Pacer(args.rate)
        self.scim_requests = 0
        self.scim_seconds = 0.0
        self.users: list[dict] = []  # {"userName", "objectId", "id"}
        self.groups: dict[str, list[str]] = {}  # group id → the member ids its job added
        self.ready_for_sign_ins = threading.Event()
        self.dismissed: list[dict] = []

    # -- setup (operator and tenant admin)

    def setup(self) -> None:
        created = self.rec.call("admin: create tenant", self.http, "POST", f"{self.base}/api/tenants", (201,),
                                json={"name": f"Load Tenant {self.index}", "app_url": f"https://app{self.index}.example.com"},
                                headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        if created is None:
            raise SystemExit("could not create a tenant; see the errors above")
        body = created.json()
        self.tenant_id, self.admin_key = body["tenant_id"], body["admin_key"]
        self.sp_entity_id, self.acs_url = body["sp_entity_id"], body["acs_url"]
        admin = {"Authorization": f"Bearer {self.admin_key}"}
        api = f"{self.base}/api/tenants/{self.tenant_id}"
        token = self.rec.call("admin: SCIM token", self.http, "POST", f"{api}/scim/token", (201,), headers=admin)
        self.scim = f"{self.base}/api/scim/{self.tenant_id}/v2"
        self.scim_headers = {"Authorization": f"Bearer {token.json()['secret_token']}", "Content-Type": SCIM_JSON,
                             "Accept": SCIM_JSON}
        self.rec.call("admin: connect IdP", self.http, "POST", f"{api}/sso/idp-metadata", (200,), headers=admin,
                      json={"metadata_xml": self.idp.metadata_xml().decode()})
        self.rec.call("admin: set domains", self.http, "PUT", f"{api}/domains", (200,), headers=admin,
                      json={"domains": [DOMAIN]})

    # -- Entra's provisioning job

    def scim_call(self, http: requests.Session, op: str, method: str, path: str, expect: tuple[int, ...],
                  **kwargs) -> requests.Response | None:
        self.pacer.wait()
        self.scim_requests += 1  # per tenant; only its own workers add (the GIL makes += safe enough for a count)
        return self.rec.call(op, http, method, self.scim + path, expect, headers=self.scim_headers, **kwargs)

    def provision(self) -> None:
        started = time.perf_counter()
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "http"):
                local.http = requests.Session()
            return local.http

        def create(i: int) -> None:
            http, name, object_id = session(), f"employee{i}@{DOMAIN}", str(uuid.uuid4())
            found = self.scim_call(http, "scim: find user", "GET", "/Users", (200,),
                                   params={"filter": f'userName eq "{name}"'})
            if found is not None and found.json()["totalResults"] != 0:
                self.rec.errors.append(f"scim: find user: {name} exists before it was created")
            body = {"schemas": [CORE_USER, ENTERPRISE], "externalId": object_id, "userName": name, "active": True,
                    "displayName": f"Employee {i}", "emails": [{"primary": True, "type": "work", "value": name}],
                    "meta": {"resourceType": "User"}, "roles": [], "title": None,
                    "name": {"formatted": f"Employee {i}", "givenName": "Employee", "familyName": str(i)},
                    ENTERPRISE: {"department": f"Department {i % 7}", "employeeNumber": str(1000 + i)}}
            made = self.scim_call(http, "scim: create user", "POST", "/Users", (201,), json=body)
            if made is not None:
                self.users[i] = {"userName": name, "objectId": object_id, "id": made.json()["id"]}

        def group(g: int, members: list[str]) -> None:
            http, name = session(), f"Load group {g}"
            self.scim_call(http, "scim: find group", "GET", "/Groups", (200,),
                           params={"excludedAttributes": "members", "filter": f'displayName eq "{name}"'})
            made = self.scim_call(http, "scim: create group", "POST", "/Groups", (201,), json={
                "schemas": [CORE_GROUP, ENTRA_GROUP], "externalId": str(uuid.uuid4()), "displayName": name,
                "meta": {"resourceType": "Group"}})
            if made is None:
                return
            group_id = made.json()["id"]
            self.groups[group_id] = members
            for start in range(0, len(members), MEMBERS_PER_PATCH):
                chunk = members[start:start + MEMBERS_PER_PATCH]
                self.scim_call(http, "scim: add members", "PATCH", f"/Groups/{group_id}", (204,), json={
                    "schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "members",
                                                           "value": [{"$ref": None, "value": m} for m in chunk]}]})

        def update(i: int) -> None:
            user = self.users[i]
            self.scim_call(session(), "scim: update user", "PATCH", f"/Users/{user['id']}", (200, 204), json={
                "schemas": [PATCH_OP], "Operations": [
                    {"op": "replace", "value": {"displayName": f"Employee {i} (updated)", "name.givenName": "Updated",
                                                f"{ENTERPRISE}:department": f"Department {(i + 1) % 7}"}},
                    {"op": "replace", "path": 'emails[type eq "work"].value', "value": user["userName"]},
                    {"op": "replace", "path": "title", "value": "Engineer"}]})

        def deactivate(i: int) -> None:
            user = self.users[i]
            done = self.scim_call(session(), "scim: deactivate user", "PATCH", f"/Users/{user['id']}", (200, 204),
                                  json={"schemas": [PATCH_OP],
                                        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
            if done is not None:
                self.dismissed.append(user)

        n = self.args.users
        self.users = [None] * n  # type: ignore[list-item]
        with ThreadPoolExecutor(self.args.workers, thread_name_prefix=f"tenant{self.index}") as pool:
            list(pool.map(create, range(n)))
            self.users = [u for u in self.users if u]
            self.ready_for_sign_ins.set()
            ids = [u["id"] for u in self.users]
            groups = max(2, len(ids) // 50)
            list(pool.map(lambda g: group(g, ids[g::groups][:100]), range(groups)))
            # A tenth are dismissed; everyone else is updated.
            dismiss = set(range(0, len(self.users), 10))
            list(pool.map(update, [i for i in range(len(self.users)) if i not in dismiss]))
            list(pool.map(deactivate, sorted(dismiss)))
        self.scim_seconds = time.perf_counter() - started

    # -- employees signing in

    def sign_ins(self) -> None:
        self.ready_for_sign_ins.wait()
        http = requests.Session()
        active = [u for i, u in enumerate(self.users) if i % 10]
        for k in range(min(self.args.sign_ins, len(active))):
            user = active[(k * 7) % len(active)]
            while True:
                # A response is good for one sign-in: after a 503 the browser comes back with a new one.
                saml = self.idp.response(self.sp_entity_id, self.acs_url, user["userName"], user["objectId"])
                answer = self.rec.call("sso: ACS sign-in", http, "POST", self.acs_url, (302, 303),
                                       retry_outage=False, data={"SAMLResponse": saml})
                if answer is None or answer.status_code != 503:
                    break
                time.sleep(min(float(answer.headers.get("Retry-After") or 1), 2.0))
            session = _session_cookie(answer)
            if answer is not None and session is None:
                self.rec.errors.append("sso: ACS sign-in: accepted without a session cookie")
            if session:
                self.rec.call("sso: me", http, "GET", f"{self.base}/api/sso/{self.tenant_id}/me", (200,),
                              headers={"Cookie": f"{session[0]}={session[1]}"})

    def check_directory(self) -> list[str]:
        """After the run: the tenant's directory is what its job intended (read over SCIM, as Entra would)."""
        http, problems = requests.Session(), []

        def total(params: dict) -> int:
            response = http.get(f"{self.scim}/Users", params={**params, "count": 0}, headers=self.scim_headers,
                                timeout=ENTRA_TIMEOUT)
            return response.json()["totalResults"] if response.status_code == 200 else -1

        if (found := total({})) != self.args.users:
            problems.append(f"{self.tenant_id}: {found} employees, expected {self.args.users}")
        if (found := total({"filter": "active eq false"})) != len(self.dismissed):
            problems.append(f"{self.tenant_id}: {found} dismissed, expected {len(self.dismissed)}")
        for group_id, members in self.groups.items():
            response = http.get(f"{self.scim}/Groups/{group_id}", headers=self.scim_headers, timeout=ENTRA_TIMEOUT)
            have = sorted(m["value"] for m in response.json().get("members", [])) if response.ok else None
            if have != sorted(members):
                problems.append(f"{self.tenant_id}: group {group_id} has {len(have or [])} members, "
                                f"expected {len(members)}")
        return problems

    def dismissed_sign_ins(self) -> None:
        """After the cycle: dismissed employees are refused (a refusal is the expected answer here)."""
        http = requests.Session()
        for user in self.dismissed[:3]:
            saml = self.idp.response(self.sp_entity_id, self.acs_url, user["userName"], user["objectId"])
            self.rec.call("sso: ACS refused (dismissed)", http, "POST", self.acs_url, (403,),
                          data={"SAMLResponse": saml})


def _progress(recorder: Recorder, started: float, meter: CpuMeter, done_event: threading.Event,
              every: float = 60.0) -> None:
    """A line a minute on long runs, so a slow machine is not mistaken for a hung one, with what each process
    spent per request in that minute: shows who sets the pace and whether a cost grows as the data grows."""
    last_done, last_cpu = 0, meter.read()
    while not done_event.wait(every):
        done, errors, cpu = recorder.answered(), len(recorder.errors), meter.read()
        answered = done - last_done
        costs = ", ".join(f"{name} {(cpu[name] - last_cpu[name]) * 1000 / answered:.1f}"
                          for name in cpu if answered and cpu[name] is not None and last_cpu[name] is not None)
        print(f"  … {time.perf_counter() - started:.0f} s: {done} requests answered ({answered / every:.0f}/s in the "
              f"last minute; CPU ms per request: {costs}), {errors} errors", flush=True)
        last_done, last_cpu = done, cpu


def _outage(outage: Outage, recorder: Recorder, meter: CpuMeter, azurite: Azurite, probe: TenantLoad,
            phase_over: threading.Event) -> None:
    """Stop Azurite once enough requests are answered, start it again after the outage, and note when the app
    answers from storage again."""
    while recorder.answered() < outage.after_requests:
        if phase_over.wait(0.2):
            return
    meter.azurite_stopping()
    outage.began = time.perf_counter()
    azurite.stop()
    print(f"  … storage outage: Azurite stopped after {recorder.answered()} answers, for {outage.seconds:g} s",
          flush=True)
    time.sleep(outage.seconds)
    azurite.start()
    meter.azurite_started()
    http = requests.Session()
    while http.get(f"{probe.scim}/Users", params={"count": 0}, headers=probe.scim_headers,
                   timeout=ENTRA_TIMEOUT).status_code != 200:
        time.sleep(0.2)
    outage.ended = time.perf_counter()
    print(f"  … storage answers again {outage.ended - outage.began:.1f} s after it went away", flush=True)


def _after_outage(outage: Outage, recorder: Recorder, loads: list[TenantLoad], azurite: Azurite) -> None:
    """What the outage left: its answers, the consistency check of every partition, each tenant's directory."""
    if outage.began is None:
        recorder.errors.append("the outage never began: the run ended before --outage-after of its requests")
        return
    answers = ", ".join(f"{op} {n}" for op, n in sorted(outage.answers.items())) or "none"
    print(f"\nstorage outage of {outage.seconds:g} s: 503 answers with Retry-After meanwhile: {answers}; "
          f"the slowest took {outage.slowest_ms:.0f} ms")
    if not outage.answers:
        recorder.errors.append("no request met the outage")
    check = check_consistency({"TABLES_CONNECTION_STRING": azurite.connection_string, "TABLES_ENDPOINT": ""},
                              timeout=600)
    verdict = (check.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"consistency check of every tenant's partition (tools.check_consistency --all): {verdict}")
    if check.returncode != 0 or verdict != "0 problems":
        recorder.errors.append("consistency check: " + (check.stdout + check.stderr)[-1500:])
    problems = [problem for t in loads for problem in t.check_directory()]
    print(f"directories as each job intended (employees, dismissed, group members): "
          f"{'all ' + str(len(loads)) + ' tenants' if not problems else str(len(problems)) + ' differences'}")
    recorder.errors.extend(problems)


def _session_cookie(response: requests.Response | None) -> tuple[str, str] | None:
    if response is None:
        return None
    for header in response.raw.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if "session" in name:
            return name, rest.split(";")[0]
    return None


# ---- the run -----------------------------------------------------------------------------------------------

def start_app(location: Path, log: Path) -> tuple[Azurite, LocalHost]:
    azurite = Azurite(location)
    azurite.start()
    port = free_port()
    settings = {
        "TABLES_CONNECTION_STRING": azurite.connection_string, "TABLES_ENDPOINT": "",
        "PLATFORM_ADMIN_KEY": OPERATOR_KEY, "SESSION_SIGNING_KEY": "bench-" + uuid.uuid4().hex,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "DOMAIN_AUDIT_SCHEDULE": "0 0 3 * * *",
        "IDP_METADATA_REFRESH_SCHEDULE": "0 30 2 * * *", "ALLOW_PRIVATE_METADATA_URLS": "false",
        "MOBILE_IOS_BUNDLE_ID": "com.example.gatehouse", "MOBILE_ANDROID_PACKAGE_NAME": "com.example.gatehouse",
        "MOBILE_ANDROID_SIGNATURE_HASH": "2pmj9i4rSx0yEb/viWBYkE/ZQrk=", "PORT": str(port),
    }
    host = LocalHost(settings, log)
    host.start()
    return azurite, host


def report(recorder: Recorder, loads: list[TenantLoad], wall: float, rate: float) -> int:
    """Prints the table of operations and the per-tenant rates; returns how many timed requests there were."""
    print(f"\n{'operation':32} {'count':>7} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    timed = 0
    for op in sorted(recorder.latencies):
        samples = recorder.latencies[op]
        # Setup and the dismissed employees' attempts happen outside the timed phase: no throughput for them.
        untimed = op.startswith("admin:") or "refused" in op
        timed += 0 if untimed else len(samples)
        throughput = "-" if untimed else f"{len(samples) / wall:.1f}"
        print(f"{op:32} {len(samples):7d} {throughput:>8} {percentile(samples, .5):8.1f} "
              f"{percentile(samples, .95):8.1f} {percentile(samples, .99):8.1f}")
    print(f"{'all timed requests':32} {timed:7d} {timed / wall:8.1f}")
    rates = sorted(t.scim_requests / t.scim_seconds for t in loads if t.scim_seconds)
    line = (f"per-tenant SCIM rate, {len(loads)} tenants at once (requests/s over each tenant's cycle): "
            f"min {rates[0]:.1f}, median {statistics.median(rates):.1f}, max {rates[-1]:.1f}")
    if rate:
        line += f"; asked {rate:g}/s → min/asked = {rates[0] / rate:.2f}"
    print("\n" + line)
    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--sign-ins", type=int, default=50, help="per tenant")
    parser.add_argument("--rate", type=float, default=25.0, help="SCIM requests/s per tenant (0: unpaced)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent requests per tenant's job")
    parser.add_argument("--quick", action="store_true", help="3 tenants × 40 users × 10 sign-ins (a smoke run)")
    parser.add_argument("--keep-data", action="store_true", help="keep Azurite's data directory")
    parser.add_argument("--outage", type=float, default=0, help="stop Azurite for this many seconds mid-run")
    parser.add_argument("--outage-after", type=float, default=0.7,
                        help="share of the expected requests answered before the outage (default 0.7)")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.users, args.sign_ins = 3, 40, 10

    print(f"load: {args.tenants} tenants × {args.users} employees, {args.sign_ins} sign-ins each, "
          f"{args.workers} workers and {args.rate:g} SCIM requests/s per tenant; "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs", flush=True)
    data = Path(tempfile.mkdtemp(prefix="gatehouse-load-"))
    azurite, host = start_app(data / "azurite", data / "local-host.log")
    recorder = Recorder()
    if args.outage:
        # About three SCIM requests per employee (lookup, create, update) and two per sign-in (ACS, /me).
        expected = args.tenants * (3 * args.users + 2 * args.sign_ins)
        recorder.outage = Outage(args.outage, int(args.outage_after * expected))
    try:
        pid = host.process.pid
        idle_kib = memory_kib(pid, "VmRSS")
        loads = [TenantLoad(i, host.url, recorder, args) for i in range(args.tenants)]
        with ThreadPoolExecutor(min(args.tenants, 8)) as pool:
            list(pool.map(TenantLoad.setup, loads))
        if recorder.errors:
            raise SystemExit("setup failed:\n" + "\n".join(recorder.errors[:10]))
        meter = CpuMeter(pid, azurite)
        cpu_before = meter.read()
        started = time.perf_counter()
        phase_over = threading.Event()
        progress = threading.Thread(target=_progress, args=(recorder, started, meter, phase_over), daemon=True)
        progress.start()
        threads = [threading.Thread(target=t.provision, name=f"job{t.index}") for t in loads]
        threads += [threading.Thread(target=t.sign_ins, name=f"browser{t.index}") for t in loads]
        if recorder.outage:
            threads.append(threading.Thread(target=_outage, name="outage", args=(
                recorder.outage, recorder, meter, azurite, loads[0], phase_over)))
        for thread in threads:
            thread.start()
        for thread in threads[:2 * len(loads)]:
            thread.join()
        wall = time.perf_counter() - started
        phase_over.set()
        for thread in threads[2 * len(loads):]:
            thread.join()  # an outage still running ends before anything is checked
        cpu_used = meter.read()
        for t in loads:
            t.dismissed_sign_ins()
        timed = report(recorder, loads, wall, args.rate)
        if recorder.outage:
            _after_outage(recorder.outage, recorder, loads, azurite)
        if timed and all(v is not None for v in (*cpu_before.values(), *cpu_used.values())):
            # Who used the machine: tells whether the app, the storage emulator or the client set the pace,
            # and how many tenants at the asked rate these cores could carry at that cost per request.
            spent = {name: cpu_used[name] - cpu_before[name] for name in cpu_used}
            print(f"CPU time during the {wall:.0f} s phase on {os.cpu_count()} cores: "
                  + ", ".join(f"{name} {seconds:.0f} s ({seconds * 1000 / timed:.1f} ms per request)"
                              for name, seconds in spent.items()))
            per_request = sum(spent.values()) / timed
            capacity = (os.cpu_count() or 1) / per_request
            line = (f"this machine's capacity at that cost: {capacity:.0f} requests/s "
                    f"({sum(spent.values()) / wall / (os.cpu_count() or 1):.0%} of its CPU was busy)")
            if args.rate:
                needed = args.tenants * args.rate * per_request
                line += (f", {capacity / args.rate:.1f} tenants at {args.rate:g}/s; {args.tenants} tenants at "
                         f"{args.rate:g}/s need {args.tenants * args.rate:.0f} requests/s, {needed:.1f} cores here")
            print(line)
        if args.tenants > 1:
            # The same cycle for one more tenant with the app to itself and no pacing: the rate the app can give
            # one tenant's job when it is not sharing the machine (its headroom over the asked rate).
            solo = TenantLoad(args.tenants, host.url, Recorder(), argparse.Namespace(**{**vars(args), "rate": 0}))
            solo.setup()
            solo.provision()
            recorder.errors.extend(solo.rec.errors)
            solo_rate = solo.scim_requests / solo.scim_seconds
            print(f"per-tenant SCIM rate, one tenant alone and unpaced ({args.workers} workers): {solo_rate:.1f} "
                  "requests/s" + (f"; asked {args.rate:g}/s → alone/asked = {solo_rate / args.rate:.2f}"
                                  if args.rate else ""))
        peak_kib = memory_kib(pid, "VmHWM")
        if idle_kib and peak_kib:
            print(f"app process memory: idle {idle_kib / 1024:.0f} MiB after start, peak {peak_kib / 1024:.0f} MiB "
                  f"(VmHWM) during the run → peak/idle = {peak_kib / idle_kib:.2f}")
        print(f"wall time of the provisioning and sign-in phase: {wall:.1f} s")
    finally:
        host.stop()
        azurite.stop()
        if args.keep_data:
            print(f"data kept in {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)
    if recorder.errors:
        print(f"\n{len(recorder.errors)} ERRORS (expected none); the first ones:")
        for line in recorder.errors[:15]:
            print("  " + line)
        return 1
    print("errors: 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
