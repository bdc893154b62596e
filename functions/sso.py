"""Browser and IdP endpoints of single sign-on: our SP metadata, the SP-initiated login, the assertion consumer
(ACS) and who is signed in. Thin: read the request and its cookies, call `shared_code.sign_in.service`, answer.

Every failure a person can meet here is an HTML page (the HTML flavour of the handler) with a reason and a
correlation id; the refusal's reason code goes to the log under the same id. A refused ACS POST never sets a
cookie. pysaml2, lxml and xmlsec are loaded by the core on the first sign-in, not when this module loads.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

import azure.functions as func

from functions._http import HTML, correlation_id, handler, html_response, json_response, login_redirect, redirect
from functions._openapi import describe
from shared_code.sign_in import pending_logins, service as sign_in, sessions
from shared_code.platform.errors import BadRequest, GatehouseError, PayloadTooLarge
from shared_code.platform.pages import message_page

bp = func.Blueprint()
log = logging.getLogger("gatehouse.sso")

# Entra's responses are 5-10 KB; the assertion consumer refuses more than 256 KiB of base64, and form encoding
# can triple that (%2B, %2F, %3D). Anything larger is refused before it is parsed.
MAX_ACS_BODY_BYTES = 1024 * 1024
_FORM = "application/x-www-form-urlencoded"


def _cookie(req: func.HttpRequest, name: str) -> str | None:
    return sessions.cookie_value(req.headers.get("cookie"), name)


def _browser_nonce(req: func.HttpRequest) -> str | None:
    return sessions.read_login_binding(_cookie(req, sessions.LOGIN_BINDING_COOKIE))


def _pending_login(req: func.HttpRequest, relay_state: str | None) -> str | None:
    """The sealed pending login named by RelayState (its cookie's value), if the browser sent it."""
    name = pending_logins.cookie_name(relay_state or "")
    return _cookie(req, name) if name else None


@bp.function_name("sso_metadata")
@bp.route(route="sso/{tenant}/metadata", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="SAML SP metadata (XML for Entra, described by the SAML metadata spec)")
@handler(HTML)
def sso_metadata(req: func.HttpRequest) -> func.HttpResponse:
    xml = sign_in.sp_metadata(req.route_params["tenant"])
    return func.HttpResponse(xml, status_code=200, mimetype="application/samlmetadata+xml", charset="utf-8",
                             headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600",
                                      "X-Correlation-Id": correlation_id.get()})


@bp.function_name("sso_login")
@bp.route(route="sso/{tenant}/login", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="browser: SP-initiated sign-in, a redirect to Entra")
@handler(HTML)
def sso_login(req: func.HttpRequest) -> func.HttpResponse:
    start = sign_in.start_login(
        req.route_params["tenant"], req.params.get("RelayState"), _browser_nonce(req),
        self_check_token=req.params.get("self_check"), session_token=_cookie(req, sessions.session_cookie_name()))
    return login_redirect(start, 302, req.headers.get("cookie"))


@bp.function_name("sso_acs")
@bp.route(route="sso/{tenant}/acs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="browser: Entra posts the SAML response here (form, HTML answers)")
@handler(HTML)
def sso_acs(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = req.route_params["tenant"]
    code_redirect = None
    try:
        form = _read_form(req)
        outcome = sign_in.complete_sign_in(tenant_id, form.get("SAMLResponse", ""), form.get("RelayState"),
                                           _browser_nonce(req), _pending_login(req, form.get("RelayState")))
        if outcome.kind == sign_in.OIDC:  # the product's authorization request: a code, no Gatehouse session
            from shared_code.oidc import authorization

            # Accepts the answer once (a replay is refused here) and starts the session, in one transaction.
            code_redirect, sid = authorization.issue_code_with_sid(
                tenant_id, outcome.employee, outcome.oidc, outcome.saml_session, outcome.answered,
                verified_domains=outcome.tenant.verified_domains or ())
    except GatehouseError as error:
        log.warning(json.dumps({"event": "sign_in_refused", "tenant": tenant_id, "status": error.status,
                                "reason": getattr(error, "reason", error.code), "correlation_id": correlation_id.get()}))
        if getattr(error, "oidc", None) is not None:  # the product asked: it hears access_denied, not a page
            from shared_code.oidc import authorization

            return redirect(authorization.refusal_redirect(tenant_id, error.oidc, error), 303)
        raise
    if outcome.kind == sign_in.UNSOLICITED:
        # My Apps posted a response nobody in this browser asked for: sign in by asking Entra from here.
        log.info(json.dumps({"event": "unsolicited_response", "tenant": tenant_id,
                             "correlation_id": correlation_id.get()}))
        return login_redirect(outcome.login, 303, req.headers.get("cookie"))
    if outcome.kind == sign_in.THIRD_PARTY_LOGIN:  # My Apps: the product starts its own login
        log.info(json.dumps({"event": "third_party_login", "tenant": tenant_id, "correlation_id": correlation_id.get()}))
        return redirect(outcome.redirect_to, 303)
    log.info(json.dumps({"event": "sign_in", "tenant": tenant_id, "employee": outcome.employee.id,
                         "kind": outcome.kind, "initiated_by": outcome.initiated_by,
                         "correlation_id": correlation_id.get()}))
    if outcome.kind == sign_in.SELF_CHECK:
        who = outcome.employee.display_name or outcome.employee.user_name
        response = html_response(message_page(
            "The test was successful",
            f"Single sign-on works: you signed in through Microsoft Entra as {who} ({outcome.employee.user_name}). "
            "Go back to the SSO setup to enable single sign-on for all employees, or to cancel the setting.",
            ok=True, correlation_id=correlation_id.get()))
    elif outcome.kind == sign_in.OIDC:
        response = redirect(code_redirect, 303)
        # Names this sign-in's session in this browser: the product's logout of it needs no confirmation here.
        response.headers.add("Set-Cookie", sessions.op_browser_set_cookie(tenant_id, sessions.issue_op_browser(
            tenant_id, sid)))
    else:
        response = redirect(outcome.redirect_to, 303)
        response.headers.add("Set-Cookie", sessions.session_set_cookie(tenant_id, outcome.session_token))
    if outcome.answered_relay_id:  # the pending login is answered: tidy its cookie away
        response.headers.add("Set-Cookie", pending_logins.clear_cookie(outcome.answered_relay_id))
    return response


def _read_form(req: func.HttpRequest) -> dict[str, str]:
    """The ACS form fields, each at most once; the size is capped before anything is parsed."""
    body = req.get_body() or b""
    if len(body) > MAX_ACS_BODY_BYTES:
        error = PayloadTooLarge(f"The sign-in data is larger than {MAX_ACS_BODY_BYTES // 1024} KiB, far more than "
                                "a real sign-in response. Start the sign-in again from the app's sign-in page.")
        error.reason = "too_large"
        raise error
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    try:
        if content_type != _FORM:
            raise ValueError("not a form")
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=16)
    except (ValueError, UnicodeDecodeError):
        error = BadRequest("The sign-in data was not posted as a form. Start the sign-in again from the app's "
                           "sign-in page.")
        error.reason = "not_a_form"
        raise error from None
    if any(len(fields.get(name, [])) > 1 for name in ("SAMLResponse", "RelayState")):
        error = BadRequest("The sign-in data carries a field twice, which a real sign-in never does. Start the "
                           "sign-in again from the app's sign-in page.")
        error.reason = "duplicate_field"
        raise error
    return {name: values[0] for name, values in fields.items()}


@bp.function_name("sso_me")
@bp.route(route="sso/{tenant}/me", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="browser: the signed-in employee, by session cookie")
@handler()
def sso_me(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = req.route_params["tenant"]
    employee = sign_in.signed_in_employee(tenant_id, _cookie(req, sessions.session_cookie_name()))
    return json_response({"id": employee.id, "userName": employee.user_name, "email": employee.work_email,
                          "displayName": employee.display_name, "is_admin": employee.is_admin, "tenant": tenant_id})


@bp.function_name("sso_slo")
@bp.route(route="sso/{tenant}/slo", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="browser: SAML single logout with Entra (HTTP-Redirect binding)")
@handler(HTML)
def sso_slo(req: func.HttpRequest) -> func.HttpResponse:
    """Single logout with Entra (HTTP-Redirect binding): its LogoutResponse to ours, or its LogoutRequest."""
    from urllib.parse import urlsplit

    from shared_code.oidc import logout

    try:
        target = logout.saml_logout(req.route_params["tenant"], urlsplit(req.url).query)
    except logout.EntraLogoutFailed as failed:  # never "signed out" when Entra says it did not
        log.warning(json.dumps({"event": "entra_logout_failed", "tenant": req.route_params["tenant"],
                                "correlation_id": correlation_id.get()}))
        page = message_page(failed.TITLE, failed.message, correlation_id=correlation_id.get(),
                            link=(failed.return_to, "Return to the app") if failed.return_to else None)
        return html_response(page, status=failed.status)
    if target:
        return redirect(target, 303)
    return html_response(message_page("You are signed out", "You have been signed out. You can close this window.",
                                      ok=True, correlation_id=correlation_id.get()))
