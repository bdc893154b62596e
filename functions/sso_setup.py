"""Tenant-admin SSO endpoints (connect the IdP, the self-check link) and the daily IdP metadata refresh.

Thin: the admin is identified by `admin_tenant`, the work is in `shared_code.idp_connection` and
`shared_code.sign_in`. The timer also purges expired sign-in rows (replay cache, pending requests, links):
Table Storage has no TTL, and a daily walk over the tenants is already happening here.
"""
from __future__ import annotations

import json
import logging

import azure.functions as func

from functions._http import admin_tenant, handler, json_response, read_body
from shared_code import idp_connection, sign_in

bp = func.Blueprint()
log = logging.getLogger("gatehouse.idp")


@bp.function_name("connect_idp_metadata")
@bp.route(route="tenants/{tenant}/sso/idp-metadata", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def connect_idp_metadata(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.idp_connection import IdpConnection, IdpMetadataSource

    tenant = admin_tenant(req)
    # pasted metadata XML may be ~1 MiB, JSON-escaped
    source = read_body(req, IdpMetadataSource, max_bytes=2 * 1024 * 1024)
    connection = idp_connection.connect_idp(tenant.tenant_id, source.metadata_url, source.metadata_xml)
    return json_response(IdpConnection(**connection.summary()))


@bp.function_name("create_self_check_link")
@bp.route(route="tenants/{tenant}/sso/test-link", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
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
def refresh_idp_metadata(timer: func.TimerRequest) -> None:
    idp_connection.refresh_all()
    try:
        purged = sign_in.purge_expired_sign_in_state()
    except Exception:  # noqa: BLE001 - housekeeping; tomorrow's run tries again
        log.exception("purging expired sign-in rows failed")
        return
    log.info(json.dumps({"event": "sign_in_state_purged", "rows": purged}))
