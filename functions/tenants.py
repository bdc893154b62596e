"""Operator and tenant-admin endpoints for a tenant itself: create it, rotate its admin key, read its SSO setup,
SCIM token, default department, enable / cancel SSO (and the operator's way back)."""
from __future__ import annotations

import azure.functions as func

from functions._http import admin_tenant, bearer_token, handler, json_response, read_json_object
from shared_code import tenants

bp = func.Blueprint()


@bp.function_name("create_tenant")
@bp.route(route="tenants", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def create_tenant(req: func.HttpRequest) -> func.HttpResponse:
    tenants.authenticate_operator(bearer_token(req))
    body = read_json_object(req)
    tenant, admin_key = tenants.create_tenant(body.get("name"), body.get("app_url"))
    return json_response({"tenant_id": tenant.tenant_id, "admin_key": admin_key, **tenant.urls()}, 201)


@bp.function_name("rotate_admin_key")
@bp.route(route="tenants/{tenant}/admin-key", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def rotate_admin_key(req: func.HttpRequest) -> func.HttpResponse:
    tenants.authenticate_operator(bearer_token(req))
    from shared_code import admin_keys  # pydantic: only this endpoint pays for it

    return json_response(admin_keys.rotate(req.route_params["tenant"]).model_dump(), 201)


@bp.function_name("get_sso_setup")
@bp.route(route="tenants/{tenant}/sso", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def get_sso_setup(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req, operator_too=True)
    return json_response(tenant.sso_summary())


@bp.function_name("rotate_scim_token")
@bp.route(route="tenants/{tenant}/scim/token", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def rotate_scim_token(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    tenant, token = tenants.rotate_scim_token(tenant.tenant_id)
    return json_response({"scim_tenant_url": tenant.urls()["scim_tenant_url"], "secret_token": token,
                          "created_at": tenant.scim_token_created_at}, 201)


@bp.function_name("set_default_department")
@bp.route(route="tenants/{tenant}/default-department", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def set_default_department(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    tenant = tenants.set_default_department(tenant.tenant_id, read_json_object(req).get("department"))
    return json_response({"department": tenant.default_department})


@bp.function_name("enable_sso")
@bp.route(route="tenants/{tenant}/sso/enable", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def enable_sso(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    return json_response(tenants.enable_sso(tenant.tenant_id).sso_summary())


@bp.function_name("cancel_sso_setup")
@bp.route(route="tenants/{tenant}/sso/cancel", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def cancel_sso_setup(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    return json_response(tenants.cancel_setup(tenant.tenant_id).sso_summary())


@bp.function_name("operator_disable_sso")
@bp.route(route="tenants/{tenant}/sso/disable", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def operator_disable_sso(req: func.HttpRequest) -> func.HttpResponse:
    tenants.authenticate_operator(bearer_token(req))
    return json_response(tenants.operator_disable_sso(req.route_params["tenant"]).sso_summary())
