"""The OpenID Provider's endpoints, one issuer per tenant (`/api/oidc/{tenant}`): discovery, JWKS, authorization,
token and UserInfo. Thin: read the request, call `shared_code.oidc`, answer.

Token and UserInfo errors are RFC 6749 §5.2 / RFC 6750 JSON (`error`, `error_description`) with
`Cache-Control: no-store`; the authorization endpoint (GET query or POST form, OIDC Core §3.1.2.1) answers a
person (an HTML page for a bad client or redirect URI) or the client (a 303 to its redirect URI). joserfc loads
on the first request that signs.

CORS (a single-page app with a public client signs in from another origin): discovery, JWKS, token and
UserInfo answer every request, errors included, with `Access-Control-Allow-Origin: *` and an OPTIONS preflight
with the methods and the `Authorization`/`Content-Type` headers. A wildcard is safe here: none of them reads a
cookie (credentials travel in the Authorization header or the body), so no browser credentials are involved.
It is done here, not by the platform: Azure Functions' own CORS (the site's `cors.allowedOrigins`) would apply
to every route of the app, including the admin API and the ACS, so infra/ leaves it empty and the local host,
like Azure with it empty, hands OPTIONS to the function (docs/oidc-conformance.md).
"""
from __future__ import annotations

import functools
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from functions._background import background
from functions._http import HTML, bearer_token, handler, json_response, login_redirect, redirect
from functions._openapi import describe
from shared_code.sign_in import sessions
from shared_code.tenancy import tenants
from shared_code.platform.errors import BadRequest, NotFound, PayloadTooLarge
from shared_code.oidc.errors import OAuthError
from shared_code.openapi.operations import ANONYMOUS, errors, ok, ref

bp = func.Blueprint()
PREFLIGHT = "CORS preflight (204, no body)"

MAX_FORM_BYTES = 64 * 1024
_FORM = "application/x-www-form-urlencoded"
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "WWW-Authenticate"}


def cors(methods: str):
    """Outermost wrapper of a CORS endpoint: answer the preflight (OPTIONS) itself, and let every other answer,
    errors included, be read from any origin."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(req: func.HttpRequest) -> func.HttpResponse:
            if req.method == "OPTIONS":
                response = func.HttpResponse(status_code=204, headers={
                    **_CORS, "Access-Control-Allow-Methods": f"{methods}, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600"})
                return response
            response = fn(req)
            for name, value in _CORS.items():
                response.headers[name] = value
            return response

        return run

    return wrap


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


def form_pairs(req: func.HttpRequest) -> list[tuple[str, str]]:
    """The name/value pairs of a form body, duplicates kept (the caller decides what a repeat means)."""
    body = req.get_body() or b""
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge("The request body is too large.")
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded.")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "The body is not a readable form.") from None


def read_form(req: func.HttpRequest) -> dict[str, str]:
    """A form body whose every field appears once (RFC 6749 §3.2: parameters MUST NOT be repeated)."""
    pairs = form_pairs(req)
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"The parameter {name[:40]!r} is sent more than once.")
        form[name] = value
    return form


@bp.function_name("oidc_discovery")
@bp.route(route="oidc/{tenant}/.well-known/openid-configuration", methods=["GET", "OPTIONS"],
          auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The tenant's OpenID Provider configuration", tag="OpenID Provider", security=ANONYMOUS,
          method="GET", excluded=PREFLIGHT,
          responses={**ok(ref("OidcDiscovery"), "Discovery metadata of the issuer {PUBLIC_BASE_URL}/api/oidc/{tenant}. "
                          "Readable from any origin (CORS `*`, OPTIONS preflight), as are the JWKS, token and "
                          "UserInfo endpoints. The authorization endpoint takes GET or POST (form); PKCE S256 is "
                          "required of native clients, a web client may send a nonce instead; `state` is optional; "
                          "`prompt` none (silent: login_required without an Entra session), login and `max_age` "
                          "(judged by Entra's AuthnInstant, reported as auth_time; amr from Entra's authentication "
                          "methods); id_token_hint. UserInfo takes the access token in the Authorization header or "
                          "a POSTed `access_token` form field and releases claims by scope. The end-session "
                          "endpoint also works with client_id and a registered post_logout_redirect_uri, or with "
                          "no parameters (a signed-out page). Token exchange honours requested_token_type "
                          "(access_token or id_token, named in issued_token_type) and refuses an "
                          "audience/resource other than the issuer or the client (invalid_target)."),
                     **errors("NotFound")})
@cors("GET")
@handler()
def oidc_discovery(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import discovery

    response = json_response(discovery.configuration(_tenant_id(req)))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.function_name("oidc_authorization_server_metadata")
@bp.route(route="oidc/{tenant}/.well-known/oauth-authorization-server", methods=["GET", "OPTIONS"],
          auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The same metadata for OAuth clients (RFC 8414)", tag="OpenID Provider", security=ANONYMOUS,
          method="GET", excluded=PREFLIGHT,
          responses={**ok(ref("OidcDiscovery"), "The discovery document, next to the issuer for clients that look "
                                                "for RFC 8414 metadata there."),
                     **errors("NotFound")})
@cors("GET")
@handler()
def oidc_authorization_server_metadata(req: func.HttpRequest) -> func.HttpResponse:
    """RFC 8414 metadata (the same document: OIDC discovery's members are a superset), for OAuth clients that look
    for it next to the issuer. The root form of RFC 8414 §3 (`/.well-known/oauth-authorization-server/api/oidc/…`)
    lies outside the Functions route prefix `/api`; a front end maps it here (docs/oidc-conformance.md)."""
    from shared_code.oidc import discovery

    response = json_response(discovery.configuration(_tenant_id(req)))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.function_name("oidc_jwks")
@bp.route(route="oidc/{tenant}/jwks", methods=["GET", "OPTIONS"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The issuer's signing keys (JWKS)", tag="OpenID Provider", security=ANONYMOUS, method="GET",
          excluded=PREFLIGHT,
          responses={"200": {"description": "Every published public key; kid = RFC 7638 thumbprint.",
                             "content": {"application/jwk-set+json": {"schema": ref("OidcJwks")}}},
                     **errors("NotFound")})
@cors("GET")
@handler()
def oidc_jwks(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import keys

    _tenant_id(req)
    response = json_response(keys.jwks(), headers={"Content-Type": "application/jwk-set+json"})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.function_name("oidc_authorize")
@bp.route(route="oidc/{tenant}/authorize", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="browser: OpenID Connect authorization endpoint (redirects); described by discovery")
@handler(HTML)
def oidc_authorize(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.oidc import authorization

    tenant_id = req.route_params.get("tenant", "")
    if not tenants.TENANT_ID.match(tenant_id):
        raise BadRequest("There is no sign-in for this address.")
    if req.method == "POST":  # OIDC Core §3.1.2.1: the same parameters, form-serialised
        try:
            pairs = form_pairs(req)
        except OAuthError as error:
            raise BadRequest(error.description) from None
    else:
        pairs = parse_qsl(urlsplit(req.url).query, keep_blank_values=True, max_num_fields=64)
    nonce = sessions.read_login_binding(sessions.cookie_value(req.headers.get("cookie"),
                                                              sessions.LOGIN_BINDING_COOKIE))
    try:
        start = authorization.begin(tenant_id, pairs, nonce)
    except authorization.AuthorizationRedirect as answer:
        return redirect(answer.location, 303)
    return login_redirect(start, 302, req.headers.get("cookie"))


@bp.function_name("oidc_token")
@bp.route(route="oidc/{tenant}/token", methods=["POST", "OPTIONS"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="OAuth 2.0 token endpoint (RFC 6749 form body, client authentication); described by discovery")
@cors("POST")
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
@bp.route(route="oidc/{tenant}/userinfo", methods=["GET", "POST", "OPTIONS"],
          auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="OpenID Connect UserInfo (the OP's access token, RFC 6750); described by discovery")
@cors("GET, POST")
@handler()
@oauth_errors
def oidc_userinfo(req: func.HttpRequest) -> func.HttpResponse:
    """The access token in the Authorization header (RFC 6750 §2.1) or, on a POST, the `access_token` form field
    (§2.2, pyoidc's default); never both (§2)."""
    from shared_code.oidc import tokens

    tenant_id = req.route_params.get("tenant", "")
    token = bearer_token(req)
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if req.method == "POST" and content_type == _FORM:
        posted = read_form(req).get("access_token")
        if posted and (token or req.headers.get("authorization")):
            raise OAuthError("invalid_request", "Send the access token once: in the Authorization header or in the "
                             "form body, not both.")
        token = token or posted
    return json_response(tokens.userinfo(tenant_id, token))


@bp.function_name("oidc_end_session")
@bp.route(route="oidc/{tenant}/logout", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="browser: RP-initiated logout (redirects or a page); described by discovery")
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
    cookies = req.headers.get("cookie")
    target = logout.end_session(tenant_id, params, browser_sid=sessions.read_op_browser(
        sessions.cookie_value(cookies, sessions.op_browser_cookie_name()), tenant_id),
        origin=req.headers.get("origin"), confirm_cookie=sessions.cookie_value(cookies, sessions.OP_CONFIRM_COOKIE))
    if isinstance(target, logout.ConfirmLogout):
        return _confirm_logout(tenant_id, target)
    return redirect(target, 303) if target else _signed_out()


def _confirm_logout(tenant_id: str, confirm) -> func.HttpResponse:
    """Nothing ended yet: the person confirms with one click (a POST back here with the one-time token)."""
    from functions._http import correlation_id, html_response
    from shared_code.oidc.discovery import issuer
    from shared_code.platform.pages import confirmation_page

    from shared_code.oidc.logout import CONFIRM_SECONDS

    app = confirm.client_name or "the app"
    response = html_response(confirmation_page(
        f"Sign out of {app}?", f"{app} asks to sign you out, here and of your Microsoft account. If you did not "
        "just ask to sign out, close this page: nothing happens unless you confirm.",
        action=f"{issuer(tenant_id)}/logout", fields=confirm.fields, button="Sign out",
        correlation_id=correlation_id.get()), headers={"Cache-Control": "no-store"})
    response.headers.add("Set-Cookie", sessions.op_confirm_set_cookie(tenant_id, confirm.browser_nonce,
                                                                      CONFIRM_SECONDS))
    return response


def _signed_out() -> func.HttpResponse:
    from functions._http import correlation_id, html_response
    from shared_code.platform.pages import message_page

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
