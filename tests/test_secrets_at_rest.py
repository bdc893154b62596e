"""The contract's rule on secrets, checked in the store itself: the admin key, the SCIM token, setup tokens
and every secret added later are kept only as hashes (or encrypted where the service must use them), never
in the clear. A tenant goes through every flow that creates or uses a secret over HTTP, then every row of
every table is read back from Azurite and searched for each secret the test obtained.

A new kind of secret is one line in SECRETS: a name and how to obtain it over HTTP (e.g. an OIDC client
secret, a webhook signing secret).
"""
from __future__ import annotations

from typing import Callable

import pytest
import requests

from tests.conftest import TenantHandle
from tests.support.secrets_at_rest import findings, spellings
from tests.test_setup_access import issue_link, open_session, token_of


class Flows:
    """One tenant, and the calls that hand out secrets (each also used once, so a row written on use counts)."""

    def __init__(self, tenant: TenantHandle, app_url: str, operator_key: str):
        self.tenant, self.app_url, self.operator_key = tenant, app_url, operator_key

    def operator(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.app_url}/api/tenants/{self.tenant.tenant_id}/{path}", timeout=30,
                                headers={"Authorization": f"Bearer {self.operator_key}"}, **kwargs)

    def admin_key(self) -> str:
        assert self.tenant.api("GET", "sso").status_code == 200  # used
        return self.tenant.admin_key

    def scim_token(self) -> str:
        token = self.tenant.scim_token()
        used = requests.get(f"{self.tenant.scim_url}/Users", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert used.status_code == 200, used.text
        return token

    def setup_token(self) -> str:
        return token_of(issue_link(self.app_url, self.operator_key, self.tenant.tenant_id))

    def wizard_session(self) -> str:
        browser, response = open_session(self.app_url, self.tenant.tenant_id, self.setup_token())
        assert response.status_code == 201, response.text
        (cookie,) = [c for c in browser.cookies if c.value]
        return cookie.value

    def oidc_client_secret(self) -> str:
        registered = self.operator("POST", "oidc/clients", json={"redirect_uris": ["https://product.example.com/cb"]})
        assert registered.status_code == 201, registered.text
        self._client = registered.json()
        return self._used_client_secret(self._client["client_secret"])

    def rotated_oidc_client_secret(self) -> str:
        rotated = self.operator("POST", f"oidc/clients/{self._client['client_id']}/secret")
        assert rotated.status_code in (200, 201), rotated.text
        return self._used_client_secret(rotated.json()["client_secret"])

    def _used_client_secret(self, secret: str) -> str:
        """Authenticates at the token endpoint (the code is unknown: `invalid_grant`, after the secret was checked)."""
        answer = requests.post(f"{self.app_url}/api/oidc/{self.tenant.tenant_id}/token", timeout=30,
                               auth=(self._client["client_id"], secret),
                               data={"grant_type": "authorization_code", "code": "x" * 43, "code_verifier": "v" * 43,
                                     "redirect_uri": "https://product.example.com/cb"})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
        return secret

    def previous_webhook_secret(self) -> str:
        """The first webhook secret, then rotated: it keeps signing for 24 h as the previous secret."""
        first = self.operator("PUT", "webhook", json={"url": "http://127.0.0.1:9/gatehouse-events"})
        assert first.status_code == 200, first.text
        rotated = self.operator("POST", "webhook/rotate-secret")
        assert rotated.status_code == 200 and rotated.json()["previous_secret_expires_at"], rotated.text
        self._webhook_secret = rotated.json()["secret"]
        assert self.operator("POST", "webhook/test").status_code == 200  # signs with both
        return first.json()["secret"]

    def webhook_secret(self) -> str:
        return self._webhook_secret

    def rotated_admin_key(self) -> str:
        """Last: the tenant's earlier admin key stops working."""
        rotated = requests.post(f"{self.app_url}/api/tenants/{self.tenant.tenant_id}/admin-key", timeout=30,
                                headers={"Authorization": f"Bearer {self.operator_key}"})
        assert rotated.status_code == 201, rotated.text
        key = rotated.json()["admin_key"]
        used = requests.get(f"{self.app_url}/api/tenants/{self.tenant.tenant_id}/sso", timeout=30,
                            headers={"Authorization": f"Bearer {key}"})
        assert used.status_code == 200, used.text
        return key


# (what, how to obtain it over HTTP). Add a line for every new kind of secret.
SECRETS: list[tuple[str, Callable[[Flows], str]]] = [
    ("tenant admin key", Flows.admin_key),
    ("SCIM secret token", Flows.scim_token),
    ("an unused setup-link token", Flows.setup_token),
    ("a setup-wizard session cookie", Flows.wizard_session),
    ("OIDC client secret", Flows.oidc_client_secret),
    ("rotated OIDC client secret", Flows.rotated_oidc_client_secret),
    ("previous webhook signing secret", Flows.previous_webhook_secret),
    ("webhook signing secret", Flows.webhook_secret),
    ("rotated tenant admin key", Flows.rotated_admin_key),  # last: it replaces the admin key the others use
]


@pytest.fixture
def flows(new_tenant, app_url, operator_key) -> Flows:
    return Flows(new_tenant("Secrets Inc"), app_url, operator_key)


def test_no_secret_is_stored_in_the_clear(flows, app_settings):
    secrets = {what: obtain(flows) for what, obtain in SECRETS}
    secrets.update({"PLATFORM_ADMIN_KEY": app_settings["PLATFORM_ADMIN_KEY"],
                    "SESSION_SIGNING_KEY": app_settings["SESSION_SIGNING_KEY"]})
    assert all(len(secret) >= 16 for secret in secrets.values()), secrets
    assert findings(secrets, app_settings["TABLES_CONNECTION_STRING"]) == []


def test_the_search_finds_a_secret_written_in_the_clear(flows, app_settings):
    """The check above can fail: a value written as a plain column is found in each spelling."""
    from azure.data.tables import TableClient

    planted = "gh_planted_" + flows.tenant.tenant_id
    client = TableClient.from_connection_string(app_settings["TABLES_CONNECTION_STRING"], "plantedsecrets")
    client.create_table()
    try:
        for how, text in spellings(planted).items():
            client.create_entity({"PartitionKey": flows.tenant.tenant_id, "RowKey": how.replace(" ", "-"),
                                  "value": text})
        found = findings({"planted": planted}, app_settings["TABLES_CONNECTION_STRING"])
        rows_found = {finding.rsplit("/", 1)[1].split(".")[0] for finding in found}
        assert rows_found == {how.replace(" ", "-") for how in spellings(planted)}, found
    finally:
        client.delete_table()
