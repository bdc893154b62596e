"""Tenant-admin SSO endpoints (connect the IdP, the self-check link) and the daily IdP metadata refresh.

Thin: the admin is identified by `admin_tenant`, the work is in `shared_code.tenancy.idp_connection` and
`shared_code.sign_in.service`. A timer of its own purges expired sign-in rows (replay cache, pending requests,
links; Table Storage has no TTL), so that no slow metadata fetch of the refresh can hold it up.
"""
from __future__ import annotations

import azure.functions as func

from functions._background import background
from functions._http import admin_tenant, bearer_token, handler, json_response, read_body
from functions._openapi import describe
from shared_code.sign_in import service as sign_in
from shared_code.tenancy import idp_connection, tenants
from shared_code.openapi.operations import ADMIN, ADMIN_OR_OPERATOR, errors, json_body, models, ok

bp = func.Blueprint()
bodies = models("shared_code.bodies.idp_connection")  # named for the OpenAPI document, imported when it is built
# Every six hours: pending requests and links live 10-30 minutes, replay rows until their assertion expires.
PURGE_SCHEDULE = "0 5 */6 * * *"


@bp.function_name("connect_idp_metadata")
@bp.route(route="tenants/{tenant}/sso/idp-metadata", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Connect Entra: check its federation metadata (by URL or pasted XML) and store it",
          tag="Tenant admin", security=ADMIN_OR_OPERATOR,
          request=json_body(bodies.IdpMetadataSource, "Exactly one of metadata_url and metadata_xml (at most 2 MiB: "
                                                      "pasted metadata XML, JSON-escaped)."),
          responses={**ok(bodies.IdpConnection, "Connected."),
                     **errors("NotFound", "Conflict", "Unprocessable")},
          description="422 with a message a person can act on: unreachable URL, not metadata, no signing "
                      "certificate, expired certificate, both or neither field. 409 once SSO is enabled and the "
                      "metadata names another identity provider.")
@handler()
def connect_idp_metadata(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.idp_connection import IdpConnection, IdpMetadataSource

    # The operator (support) may also connect: after SSO is enabled, only it can change the certificates from
    # anything but the metadata URL on record, or move the tenant to another IdP.
    key = bearer_token(req)
    if key and tenants.is_operator_key(key):
        tenant, by = tenants.get_tenant(req.route_params.get("tenant", "")), idp_connection.OPERATOR
    else:
        tenant, by = admin_tenant(req), idp_connection.TENANT_ADMIN
    # pasted metadata XML may be ~1 MiB, JSON-escaped
    source = read_body(req, IdpMetadataSource, max_bytes=2 * 1024 * 1024)
    connection = idp_connection.connect_idp(tenant.tenant_id, source.metadata_url, source.metadata_xml, by=by)
    return json_response(IdpConnection(**connection.summary()))


@bp.function_name("create_self_check_link")
@bp.route(route="tenants/{tenant}/sso/test-link", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="A one-time self-check sign-in link for the admin", tag="Tenant admin", security=ADMIN,
          responses={**ok(bodies.SelfCheckLink, "The link; it works once."),
                     **errors("Conflict")},
          description="409 until Entra is connected (POST …/sso/idp-metadata).")
@handler()
def create_self_check_link(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.idp_connection import SelfCheckLink

    tenant = admin_tenant(req)
    url, expires_at = sign_in.issue_self_check_link(tenant)
    return json_response(SelfCheckLink(url=url, expires_at=expires_at.isoformat(),
                                       hint="Open the link in a private (incognito) window and sign in with your "
                                            "Entra account; it works once."))


@bp.function_name("refresh_idp_metadata")
@bp.timer_trigger(schedule="%IDP_METADATA_REFRESH_SCHEDULE%", arg_name="timer", run_on_startup=False,
                  use_monitor=True)
@background()
def refresh_idp_metadata(timer: func.TimerRequest) -> None:
    """Daily: every tenant with a metadata URL onto `gatehouse-jobs`, one tenant per message (shared_code/jobs)."""
    from shared_code.jobs import catalog

    catalog.start(catalog.REFRESH_IDP_METADATA)


@bp.function_name("purge_sign_in_state")
@bp.timer_trigger(schedule=PURGE_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
@background()
def purge_sign_in_state(timer: func.TimerRequest) -> None:
    """Every 6 h: every tenant onto `gatehouse-jobs`; each message's work deletes expired sign-in rows. The
    platform's own partition of exchanged Entra tokens is purged here."""
    from shared_code.jobs import catalog

    catalog.start(catalog.PURGE_SIGN_IN_STATE)
    sign_in.purge_exchanged_tokens()
