"""The tenant admin's endpoints for one employee: read, fix the work email, "Allow", admin rights.

    GET    /api/tenants/{tenant}/employees/{id}          → 200 the employee (with `why_outside`)
    PATCH  /api/tenants/{tenant}/employees/{id}          {"email": ...} → 200 (+ `warning` when Entra owns them)
    POST   /api/tenants/{tenant}/employees/{id}/allow    accept an email outside the domains → 200
    DELETE /api/tenants/{tenant}/employees/{id}/allow    undo → 200
    PUT    /api/tenants/{tenant}/employees/{id}/admin    grant admin rights → 200; 409 for a dismissed employee
    DELETE /api/tenants/{tenant}/employees/{id}/admin    revoke → 200
"""
from __future__ import annotations

import azure.functions as func

from functions._http import admin_tenant, handler, json_response, read_body
from functions._openapi import describe
from shared_code.directory import employees
from shared_code.openapi.operations import ADMIN, errors, models, ok, ref

bp = func.Blueprint()
EMPLOYEE = "tenants/{tenant}/employees/{id}"
bodies = models("shared_code.bodies.employees")  # named for the OpenAPI document, imported only when it is built
ID = {"id": ref("employee", "parameters")}
THE_EMPLOYEE = {**ok(bodies.Employee, "The employee."),
                **errors("NotFound")}
THE_EMPLOYEE_OR_CONFLICT = {**THE_EMPLOYEE, **errors("Conflict")}


def _id(req: func.HttpRequest) -> str:
    return req.route_params.get("id", "")


def _answer(view: dict):
    from shared_code.bodies.employees import Employee  # pydantic only for requests that answer a body

    return json_response(Employee(**view))


@bp.function_name("get_employee")
@bp.route(route=EMPLOYEE, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="One employee, with the audit's verdict on their email", tag="Employees", security=ADMIN,
          path_parameters=ID, responses=THE_EMPLOYEE)
@handler()
def get_employee(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    return _answer(employees.employee_view(employees.get_employee(tenant, _id(req)), tenant))


@bp.function_name("change_employee_email")
@bp.route(route=EMPLOYEE, methods=["PATCH"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Fix an employee's work email", tag="Employees", security=ADMIN, path_parameters=ID,
          request=bodies.EmailChange,
          responses={**ok(bodies.Employee, "The employee; `warning` when Entra provisions them (it will overwrite "
                                           "the email unless it is changed in Entra too)."),
                     **errors("NotFound", "Unprocessable")})
@handler()
def change_employee_email(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.employees import EmailChange

    tenant = admin_tenant(req)
    return _answer(employees.change_work_email(tenant, _id(req), read_body(req, EmailChange).email))


@bp.function_name("allow_employee_outside_domains")
@bp.route(route=EMPLOYEE + "/allow", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="\"Allow\": accept that an employee outside the domains cannot sign in", tag="Employees",
          security=ADMIN, path_parameters=ID, responses=THE_EMPLOYEE)
@handler()
def allow_employee_outside_domains(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    return _answer(employees.allow_outside_domain(tenant, _id(req), True))


@bp.function_name("undo_allow_employee_outside_domains")
@bp.route(route=EMPLOYEE + "/allow", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Undo \"Allow\"", tag="Employees", security=ADMIN, path_parameters=ID, responses=THE_EMPLOYEE)
@handler()
def undo_allow_employee_outside_domains(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    return _answer(employees.allow_outside_domain(tenant, _id(req), False))


@bp.function_name("grant_employee_admin_rights")
@bp.route(route=EMPLOYEE + "/admin", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Grant admin rights", tag="Employees", security=ADMIN, path_parameters=ID,
          responses=THE_EMPLOYEE_OR_CONFLICT, description="409 for a dismissed employee (active=false).")
@handler()
def grant_employee_admin_rights(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    return _answer(employees.set_admin_rights(tenant, _id(req), True))


@bp.function_name("revoke_employee_admin_rights")
@bp.route(route=EMPLOYEE + "/admin", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Revoke admin rights", tag="Employees", security=ADMIN, path_parameters=ID,
          responses=THE_EMPLOYEE_OR_CONFLICT,
          description="409 when an Entra group mapped to the admin role gives the right (remove them from the "
                      "group in Entra, or change the role mappings).")
@handler()
def revoke_employee_admin_rights(req: func.HttpRequest) -> func.HttpResponse:
    tenant = admin_tenant(req)
    return _answer(employees.set_admin_rights(tenant, _id(req), False))
