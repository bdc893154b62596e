"""The JSON bodies of the operator, tenant-admin, setup-wizard and mobile APIs, as pydantic v2 models.

One module per core that owns the bodies (`bodies/tenants.py` for `shared_code/tenancy/tenants.py`, …): a model
declares the shape and limits (what `/api/openapi.json` publishes, from `model_json_schema`) and its validators
call the owning core's rules (the public-suffix rule, the MSAL configuration checks, the app URL rules), which
stay in the core and keep their messages.

Why beside the cores and not inside them: `shared_code/tenancy/tenants.py` is on the path of every cold SCIM request
(the token check), and importing pydantic and building these models costs ~90 ms there (measured with
`python -X importtime`: pydantic 80 ms, ~1-2 ms per model), more than the cold-start budget has to spare. Only a
request with one of these bodies, or the OpenAPI document, imports this package.

A new endpoint's body: a `Body` (request) or `Answer` (response) subclass in the module of its core here, or in
its own protocol package when that package is not on the cold SCIM path; the handler imports it inside the
function (`read_body(req, Model)` in `functions/_http.py`, `json_response(answer)`), and names it in the
`@describe(...)` beside its route (`models("shared_code.bodies.x").Model`: named, not imported), from which
`shared_code/openapi/document.py` publishes it. tests/test_bodies.py fails if a cold SCIM request loads pydantic.

`parse` is the one place a pydantic `ValidationError` becomes our error: the model's refusal class (400 or
422), `field` as a dotted path (`domains[3]`, `msal_configuration.client_id`) and a message a person can act
on, from the model's `messages` when it has one for that field and error, else a plain one built from
pydantic's. A core's own check runs inside a validator through `core_rule`, so its error (class, `field`,
message) reaches the client unchanged, and in field order with pydantic's own failures.
"""
from __future__ import annotations

import re
from typing import Any, Callable, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from shared_code.platform.errors import GatehouseError, Unprocessable

__all__ = ["Body", "Answer", "parse", "refusal", "core_rule", "may_be_left_out"]

B = TypeVar("B", bound="Body")
R = TypeVar("R")


class Body(BaseModel):
    """A request body. Strict JSON types (`"true"` is not true, `1` is not `"1"`); unknown members refused.

    `refusal` is the error class a failure raises (`Unprocessable` = 422 unless the endpoint always answered
    400). `messages` maps where a failure is to what a person reads: keys are `path:error_type`, `path` or
    `:error_type` (`path` with list indices as `[]`, e.g. `domains[]`; error types are pydantic's, such as
    `missing`, `too_long`, `extra_forbidden`). A message may use `{field}` (the dotted path) and the error's
    context (`{max_length}`, `{actual_length}`, …).
    """

    # defer_build: a model's validator is built when first used, so a request pays only for its own bodies
    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)

    refusal: ClassVar[type[GatehouseError]] = Unprocessable
    messages: ClassVar[dict[str, str]] = {}


class Answer(BaseModel):
    """A response body: built by the handler from what the core returns, serialised with `dump`.

    A member the core returns and the model does not declare is left out of the answer (the endpoint's tests
    notice; a client never gets a 500 for it): declare it here and the document describes it too.
    """

    model_config = ConfigDict(extra="ignore", defer_build=True)

    def dump(self) -> dict[str, Any]:
        """JSON-ready; optional members nobody set (a `warning`, a `reason`) are left out, nulls that were set kept."""
        return self.model_dump(mode="json", exclude_unset=True)


def may_be_left_out(**field: Any) -> Any:
    """A member a client may leave out but not send as null: None when absent, and no `"default": null` in
    the schema (it would read as if null were accepted)."""
    return Field(None, json_schema_extra=lambda schema: schema.pop("default", None), **field)


def parse(model: type[B], data: Any, *, context: dict[str, Any] | None = None) -> B:
    """`data` (a decoded JSON body) validated into `model`, or our 400/422 naming the field and what to fix."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise refusal(model, error) from None


def core_rule(check: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run one of the owning core's checks inside a validator. Its `GatehouseError` travels as a pydantic error
    (raised as is, it would cut validation short and hide an earlier field's failure) and `parse` raises it
    again untouched."""
    try:
        return check(*args, **kwargs)
    except GatehouseError as error:
        raise PydanticCustomError("core_rule", "{message}", {"message": error.message, "error": error}) from None


def refusal(model: type[Body], error: ValidationError) -> GatehouseError:
    """The one error a client sees for a pydantic failure: an unknown member first (as the cores always
    checked), else the first failure in field order."""
    problems = error.errors(include_url=False)
    problem = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    if problem["type"] == "core_rule":
        return problem["ctx"]["error"]
    field = _dotted([part for part in problem["loc"] if not _is_union_tag(part)])
    pattern = re.sub(r"\[\d+\]", "[]", field)
    kind = problem["type"]
    template = None
    for key in (f"{pattern}:{kind}", pattern, f":{kind}"):
        if key in model.messages:
            template = model.messages[key]
            break
    if template is None:
        message = f"{field}: {problem['msg']}." if field else f"{problem['msg']}."
    else:
        message = template.format_map(_Placeholders(problem.get("ctx") or {}, field=field))
    return model.refusal(message, field=field or None)


class _Placeholders(dict):
    """A message's placeholders; one the error has no value for stays as written (a typo is not a 500)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _is_union_tag(part: Any) -> bool:
    # pydantic names the union member it tried (`str`, `dict[str,any]`) in the location; not a body path
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "bool", "float", "none", "list"))


def _dotted(loc: list[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
