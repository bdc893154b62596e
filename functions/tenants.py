"""Operator and tenant-admin endpoints for a tenant itself: create it, rotate its admin key, read its SSO setup,
SCIM token, default department, enable / cancel SSO (and the operator's way back).

Bodies are `shared_code.bodies.tenants` models, imported inside each handler: pydantic stays out of a cold
SCIM request, which loads this module too."""
from __future__ import annotations

import azure.functions as func

from functions._http import admin_tenant, bearer_token, handler, json_response, read_body
from functions._openapi import describe
from shared_code.tenancy import tenants
from shared_code.openapi.operations import ADMIN, ADMIN_OR_OPERATOR, OPERATOR, errors, models, ok

bp = func.Blueprint()
bodies = models("shared_code.bodies.tenants")  # named for the OpenAPI document, imported only when it is built


@bp.function_name("create_tenant")
@bp.route(route="tenants", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Create a tenant", tag="Operator", security=OPERATOR, request=bodies.NewTenant,
          responses={**ok(bodies.CreatedTenant, "The tenant; its admin key is shown only here.", "201"),
                     **errors("Conflict")})
@handler()
def create_tenant(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import CreatedTenant, NewTenant

    tenants.authenticate_operator(bearer_token(req))
    body = read_body(req, NewTenant)
    tenant, admin_key = tenants.create_tenant(body.name, body.app_url)
    return json_response(CreatedTenant.of(tenant, admin_key), 201)


@bp.function_name("rotate_admin_key")
@bp.route(route="tenants/{tenant}/admin-key", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Rotate the tenant's admin key: a new one, the previous one stops working", tag="Operator",
          security=OPERATOR,
          responses={**ok(bodies.AdminKeyRotated, "The new admin key; shown only here.", "201"),
                     **errors("NotFound")})
@handler()
def rotate_admin_key(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import AdminKeyRotated

    tenants.authenticate_operator(bearer_token(req))
    tenant, admin_key = tenants.rotate_admin_key(req.route_params["tenant"])
    return json_response(AdminKeyRotated(tenant_id=tenant.tenant_id, admin_key=admin_key,
                                         rotated_at=tenant.admin_key_rotated_at or ""), 201)


@bp.function_name("get_sso_setup")
@bp.route(route="tenants/{tenant}/sso", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The tenant's SSO setup: URLs to paste into Entra, status and each step's state",
          tag="Tenant admin", security=ADMIN_OR_OPERATOR,
          responses={**ok(bodies.SsoSetup, "The setup."),
                     **errors("NotFound")})
@handler()
def get_sso_setup(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import SsoSetup
    from shared_code.oidc import clients  # the product's connection (OpenID Connect), read-only here

    tenant = admin_tenant(req, operator_too=True)
    return json_response(SsoSetup.of(tenant, product=clients.connection(tenant.tenant_id)))


@bp.function_name("rotate_scim_token")
@bp.route(route="tenants/{tenant}/scim/token", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Issue a new SCIM secret token (the previous one stops working)", tag="Tenant admin",
          security=ADMIN,
          responses={**ok(bodies.ScimToken, "Paste both into Entra's provisioning settings; the token is shown "
                                            "only here.", "201")})
@handler()
def rotate_scim_token(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import ScimToken

    tenant = admin_tenant(req)
    tenant, token = tenants.rotate_scim_token(tenant.tenant_id)
    return json_response(ScimToken(scim_tenant_url=tenant.urls()["scim_tenant_url"], secret_token=token,
                                   created_at=tenant.scim_token_created_at), 201)


@bp.function_name("set_default_department")
@bp.route(route="tenants/{tenant}/default-department", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Where SCIM-created employees without a department land", tag="Tenant admin", security=ADMIN,
          request=bodies.DefaultDepartment,
          responses={**ok(bodies.SavedDepartment, "Saved.")})
@handler()
def set_default_department(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import DefaultDepartment, SavedDepartment

    tenant = admin_tenant(req)
    tenant = tenants.set_default_department(tenant.tenant_id, read_body(req, DefaultDepartment).department)
    return json_response(SavedDepartment(department=tenant.default_department))


@bp.function_name("enable_sso")
@bp.route(route="tenants/{tenant}/sso/enable", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Enforce SSO for every employee (cannot be undone by the tenant)", tag="Tenant admin",
          security=ADMIN, description="409 until Entra is connected and the self-check sign-in has passed.",
          responses={**ok(bodies.SsoSetup, "Enabled (or already enabled)."),
                     **errors("Conflict")})
@handler()
def enable_sso(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import SsoSetup

    tenant = admin_tenant(req)
    return json_response(SsoSetup.of(tenants.enable_sso(tenant.tenant_id)))


@bp.function_name("cancel_sso_setup")
@bp.route(route="tenants/{tenant}/sso/cancel", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Abandon an unfinished setup: back to draft", tag="Tenant admin", security=ADMIN,
          description="409 once SSO is enabled: only the operator can turn it back.",
          responses={**ok(bodies.SsoSetup, "Back to draft."),
                     **errors("Conflict")})
@handler()
def cancel_sso_setup(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import SsoSetup

    tenant = admin_tenant(req)
    return json_response(SsoSetup.of(tenants.cancel_setup(tenant.tenant_id)))


@bp.function_name("operator_disable_sso")
@bp.route(route="tenants/{tenant}/sso/disable", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The operator's way back from enabled (a support case)", tag="Operator", security=OPERATOR,
          responses={**ok(bodies.DisabledSso, "Back to testing (or draft), and what was done."),
                     **errors("NotFound")})
@handler()
def operator_disable_sso(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.tenants import DisabledSso

    tenants.authenticate_operator(bearer_token(req))
    return json_response(DisabledSso(**tenants.operator_disable_sso(req.route_params["tenant"])))
