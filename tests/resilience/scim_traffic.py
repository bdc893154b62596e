"""Entra's side of the resilience tests: a SCIM client that can claim any client address (`X-Forwarded-For`,
as Azure's front end sets it) and is safe to use from many threads, and Entra-shaped request bodies."""
from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import requests

SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class Scim:
    """Entra's side: Bearer token, SCIM media type, the tenant URL as base, one client address per instance
    (a fresh random one unless given, so tests do not share a failed-authentication budget)."""

    def __init__(self, base: str, token: str, address: str | None = None):
        self.base = base
        self.token = token
        self.address = address or f"198.51.100.{uuid.uuid4().int % 250 + 1}"
        self._local = threading.local()  # a Session per thread: tests call from many threads at once

    @property
    def http(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                address: str | None = None, timeout: float = 30, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", "Accept": SCIM_JSON,
                   "X-Forwarded-For": address or self.address, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            headers["Content-Type"] = SCIM_JSON
        return self.http.request(method, self.base + path, headers=headers, timeout=timeout, **kwargs)


def user_body(user_name: str, external_id: str, **extra: Any) -> dict:
    """A POST /Users as Entra's default mapping sends it."""
    return {"schemas": [USER, ENTERPRISE], "userName": user_name, "externalId": external_id, "active": True,
            "displayName": user_name.split("@")[0], "emails": [{"primary": True, "type": "work", "value": user_name}],
            "name": {"givenName": "Given", "familyName": "Family"}, **extra}


def group_body(name: str) -> dict:
    return {"schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "displayName": name, "externalId": str(uuid.uuid4()), "members": []}


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def add_members(*user_ids: str) -> dict:
    return patch_body({"op": "Add", "path": "members", "value": [{"$ref": None, "value": u} for u in user_ids]})
