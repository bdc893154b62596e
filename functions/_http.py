"""The HTTP adapter shared by every blueprint: request parsing, error mapping and the per-request log line.

Cores raise `GatehouseError`s; this is the one place that turns them into responses, in three flavours: JSON
(admin and mobile APIs), SCIM (RFC 7644 error schema, `application/scim+json`) and HTML (pages for people).
Nothing unexpected leaks: an unhandled exception becomes a 500 with only a correlation id.
"""
from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from contextvars import ContextVar
from typing import Any, Callable

import azure.functions as func

from functions import _reactions
from shared_code.platform import rate_limit
from shared_code.platform.errors import BadRequest, GatehouseError, PayloadTooLarge
from shared_code.platform.pages import PAGE_CSP, message_page
from shared_code.storage import tables

log = logging.getLogger("gatehouse")
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="")

_reactions.install()

JSON, SCIM, HTML = "application/json", "application/scim+json", "text/html; charset=utf-8"
MAX_JSON_BYTES = 1 << 20  # 1 MiB: far above any legitimate admin or SCIM body
MAX_JSON_DEPTH = 32  # SCIM bodies nest 4-5 levels; deeper is an attack on the parsers below us
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


# ---- responses --------------------------------------------------------------------------------------------

def _headers(extra: dict[str, str] | None) -> dict[str, str]:
    headers = dict(_SECURITY_HEADERS)
    cid = correlation_id.get()
    if cid:
        headers["X-Correlation-Id"] = cid
    headers.update(extra or {})
    return headers


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    """`body` is JSON-ready data or a response model (`shared_code.bodies.Answer`, serialised by its `dump`)."""
    if hasattr(body, "dump"):
        body = body.dump()
    return func.HttpResponse(json.dumps(body, separators=(",", ":"), ensure_ascii=False), status_code=status,
                             mimetype="application/json", charset="utf-8", headers=_headers(headers))


def scim_response(body: Any | None, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    text = "" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return func.HttpResponse(text, status_code=status, mimetype="application/scim+json", charset="utf-8",
                             headers=_headers(headers))


def html_response(html: str, status: int = 200, headers: dict[str, str] | None = None,
                  csp: str = PAGE_CSP) -> func.HttpResponse:
    return func.HttpResponse(html, status_code=status, mimetype="text/html", charset="utf-8",
                             headers=_headers({"Content-Security-Policy": csp, "X-Frame-Options": "DENY",
                                               **(headers or {})}))


def redirect(location: str, status: int = 302, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(status_code=status, headers=_headers({"Location": location, **(headers or {})}))


def login_redirect(start, status: int = 302, cookie_header: str | None = None) -> func.HttpResponse:
    """Send the browser to the IdP for an SP-initiated sign-in (`sign_in.LoginRedirect`), with the cookie that binds
    the sign-in to this browser and the cookie that holds the pending login itself (no row is written); the
    oldest pending logins the browser holds (its `cookie_header`) beyond a handful are expired."""
    from shared_code.sign_in import pending_logins, sessions

    response = redirect(start.url, status)
    response.headers.add("Set-Cookie", sessions.login_binding_set_cookie(
        sessions.issue_login_binding(start.browser_nonce)))
    response.headers.add("Set-Cookie", pending_logins.set_cookie(start.relay_id, start.pending_cookie))
    for relay_id in pending_logins.crowding_out(cookie_header):
        response.headers.add("Set-Cookie", pending_logins.clear_cookie(relay_id))
    return response


def error_response(error: GatehouseError, flavour: str) -> func.HttpResponse:
    if flavour == SCIM:
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(error.status),
                "detail": error.message}
        if error.scim_type:
            body["scimType"] = error.scim_type
        return scim_response(body, error.status, error.headers)
    if flavour == HTML:
        title = getattr(error, "title", None) or ("Please try again shortly" if error.status == 503
                                                  else "Sign-in was not possible")
        page = message_page(title, error.message, correlation_id=correlation_id.get())
        return html_response(page, error.status, error.headers)
    body = {"error": error.code, "message": error.message, "correlation_id": correlation_id.get()}
    if error.field:
        body["field"] = error.field
    return json_response(body, error.status, error.headers)


def _unexpected(flavour: str) -> func.HttpResponse:
    message = "Something went wrong on our side. It has been logged; please retry or contact support."
    if flavour == HTML:
        return html_response(message_page("Something went wrong", message, correlation_id=correlation_id.get()), 500)
    if flavour == SCIM:
        return scim_response({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "500",
                              "detail": message}, 500)
    return json_response({"error": "internal", "message": message, "correlation_id": correlation_id.get()}, 500)


# ---- the handler decorator -----------------------------------------------------------------------------------

def handler(flavour: str = JSON) -> Callable:
    """Wrap an HTTP function: correlation id, error mapping, one structured log line (no secrets, no bodies)."""

    def wrap(fn: Callable[[func.HttpRequest], func.HttpResponse]) -> Callable:
        @functools.wraps(fn)
        def run(req: func.HttpRequest) -> func.HttpResponse:
            cid = _incoming_correlation_id(req) or uuid.uuid4().hex
            token = correlation_id.set(cid)
            # Who is calling, for the limit on failed authentications (checked where credentials are).
            client = rate_limit.client_address.set(rate_limit.client_of(req.headers))
            started = time.perf_counter()
            outcome, status = "ok", 500
            try:
                with tables.request_deadline():  # all of this request's storage work: a hung store → 503
                    with _reactions.after_request():  # then what ends trust, if the core committed it
                        response = fn(req)
                status = response.status_code
            except GatehouseError as error:
                outcome, status = error.code, error.status
                response = error_response(error, flavour)
            except Exception:  # noqa: BLE001 - the last line of defence: log it, show nothing of it
                outcome = "unhandled"
                log.exception("unhandled error in %s (correlation_id=%s)", fn.__name__, cid)
                response = _unexpected(flavour)
            finally:
                log.info(json.dumps({
                    "event": "request", "function": fn.__name__, "method": req.method,
                    "tenant": (req.route_params or {}).get("tenant"), "status": status, "outcome": outcome,
                    "correlation_id": cid, "ms": round((time.perf_counter() - started) * 1000, 2),
                }))
                correlation_id.reset(token)
                rate_limit.client_address.reset(client)
            return response

        return run

    return wrap


def _incoming_correlation_id(req: func.HttpRequest) -> str | None:
    value = req.headers.get("x-correlation-id") or ""
    # Only echo ids that are plainly ids: the value lands in logs and pages.
    return value if 8 <= len(value) <= 64 and value.replace("-", "").isalnum() else None


# ---- request helpers -------------------------------------------------------------------------------------------

def bearer_token(req: func.HttpRequest) -> str | None:
    value = req.headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def read_json(req: func.HttpRequest, *, max_bytes: int = MAX_JSON_BYTES, required: bool = True) -> Any:
    body = req.get_body() or b""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")  # RFC 7644 has no scimType for 413
    if not body.strip():
        if required:
            raise BadRequest("A JSON body is required.", scim_type="invalidSyntax")
        return None
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"The body is not valid JSON: {error.msg if hasattr(error, 'msg') else 'bad encoding'}.",
                         scim_type="invalidSyntax") from None
    except RecursionError:  # 60 KB of "[" exhausts the parser's stack: a 400, not a 500 with a traceback
        value = None
    else:
        if not too_deep(value):
            return value
    raise BadRequest(f"The body nests JSON more than {MAX_JSON_DEPTH} levels deep.", scim_type="invalidSyntax")


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in `value` nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def read_json_object(req: func.HttpRequest, **kwargs) -> dict:
    body = read_json(req, **kwargs)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", scim_type="invalidSyntax")
    return body


def read_body(req: func.HttpRequest, model: type, *, context: dict | None = None, **kwargs):
    """The JSON body validated into `model` (a `shared_code.bodies.Body`); refusals are our 400/422."""
    from shared_code.bodies import parse  # pydantic loads with the first request that has a body

    return parse(model, read_json_object(req, **kwargs), context=context)


# ---- who is calling ----------------------------------------------------------------------------------------------

def request_cookie(req: func.HttpRequest, name: str) -> str | None:
    """The value of one cookie of the request (None when absent); values are opaque to us."""
    for pair in (req.headers.get("cookie") or "").split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def admin_tenant(req: func.HttpRequest, *, operator_too: bool = False):
    """The tenant whose admin makes this request (every tenant-admin endpoint asks here, nowhere else).

    Either the admin key as a bearer token, or the setup wizard's session cookie for *this* tenant; with the
    cookie, state-changing methods also need the session's `X-CSRF-Token` header (a cookie alone is ambient).
    `operator_too` also admits the operator key (support reads a tenant's setup).
    """
    from shared_code.tenancy import setup_access, tenants

    tenant_id = req.route_params.get("tenant", "")
    key = bearer_token(req)
    if key is None and tenants.TENANT_ID.match(tenant_id):
        session_cookie = request_cookie(req, setup_access.cookie_name(tenant_id))
        if session_cookie is not None:
            return setup_access.authenticate_session(tenant_id, session_cookie, method=req.method,
                                                     csrf_header=req.headers.get("x-csrf-token"))
    if operator_too:
        return tenants.authenticate_admin_or_operator(tenant_id, key)
    return tenants.authenticate_admin(tenant_id, key)
