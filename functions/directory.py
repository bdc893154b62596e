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
from functions._openapi import describe
from shared_code.tenancy import tenants
from shared_code.openapi.operations import ADMIN, ADMIN_OR_OPERATOR, OPERATOR, errors, later, models, ok

bp = func.Blueprint()
bodies = models("shared_code.bodies.directory")  # named for the OpenAPI document, imported only when it is built


def _events_api():
    from shared_code.events import api  # pydantic: loaded when the OpenAPI document is built, not at import

    return api


PAGING = later(lambda: [
    {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 4096},
     "description": "The `next` of the previous page (signed: any other value is a 400); leave out to start."},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": _events_api().MAX_LIMIT,
                                                "default": _events_api().DEFAULT_LIMIT}}])
HOW_TO_LIST = ("List every page once, then read GET …/events?after=<events_after>: nothing that changed while you "
               "listed is missed (events_after is the event log's position taken before the first page; every "
               "change after it is an event after it, carrying the whole current state).")
LISTING_ERRORS = errors("BadRequest", "Unauthorized", "Forbidden", "NotFound", "StorageUnavailable")


@bp.function_name("list_directory_employees")
@bp.route(route="tenants/{tenant}/directory/employees", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Every employee (the whole employee, as events carry them), paged", tag="Directory",
          security=ADMIN_OR_OPERATOR, parameters=PAGING, description=HOW_TO_LIST,
          responses={**ok(bodies.EmployeePage, "A page of employees."), **LISTING_ERRORS})
@handler()
def list_directory_employees(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import listing as directory_listing
    from shared_code.bodies.directory import EmployeePage

    tenant = admin_tenant(req, operator_too=True)
    return json_response(EmployeePage(**directory_listing.employees(
        tenant.tenant_id, req.params.get("after"), req.params.get("limit"))))


@bp.function_name("list_directory_groups")
@bp.route(route="tenants/{tenant}/directory/groups", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Every group Entra provisioned, paged", tag="Directory", security=ADMIN_OR_OPERATOR,
          parameters=PAGING, description=HOW_TO_LIST + " Memberships are in the employees' `group_ids`.",
          responses={**ok(bodies.GroupPage, "A page of groups."), **LISTING_ERRORS})
@handler()
def list_directory_groups(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import listing as directory_listing
    from shared_code.bodies.directory import GroupPage

    tenant = admin_tenant(req, operator_too=True)
    return json_response(GroupPage(**directory_listing.groups(
        tenant.tenant_id, req.params.get("after"), req.params.get("limit"))))


@bp.function_name("get_role_mappings")
@bp.route(route="tenants/{tenant}/role-mappings", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The product's roles, the Entra groups mapped to them, and every group", tag="Directory",
          security=ADMIN, responses={**ok(bodies.RoleMappingsAnswer, "The mappings.")})
@handler()
def get_role_mappings(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import roles
    from shared_code.bodies.directory import RoleMappingsAnswer

    return json_response(RoleMappingsAnswer(**roles.view(admin_tenant(req))))


@bp.function_name("set_role_mappings")
@bp.route(route="tenants/{tenant}/role-mappings", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Map Entra groups to the product's roles (the whole mapping)", tag="Directory", security=ADMIN,
          request=bodies.RoleMappings,
          responses={**ok(bodies.RoleMappingsAnswer, "The mappings; every member's roles are recomputed (with "
                                                     "their employee.roles_changed events)."),
                     **errors("Unprocessable")},
          description="An employee's roles are their groups' roles plus the admin right a tenant admin granted; a "
                      "dismissed employee has none; a rehire does not bring the admin right back until a tenant "
                      "admin grants it again (the answer's `rehire_rule`).")
@handler()
def set_role_mappings(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import roles
    from shared_code.bodies.directory import RoleMappings, RoleMappingsAnswer

    tenant = admin_tenant(req)
    body = read_body(req, RoleMappings)
    return json_response(RoleMappingsAnswer(**roles.set_mappings(tenant, body.mappings)))


@bp.function_name("set_product_roles")
@bp.route(route="tenants/{tenant}/product-roles", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Declare the product's roles for this tenant (instead of PRODUCT_ROLES)", tag="Directory",
          security=OPERATOR, request=bodies.ProductRoles,
          responses={**ok(bodies.ProductRolesAnswer, "The tenant's roles now."),
                     **errors("NotFound", "Conflict", "Unprocessable")},
          description="409 while a role to be dropped is still mapped to a group.")
@handler()
def set_product_roles(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import roles
    from shared_code.bodies.directory import ProductRoles, ProductRolesAnswer

    tenants.authenticate_operator(bearer_token(req))
    tenant = tenants.get_tenant(req.route_params.get("tenant", ""))
    body = read_body(req, ProductRoles)
    return json_response(ProductRolesAnswer(**roles.set_tenant_roles(tenant, body.roles)))
