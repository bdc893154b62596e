"""The directory for the product that embeds Gatehouse, and the tenant admin's role mappings.

    GET /api/tenants/{tenant}/directory/employees?after=&limit=   (operator key or the tenant's admin key)
    GET /api/tenants/{tenant}/directory/groups?after=&limit=
        → 200 {"employees"|"groups": […], "next": "<cursor>"|null, "events_after": "<events cursor>"}
    GET /api/tenants/{tenant}/role-mappings                       (admin key, or the wizard's session)
    PUT /api/tenants/{tenant}/role-mappings  {"mappings": {"<group id>": ["admin", …]}}
    PUT /api/tenants/{tenant}/product-roles  (operator key) {"roles": [...]|null}
"""
from __future__ import annotations

import azure.functions as func

from functions._http import admin_tenant, bearer_token, handler, json_response, read_body
from shared_code import tenants

bp = func.Blueprint()


@bp.function_name("list_directory_employees")
@bp.route(route="tenants/{tenant}/directory/employees", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def list_directory_employees(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code import directory_listing
    from shared_code.bodies.directory import EmployeePage

    tenant = admin_tenant(req, operator_too=True)
    return json_response(EmployeePage(**directory_listing.employees(
        tenant.tenant_id, req.params.get("after"), req.params.get("limit"))))


@bp.function_name("list_directory_groups")
@bp.route(route="tenants/{tenant}/directory/groups", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def list_directory_groups(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code import directory_listing
    from shared_code.bodies.directory import GroupPage

    tenant = admin_tenant(req, operator_too=True)
    return json_response(GroupPage(**directory_listing.groups(
        tenant.tenant_id, req.params.get("after"), req.params.get("limit"))))


@bp.function_name("get_role_mappings")
@bp.route(route="tenants/{tenant}/role-mappings", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def get_role_mappings(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code import roles
    from shared_code.bodies.directory import RoleMappingsAnswer

    return json_response(RoleMappingsAnswer(**roles.view(admin_tenant(req))))


@bp.function_name("set_role_mappings")
@bp.route(route="tenants/{tenant}/role-mappings", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def set_role_mappings(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code import roles
    from shared_code.bodies.directory import RoleMappings, RoleMappingsAnswer

    tenant = admin_tenant(req)
    body = read_body(req, RoleMappings)
    return json_response(RoleMappingsAnswer(**roles.set_mappings(tenant, body.mappings)))


@bp.function_name("set_product_roles")
@bp.route(route="tenants/{tenant}/product-roles", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def set_product_roles(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code import roles
    from shared_code.bodies.directory import ProductRoles, ProductRolesAnswer

    tenants.authenticate_operator(bearer_token(req))
    tenant = tenants.get_tenant(req.route_params.get("tenant", ""))
    body = read_body(req, ProductRoles)
    return json_response(ProductRolesAnswer(**roles.set_tenant_roles(tenant, body.roles)))
