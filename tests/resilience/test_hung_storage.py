"""A hung store: Azurite stopped with SIGSTOP in the middle of Entra's SCIM traffic and employees' sign-ins. The
kernel still accepts its connections, but nothing ever answers, so only a deadline on each request's storage
work (all attempts and retries together) turns the wait into an answer. Every answer meanwhile is a 503 with
Retry-After by that deadline (`tables.REQUEST_STORAGE_SECONDS`, 9 s, inside the 10 s after which Entra counts a
request as failed and quarantines a job that fails too often), in the endpoint's own shape; afterwards the
directory holds nothing half-written. The answer times are asserted against the code's deadline plus the
loaded-machine margin (tests/support/deadlines.py), not against the machine's speed.

Before the deadline, `GET /Users/{id}` took 60.5 s to answer: the client's 20 s read timeout times three
attempts. This module runs its own Azurite and local host, so the session's storage is never interrupted.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from scim_traffic import ERROR, Scim, patch_body, user_body

from shared_code.storage import tables
from tests.conftest import check_consistency, private_app
from tests.support import deadlines
from tests.support.idp import TestIdp

ENTRA_WAITS = 10.0  # seconds Entra's provisioning waits for an answer
ANSWER_WITHIN = deadlines.bound(tables.REQUEST_STORAGE_SECONDS)  # without the deadline: 60 s (the client's timeout)


def test_the_storage_deadline_leaves_room_in_entras_ten_seconds():
    assert tables.CALL_STORAGE_SECONDS <= tables.REQUEST_STORAGE_SECONDS < ENTRA_WAITS


@pytest.fixture(scope="module")
def hung(app_settings, test_output):
    with private_app(app_settings, test_output, "hung-storage") as app:
        yield app


@dataclass
class Answer:
    what: str
    started: float
    seconds: float
    response: requests.Response | None
    error: str | None = None


def test_a_hung_store_gives_every_endpoint_a_503_by_its_deadline_and_leaves_nothing_half_written(
        hung, operator_key):
    azurite, host, settings = hung
    base = host.url
    created = requests.post(f"{base}/api/tenants", json={"name": "Hung Corp", "app_url": "https://hung.example.com"},
                            headers={"Authorization": f"Bearer {operator_key}"}, timeout=30).json()
    tenant_id, admin = created["tenant_id"], {"Authorization": f"Bearer {created['admin_key']}"}
    token = requests.post(f"{base}/api/tenants/{tenant_id}/scim/token", headers=admin, timeout=30).json()["secret_token"]
    scim = Scim(f"{base}/api/scim/{tenant_id}/v2", token, address="52.0.0.2")
    idp = TestIdp()
    connected = requests.post(f"{base}/api/tenants/{tenant_id}/sso/idp-metadata", headers=admin, timeout=30,
                              json={"metadata_xml": idp.metadata_xml().decode()})
    assert connected.status_code == 200, connected.text
    ids = [scim.request("POST", "/Users", user_body(f"before{i}@hung.example", f"object-before-{i}")).json()["id"]
           for i in range(4)]

    frozen = threading.Event()
    answers: list[Answer] = []
    lock = threading.Lock()

    def send(what: str, method: str, url: str, **kwargs) -> None:
        started = time.monotonic()
        try:
            response, error = requests.request(method, url, allow_redirects=False, timeout=60, **kwargs), None
        except requests.RequestException as failure:
            response, error = None, repr(failure)
        with lock:
            answers.append(Answer(what, started, time.monotonic() - started, response, error))

    scim_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json",
                    "X-Forwarded-For": "52.0.0.2"}

    def traffic(n: int) -> None:
        """One Entra request or one employee sign-in; the mix covers reads, creates, updates and the ACS."""
        kind = n % 5
        if kind == 0:
            send("scim get", "GET", f"{scim.base}/Users/{ids[n % len(ids)]}", headers=scim_headers)
        elif kind == 1:
            import json
            send("scim create", "POST", f"{scim.base}/Users", headers=scim_headers,
                 data=json.dumps(user_body(f"during{n}@hung.example", f"object-during-{n}")))
        elif kind == 2:
            import json
            send("scim patch", "PATCH", f"{scim.base}/Users/{ids[n % len(ids)]}", headers=scim_headers,
                 data=json.dumps(patch_body({"op": "Replace", "path": "title", "value": f"Title {n}"})))
        elif kind == 3:
            saml = idp.response(created["sp_entity_id"], created["acs_url"], f"before{n % len(ids)}@hung.example",
                                f"object-before-{n % len(ids)}")
            send("acs", "POST", created["acs_url"], data={"SAMLResponse": saml})
        else:
            send("admin", "GET", f"{base}/api/tenants/{tenant_id}/sso", headers=admin)

    freeze_at = None
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(traffic, n) for n in range(10)]  # traffic in flight when the store hangs
        azurite.freeze()
        freeze_at = time.monotonic()
        frozen.set()
        try:
            futures += [pool.submit(traffic, n) for n in range(10, 40)]
            for future in futures:
                future.result()
        finally:
            thaw_at = time.monotonic()
            azurite.thaw()

    during = [a for a in answers if a.started >= freeze_at and a.started + a.seconds < thaw_at]
    assert {a.what for a in during} == {"scim get", "scim create", "scim patch", "acs", "admin"}
    for answer in answers:  # before, across and during the hang: never an answer later than the bound
        assert answer.response is not None, (answer.what, answer.error)
        assert answer.seconds < ANSWER_WITHIN, (answer.what, answer.seconds, answer.response.status_code)
    for answer in during:
        response = answer.response
        assert response.status_code == 503, (answer.what, response.status_code, response.text[:300])
        assert int(response.headers["Retry-After"]) > 0
        if answer.what.startswith("scim"):
            assert response.headers["Content-Type"].startswith("application/scim+json")
            assert response.json()["schemas"] == [ERROR] and response.json()["status"] == "503"
        elif answer.what == "acs":
            assert response.headers["Content-Type"].startswith("text/html")
            assert "Traceback" not in response.text and "Set-Cookie" not in response.headers
        else:
            assert response.json()["error"] == "storage_unavailable"

    # The store answers again: whatever was written while it hung was written whole.
    deadline = time.monotonic() + 30
    while scim.request("GET", "/Users?count=1").status_code != 200:
        assert time.monotonic() < deadline, "storage did not answer again"
        time.sleep(0.2)
    check = check_consistency(settings)
    assert check.returncode == 0 and check.stdout.splitlines()[-1] == "0 problems", check.stdout + check.stderr
