"""The product's OAuth clients of a tenant, managed by the operator (the product's backend holds its key):
register, list, read, delete, rotate the secret. Bodies and answers are the pydantic models of
`shared_code.oidc.clients`."""
from __future__ import annotations

import azure.functions as func

from functions._http import bearer_token, handler, json_response, read_json
from functions._openapi import describe
from shared_code.tenancy import tenants
from shared_code.openapi.operations import OPERATOR, errors, models, no_content, ok

bp = func.Blueprint()
clients = models("shared_code.oidc.clients")  # named for the OpenAPI document, imported only when it is built
ERRORS = errors("NotFound")


def _operator_tenant(req: func.HttpRequest) -> str:
    tenants.authenticate_operator(bearer_token(req))
    return tenants.get_tenant(req.route_params["tenant"]).tenant_id


@bp.function_name("create_oidc_client")
@bp.route(route="tenants/{tenant}/oidc/clients", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Register the product as an OpenID Connect client of this tenant", tag="OpenID Provider",
          security=OPERATOR, request=clients.ClientRegistration,
          responses={**ok(clients.ClientCreated, "The client; its secret is shown only here.", "201"),
                     **ERRORS, **errors("Unprocessable")})
@handler()
def create_oidc_client(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import clients

    tenant_id = _operator_tenant(req)
    return json_response(clients.register(tenant_id, read_json(req)), 201)


@bp.function_name("list_oidc_clients")
@bp.route(route="tenants/{tenant}/oidc/clients", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The tenant's clients", tag="OpenID Provider", security=OPERATOR,
          responses={**ok(clients.ClientList, "Every client (no secrets)."), **ERRORS})
@handler()
def list_oidc_clients(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import clients

    return json_response(clients.list_all(_operator_tenant(req)))


@bp.function_name("get_oidc_client")
@bp.route(route="tenants/{tenant}/oidc/clients/{client_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="One client", tag="OpenID Provider", security=OPERATOR,
          responses={**ok(clients.Client, "The client (no secret)."), **ERRORS})
@handler()
def get_oidc_client(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import clients

    return json_response(clients.get(_operator_tenant(req), req.route_params["client_id"]))


@bp.function_name("delete_oidc_client")
@bp.route(route="tenants/{tenant}/oidc/clients/{client_id}", methods=["DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Delete a client", tag="OpenID Provider", security=OPERATOR,
          responses={**no_content("Deleted; its tokens stop being issued."), **ERRORS})
@handler()
def delete_oidc_client(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import clients

    clients.delete(_operator_tenant(req), req.route_params["client_id"])
    return func.HttpResponse(status_code=204)


@bp.function_name("rotate_oidc_client_secret")
@bp.route(route="tenants/{tenant}/oidc/clients/{client_id}/secret", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="A new client secret (the old one stops working)", tag="OpenID Provider", security=OPERATOR,
          responses={**ok(clients.ClientCreated, "The client with its new secret, shown once."),
                     **ERRORS, **errors("BadRequest")})
@handler()
def rotate_oidc_client_secret(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import clients

    return json_response(clients.rotate_secret(_operator_tenant(req), req.route_params["client_id"]))
