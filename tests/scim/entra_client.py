"""Entra's side of the SCIM conversation for the tests: a client over real HTTP, request bodies from
`fixtures/` (named after where their shape comes from) and the check of the RFC 7644 error shape."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import requests

FIXTURES = Path(__file__).parent / "fixtures"
SCIM_JSON = "application/scim+json"


def load(name: str, **values: str) -> Any:
    """A fixture with `{{placeholder}}`s replaced (values are JSON-escaped)."""
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", json.dumps(value)[1:-1])
    return json.loads(text)


class ScimClient:
    """Entra's side of the conversation: Bearer token, SCIM media type, the tenant URL as base."""

    def __init__(self, base: str, token: str, tenant):
        self.base = base
        self.token = token
        self.tenant = tenant
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "Accept": SCIM_JSON})

    def request(self, method: str, path: str, body: Any = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if body is not None:
            kwargs["data"] = json.dumps(body)
            headers = {"Content-Type": SCIM_JSON, **headers}
        return self.http.request(method, self.base + path, headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        return self.request("PUT", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        return self.request("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create_user(self, user_name: str | None = None, **extra: Any) -> dict:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name or f"{uuid.uuid4().hex[:10]}@contoso.example", "active": True, **extra}
        response = self.post("/Users", body)
        assert response.status_code == 201, response.text
        return response.json()

    def create_group(self, name: str | None = None, **extra: Any) -> dict:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": name or f"Group {uuid.uuid4().hex[:8]}", **extra}
        response = self.post("/Groups", body)
        assert response.status_code == 201, response.text
        return response.json()


def assert_scim_error(response: requests.Response, status: int, scim_type: str | None = None) -> dict:
    """The RFC 7644 §3.12 error shape, as application/scim+json."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(SCIM_JSON), response.headers
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    assert body.get("detail")
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body
