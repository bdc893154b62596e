"""The OpenAPI document: served anonymously at /api/openapi.json, valid OpenAPI 3.1, free of secrets, and in
step with the app: every HTTP function the app registers declares its operation beside its route (`@describe`),
each method is described (under the function's name as the operationId) or excluded with a reason, and nothing is
described that the app does not serve."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from shared_code.openapi import document as openapi
from shared_code.openapi.operations import Operation, json_body, models
from tests.support import openapi as described

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# `app.get_functions()` may be called only once per FunctionApp, so the app's own functions are read in a fresh
# process (as the document reads them: `endpoints`), with what each declares about each of its methods (None: it
# declared nothing).
_LIST_ROUTES = """
import json, function_app
from functions._openapi import endpoints
print(json.dumps([
    {"name": e.name, "route": e.route, "methods": list(e.methods),
     "excluded": None if e.operation is None else {m: e.operation.why_excluded(m) for m in e.methods}}
    for e in endpoints(function_app.app)]))
"""


@pytest.fixture(scope="module")
def registered_routes(app_settings) -> list[dict]:
    result = subprocess.run([sys.executable, "-c", _LIST_ROUTES], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def document() -> dict:
    return described.document("https://gatehouse.example")


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_every_registered_http_function_declares_its_operation(registered_routes):
    # Without the document: building it refuses a function that declared nothing, which would error the fixture.
    undeclared = [f"{f['name']} (/api/{f['route']})" for f in registered_routes if f["excluded"] is None]
    assert not undeclared, "declare these with @describe(...) beside their @bp.route: " + ", ".join(undeclared)


def test_every_registered_route_is_described_or_excluded(registered_routes, document):
    missing = []
    for function in registered_routes:
        for method in function["methods"]:
            if function["excluded"][method]:
                continue
            operation = document["paths"].get("/" + function["route"], {}).get(method.lower())
            if operation is None:
                missing.append(f"{method} /api/{function['route']} ({function['name']})")
            else:
                assert operation["operationId"] == function["name"], (method, function["route"])
    assert not missing, "the document lacks these, though their functions describe them: " + ", ".join(missing)


def test_nothing_is_described_that_the_app_does_not_serve(registered_routes, document):
    served = {("/" + f["route"], m.lower()) for f in registered_routes for m in f["methods"]}
    ghosts = [f"{method.upper()} {path}" for path, method, _ in _operations(document) if (path, method) not in served]
    assert not ghosts
    excluded = {(f["route"], method) for f in registered_routes for method, why in f["excluded"].items() if why}
    described_too = [f"{method} /{route}" for route, method in excluded if method.lower() in
                     document["paths"].get("/" + route, {})]
    assert not described_too, f"excluded, yet in the document: {described_too}"


def test_the_builder_refuses_a_function_that_declared_nothing():
    """A forgotten `@describe` fails the build with the function's name, rather than leaving a hole."""
    declared = openapi.Endpoint("get_thing", "things/{tenant}", ("GET",), Operation(excluded="not for programs"))
    forgotten = openapi.Endpoint("put_thing", "things/{tenant}", ("PUT",), None)
    with pytest.raises(ValueError, match=r"put_thing \(PUT /api/things/\{tenant\}\)"):
        openapi.document("https://gatehouse.example", [declared, forgotten])


def test_path_parameters_come_from_the_route_and_a_method_may_be_left_out():
    operation = Operation(summary="A thing", tag="Operator", security=("operatorKey",), method="GET",
                          excluded="registered only to answer a 405", responses={"200": {"description": "It."}})
    document = openapi.document("https://gatehouse.example",
                                [openapi.Endpoint("get_thing", "things/{tenant}/{thing_id}", ("GET", "POST"),
                                                  operation)])
    item = document["paths"]["/things/{tenant}/{thing_id}"]
    assert set(item) == {"parameters", "get"}
    assert item["parameters"] == [{"$ref": "#/components/parameters/tenant"},
                                  {"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert item["get"]["operationId"] == "get_thing"
    assert item["get"]["security"] == [{"operatorKey": []}]
    assert "429" in item["get"]["responses"]  # wrong credentials are rate limited, on every secured operation


@pytest.mark.parametrize("security, body, expected", [
    (("adminKey",), True, {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden",
                            "413": "PayloadTooLarge", "429": "TooManyRequests", "503": "StorageUnavailable"}),
    (("scimToken",), False, {"401": "ScimUnauthorized", "429": "ScimTooManyRequests",
                             "503": "ScimStorageUnavailable"}),  # SCIM answers 401 to a wrong token too
    ((), False, {"503": "StorageUnavailable"}),
])
def test_the_builder_adds_the_refusals_an_operation_answers_because_of_its_key_and_body(security, body, expected):
    """No declaration lists these: every operation reads storage; a key is refused missing, wrong and over budget;
    a body is refused when it is no JSON object or too large. What the declaration says itself wins."""
    declared = {"200": {"description": "It."}, "503": {"description": "Also when the signing key is not set."}}
    operation = Operation(summary="A thing", tag="Operator", security=security, responses=declared,
                          request=json_body({"type": "object"}) if body else None)
    document = openapi.document("https://gatehouse.example",
                                [openapi.Endpoint("put_thing", "things/{tenant}", ("PUT",), operation)])
    responses = document["paths"]["/things/{tenant}"]["put"]["responses"]
    assert {status: answer["$ref"].rsplit("/", 1)[1] for status, answer in responses.items()
            if "$ref" in answer} == {status: name for status, name in expected.items() if status != "503"}
    assert responses["503"] == declared["503"] and responses["200"] == declared["200"]


def test_the_builder_refuses_a_described_method_the_function_is_not_registered_for():
    """`method=` naming a method the route does not have would leave the operation out of the document while the
    function reads as described; the build fails with the function, the method and the registered ones instead."""
    operation = Operation(summary="A thing", tag="Operator", method="GET", excluded="registered only to answer a 405",
                          responses={"200": {"description": "It."}})
    with pytest.raises(ValueError, match=r"put_thing describes GET.*registered for PUT POST"):
        openapi.document("https://gatehouse.example",
                         [openapi.Endpoint("put_thing", "things/{tenant}", ("PUT", "POST"), operation)])


def test_a_build_publishes_only_the_models_its_own_endpoints_name():
    """The models a document publishes are those of its own build: one built before does not leave its in."""
    operation = Operation(summary="Create a tenant", tag="Operator",
                          request=json_body(models("shared_code.bodies.tenants").NewTenant),
                          responses={"201": {"description": "Made."}})
    first, first_models = openapi.build("https://gatehouse.example",
                                        [openapi.Endpoint("create_thing", "things", ("POST",), operation)])
    assert "NewTenant" in first["components"]["schemas"] and first_models["NewTenant"][1] == "validation"
    plain = operation.but(request=None)
    second, second_models = openapi.build("https://gatehouse.example",
                                          [openapi.Endpoint("create_thing", "things", ("POST",), plain)])
    assert "NewTenant" not in second["components"]["schemas"] and "NewTenant" not in second_models


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
        assert "500" not in responses, where
        assert any(status.startswith("2") for status in responses) or where.startswith("POST /scim/{tenant}/v2/.search")


def test_served_anonymously_with_no_secrets(app_url, app_settings):
    response = requests.get(f"{app_url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    served = response.json()
    assert served == described.document(app_settings["PUBLIC_BASE_URL"])
    assert served["servers"] == [{"url": f"{app_settings['PUBLIC_BASE_URL']}/api"}]
    for setting in ("PLATFORM_ADMIN_KEY", "SESSION_SIGNING_KEY", "TABLES_CONNECTION_STRING"):
        assert app_settings[setting] not in response.text
    assert "AccountKey" not in response.text

    again = requests.get(f"{app_url}/api/openapi.json", headers={"If-None-Match": response.headers["ETag"]},
                         timeout=30)
    assert again.status_code == 304 and not again.content
