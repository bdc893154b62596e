"""SCIM /Groups for Microsoft Entra provisioning: one function per verb, each HTTP in → service → HTTP out.
Group PATCH answers 204; members are read only when the answer includes them (excludedAttributes=members skips it)."""
from __future__ import annotations

import azure.functions as func

from functions._http import SCIM, bearer_token, handler, read_json, scim_response
from functions._openapi import describe, scim_resource_operations
from shared_code.scim import service
from shared_code.scim.schemas import GROUP_KIND, MAX_RESULTS

bp = func.Blueprint()
GROUPS = "scim/{tenant}/v2/Groups"
OPERATIONS = scim_resource_operations(GROUP_KIND, service.MAX_GROUP_BODY, MAX_RESULTS)  # for the OpenAPI document


def _caller(req: func.HttpRequest) -> service.Caller:
    return service.Caller(req.route_params["tenant"], bearer_token(req))


def _send(reply: service.Reply) -> func.HttpResponse:
    return scim_response(reply.body, reply.status, reply.headers)


def _body(req: func.HttpRequest, caller: service.Caller):
    """The JSON body; a bad token still answers 401 before a bad body answers 400 or 413."""
    return service.parsed(caller, lambda: read_json(req, max_bytes=service.MAX_GROUP_BODY))


@bp.function_name("scim_list_groups")
@bp.route(route=GROUPS, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["list"])
@handler(SCIM)
def list_groups(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    p = req.params
    return _send(service.query(caller, GROUP_KIND, filter=p.get("filter"), start_index=p.get("startIndex"),
                               count=p.get("count"), attributes=p.get("attributes"),
                               excluded=p.get("excludedAttributes")))


@bp.function_name("scim_search_groups")
@bp.route(route=GROUPS + "/.search", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["search"])
@handler(SCIM)
def search_groups(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.search(caller, GROUP_KIND, _body(req, caller)))


@bp.function_name("scim_get_group")
@bp.route(route=GROUPS + "/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["get"])
@handler(SCIM)
def get_group(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.get(caller, GROUP_KIND, req.route_params["id"], dict(req.params),
                             req.headers.get("if-none-match")))


@bp.function_name("scim_create_group")
@bp.route(route=GROUPS, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["create"])
@handler(SCIM)
def create_group(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.create_group(caller, _body(req, caller), dict(req.params)))


@bp.function_name("scim_replace_group")
@bp.route(route=GROUPS + "/{id}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["replace"])
@handler(SCIM)
def replace_group(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.replace_group(caller, req.route_params["id"], _body(req, caller), dict(req.params),
                                      req.headers.get("if-match")))


@bp.function_name("scim_patch_group")
@bp.route(route=GROUPS + "/{id}", methods=["PATCH"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["patch"])
@handler(SCIM)
def patch_group(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.patch_group(caller, req.route_params["id"], _body(req, caller), req.headers.get("if-match")))


@bp.function_name("scim_delete_group")
@bp.route(route=GROUPS + "/{id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["delete"])
@handler(SCIM)
def delete_group(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.delete(caller, GROUP_KIND, req.route_params["id"], req.headers.get("if-match")))
