"""The JSON bodies are pydantic models (shared_code/bodies/): the document serves each model's own JSON Schema,
a validation failure is our error (status, `field`, a message a person can act on) and never pydantic's list,
and a cold SCIM request loads none of it."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pydantic import field_validator

import shared_code.bodies
from shared_code.openapi import document as openapi
from tests.support import openapi as described
from shared_code.bodies import Answer, Body, core_rule, parse
from shared_code.bodies.domain_audit import CorporateDomainsUpdate
from shared_code.bodies.employees import EmailChange
from shared_code.bodies.tenants import NewTenant
from shared_code.platform.errors import BadRequest, Conflict, Unprocessable

ROOT = Path(__file__).resolve().parent.parent


def _body_models() -> list[type]:
    models = []
    for module in pkgutil.iter_modules(shared_code.bodies.__path__):
        loaded = importlib.import_module(f"shared_code.bodies.{module.name}")
        models += [value for value in vars(loaded).values()
                   if inspect.isclass(value) and issubclass(value, (Body, Answer))
                   and value.__module__ == loaded.__name__
                   and not value.__name__.startswith("_")]
    return models


@pytest.fixture(scope="module")
def served(app_url) -> dict:
    response = requests.get(f"{app_url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()


def test_the_document_serves_each_body_models_own_json_schema(served):
    models = described.body_models("https://gatehouse.example")  # the models the functions' declarations name
    schemas = served["components"]["schemas"]
    assert models, "the document refers to no body model"
    for name, (model, mode) in models.items():
        expected = model.model_json_schema(ref_template=openapi.MODEL_REF, mode=mode)
        for nested, definition in expected.pop("$defs", {}).items():
            assert _as_the_model_says(schemas, nested) == definition, f"{nested} (nested in {name})"
        assert _as_the_model_says(schemas, name) == expected, name


def _as_the_model_says(schemas: dict, name: str) -> dict:
    """A published schema less the one thing the document adds to a model's: the Event's `data` by `type` (its
    `allOf`), which the model cannot say."""
    schema = dict(schemas[name])
    if name == "Event":
        schema.pop("allOf")
    return schema


def test_every_body_model_is_in_the_document():
    # Models only nested in others (a certificate, a setup step) arrive through their parents' $defs.
    schemas = described.document("https://gatehouse.example")["components"]["schemas"]
    forgotten = [m.__name__ for m in _body_models() if m.__name__ not in schemas]
    assert not forgotten, f"name these in the @describe(...) of the function that reads or answers them: {forgotten}"


def test_requests_are_described_as_validated_and_answers_as_serialised():
    for name, (model, mode) in described.body_models("https://gatehouse.example").items():
        if mode != ("validation" if issubclass(model, Body) else "serialization"):
            # Only a protocol package's own request model (the webhook endpoint's), whose schema is one either way.
            assert not issubclass(model, (Body, Answer)), name
            assert model.model_json_schema(mode="validation") == model.model_json_schema(mode="serialization"), name


def test_a_missing_field_is_our_error_with_the_field_and_the_cores_message():
    with pytest.raises(BadRequest) as refused:
        parse(NewTenant, {"app_url": "https://acme.example.com"})
    assert refused.value.field == "name"
    assert refused.value.message == "name is required (1–200 characters)."


def test_an_unknown_member_is_reported_before_other_failures():
    with pytest.raises(Unprocessable) as refused:
        parse(EmailChange, {"department": "Sales"})
    assert refused.value.field == "department"
    assert "Only email can be changed here" in refused.value.message


def test_a_list_entry_is_named_by_its_index_and_a_cores_rule_keeps_its_message():
    with pytest.raises(Unprocessable) as wrong_type:
        parse(CorporateDomainsUpdate, {"domains": ["example.com", 7]})
    assert wrong_type.value.field == "domains[1]"
    with pytest.raises(Unprocessable) as public:
        parse(CorporateDomainsUpdate, {"domains": ["example.com", "gmail.com"]})
    assert public.value.field == "domains[1]" and "public mail provider" in public.value.message


def test_a_failure_without_a_message_of_its_own_still_reads_as_a_sentence_about_the_field():
    class Probe(Body):
        count: int

    with pytest.raises(Unprocessable) as refused:
        parse(Probe, {"count": "3"})  # strict: a string is not a number
    assert refused.value.field == "count"
    assert refused.value.message.startswith("count: ") and refused.value.message.endswith(".")


def test_core_rule_carries_the_cores_error_through_pydantic_untouched():
    def rule(value):
        raise Conflict("Not now.", field="elsewhere")

    class Ruled(Body):
        value: str

        @field_validator("value")
        @classmethod
        def _rule(cls, value):
            return core_rule(rule, value)

    with pytest.raises(Conflict) as refused:
        parse(Ruled, {"value": "x"})
    assert (refused.value.field, refused.value.message) == ("elsewhere", "Not now.")


def test_over_http_a_malformed_body_is_our_json_error_not_pydantics(new_tenant):
    tenant = new_tenant()
    response = tenant.api("PUT", "domains", json={"domains": "example.com", "include_subdomains": "yes"})
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error", "message", "correlation_id", "field"}
    assert body["field"] == "domains" and body["message"].startswith("domains must be a list")


def test_a_cold_scim_request_loads_neither_pydantic_nor_the_body_models():
    code = ("import sys, function_app; function_app.app.get_functions(); "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core') "
            "or m.startswith('shared_code.bodies')]; assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# Every endpoint whose body is a model: (method, path under /api with {t} for the tenant, who calls, the body's
# first member). Wrong types, unknown members and non-objects must all be our JSON error.
BODY_ENDPOINTS = [
    ("POST", "tenants", "operator", "name"),
    ("PUT", "tenants/{t}/default-department", "admin", "department"),
    ("PUT", "tenants/{t}/domains", "admin", "domains"),
    ("PATCH", "tenants/{t}/employees/no-such-employee", "admin", "email"),
    ("POST", "tenants/{t}/sso/idp-metadata", "admin", "metadata_url"),
    ("PUT", "tenants/{t}/mobile", "admin", "ios_redirect_uri"),
    ("POST", "setup/{t}/session", "anonymous", "token"),
]


@pytest.mark.parametrize("method,path,caller,member", BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in BODY_ENDPOINTS])
def test_every_model_body_refuses_bad_values_with_our_error(app_url, operator_key, new_tenant, method, path, caller,
                                                            member):
    tenant = new_tenant()
    headers = {"operator": {"Authorization": f"Bearer {operator_key}"}, "admin": tenant.admin_headers,
               "anonymous": {}}[caller]
    url = f"{app_url}/api/{path.format(t=tenant.tenant_id)}"
    for body in ({member: 12345}, {member: [{"deep": None}]}, {member: "x" * 5000, "surplus": {"a": 1}}, [1, 2]):
        response = requests.request(method, url, json=body, headers=headers, timeout=30)
        assert response.status_code in (400, 403, 422), (body, response.status_code, response.text)
        answer = response.json()
        assert set(answer) <= {"error", "message", "correlation_id", "field"}, answer
        assert answer["message"] and "Input should be" not in answer["message"], answer
