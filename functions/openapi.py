"""GET /api/openapi.json: the OpenAPI 3.1 description of the programs' API (anonymous; holds no secrets).

Assembled on the first request from what each function declares beside its route (`functions/_openapi.py`): a cold
SCIM request never pays for it."""
from __future__ import annotations

import hashlib

import azure.functions as func

from functions._http import handler
from functions._openapi import describe, document_bytes
from shared_code.platform.settings import get_settings

bp = func.Blueprint()


@bp.function_name("openapi_document")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="this document itself")
@handler()
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    body = document_bytes(get_settings().public_base_url)
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    # The document changes only with a deployment: let clients revalidate cheaply.
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
               "Access-Control-Allow-Origin": "*"}
    if etag in (req.headers.get("if-none-match") or ""):
        return func.HttpResponse(status_code=304, headers=headers)
    return func.HttpResponse(body, status_code=200, mimetype="application/json", charset="utf-8", headers=headers)
