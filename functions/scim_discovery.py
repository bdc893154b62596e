"""SCIM discovery (RFC 7644 §4) under /api/scim/{tenant}/v2: /ServiceProviderConfig, /Schemas[/{id}],
/ResourceTypes[/{id}]; plus SCIM-shaped answers for everything else under the SCIM base (404 for unknown
paths, 405 for a method an endpoint does not take) and POST /.search across users and groups."""
from __future__ import annotations

import azure.functions as func

from functions._http import SCIM, bearer_token, handler, read_json, scim_response
from functions._openapi import describe
from shared_code.openapi.operations import SCIM_TOKEN, Operation, errors, ref, scim_body, scim_ok
from shared_code.scim import schemas, service

bp = func.Blueprint()
ANY = ["GET", "POST", "PUT", "PATCH", "DELETE"]
BASE = "scim/{tenant}/v2"


def _discovery(summary: str, schema: str, *, one: bool = False) -> Operation:
    """A discovery endpoint's GET for the OpenAPI document (its other methods only answer a SCIM 405)."""
    return Operation(summary=summary, tag="SCIM discovery", security=SCIM_TOKEN, method="GET",
                     excluded="registered only to answer a SCIM 405",
                     responses={**scim_ok(ref(schema), summary + "."),
                                **(errors("NotFound", scim=True) if one else {})})


def _tenant(req: func.HttpRequest):
    return service.authenticate(req.route_params["tenant"], bearer_token(req))


def _only_get(req: func.HttpRequest) -> None:
    # Registered for every method so the answer is a SCIM 405 on any host (the real one says 404).
    if req.method != "GET":
        raise service.method_not_allowed(req.method, "GET")


@bp.function_name("scim_service_provider_config")
@bp.route(route=f"{BASE}/ServiceProviderConfig", methods=ANY, auth_level=func.AuthLevel.ANONYMOUS)
@describe(_discovery("What this SCIM server supports", "ScimDocument"))
@handler(SCIM)
def service_provider_config(req: func.HttpRequest) -> func.HttpResponse:
    tenant = _tenant(req)
    _only_get(req)
    return scim_response(schemas.service_provider_config(service.base_url(tenant)))


@bp.function_name("scim_list_schemas")
@bp.route(route=f"{BASE}/Schemas", methods=ANY, auth_level=func.AuthLevel.ANONYMOUS)
@describe(_discovery("The schemas of Users, Groups and the enterprise extension", "ScimDocumentList"))
@handler(SCIM)
def list_schemas(req: func.HttpRequest) -> func.HttpResponse:
    tenant = _tenant(req)
    _only_get(req)
    documents = schemas.schema_documents(service.base_url(tenant))
    return scim_response(_list(documents))


@bp.function_name("scim_get_schema")
@bp.route(route=f"{BASE}/Schemas/{{schema_id}}", methods=ANY, auth_level=func.AuthLevel.ANONYMOUS)
@describe(_discovery("One schema, by its URN (case-insensitive)", "ScimDocument", one=True))
@handler(SCIM)
def get_schema(req: func.HttpRequest) -> func.HttpResponse:
    tenant = _tenant(req)
    _only_get(req)
    document = schemas.schema_document(service.base_url(tenant), req.route_params["schema_id"])
    if document is None:
        raise service.no_such_endpoint(f"/Schemas/{req.route_params['schema_id']}")
    return scim_response(document)


@bp.function_name("scim_list_resource_types")
@bp.route(route=f"{BASE}/ResourceTypes", methods=ANY, auth_level=func.AuthLevel.ANONYMOUS)
@describe(_discovery("The resource types User and Group", "ScimDocumentList"))
@handler(SCIM)
def list_resource_types(req: func.HttpRequest) -> func.HttpResponse:
    tenant = _tenant(req)
    _only_get(req)
    return scim_response(_list(schemas.resource_type_documents(service.base_url(tenant))))


@bp.function_name("scim_get_resource_type")
@bp.route(route=f"{BASE}/ResourceTypes/{{name}}", methods=ANY, auth_level=func.AuthLevel.ANONYMOUS)
@describe(_discovery("One resource type, by name", "ScimDocument", one=True))
@handler(SCIM)
def get_resource_type(req: func.HttpRequest) -> func.HttpResponse:
    tenant = _tenant(req)
    _only_get(req)
    document = schemas.resource_type_document(service.base_url(tenant), req.route_params["name"])
    if document is None:
        raise service.no_such_endpoint(f"/ResourceTypes/{req.route_params['name']}")
    return scim_response(document)


@bp.function_name("scim_search_everything")
@bp.route(route=f"{BASE}/.search", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Query Users and Groups together with a SearchRequest (RFC 7644 §3.4.3)", tag="SCIM",
          security=SCIM_TOKEN, request=scim_body("ResourceSearch"),
          responses={**scim_ok(ref("ResourceList"), "Users, then groups. A filter or attribute only one type has "
                                                    "applies to that type; one that neither has is a 400.")})
@handler(SCIM)
def search_everything(req: func.HttpRequest) -> func.HttpResponse:
    caller = service.Caller(req.route_params["tenant"], bearer_token(req))
    body = service.parsed(caller, lambda: read_json(req, max_bytes=service.MAX_USER_BODY))
    reply = service.search_everything(caller, body)
    return scim_response(reply.body, reply.status, reply.headers)


@bp.function_name("scim_unknown_endpoint")
@bp.route(route=f"{BASE}/{{*rest}}", methods=ANY, auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="SCIM-shaped 404/405 for paths and methods no SCIM endpoint has")
@handler(SCIM)
def unknown_endpoint(req: func.HttpRequest) -> func.HttpResponse:
    _tenant(req)
    rest = req.route_params.get("rest") or ""
    parts = [p for p in rest.split("/") if p]
    # A known resource path reached here with a method its functions do not take.
    if parts and parts[0].lower() in ("users", "groups") and len(parts) <= 2:
        allowed = "GET, POST" if len(parts) == 1 else "GET, PUT, PATCH, DELETE"
        raise service.method_not_allowed(req.method, allowed)
    raise service.no_such_endpoint("/" + rest)


def _list(resources: list[dict]) -> dict:
    return {"schemas": [schemas.LIST_RESPONSE], "totalResults": len(resources), "startIndex": 1,
            "itemsPerPage": len(resources), "Resources": resources}
