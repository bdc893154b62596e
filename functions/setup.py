"""The setup wizard: its page and assets, the operator's setup links, and the wizard sessions they open.

The page is static (`shared_code/setup_page/`): HTML, CSS and JS read once per instance, the assets served
under content-hashed names with a year of caching. The page itself calls the tenant-admin API with the
session cookie this module sets (see `shared_code/tenancy/setup_access.py` and `admin_tenant`).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import azure.functions as func

from functions._http import HTML, bearer_token, handler, html_response, json_response, read_body, request_cookie
from functions._openapi import describe
from shared_code.tenancy import setup_access, tenants
from shared_code.platform.errors import NotFound, Unauthorized
from shared_code.openapi.operations import ANONYMOUS, OPERATOR, errors, models, no_content, ok

bp = func.Blueprint()
bodies = models("shared_code.bodies.setup_access")  # named for the OpenAPI document, imported when it is built

PAGE_DIR = Path(__file__).resolve().parent.parent / "shared_code" / "setup_page"
# No inline script or style anywhere: everything the page runs or shows comes from its own origin.
WIZARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_ASSET_TYPES = {"css": "text/css", "js": "text/javascript"}
_IMMUTABLE = "public, max-age=31536000, immutable"


@lru_cache(maxsize=1)
def _assets() -> dict[str, tuple[bytes, str, str]]:
    """Served name (`wizard.<hash>.js`) → (content, content type, ETag), read once per instance."""
    assets = {}
    for source in sorted(PAGE_DIR.iterdir()):
        kind = source.suffix.lstrip(".")
        if kind not in _ASSET_TYPES:
            continue
        content = source.read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:16]
        assets[f"{source.stem}.{digest}.{kind}"] = (content, _ASSET_TYPES[kind], f'"{digest}"')
    return assets


@lru_cache(maxsize=1)
def _page() -> str:
    html = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
    for served in _assets():
        stem, _, kind = served.split(".")
        html = html.replace(f"{{{{{stem}.{kind}}}}}", f"/api/setup-assets/{served}")
    return html


@bp.function_name("setup_wizard_page")
@bp.route(route="setup/{tenant}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="the setup wizard page (HTML for a person's browser)")
@handler(HTML)
def setup_wizard_page(req: func.HttpRequest) -> func.HttpResponse:
    # The same page for every well-formed tenant id: an anonymous visitor learns nothing about which exist.
    if not tenants.TENANT_ID.match(req.route_params.get("tenant", "")):
        raise NotFound("There is no setup page at this address. Check the link you were sent.")
    return html_response(_page(), csp=WIZARD_CSP)


@bp.function_name("setup_wizard_asset")
@bp.route(route="setup-assets/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(excluded="the wizard's static CSS/JS under content-hashed names")
@handler()
def setup_wizard_asset(req: func.HttpRequest) -> func.HttpResponse:
    asset = _assets().get(req.route_params.get("name", ""))
    if asset is None:
        raise NotFound("No such asset.")
    content, content_type, etag = asset
    headers = {"Cache-Control": _IMMUTABLE, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in (req.headers.get("if-none-match") or ""):
        return func.HttpResponse(status_code=304, headers=headers)
    return func.HttpResponse(content, status_code=200, mimetype=content_type, charset="utf-8", headers=headers)


@bp.function_name("create_setup_link")
@bp.route(route="tenants/{tenant}/setup-link", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="A one-time, expiring link to the setup wizard for the tenant admin", tag="Operator",
          security=OPERATOR,
          responses={**ok(bodies.SetupLink, "The link (its token is in the fragment, so it never reaches a server "
                                            "log).", "201"),
                     **errors("NotFound")},
          description="Issuing a link replaces the previous one. 503 also when SESSION_SIGNING_KEY is not set.")
@handler()
def create_setup_link(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.setup_access import SetupLink

    tenants.authenticate_operator(bearer_token(req))
    url, expires_at = setup_access.issue_setup_link(req.route_params["tenant"])
    return json_response(SetupLink(url=url, expires_at=expires_at.isoformat()), 201)


@bp.function_name("open_setup_session")
@bp.route(route="setup/{tenant}/session", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Spend a setup link's token on a wizard session (sets its cookie)", tag="Setup wizard",
          security=ANONYMOUS, request=bodies.SetupLinkToken,
          responses={**ok(bodies.WizardSession, "The session; the cookie is HttpOnly, the CSRF token is for "
                                                "X-CSRF-Token.", "201",
                          headers={"Set-Cookie": {"schema": {"type": "string"}}}), **errors("Forbidden")},
          description="403 when the token is unknown, replaced, used already or expired.")
@handler()
def open_setup_session(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.setup_access import SetupLinkToken, WizardSession

    tenant_id = req.route_params["tenant"]
    session = setup_access.open_session(tenant_id, read_body(req, SetupLinkToken).token)
    return json_response(WizardSession(**session.public()), 201,
                         headers={"Set-Cookie": setup_access.set_cookie_header(session)})


@bp.function_name("read_setup_session")
@bp.route(route="setup/{tenant}/session", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The current wizard session (a reloaded page gets its CSRF token back)", tag="Setup wizard",
          security=ANONYMOUS,
          responses={**ok(bodies.WizardSession, "The session of the cookie sent."), **errors("Unauthorized")})
@handler()
def read_setup_session(req: func.HttpRequest) -> func.HttpResponse:
    """A reloaded page gets its CSRF token back from the cookie (a cross-site page cannot read this answer)."""
    tenant_id = req.route_params["tenant"]
    session = None
    if tenants.TENANT_ID.match(tenant_id):
        session = setup_access.current_session(tenant_id, request_cookie(req, setup_access.cookie_name(tenant_id)))
    if session is None:
        raise Unauthorized("No setup session: open the setup link your operator sent, or paste the admin key.")
    from shared_code.bodies.setup_access import WizardSession

    return json_response(WizardSession(**session.public()))


@bp.function_name("close_setup_session")
@bp.route(route="setup/{tenant}/session", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Forget the wizard session cookie", tag="Setup wizard", security=ANONYMOUS,
          responses={**no_content("The cookie is cleared."), **errors("NotFound")})
@handler()
def close_setup_session(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = req.route_params["tenant"]
    if not tenants.TENANT_ID.match(tenant_id):
        raise NotFound("No such tenant.")
    setup_access.end_session(tenant_id, request_cookie(req, setup_access.cookie_name(tenant_id)))
    return func.HttpResponse(status_code=204, headers={"Set-Cookie": setup_access.clear_cookie_header(tenant_id),
                                                       "Cache-Control": "no-store"})
