"""SCIM /Users for Microsoft Entra provisioning: one function per verb, each HTTP in → service → HTTP out."""
from __future__ import annotations

import azure.functions as func

from functions._http import SCIM, bearer_token, handler, read_json, scim_response
from functions._openapi import describe, scim_resource_operations
from shared_code.scim import service
from shared_code.scim.schemas import MAX_RESULTS, USER_KIND

bp = func.Blueprint()
USERS = "scim/{tenant}/v2/Users"
OPERATIONS = scim_resource_operations(USER_KIND, service.MAX_USER_BODY, MAX_RESULTS)  # for the OpenAPI document


def _caller(req: func.HttpRequest) -> service.Caller:
    return service.Caller(req.route_params["tenant"], bearer_token(req))


def _send(reply: service.Reply) -> func.HttpResponse:
    return scim_response(reply.body, reply.status, reply.headers)


def _body(req: func.HttpRequest, caller: service.Caller):
    """The JSON body; a bad token still answers 401 before a bad body answers 400 or 413."""
    return service.parsed(caller, lambda: read_json(req, max_bytes=service.MAX_USER_BODY))


@bp.function_name("scim_list_users")
@bp.route(route=USERS, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["list"])
@handler(SCIM)
def list_users(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    p = req.params
    return _send(service.query(caller, USER_KIND, filter=p.get("filter"), start_index=p.get("startIndex"),
                               count=p.get("count"), attributes=p.get("attributes"),
                               excluded=p.get("excludedAttributes")))


@bp.function_name("scim_search_users")
@bp.route(route=USERS + "/.search", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["search"])
@handler(SCIM)
def search_users(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.search(caller, USER_KIND, _body(req, caller)))


@bp.function_name("scim_get_user")
@bp.route(route=USERS + "/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["get"])
@handler(SCIM)
def get_user(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.get(caller, USER_KIND, req.route_params["id"], dict(req.params),
                             req.headers.get("if-none-match")))


@bp.function_name("scim_create_user")
@bp.route(route=USERS, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["create"])
@handler(SCIM)
def create_user(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.create_user(caller, _body(req, caller), dict(req.params)))


@bp.function_name("scim_replace_user")
@bp.route(route=USERS + "/{id}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["replace"])
@handler(SCIM)
def replace_user(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.replace_user(caller, req.route_params["id"], _body(req, caller), dict(req.params),
                                      req.headers.get("if-match")))


@bp.function_name("scim_patch_user")
@bp.route(route=USERS + "/{id}", methods=["PATCH"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["patch"])
@handler(SCIM)
def patch_user(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.patch_user(caller, req.route_params["id"], _body(req, caller), dict(req.params),
                                    req.headers.get("if-match")))


@bp.function_name("scim_delete_user")
@bp.route(route=USERS + "/{id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(OPERATIONS["delete"])
@handler(SCIM)
def delete_user(req: func.HttpRequest) -> func.HttpResponse:
    caller = _caller(req)
    return _send(service.delete(caller, USER_KIND, req.route_params["id"], req.headers.get("if-match")))
