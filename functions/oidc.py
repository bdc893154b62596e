"""The OpenID Provider's endpoints, one issuer per tenant (`/api/oidc/{tenant}`): discovery, JWKS, authorization,
token and UserInfo. Thin: read the request, call `shared_code.oidc`, answer.

Token and UserInfo errors are RFC 6749 §5.2 / RFC 6750 JSON (`error`, `error_description`) with
`Cache-Control: no-store`; the authorization endpoint answers a person (an HTML page for a bad client or
redirect URI) or the client (a 303 to its redirect URI). joserfc loads on the first request that signs.
"""
from __future__ import annotations

import functools
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from functions._background import background
from functions._http import HTML, bearer_token, handler, json_response, login_redirect, redirect
from shared_code import sessions, tenants
from shared_code.errors import BadRequest, NotFound, PayloadTooLarge
from shared_code.oidc.errors import OAuthError

bp = func.Blueprint()

MAX_FORM_BYTES = 64 * 1024
_FORM = "application/x-www-form-urlencoded"


def oauth_errors(fn):
    """OAuthError → `{"error", "error_description"}` (no-store, plus any WWW-Authenticate)."""

    @functools.wraps(fn)
    def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return fn(req)
        except OAuthError as error:
            return json_response({"error": error.error, "error_description": error.description}, error.status,
                                 {"Pragma": "no-cache", **error.headers})

    return run


def _tenant_id(req: func.HttpRequest) -> str:
    tenant_id = req.route_params.get("tenant", "")
    if not tenants.TENANT_ID.match(tenant_id) or tenants.find_tenant(tenant_id) is None:
        raise NotFound("There is no such issuer.")
    return tenant_id


def read_form(req: func.HttpRequest) -> dict[str, str]:
    """A form body whose every field appears once (RFC 6749 §3.2: parameters MUST NOT be repeated)."""
    body = req.get_body() or b""
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge("The request body is too large.")
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "The body is not a readable form.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"The parameter {name[:40]!r} is sent more than once.")
        form[name] = value
    return form


@bp.function_name("oidc_discovery")
@bp.route(route="oidc/{tenant}/.well-known/openid-configuration", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def oidc_discovery(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import discovery

    response = json_response(discovery.configuration(_tenant_id(req)))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.function_name("oidc_jwks")
@bp.route(route="oidc/{tenant}/jwks", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
def oidc_jwks(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import keys

    _tenant_id(req)
    response = json_response(keys.jwks(), headers={"Content-Type": "application/jwk-set+json"})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.function_name("oidc_authorize")
@bp.route(route="oidc/{tenant}/authorize", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(HTML)
def oidc_authorize(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import authorization

    tenant_id = req.route_params.get("tenant", "")
    if not tenants.TENANT_ID.match(tenant_id):
        raise BadRequest("There is no sign-in for this address.")
    pairs = parse_qsl(urlsplit(req.url).query, keep_blank_values=True, max_num_fields=64)
    nonce = sessions.read_login_binding(sessions.cookie_value(req.headers.get("cookie"),
                                                              sessions.LOGIN_BINDING_COOKIE))
    try:
        start = authorization.begin(tenant_id, pairs, nonce)
    except authorization.AuthorizationRedirect as answer:
        return redirect(answer.location, 303)
    return login_redirect(start, 302)


@bp.function_name("oidc_token")
@bp.route(route="oidc/{tenant}/token", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
@oauth_errors
def oidc_token(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import tokens

    tenant_id = req.route_params.get("tenant", "")
    if not tenants.TENANT_ID.match(tenant_id):
        raise OAuthError("invalid_client", "Unknown client.", status=401)
    answer = tokens.token_request(tenant_id, req.headers.get("authorization"), read_form(req))
    return json_response(answer, headers={"Pragma": "no-cache"})


@bp.function_name("oidc_userinfo")
@bp.route(route="oidc/{tenant}/userinfo", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler()
@oauth_errors
def oidc_userinfo(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import tokens

    tenant_id = req.route_params.get("tenant", "")
    return json_response(tokens.userinfo(tenant_id, bearer_token(req)))


@bp.function_name("oidc_end_session")
@bp.route(route="oidc/{tenant}/logout", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handler(HTML)
def oidc_end_session(req: func.HttpRequest) -> func.HttpResponse:
    """RP-initiated logout: to Entra's SingleLogoutService, back to the product, or our own page."""
    from shared_code.oidc import logout

    tenant_id = req.route_params.get("tenant", "")
    if not tenants.TENANT_ID.match(tenant_id):
        raise NotFound("There is no such issuer.")
    if req.method == "POST":
        try:
            params = read_form(req)
        except OAuthError as error:
            raise BadRequest(error.description) from None
    else:
        params = {}
        for name, value in parse_qsl(urlsplit(req.url).query, keep_blank_values=True, max_num_fields=32):
            if name in params:
                raise BadRequest(f"The sign-out request carries {name[:40]!r} twice.")
            params[name] = value
    target = logout.end_session(tenant_id, params)
    return redirect(target, 303) if target else _signed_out()


def _signed_out() -> func.HttpResponse:
    from functions._http import correlation_id, html_response
    from shared_code.pages import message_page

    return html_response(message_page("You are signed out", "You have been signed out. You can close this window.",
                                      ok=True, correlation_id=correlation_id.get()))


@bp.function_name("oidc_backchannel_retry")
@bp.timer_trigger(schedule="%OIDC_BACKCHANNEL_RETRY_SCHEDULE%", arg_name="timer", run_on_startup=False,
                  use_monitor=False)
@background()
def oidc_backchannel_retry(timer: func.TimerRequest) -> None:
    """Every minute: back-channel logout tokens not yet accepted get another attempt (for up to a day)."""
    import json
    import logging

    from shared_code.oidc import backchannel

    counts = backchannel.sweep()
    if any(counts.values()):
        logging.getLogger("gatehouse.oidc").info(json.dumps({"event": "backchannel_sweep", **counts}))
