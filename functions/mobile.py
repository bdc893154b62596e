"""Mobile sign-in: the tenant admin stores what Entra shows for the iOS and Android apps; the apps read their
MSAL configuration anonymously.

    PUT /api/tenants/{tenant}/mobile          (admin) validate against the operator's app identifiers, merge
                                              with what is stored → 200 stored config + operator_identifiers
    GET /api/tenants/{tenant}/mobile          (admin) → 200 the same (nulls until configured)
    GET /api/mobile/{tenant}/config?platform=ios|android   (anonymous) → 200 with ETag and
                                              Cache-Control: public, max-age=300; If-None-Match → 304;
                                              404 until configured; 400 for a missing or unknown platform.
                                              Also says where the app exchanges MSAL's Entra ID token for
                                              the product's tokens (`token_exchange`: issuer, token endpoint)
"""
from __future__ import annotations

import azure.functions as func

from functions._http import admin_tenant, handler, json_response, read_body
from functions._openapi import describe
from shared_code.tenancy import tenants
from shared_code.platform.errors import BadRequest
from shared_code.sign_in.mobile import MobileConfig, config_etag, operator_identifiers, platform_config
from shared_code.oidc.token_exchange import where_to_exchange
from shared_code.openapi.operations import ADMIN, ANONYMOUS, ETAG, errors, models, no_content, ok
from shared_code.platform.settings import get_settings

bp = func.Blueprint()
bodies = models("shared_code.bodies.mobile")  # named for the OpenAPI document, imported only when it is built
# Apps poll this; five minutes of caching is what an admin waits at most after re-pasting the configuration.
SERVED_CACHE_CONTROL = "public, max-age=300"


def _app_identifiers() -> dict[str, str]:
    settings = get_settings()
    return {"ios_bundle_id": settings.mobile_ios_bundle_id,
            "android_package_name": settings.mobile_android_package_name,
            "android_signature_hash": settings.mobile_android_signature_hash}


def _stored(tenant: tenants.Tenant) -> MobileConfig | None:
    return MobileConfig.from_record(tenant.mobile) if tenant.mobile else None


def _admin_view(tenant: tenants.Tenant):
    from shared_code.bodies.mobile import MobileSetup

    config = _stored(tenant) or MobileConfig()
    base = f"{get_settings().public_base_url}/api/mobile/{tenant.tenant_id}/config"
    return MobileSetup(**config.to_record(),
                       configured={"ios": config.ios_redirect_uri is not None and config.msal_configuration is not None,
                                   "android": config.msal_configuration is not None},
                       config_urls={"ios": f"{base}?platform=ios", "android": f"{base}?platform=android"},
                       operator_identifiers=operator_identifiers(get_settings()))


@bp.function_name("put_mobile_config")
@bp.route(route="tenants/{tenant}/mobile", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="Store what Entra shows for the iOS and Android apps", tag="Mobile", security=ADMIN,
          request=bodies.MobileSetupUpdate,
          responses={**ok(bodies.MobileSetup, "Validated against the app's identifiers and stored (parts not sent "
                                              "are kept)."),
                     **errors("Unprocessable")},
          description="Every refusal is a 422 whose `field` is a dotted path such as "
                      "msal_configuration.redirect_uri.")
@handler()
def put_mobile_config(req: func.HttpRequest) -> func.HttpResponse:
    from shared_code.bodies.mobile import MobileSetupUpdate

    tenant = admin_tenant(req)
    # The authorities must name the tenant's own Entra tenant once its IdP is connected.
    context = {**_app_identifiers(), "entra_tenant_id": (tenant.idp or {}).get("entra_tenant_id")}
    update = read_body(req, MobileSetupUpdate, context=context).update
    # Merged inside the optimistic-concurrency loop, so two admins saving different parts both keep theirs.
    saved = tenants.modify(tenant.tenant_id,
                           lambda current: {"mobile": update.merged_over(_stored(current)).to_record()})
    return json_response(_admin_view(saved))


@bp.function_name("get_mobile_config")
@bp.route(route="tenants/{tenant}/mobile", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The stored mobile settings and the app identifiers to enter in Entra", tag="Mobile",
          security=ADMIN, responses={**ok(bodies.MobileSetup, "The settings (nulls until configured).")})
@handler()
def get_mobile_config(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(_admin_view(admin_tenant(req)))


@bp.function_name("serve_mobile_config")
@bp.route(route="mobile/{tenant}/config", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@describe(summary="The MSAL configuration for one platform (what the mobile app reads)", tag="Mobile",
          security=ANONYMOUS,
          responses={**ok({"anyOf": [bodies.IosAppConfig, bodies.AndroidAppConfig]},
                          "iOS: client_id, redirect_uri, authority, bundle_id. Android: the MSAL configuration "
                          "file. Both: token_exchange, where the app trades the Entra ID token for the product's "
                          "tokens.", headers={**ETAG, "Cache-Control": {"schema": {"type": "string"}}}),
                     **no_content("If-None-Match names the current configuration.", "304", ETAG),
                     **errors("BadRequest", "NotFound", "Conflict")},
          parameters=[{"name": "platform", "in": "query", "required": True, "schema": {"enum": ["ios", "android"]}},
                      {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
          description="404 until the tenant admin has set up that platform (an unknown tenant looks the same); 409 "
                      "when the app's identifiers changed since.")
@handler()
def serve_mobile_config(req: func.HttpRequest) -> func.HttpResponse:
    platform = (req.params.get("platform") or "").strip().lower()
    if not platform:
        raise BadRequest("Add ?platform=ios or ?platform=android to the URL.", field="platform")
    tenant = tenants.find_tenant(req.route_params.get("tenant", ""))
    # An unknown tenant answers like an unconfigured one: the anonymous caller learns nothing more.
    document = platform_config(_stored(tenant) if tenant else None, platform, **_app_identifiers(),
                               token_exchange=where_to_exchange(tenant.tenant_id)
                               if tenant else None)
    etag = config_etag(document)
    headers = {"ETag": etag, "Cache-Control": SERVED_CACHE_CONTROL}
    if _matches(req.headers.get("if-none-match"), etag):
        return func.HttpResponse(status_code=304, headers=headers)
    from shared_code.bodies.mobile import AndroidAppConfig, IosAppConfig

    return json_response((IosAppConfig if platform == "ios" else AndroidAppConfig)(**document), headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison; `*` matches any current representation."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in [tag[2:] if tag.startswith("W/") else tag for tag in tags]
