"""The development IdP's endpoints (an Entra-shaped IdP for trying Gatehouse without Entra). Registered by
function_app.py only when `shared_code.dev_idp.enabled()` (DEV_IDP=true on an http:// PUBLIC_BASE_URL): in
production these routes do not exist. Thin: read the request, call `shared_code.dev_idp.service`, answer.

- `GET dev-idp/{tenant}/metadata`: App Federation Metadata, to paste at "Check now";
- `GET dev-idp/{tenant}/saml2`: the single sign-on URL (and SingleLogoutService, as Entra's): picks or takes the
  employee (`login_hint`) and posts a signed SAML response to the tenant's ACS; answers a LogoutRequest;
- `GET dev-idp/{tenant}/logout?login_hint=`: the employee signs out "in Entra" (a signed LogoutRequest to the SP);
- `GET dev-idp/{tenant}/discovery/v2.0/keys`: the Entra-v2.0-shaped key set (ENTRA_LOGIN_URL may point here);
- `GET dev-idp/{tenant}/id-token?login_hint=&client_id=`: an Entra v2.0 ID token, what MSAL hands a mobile app.
"""
from __future__ import annotations

import functools

import azure.functions as func

from functions._http import HTML, handler, html_response, json_response, redirect
from functions._openapi import describe
from shared_code.dev_idp import keys, service
from shared_code.platform.errors import GatehouseError
from shared_code.platform.settings import get_settings

bp = func.Blueprint()

if get_settings().session_signing_key:
    keys.warm_up(get_settings().session_signing_key)  # this module is imported only where the routes exist

_DEV_TITLE = "Development IdP (for development only)"


def _dev_pages(fn):
    """Refusals on the development IdP's pages say whose pages they are."""
    @functools.wraps(fn)
    def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return fn(req)
        except GatehouseError as error:
            error.title = _DEV_TITLE
            raise
    return run


@bp.function_name("dev_idp_metadata")
@bp.route(route="dev-idp/{tenant}/metadata", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="development IdP: App Federation Metadata (SAML metadata XML)")
@handler()
def dev_idp_metadata(req: func.HttpRequest) -> func.HttpResponse:
    xml = service.metadata(req.route_params["tenant"])
    return func.HttpResponse(xml, status_code=200, mimetype="application/samlmetadata+xml", charset="utf-8",
                             headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                                      "X-Gatehouse-Development-IdP": "for development only"})


@bp.function_name("dev_idp_sign_in")
@bp.route(route="dev-idp/{tenant}/saml2", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="development IdP: browser sign-in and logout pages (SAML HTTP-Redirect)")
@handler(HTML)
@_dev_pages
def dev_idp_sign_in(req: func.HttpRequest) -> func.HttpResponse:
    answer = service.sign_in_page(req.route_params["tenant"], req.params.get("SAMLRequest"),
                                  req.params.get("RelayState"), req.params.get("login_hint"),
                                  req.params.get("SAMLResponse"))
    if isinstance(answer, service.Redirect):
        return redirect(answer.location)
    scripts = " ".join(answer.script_hashes) or "'none'"
    # The picker's forms come back here ('self'). The auto-posting form (the page with a script) posts to the
    # tenant's ACS, whose redirects go on to the product: browsers apply form-action to every redirect of a form
    # submission, so that page names no form-action (Entra's has none either).
    form_action = "" if answer.script_hashes else " form-action 'self';"
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; script-src {scripts};{form_action} "
           "frame-ancestors 'none'; base-uri 'none'")
    return html_response(answer.html, answer.status, csp=csp)


@bp.function_name("dev_idp_logout")
@bp.route(route="dev-idp/{tenant}/logout", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="development IdP: browser, an Entra-initiated logout (a redirect)")
@handler(HTML)
@_dev_pages
def dev_idp_logout(req: func.HttpRequest) -> func.HttpResponse:
    return redirect(service.logout_request_url(req.route_params["tenant"], req.params.get("login_hint")))


@bp.function_name("dev_idp_keys")
@bp.route(route="dev-idp/{tenant}/discovery/v2.0/keys", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="development IdP: Entra's v2.0 key set (JWKS)")
@handler()
def dev_idp_keys(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(service.key_set(req.route_params["tenant"]))


@bp.function_name("dev_idp_id_token")
@bp.route(route="dev-idp/{tenant}/id-token", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="development IdP: an Entra v2.0 ID token, as MSAL gets one")
@handler()
def dev_idp_id_token(req: func.HttpRequest) -> func.HttpResponse:
    token = service.id_token(req.route_params["tenant"], req.params.get("login_hint"), req.params.get("client_id"))
    return json_response({"id_token": token, "token_type": "id_token",
                          "note": "issued by the development IdP, for development only"})
