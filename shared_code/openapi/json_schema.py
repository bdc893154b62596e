"""JSON Schema building blocks the OpenAPI document and SCIM's derived schemas both write with."""
from __future__ import annotations

from typing import Any


def ref(name: str, kind: str = "schemas") -> dict:
    """A reference to one of the document's components."""
    return {"$ref": f"#/components/{kind}/{name}"}


def obj(properties: dict, required: tuple[str, ...] = (), *, closed: bool = False, **extra: Any) -> dict:
    """An object schema; `closed` refuses members it does not name."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema
