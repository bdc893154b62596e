"""A Table Storage outage in the middle of Entra's provisioning: while storage is down every endpoint answers
an honest, fast 503 with Retry-After in its own flavour (SCIM error, JSON, HTML page) and never a 500; once it
is back the directory is consistent, and replaying what failed, as Entra does, converges to exactly the
intended directory.

This module runs its own Azurite (on disk, so its data outlives the restart) and its own local host, so the
session's storage is never interrupted.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests
from scim_traffic import ERROR, Scim, add_members, group_body, patch_body, user_body

from shared_code.storage import tables
from tests.conftest import Azurite, LocalHost, check_consistency, private_app
from tests.support import deadlines
from tests.support.idp import TestIdp
from tests.support.waiting import wait_until

USERS = 24
GROUPS = 3
STOP_AFTER = 8  # employees fully provisioned before storage goes away
# No request may hang while storage is down: each ends by the storage deadline the code gives a request
# (plus the loaded-machine margin of tests/support/deadlines.py); a refused connection usually ends it at once.
FAST = deadlines.bound(tables.REQUEST_STORAGE_SECONDS)


@dataclass
class Outage:
    azurite: Azurite
    host: LocalHost
    settings: dict[str, str]


@pytest.fixture(scope="module")
def outage(app_settings, test_output):
    with private_app(app_settings, test_output, "outage") as app:
        yield Outage(*app)


# --- Entra's side ---------------------------------------------------------------------------------------------------

@dataclass
class Failure:
    employee: int
    step: str
    method: str
    path: str
    body: dict | None
    status: int | None
    seconds: float


class EntraJob:
    """Provisions employee i as Entra does: match by userName, create if missing, update, add to its group.
    A failed request ends that employee's turn (Entra escrows it and retries it in a later cycle)."""

    def __init__(self, scim: Scim, groups: list[str]):
        self.scim, self.groups = scim, groups
        self.ids: dict[int, str] = {}
        self.failures: list[Failure] = []
        self.outage_answers: list[tuple[int, float, requests.Response]] = []
        self.done = 0
        self.storage_down = threading.Event()
        self._lock = threading.Lock()

    @staticmethod
    def user_name(i: int) -> str:
        return f"employee{i:02d}@contoso.example"

    @staticmethod
    def create_body(i: int) -> dict:
        return user_body(EntraJob.user_name(i), f"object-{i:02d}")

    @staticmethod
    def update_body(i: int) -> dict:
        return patch_body({"op": "Replace", "path": "title", "value": f"Title {i}"},
                          {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": f"+1 555 01{i:02d}"})

    def send(self, i: int, step: str, method: str, path: str, body: dict | None = None) -> requests.Response | None:
        started = time.monotonic()
        try:
            response = self.scim.request(method, path, body, timeout=60)
        except requests.RequestException:
            response = None
        seconds = time.monotonic() - started
        if response is not None and response.status_code < 300:
            return response
        with self._lock:
            self.failures.append(Failure(i, step, method, path, body, getattr(response, "status_code", None), seconds))
            if self.storage_down.is_set() and response is not None:
                self.outage_answers.append((i, seconds, response))
        return None

    def provision(self, i: int, start: str = "match") -> bool:
        steps = ["match", "create", "update", "group"]
        for step in steps[steps.index(start):]:
            if step == "match":
                found = self.send(i, step, "GET", "/Users?filter=" + quote(f'userName eq "{self.user_name(i)}"'))
                if found is None:
                    return False
                resources = found.json()["Resources"]
                if resources:
                    self.ids[i] = resources[0]["id"]
            elif step == "create" and i not in self.ids:
                created = self.send(i, step, "POST", "/Users", self.create_body(i))
                if created is None:
                    return False
                self.ids[i] = created.json()["id"]
            elif step == "update":
                if self.send(i, step, "PATCH", f"/Users/{self.ids[i]}", self.update_body(i)) is None:
                    return False
            elif step == "group":
                if self.send(i, step, "PATCH", f"/Groups/{self.groups[i % GROUPS]}", add_members(self.ids[i])) is None:
                    return False
        with self._lock:
            self.done += 1
        return True

    def replay(self, failure: Failure) -> None:
        """Entra's next cycle for an escrowed employee: the failed request again, then the rest of its turn."""
        response = self.scim.request(failure.method, failure.path, failure.body)
        assert response.status_code in (200, 201, 204), (failure, response.status_code, response.text)
        if failure.step == "match":
            resources = response.json()["Resources"]
            if resources:
                self.ids[failure.employee] = resources[0]["id"]
            following = "create"
        elif failure.step == "create":
            self.ids[failure.employee] = response.json()["id"]
            following = "update"
        else:
            following = {"update": "group", "group": None}[failure.step]
        if following:
            assert self.provision(failure.employee, following), self.failures[-1]


# --- the test ---------------------------------------------------------------------------------------------------------

def test_storage_outage_during_provisioning_answers_503_everywhere_and_a_replay_converges(outage, operator_key):
    base = outage.host.url
    created = requests.post(f"{base}/api/tenants", json={"name": "Outage Corp", "app_url": "https://outage.example.com"},
                            headers={"Authorization": f"Bearer {operator_key}"}, timeout=30).json()
    tenant_id, admin = created["tenant_id"], {"Authorization": f"Bearer {created['admin_key']}"}
    token = requests.post(f"{base}/api/tenants/{tenant_id}/scim/token", headers=admin, timeout=30).json()["secret_token"]
    scim = Scim(f"{base}/api/scim/{tenant_id}/v2", token, address="52.0.0.1")

    # Sign-in set up before the outage, so the ACS gets a genuine signed response (it must read the tenant).
    idp = TestIdp()
    connected = requests.post(f"{base}/api/tenants/{tenant_id}/sso/idp-metadata", headers=admin, timeout=30,
                              json={"metadata_xml": idp.metadata_xml().decode()})
    assert connected.status_code == 200 and connected.json()["connection"] == "established", connected.text
    groups = [scim.request("POST", "/Groups", group_body(f"Department {g}")).json()["id"] for g in range(GROUPS)]
    job = EntraJob(scim, groups)

    with ThreadPoolExecutor(4) as pool:
        results = pool.map(job.provision, range(USERS))
        wait_until(lambda: job.done >= STOP_AFTER, 60, f"{STOP_AFTER} employees provisioned")
        job.storage_down.set()
        outage.azurite.stop()

        # While storage is down: SCIM, the admin API and the ACS each answer 503 in their own shape, fast.
        started = time.monotonic()
        scim_answer = scim.request("GET", "/Users")
        admin_answer = requests.get(f"{base}/api/tenants/{tenant_id}/sso", headers=admin, timeout=30)
        saml = idp.response(created["sp_entity_id"], created["acs_url"], job.user_name(0), "object-00")
        acs_answer = requests.post(created["acs_url"], data={"SAMLResponse": saml}, allow_redirects=False, timeout=30)
        probes_took = time.monotonic() - started
        list(results)

    assert scim_answer.status_code == 503 and int(scim_answer.headers["Retry-After"]) > 0
    assert scim_answer.headers["Content-Type"].startswith("application/scim+json")
    assert scim_answer.json()["schemas"] == [ERROR] and scim_answer.json()["status"] == "503"
    assert admin_answer.status_code == 503 and admin_answer.headers["Retry-After"]
    assert admin_answer.json()["error"] == "storage_unavailable"
    assert acs_answer.status_code == 503, acs_answer.text[:500]
    assert acs_answer.headers["Content-Type"].startswith("text/html")
    assert "Traceback" not in acs_answer.text and "Set-Cookie" not in acs_answer.headers
    assert probes_took < deadlines.bound(3 * tables.REQUEST_STORAGE_SECONDS)  # three requests, one after another
    assert job.outage_answers, "no provisioning request met the outage"
    for employee, seconds, response in job.outage_answers:
        assert response.status_code == 503, (employee, response.status_code, response.text)
        assert response.headers.get("Retry-After") and response.json()["schemas"] == [ERROR]
        assert seconds < FAST, (employee, seconds)
    assert STOP_AFTER <= job.done < USERS

    # Storage is back: the directory is consistent before anyone repairs anything.
    outage.azurite.start()
    wait_until(lambda: scim.request("GET", "/Users?count=1").status_code == 200, 30, "storage to answer again")
    check = check_consistency(outage.settings)
    assert check.returncode == 0 and check.stdout.splitlines()[-1] == "0 problems", check.stdout + check.stderr

    # Entra's retry of a create whose answer it never got (the first employee's) finds the same employee ...
    again = scim.request("POST", "/Users", job.create_body(0))
    assert again.status_code == 201 and again.json()["id"] == job.ids[0]
    # ... and its next cycle replays every escrowed employee, then compares everyone again.
    escrowed, job.failures = job.failures, []
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(job.replay, escrowed))
        assert job.failures == []
        assert all(pool.map(job.provision, range(USERS))), job.failures

    users = scim.request("GET", "/Users?count=1000").json()
    assert users["totalResults"] == USERS
    assert sorted(u["userName"] for u in users["Resources"]) == [job.user_name(i) for i in range(USERS)]
    for user in users["Resources"]:
        i = int(user["userName"][8:10])
        assert user["id"] == job.ids[i] and user["externalId"] == f"object-{i:02d}"
        assert user["title"] == f"Title {i}"
        assert user["phoneNumbers"] == [{"type": "work", "value": f"+1 555 01{i:02d}"}]
    for g, group_id in enumerate(groups):
        members = sorted(m["value"] for m in scim.request("GET", f"/Groups/{group_id}").json()["members"])
        assert members == sorted(job.ids[i] for i in range(USERS) if i % GROUPS == g)
    check = check_consistency(outage.settings)
    assert check.returncode == 0 and check.stdout.splitlines()[-1] == "0 problems", check.stdout + check.stderr
