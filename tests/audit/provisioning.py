"""Helpers for the audit tests: Entra's provisioning client over SCIM, and running the domain audit on demand
or by the timer (then polling for its result) over real HTTP."""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import requests

from tools.simulate_entra import CORE_USER, ENTERPRISE_USER, PATCH_OP, SCIM_JSON, EntraProvisioning  # noqa: F401


class Entra:
    """Microsoft Entra's provisioning client for one tenant: creates, disables and enables employees over SCIM
    with the request shapes Entra sends (objectId as externalId, Replace of `active` with "False"/"True").
    The requests are `tools.simulate_entra.EntraProvisioning`'s, the same that `make demo` sends."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.client = EntraProvisioning(tenant.scim_url, tenant.scim_token())

    def provision(self, email: str | None, *, user_name: str | None = None, name: str | None = None,
                  object_id: str | None = "generate", active: bool = True) -> dict:
        """Create an employee. `email=None` sends no emails (the audit then judges the userName);
        `object_id=None` sends no externalId (an employee not provisioned by Entra), by default a new GUID."""
        body: dict[str, Any] = {"schemas": [CORE_USER, ENTERPRISE_USER], "userName": user_name or email,
                                "active": active, "displayName": name or (user_name or email).split("@")[0].title()}
        if object_id is not None:
            body["externalId"] = str(uuid.uuid4()) if object_id == "generate" else object_id
        if email is not None:
            body["emails"] = [{"primary": True, "type": "work", "value": email}]
        response = self.client.create_user(body)
        assert response.status_code == 201, response.text
        return response.json()

    def set_active(self, user_id: str, active: bool) -> dict:
        response = self.client.set_active(user_id, active)
        assert response.status_code in (200, 204), response.text
        return self.user(user_id)

    def dismiss(self, user_id: str) -> dict:
        return self.set_active(user_id, False)

    def rehire(self, user_id: str) -> dict:
        return self.set_active(user_id, True)

    def user(self, user_id: str) -> dict:
        return self.client.get_user(user_id).json()


def set_domains(tenant, *domains: str, include_subdomains: bool = False) -> dict:
    response = tenant.api("PUT", "domains", json={"domains": list(domains), "include_subdomains": include_subdomains})
    assert response.status_code == 200, response.text
    return response.json()


def audit_now(tenant) -> dict:
    response = tenant.api("POST", "domain-audit")
    assert response.status_code == 200, response.text
    return response.json()


def outside_emails(run: dict) -> list[str]:
    return [entry["email"] for entry in run["outside"]]


def run_timer(app_url: str) -> None:
    response = requests.post(f"{app_url}/admin/functions/domain_audit_timer", json={"input": ""}, timeout=10)
    assert response.status_code == 202, response.text


def wait_for_run(tenant, done: Callable[[dict], bool], timeout: float = 120) -> dict:
    """Poll GET …/domain-audit until `done(latest)`; the timer answers 202 and works in the background."""
    deadline = time.monotonic() + timeout
    latest: dict = {}
    while time.monotonic() < deadline:
        response = tenant.api("GET", "domain-audit")
        assert response.status_code == 200, response.text
        latest = response.json()
        if done(latest):
            return latest
        time.sleep(0.2)
    raise AssertionError(f"no such run within {timeout}s; latest: {latest}")


def newer_timer_run(after: dict | None, *, finished: bool = True) -> Callable[[dict], bool]:
    """A run by the timer, other than `after`, finished (complete or failed) unless told otherwise."""
    previous = (after or {}).get("run_id")

    def check(latest: dict) -> bool:
        return (latest.get("trigger") == "timer" and latest.get("run_id") != previous
                and (not finished or latest.get("status") in ("complete", "failed")))
    return check
