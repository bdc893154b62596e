"""Fixtures for the mobile token exchange: a tenant connected to its own Entra tenant (federation metadata from a
TestIdp, so the Entra tenant id is learned as in production), its MSAL configuration pasted (the app registration's
client_id), employees provisioned over SCIM with externalId = Entra objectId, and the Entra stand-in minting their
ID tokens."""
from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest
import requests

from tests.support.idp import TestIdp

SCIM_JSON = "application/scim+json"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


class MobileTenant:
    def __init__(self, handle, entra, app_settings):
        self.handle = handle
        self.tenant_id = handle.tenant_id
        self.entra = entra
        self.idp = TestIdp(key_label="token-exchange-tests")
        self.entra_tenant_id = self.idp.entra_tenant_id
        self.client_id = str(uuid.uuid4())
        response = handle.api("POST", "sso/idp-metadata", json={"metadata_xml": self.idp.metadata_xml().decode()})
        assert response.status_code == 200, response.text
        package = app_settings["MOBILE_ANDROID_PACKAGE_NAME"]
        signature = app_settings["MOBILE_ANDROID_SIGNATURE_HASH"]
        self.msal = {"client_id": self.client_id, "authorization_user_agent": "DEFAULT",
                     "redirect_uri": f"msauth://{package}/{quote(signature, safe='')}",
                     "broker_redirect_uri_registered": True,
                     "authorities": [{"type": "AAD", "audience": {"type": "AzureADMyOrg",
                                                                  "tenant_id": self.entra_tenant_id}}]}
        response = handle.api("PUT", "mobile", json={"msal_configuration": self.msal,
                                                     "ios_redirect_uri": f"msauth.{app_settings['MOBILE_IOS_BUNDLE_ID']}://auth"})
        assert response.status_code == 200, response.text
        self._scim_token = handle.scim_token()

    def provision(self, user_name: str | None = None, *, active: bool = True) -> dict:
        """An employee as Entra provisions one: externalId = objectId (a fresh GUID)."""
        user_name = user_name or f"{uuid.uuid4().hex[:10]}@acme.example.com"
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": active,
                "displayName": "Alice Example", "externalId": str(uuid.uuid4()),
                "emails": [{"value": user_name, "type": "work", "primary": True}]}
        response = requests.post(f"{self.handle.scim_url}/Users", json=body, timeout=30, headers={
            "Authorization": f"Bearer {self._scim_token}", "Content-Type": SCIM_JSON})
        assert response.status_code == 201, response.text
        return response.json()

    def set_active(self, user: dict, active: bool) -> None:
        response = requests.patch(f"{self.handle.scim_url}/Users/{user['id']}", timeout=30, json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": active}]},
            headers={"Authorization": f"Bearer {self._scim_token}", "Content-Type": SCIM_JSON})
        assert response.status_code in (200, 204), response.text

    def id_token(self, user_or_oid, /, **options) -> str:
        """A genuine Entra ID token for this tenant's app registration, about an employee (or a bare oid)."""
        oid = user_or_oid["externalId"] if isinstance(user_or_oid, dict) else user_or_oid
        return self.entra.id_token(self.entra_tenant_id, self.client_id, oid, **options)

    def form(self, subject_token: str, **extra) -> dict[str, str]:
        return {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token,
                "subject_token_type": ID_TOKEN_TYPE, **extra}


@pytest.fixture
def mobile(new_tenant, entra_stand_in, app_settings) -> MobileTenant:
    return MobileTenant(new_tenant("Acme Mobile", "https://acme.example.com"), entra_stand_in, app_settings)


@pytest.fixture
def alice(mobile: MobileTenant) -> dict:
    return mobile.provision("alice@acme.example.com")
