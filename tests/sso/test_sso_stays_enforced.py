"""Rules of the contract about enforced SSO, over HTTP: once enabled for all, no tenant-admin call turns SSO
off (cancel is refused, and so is every other admin route, whatever it is sent); only the operator's
`POST …/sso/disable` does, and its answer says what it did. An employee whose email was outside the corporate
domains and was fixed by the admin signs in once SSO is enforced."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT
from tests.sso.conftest import assert_refused, session_of
from tests.sso.test_who_may_sign_in import _enforce_sso
from tests.test_setup_access import issue_link, open_session, token_of

_LIST_ROUTES = """
import json, function_app
routes = []
for function in function_app.app.get_functions():
    trigger = function.get_trigger()
    if getattr(trigger, "type", "") == "httpTrigger":
        methods = [str(getattr(m, "value", m)).upper() for m in (trigger.methods or [])]
        routes.append({"route": trigger.route, "methods": methods or ["GET", "POST", "PUT", "PATCH", "DELETE"]})
print(json.dumps(routes))
"""

# What a tenant admin might send to any route hoping to switch SSO off.
SWITCH_OFF_BODIES = [
    {"status": "draft"},
    {"status": "testing", "enabled": False, "sso": "off", "enforced": False, "sso_enabled": False},
    {"domains": [], "department": "x", "email": "someone@elsewhere.example", "action": "disable"},
]


def _sso_status(sso) -> str:
    response = sso.handle.api("GET", "sso")
    assert response.status_code == 200, response.text
    return response.json()["status"]


def test_cancel_is_refused_once_sso_is_enabled_and_sso_stays_enforced(sso, alice, operator_key):
    outsider = sso.provision("omar@outside.example.org")
    _enforce_sso(sso, alice, ["acme.example.com"])
    response = sso.handle.api("POST", "sso/cancel")
    assert response.status_code == 409, response.text
    assert "only the operator" in response.json()["message"]
    # The setup wizard's session (the other way a tenant admin acts) is refused the same way.
    browser, opened = open_session(sso.base_url, sso.tenant_id,
                                   token_of(issue_link(sso.base_url, operator_key, sso.tenant_id)))
    assert opened.status_code == 201, opened.text
    from_wizard = browser.post(f"{sso.base_url}/api/tenants/{sso.tenant_id}/sso/cancel", timeout=30,
                               headers={"X-CSRF-Token": opened.json()["csrf_token"]})
    assert from_wizard.status_code == 409 and "only the operator" in from_wizard.json()["message"], from_wizard.text
    assert _sso_status(sso) == "enabled"
    assert_refused(sso.answer_login(outsider), 403, "not a corporate domain")


def test_no_tenant_admin_route_turns_an_enabled_sso_off(sso, alice, app_settings):
    """Every state-changing route under /api/tenants/{tenant}/ the app registers (read from the app, so a
    route added later is covered), called with the tenant admin's key and each body above."""
    listing = subprocess.run([sys.executable, "-c", _LIST_ROUTES], cwd=ROOT, env={**os.environ, **app_settings},
                             capture_output=True, text=True, timeout=60, check=True)
    routes = [(method, r["route"]) for r in json.loads(listing.stdout) for method in r["methods"]
              if re.match(r"tenants/\{tenant\}/", r["route"] or "") and method != "GET"]
    assert ("POST", "tenants/{tenant}/sso/cancel") in routes and ("POST", "tenants/{tenant}/sso/disable") in routes
    _enforce_sso(sso, alice, ["acme.example.com"])
    employee_id = alice["id"]
    tried = []
    for number, (method, route) in enumerate(routes):
        path = re.sub(r"\{id[^}]*\}", employee_id, route.removeprefix("tenants/{tenant}/"))
        path = re.sub(r"\{[^}]+\}", "x", path)
        # The admin key on an operator route is a failed operator authentication: one client address per route,
        # so that as routes are added this test neither meets the per-client limit (a 429 would try nothing)
        # nor leaves the suite's own address ("unknown") refused for the next minute.
        client = {"X-Forwarded-For": f"203.0.113.{number % 250 + 1}"}
        for body in SWITCH_OFF_BODIES:
            response = sso.handle.api(method, path, json=body, headers=client)
            assert response.status_code < 500, (method, path, response.status_code, response.text)
            status = _sso_status(sso)
            assert status == "enabled", (method, path, body, response.status_code, response.text, status)
            tried.append((method, path, response.status_code))
    assert len(tried) >= 3 * len(SWITCH_OFF_BODIES), tried


def test_the_operator_disables_sso_and_the_answer_says_what_it_did(sso, alice, operator_key):
    outsider = sso.provision("olivia@outside.example.org")
    _enforce_sso(sso, alice, ["acme.example.com"])
    url = f"{sso.base_url}/api/tenants/{sso.tenant_id}/sso/disable"
    assert requests.post(url, headers=sso.handle.admin_headers, timeout=30).status_code in (401, 403)
    assert _sso_status(sso) == "enabled"

    response = requests.post(url, headers={"Authorization": f"Bearer {operator_key}"}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["disabled"], body["previous_status"], body["status"]) == (True, "enabled", "testing")
    assert "no longer enforced" in body["message"] and "testing" in body["message"]
    assert _sso_status(sso) == "testing"
    assert sso.answer_login(outsider).status_code == 303  # the domain rule is no longer enforced

    again = requests.post(url, headers={"Authorization": f"Bearer {operator_key}"}, timeout=30).json()
    assert (again["disabled"], again["previous_status"], again["status"]) == (False, "testing", "testing")
    assert again["message"].startswith("Nothing changed")


@pytest.mark.parametrize("how", ["admin fixes the email", "Entra sends the new email"])
def test_an_employee_whose_outside_email_was_fixed_signs_in_once_sso_is_enforced(sso, alice, how):
    olga = sso.provision("olga@acme.example.com", email="olga@gmail.com")
    _enforce_sso(sso, alice, ["acme.example.com"])
    assert_refused(sso.answer_login(olga), 403, "not a corporate domain")
    audit = sso.handle.api("POST", "domain-audit")
    assert audit.status_code in (200, 201), audit.text
    assert "olga@gmail.com" in audit.text

    if how == "admin fixes the email":
        fixed = sso.handle.api("PATCH", f"employees/{olga['id']}", json={"email": "olga@acme.example.com"})
        assert fixed.status_code == 200, fixed.text
    else:
        fixed = sso.http.patch(
            f"{sso.handle.scim_url}/Users/{olga['id']}", timeout=30,
            json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "replace", "path": 'emails[type eq "work"].value', "value": "olga@acme.example.com"}]},
            headers={"Authorization": f"Bearer {sso._scim_token}", "Content-Type": "application/scim+json"})
        assert fixed.status_code in (200, 204), fixed.text

    response = sso.answer_login(olga)
    assert response.status_code == 303, response.text
    assert sso.me(session_of(response)).json()["userName"] == olga["userName"]
    assert "olga@gmail.com" not in sso.handle.api("POST", "domain-audit").text
