"""The OpenAPI document: served anonymously at /api/openapi.json, valid OpenAPI 3.1, free of secrets, and in
step with the app: every HTTP route the app registers is described (under its function's name as the
operationId) or deliberately excluded, and nothing is described that the app does not serve."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from shared_code import openapi

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# `app.get_functions()` may be called only once per FunctionApp, so the index is read in a fresh process.
_LIST_ROUTES = """
import json, function_app
routes = []
for function in function_app.app.get_functions():
    trigger = function.get_trigger()
    if getattr(trigger, "route", None) is None and type(trigger).__name__ != "HttpTrigger":
        continue
    methods = [getattr(m, "value", m).upper() for m in (trigger.methods or [])] or ["*"]
    routes.append({"name": function.get_function_name(), "route": trigger.route or function.get_function_name(),
                   "methods": methods})
print(json.dumps(routes))
"""


@pytest.fixture(scope="module")
def registered_routes(app_settings) -> list[dict]:
    result = subprocess.run([sys.executable, "-c", _LIST_ROUTES], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi.document("https://gatehouse.example")


def _excluded(route: str, method: str) -> bool:
    for (excluded_route, methods), _reason in openapi.EXCLUDED_ROUTES.items():
        if excluded_route == route and (methods == "*" or method in methods.split()):
            return True
    return False


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_every_registered_route_is_described_or_excluded(registered_routes, document):
    missing = []
    for function in registered_routes:
        for method in function["methods"]:
            if _excluded(function["route"], method):
                continue
            operation = document["paths"].get("/" + function["route"], {}).get(method.lower())
            if operation is None:
                missing.append(f"{method} /api/{function['route']} ({function['name']})")
            else:
                assert operation["operationId"] == function["name"], (method, function["route"])
    assert not missing, "describe these in shared_code/openapi.py or add them to EXCLUDED_ROUTES: " + \
        ", ".join(missing)


def test_nothing_is_described_that_the_app_does_not_serve(registered_routes, document):
    served = {("/" + f["route"], m.lower()) for f in registered_routes for m in f["methods"]}
    ghosts = [f"{method.upper()} {path}" for path, method, _ in _operations(document) if (path, method) not in served]
    assert not ghosts
    stale = [key for key in openapi.EXCLUDED_ROUTES if not any(f["route"] == key[0] for f in registered_routes)]
    assert not stale, f"EXCLUDED_ROUTES names routes the app no longer has: {stale}"


def test_document_is_valid_openapi_3_1_and_every_reference_resolves(document):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    OPENAPI_31_VALIDATOR.validate(document)

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target = document
                for part in ref.removeprefix("#/").split("/"):
                    assert part in target, f"unresolved {ref}"
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    operation_ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_operation_says_who_may_call_it_and_documents_refusals(document):
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["type"], s["scheme"]) for name, s in schemes.items()} == {
        "operatorKey": ("http", "bearer"), "adminKey": ("http", "bearer"), "scimToken": ("http", "bearer")}
    for path, method, operation in _operations(document):
        where = f"{method.upper()} {path}"
        security = [name for requirement in operation["security"] for name in requirement]
        responses = operation["responses"]
        if path.startswith("/scim/"):
            assert security == ["scimToken"], where
        if security:
            assert "401" in responses, where
        if "requestBody" in operation:
            assert "413" in responses or "400" in responses, where
        assert "500" not in responses, where
        assert any(status.startswith("2") for status in responses) or where.startswith("POST /scim/{tenant}/v2/.search")


def test_served_anonymously_with_no_secrets(app_url, app_settings):
    response = requests.get(f"{app_url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    served = response.json()
    assert served == openapi.document(app_settings["PUBLIC_BASE_URL"])
    assert served["servers"] == [{"url": f"{app_settings['PUBLIC_BASE_URL']}/api"}]
    for setting in ("PLATFORM_ADMIN_KEY", "SESSION_SIGNING_KEY", "TABLES_CONNECTION_STRING"):
        assert app_settings[setting] not in response.text
    assert "AccountKey" not in response.text

    again = requests.get(f"{app_url}/api/openapi.json", headers={"If-None-Match": response.headers["ETag"]},
                         timeout=30)
    assert again.status_code == 304 and not again.content
