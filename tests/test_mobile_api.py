"""Mobile sign-in over HTTP: the tenant admin stores what Entra shows for the iOS and Android platforms (every
mismatch with the operator's app identifiers refused with its field named), and the apps read their MSAL
configuration anonymously, cacheable, with ETag / If-None-Match."""
from __future__ import annotations

import copy
import json

import pytest
import requests

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db46"


@pytest.fixture(scope="module")
def app_identity(app_settings) -> dict:
    """What the operator's settings make of the app identifiers (the test settings of tests/conftest.py)."""
    from urllib.parse import quote

    bundle = app_settings["MOBILE_IOS_BUNDLE_ID"]
    package = app_settings["MOBILE_ANDROID_PACKAGE_NAME"]
    signature = app_settings["MOBILE_ANDROID_SIGNATURE_HASH"]
    return {"bundle_id": bundle, "package": package, "signature": signature,
            "ios_redirect_uri": f"msauth.{bundle}://auth",
            "android_redirect_uri": f"msauth://{package}/{quote(signature, safe='')}"}


@pytest.fixture(scope="module")
def entra_msal(app_identity) -> dict:
    """The MSAL configuration Entra shows for the Android platform of a single-tenant app registration."""
    return {"client_id": CLIENT_ID, "authorization_user_agent": "DEFAULT",
            "redirect_uri": app_identity["android_redirect_uri"], "broker_redirect_uri_registered": True,
            "authorities": [{"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": ENTRA_TENANT}}]}


def served(app_url: str, tenant_id: str, platform: str | None, **headers) -> requests.Response:
    params = {"platform": platform} if platform is not None else {}
    return requests.get(f"{app_url}/api/mobile/{tenant_id}/config", params=params, headers=headers, timeout=10)


# ---- the admin's side ------------------------------------------------------------------------------------------

def test_before_setup_the_admin_sees_what_to_enter_in_entra_and_the_apps_get_404(app_url, new_tenant, app_identity):
    tenant = new_tenant()
    response = tenant.api("GET", "mobile")
    assert response.status_code == 200
    body = response.json()
    assert body["ios_redirect_uri"] is None and body["msal_configuration"] is None
    assert body["configured"] == {"ios": False, "android": False}
    assert body["operator_identifiers"] == {
        "ios": {"bundle_id": app_identity["bundle_id"], "redirect_uri": app_identity["ios_redirect_uri"]},
        "android": {"package_name": app_identity["package"], "signature_hash": app_identity["signature"],
                    "redirect_uri": app_identity["android_redirect_uri"]}}
    assert body["config_urls"]["ios"].endswith(f"/api/mobile/{tenant.tenant_id}/config?platform=ios")
    for platform in ("ios", "android"):
        missing = served(app_url, tenant.tenant_id, platform)
        assert missing.status_code == 404 and "not set up" in missing.json()["message"]
        assert missing.headers["Cache-Control"] == "no-store"


def test_admin_stores_the_configuration_pasted_from_entra_and_reads_it_back(new_tenant, entra_msal, app_identity):
    tenant = new_tenant()
    response = tenant.api("PUT", "mobile", json={"ios_redirect_uri": app_identity["ios_redirect_uri"],
                                                 "msal_configuration": json.dumps(entra_msal, indent=2)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ios_redirect_uri"] == app_identity["ios_redirect_uri"]
    assert body["msal_configuration"] == entra_msal  # pasted as text, stored as the object
    assert body["configured"] == {"ios": True, "android": True}
    assert body["operator_identifiers"]["ios"]["bundle_id"] == app_identity["bundle_id"]
    assert tenant.api("GET", "mobile").json() == body
    assert tenant.api("GET", "sso").json()["steps"]["mobile"]["done"] is True


def test_a_partial_update_keeps_the_part_not_sent(new_tenant, entra_msal, app_identity):
    tenant = new_tenant()
    assert tenant.api("PUT", "mobile", json={"msal_configuration": entra_msal}).status_code == 200
    body = tenant.api("PUT", "mobile", json={"ios_redirect_uri": app_identity["ios_redirect_uri"]}).json()
    assert body["msal_configuration"] == entra_msal
    assert body["ios_redirect_uri"] == app_identity["ios_redirect_uri"]


def _with(config: dict, path: str, value) -> dict:
    """A copy of `config` with the dotted `path` set to `value` (or removed, for REMOVE)."""
    changed = copy.deepcopy(config)
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is REMOVE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return changed


REMOVE = object()
AUDIENCE = "authorities.0.audience"
MSAL_MISMATCHES = [
    ("client_id", REMOVE, "msal_configuration.client_id"),
    ("client_id", "not-a-guid", "msal_configuration.client_id"),
    ("redirect_uri", "msauth://com.other.app/2pmj9i4rSx0yEb%2FviWBYkE%2FZQrk%3D", "msal_configuration.redirect_uri"),
    ("redirect_uri", "msauth://com.example.gatehouse/2pmj9i4rSx0yEb/viWBYkE/ZQrk=", "msal_configuration.redirect_uri"),
    ("redirect_uri", "msauth.com.example.gatehouse://auth", "msal_configuration.redirect_uri"),
    ("redirect_uri", REMOVE, "msal_configuration.redirect_uri"),
    ("account_mode", "single", "msal_configuration.account_mode"),
    ("authorization_user_agent", "CHROME", "msal_configuration.authorization_user_agent"),
    ("broker_redirect_uri_registered", "true", "msal_configuration.broker_redirect_uri_registered"),
    ("authorities", REMOVE, "msal_configuration.authorities"),
    ("authorities", [], "msal_configuration.authorities"),
    ("authorities.0.type", "B2C", "msal_configuration.authorities[0].type"),
    (f"{AUDIENCE}.type", "AzureADMultipleOrgs", "msal_configuration.authorities[0].audience.type"),
    (f"{AUDIENCE}.type", "PersonalMicrosoftAccount", "msal_configuration.authorities[0].audience.type"),
    (f"{AUDIENCE}.tenant_id", "common", "msal_configuration.authorities[0].audience.tenant_id"),
    (f"{AUDIENCE}.tenant_id", "organizations", "msal_configuration.authorities[0].audience.tenant_id"),
    (f"{AUDIENCE}.tenant_id", "9188040d-6c67-4c5b-b112-36a304b66dad",
     "msal_configuration.authorities[0].audience.tenant_id"),
    (f"{AUDIENCE}.tenant_id", REMOVE, "msal_configuration.authorities[0].audience.tenant_id"),
    ("authorities.0.authority_url", "https://login.example.com/" + ENTRA_TENANT,
     "msal_configuration.authorities[0].authority_url"),
    ("authorities.0.authority_url", "https://login.microsoftonline.com/0b5a6c1e-0a4b-4c7d-9e3f-2b1a0c9d8e7f",
     "msal_configuration.authorities[0].authority_url"),
    ("authorities.0.default", "yes", "msal_configuration.authorities[0].default"),
]


@pytest.mark.parametrize("path, value, field", MSAL_MISMATCHES,
                         ids=[f"{path}={value if value is not REMOVE else 'removed'}"
                              for path, value, _ in MSAL_MISMATCHES])
def test_every_msal_mismatch_is_refused_with_its_field_named(new_tenant, entra_msal, path, value, field):
    tenant = new_tenant()
    response = tenant.api("PUT", "mobile", json={"msal_configuration": _with(entra_msal, path, value)})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["message"] and "Traceback" not in response.text
    assert tenant.api("GET", "mobile").json()["msal_configuration"] is None


@pytest.mark.parametrize("payload, field, words", [
    ({"ios_redirect_uri": "msauth.COM.EXAMPLE.GATEHOUSE://auth"}, "ios_redirect_uri", "letter case"),
    ({"ios_redirect_uri": "msauth.com.other.app://auth"}, "ios_redirect_uri", "bundle ID"),
    ({"ios_redirect_uri": "msauth://com.example.gatehouse/abc"}, "ios_redirect_uri", "Android"),
    ({"ios_redirect_uri": None}, "ios_redirect_uri", "leave the field out"),
    ({"ios_bundle_id": "com.other.app", "ios_redirect_uri": "msauth.com.example.gatehouse://auth"},
     "ios_bundle_id", "fixed by the app's publisher"),
    ({"android_signature_hash": "AAAA", "msal_configuration": {}}, "android_signature_hash", "publisher"),
    ({"msal_configuration": '{"client_id": "x", // a comment\n}'}, "msal_configuration", "comments"),
    ({"msal_configuration": '{"client_id": "a", "client_id": "b"}'}, "msal_configuration", "twice"),
    ({"msal_configuration": "[]"}, "msal_configuration", "JSON object"),
    ({"redirect_uri": "x"}, "redirect_uri", "Unknown field"),
])
def test_ios_redirect_uri_and_pasted_text_mistakes_are_refused_with_their_field(new_tenant, payload, field, words):
    tenant = new_tenant()
    response = tenant.api("PUT", "mobile", json=payload)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["message"]


def test_mobile_setup_needs_this_tenants_admin_key(app_url, new_tenant, entra_msal):
    tenant, other = new_tenant(), new_tenant("Globex")
    url = f"{app_url}/api/tenants/{tenant.tenant_id}/mobile"
    assert requests.put(url, json={"msal_configuration": entra_msal}, timeout=10).status_code == 401
    assert requests.get(url, headers=other.admin_headers, timeout=10).status_code == 403
    assert requests.put(url, json={"msal_configuration": entra_msal}, headers=other.admin_headers,
                        timeout=10).status_code == 403
    assert tenant.api("GET", "mobile").json()["msal_configuration"] is None


# ---- the apps' side ----------------------------------------------------------------------------------------------

@pytest.fixture
def configured(new_tenant, entra_msal, app_identity):
    tenant = new_tenant()
    response = tenant.api("PUT", "mobile", json={"ios_redirect_uri": app_identity["ios_redirect_uri"],
                                                 "msal_configuration": entra_msal})
    assert response.status_code == 200, response.text
    return tenant


def test_apps_get_their_platforms_configuration_cacheable_with_an_etag(app_url, configured, app_identity):
    android = served(app_url, configured.tenant_id, "android")
    assert android.status_code == 200
    assert android.headers["Cache-Control"] == "public, max-age=300"
    assert android.headers["ETag"].startswith('"') and android.headers["ETag"].endswith('"')
    assert android.json()["client_id"] == CLIENT_ID
    assert android.json()["redirect_uri"] == app_identity["android_redirect_uri"]
    assert android.json()["account_mode"] == "MULTIPLE"  # MSAL's default made explicit

    ios = served(app_url, configured.tenant_id, "ios")
    assert ios.status_code == 200
    assert ios.json() == {"client_id": CLIENT_ID, "redirect_uri": app_identity["ios_redirect_uri"],
                          "authority": f"https://login.microsoftonline.com/{ENTRA_TENANT}",
                          "bundle_id": app_identity["bundle_id"], "token_exchange": exchange_at(configured)}
    assert android.json()["token_exchange"] == exchange_at(configured)
    assert ios.headers["ETag"] != android.headers["ETag"]


def exchange_at(tenant) -> dict:
    """Where the served configuration sends the app to trade MSAL's Entra ID token (issue 15)."""
    issuer = f"{tenant.base_url}/api/oidc/{tenant.tenant_id}"
    return {"issuer": issuer, "token_endpoint": f"{issuer}/token",
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}


def test_if_none_match_with_the_current_etag_answers_304_without_a_body(app_url, configured):
    first = served(app_url, configured.tenant_id, "ios")
    etag = first.headers["ETag"]
    again = served(app_url, configured.tenant_id, "ios", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == "public, max-age=300"
    for header in (f'"other", {etag}', f"W/{etag}", "*"):
        assert served(app_url, configured.tenant_id, "ios", **{"If-None-Match": header}).status_code == 304
    stale = served(app_url, configured.tenant_id, "ios", **{"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.json() == first.json()


def test_a_changed_configuration_gets_a_new_etag(app_url, configured, entra_msal):
    before = served(app_url, configured.tenant_id, "android").headers["ETag"]
    changed = {**entra_msal, "client_id": "0b5a6c1e-0a4b-4c7d-9e3f-2b1a0c9d8e7f"}
    assert configured.api("PUT", "mobile", json={"msal_configuration": changed}).status_code == 200
    after = served(app_url, configured.tenant_id, "android", **{"If-None-Match": before})
    assert after.status_code == 200 and after.headers["ETag"] != before
    assert after.json()["client_id"] == changed["client_id"]


def test_ios_without_its_redirect_uri_is_404_while_android_is_served(app_url, new_tenant, entra_msal):
    tenant = new_tenant()
    assert tenant.api("PUT", "mobile", json={"msal_configuration": entra_msal}).status_code == 200
    assert served(app_url, tenant.tenant_id, "android").status_code == 200
    ios = served(app_url, tenant.tenant_id, "ios")
    assert ios.status_code == 404 and "iOS" in ios.json()["message"]


@pytest.mark.parametrize("platform", [None, "", "windows", "ios android"])
def test_a_missing_or_unknown_platform_is_400_with_the_field_named(app_url, configured, platform):
    response = served(app_url, configured.tenant_id, platform)
    assert response.status_code == 400
    assert response.json()["field"] == "platform"
    assert "ios" in response.json()["message"] and "android" in response.json()["message"]


def test_an_unknown_tenant_looks_like_an_unconfigured_one(app_url):
    for tenant_id in ("no-such-tenant-000000", "NOT_A_TENANT"):
        response = served(app_url, tenant_id, "android")
        assert response.status_code == 404 and "not set up" in response.json()["message"]
    assert served(app_url, "no-such-tenant-000000", "windows").status_code == 400


def test_once_entra_is_connected_the_authority_must_be_that_entra_tenant(new_tenant, entra_msal):
    from tests.support.idp import TestIdp

    tenant = new_tenant()
    idp = TestIdp(key_label="mobile-authority")
    assert tenant.api("POST", "sso/idp-metadata", json={"metadata_xml": idp.metadata_xml().decode()}).status_code == 200
    foreign = tenant.api("PUT", "mobile", json={"msal_configuration": entra_msal})  # names another Entra tenant
    assert foreign.status_code == 422 and foreign.json()["field"] == "msal_configuration.authorities[0]"
    own = _with(entra_msal, "authorities.0.audience.tenant_id", idp.entra_tenant_id)
    assert tenant.api("PUT", "mobile", json={"msal_configuration": own}).status_code == 200


def test_a_deeply_nested_msal_configuration_is_a_422_not_a_500(new_tenant):
    tenant = new_tenant()
    response = tenant.api("PUT", "mobile", json={"msal_configuration": "[" * 10_000})
    assert response.status_code == 422, response.text
