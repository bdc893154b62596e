"""Corporate domains and the domain audit: the tenant admin's endpoints and the timer that audits every tenant.

    PUT  /api/tenants/{tenant}/domains        {"domains": [...], "include_subdomains": false} → 200, normalised
    GET  /api/tenants/{tenant}/domains        → 200 {"domains": [...], "include_subdomains": ...,
                                                      "verification": [each domain's state and TXT record]}
    POST /api/tenants/{tenant}/domains/{domain}/verification        → 200 the TXT record to create
    POST /api/tenants/{tenant}/domains/{domain}/verification/check  → 200 verified; 409 what is missing; 503 DNS down
    POST /api/tenants/{tenant}/domain-audit   run now → 200 with the run; 409 when no domains are set
    GET  /api/tenants/{tenant}/domain-audit   the latest run; 200 {"status": "never_run", ...} before the first
    timer domain_audit_timer on %DOMAIN_AUDIT_SCHEDULE%: every tenant with domains
"""
from __future__ import annotations

import logging

import azure.functions as func

from functions._background import background
from functions._http import admin_tenant, handler, json_response, read_body
from functions._openapi import describe
from shared_code.directory import domain_audit
from shared_code.openapi.operations import ADMIN, JSON, RETRY_AFTER, errors, models, ok, path_parameter, ref

bp = func.Blueprint()
bodies = models("shared_code.bodies.domain_audit")  # named for the OpenAPI document, imported only when it is built
DOMAIN = {"domain": path_parameter("domain", {"type": "string", "maxLength": 1024},
                                   "A domain name such as contoso.com (Unicode or punycode).")}
log = logging.getLogger("gatehouse")


@bp.function_name("put_corporate_domains")
@bp.route(route="tenants/{tenant}/domains", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Set the corporate email domains", tag="Domain audit", security=ADMIN,
          request=bodies.CorporateDomainsUpdate,
          responses={**ok(bodies.CorporateDomainList, "Saved, normalised (lower case, IDN as Unicode, sorted)."),
                     **errors("Unprocessable")},
          description="422 names the first offending entry (field domains[i]) and why: a public mail provider, a "
                      "public suffix, an IP address, not a domain name, and so on.")
@handler()
def put_corporate_domains(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.domain_audit import CorporateDomainList, CorporateDomainsUpdate

    tenant = admin_tenant(req)
    update = read_body(req, CorporateDomainsUpdate)
    return json_response(CorporateDomainList.of(domain_audit.set_corporate_domains(tenant.tenant_id, update.corporate)))


@bp.function_name("get_corporate_domains")
@bp.route(route="tenants/{tenant}/domains", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The corporate email domains", tag="Domain audit", security=ADMIN,
          responses={**ok(bodies.CorporateDomainList, "The domains ([] until set).")})
@handler()
def get_corporate_domains(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import domain_verification
    from shared_code.bodies.domain_audit import CorporateDomainList, DomainVerification

    tenant = admin_tenant(req)
    return json_response(CorporateDomainList(
        **domain_audit.corporate_domains_view(tenant),
        verification=[DomainVerification(**row) for row in domain_verification.states(tenant)]))


@bp.function_name("start_domain_verification")
@bp.route(route="tenants/{tenant}/domains/{domain}/verification", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The DNS TXT record that proves the tenant owns a domain", tag="Domain audit", security=ADMIN,
          path_parameters=DOMAIN,
          responses={**ok(bodies.DomainVerification, "The record to create (the same on every call)."),
                     **errors("Unprocessable")},
          description="422 when the domain is not one a company can own (a public mail provider, a public suffix, "
                      "not a domain name).")
@handler()
def start_domain_verification(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import domain_verification
    from shared_code.bodies.domain_audit import DomainVerification

    tenant = admin_tenant(req)
    return json_response(DomainVerification(**domain_verification.start(tenant.tenant_id, req.route_params["domain"])))


@bp.function_name("check_domain_verification")
@bp.route(route="tenants/{tenant}/domains/{domain}/verification/check", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Look the TXT record up; verified, or what is missing", tag="Domain audit", security=ADMIN,
          path_parameters=DOMAIN,
          responses={**ok(bodies.DomainVerification, "Verified: employees' emails in this domain carry "
                                                     "email_verified."),
                     **errors("NotFound", "Conflict", "Unprocessable"),
                     "503": {"description": "DNS (or storage) did not answer in time; retry after Retry-After.",
                             "headers": RETRY_AFTER, "content": {JSON: {"schema": ref("Error")}}}},
          description="404 before POST …/verification; 409 when the record is missing, holds another value, or "
                      "another tenant verified the domain first (a domain belongs to one tenant).")
@handler()
def check_domain_verification(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.directory import domain_verification
    from shared_code.bodies.domain_audit import DomainVerification

    tenant = admin_tenant(req)
    return json_response(DomainVerification(**domain_verification.check(tenant.tenant_id, req.route_params["domain"])))


@bp.function_name("run_domain_audit")
@bp.route(route="tenants/{tenant}/domain-audit", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Run the domain audit now", tag="Domain audit", security=ADMIN,
          responses={**ok(bodies.AuditRun, "The finished run."),
                     **errors("Conflict")},
          description="409 until the corporate domains are set.")
@handler()
def run_domain_audit(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.domain_audit import AuditRun

    tenant = admin_tenant(req)
    run = domain_audit.run_audit(tenant.tenant_id, domain_audit.ON_DEMAND, domains=tenant.domains or {})
    return json_response(AuditRun(**domain_audit.run_view(run)))


@bp.function_name("get_domain_audit")
@bp.route(route="tenants/{tenant}/domain-audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The latest domain audit: every active employee outside the domains", tag="Domain audit",
          security=ADMIN, responses={**ok(bodies.AuditRun, "The latest run, or status never_run.")})
@handler()
def get_domain_audit(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.domain_audit import AuditRun

    return json_response(AuditRun(**domain_audit.latest_audit(admin_tenant(req))))


@bp.function_name("domain_audit_timer")
@bp.timer_trigger(schedule="%DOMAIN_AUDIT_SCHEDULE%", arg_name="timer", run_on_startup=False)
@background()
def domain_audit_timer(timer: func.TimerRequest) -> None:
    """Every tenant with corporate domains onto `gatehouse-jobs`; each message's work audits a few of them."""
    from shared_code.jobs import catalog

    if timer.past_due:
        log.info("domain audit timer is past due; running now")
    catalog.start(catalog.DOMAIN_AUDIT)
