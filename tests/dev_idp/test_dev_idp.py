"""The development IdP over real HTTP on the suite's host (DEV_IDP=true, http://, as `make run`): a tenant is
connected by the metadata URL an admin would paste, Entra's provisioning is simulated with tools.simulate_entra,
and the employees sign in through Gatehouse's real ACS with the development IdP's signed responses — by
`login_hint` without a page, or from its picker page. Single logout both ways, its refusals, and its Entra
v2.0 key set and ID tokens."""
from __future__ import annotations

import base64
import re
import zlib
from datetime import datetime, timezone
from html import unescape
from typing import Iterator
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from lxml import etree

from shared_code import saml
from shared_code.sign_in import service as sign_in
from shared_code.tenancy import tenants as tenant_service
from shared_code.dev_idp import service
from shared_code.saml.logout import read_logout_message
from tests.conftest import LocalHost, TenantHandle, free_port
from tests.sso.conftest import SESSION, login_cookies, set_cookies
from tests.support.idp import (CLAIM_AUTHN_METHODS, CLAIM_EMAIL, CLAIM_GIVEN_NAME, CLAIM_OBJECT_ID, CLAIM_SURNAME,
                               CLAIM_TENANT_ID, NS_SAML, decode_authn_request, parse)
from tools.simulate_entra import EntraProvisioning, run

DOMAIN = "contoso.example"


class DevTenant:
    """A tenant connected to the development IdP by its metadata URL, with the sample directory provisioned."""

    def __init__(self, handle, app_url: str):
        self.handle, self.app_url, self.id = handle, app_url, handle.tenant_id
        self.metadata_url = f"{app_url}/api/dev-idp/{self.id}/metadata"
        self.connected = handle.api("POST", "sso/idp-metadata", json={"metadata_url": self.metadata_url})
        assert self.connected.status_code == 200, self.connected.text
        self.scim = EntraProvisioning(handle.scim_url, handle.scim_token())
        self.report = run(self.scim, DOMAIN)

    def login(self) -> tuple[str, str]:
        """Gatehouse's SP-initiated login: (the IdP URL it redirects to, the Cookie header the browser sends back
        with the IdP's answer: the login binding and the sealed pending login)."""
        response = requests.get(f"{self.app_url}/api/sso/{self.id}/login", allow_redirects=False, timeout=30)
        assert response.status_code == 302, response.text
        return response.headers["Location"], "; ".join(f"{k}={v}" for k, v in login_cookies(response).items())

    def post_form(self, page: str) -> dict[str, str]:
        """The fields of the auto-posting form of the IdP's answer page, and where it posts."""
        action = unescape(re.search(r'<form method="POST" name="hiddenform" action="([^"]+)"', page).group(1))
        fields = {unescape(n): unescape(v) for n, v in re.findall(r'name="(\w+)" value="([^"]*)"', page)}
        return {"action": action, **fields}

    def sign_in(self, upn: str) -> requests.Response:
        """Login → development IdP with login_hint (no page) → POST to the ACS with the browser's cookie."""
        location, binding = self.login()
        answer = requests.get(location, params={"login_hint": upn}, timeout=30)
        assert answer.status_code == 200, answer.text
        form = self.post_form(answer.text)
        return requests.post(form.pop("action"), data=form, allow_redirects=False, timeout=30,
                             headers={"Cookie": binding})


@pytest.fixture(scope="module")
def dev(new_tenant, app_url) -> DevTenant:
    return DevTenant(new_tenant("Dev IdP Corp", "https://devidp.example.com"), app_url)


def test_its_metadata_is_app_federation_metadata_shaped_like_entras(dev, app_url):
    body = dev.connected.json()
    entra_tenant = service.entra_tenant_id(dev.id)
    assert body["connection"] == "established"
    assert body["idp_entity_id"] == f"https://sts.windows.net/{entra_tenant}/"
    assert body["entra_tenant_id"] == entra_tenant
    assert body["sso_url"] == f"{app_url}/api/dev-idp/{dev.id}/saml2"
    response = requests.get(dev.metadata_url, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/samlmetadata+xml")
    metadata = saml.parse_idp_metadata(response.content, datetime.now(timezone.utc))
    assert metadata.slo_url == metadata.sso_url  # Entra's logout URL is its sign-in URL
    # Signed, with the certificate it signs with; the same certificate on every fetch (derived, not random).
    assert b"<ds:Signature" in response.content
    (certificate,) = body["certificates"]
    assert [c.sha256 for c in metadata.certificates] == [certificate["sha256"]]
    assert requests.get(dev.metadata_url, timeout=30).content.count(metadata.certificates[0].der_b64.encode()) == 2
    assert requests.get(f"{app_url}/api/dev-idp/no-such-tenant/metadata", timeout=30).status_code == 404


def test_login_hint_signs_the_employee_in_without_a_page_with_entras_claims(dev, app_url):
    adele = dev.report.users[f"adele.vance@{DOMAIN}"]
    location, binding = dev.login()
    request, _ = decode_authn_request(location)
    answer = requests.get(location, params={"login_hint": f"Adele.Vance@{DOMAIN}"}, timeout=30)
    assert answer.status_code == 200
    assert "for development only" in answer.text
    form = dev.post_form(answer.text)
    assert form["action"] == dev.handle.created["acs_url"]
    document = parse(form["SAMLResponse"])
    assert document.get("InResponseTo") == request.get("ID")
    assertion = document.find(f"{{{NS_SAML}}}Assertion")
    assert assertion.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is not None  # the assertion is signed
    claims = {a.get("Name"): [v.text for v in a] for a in assertion.iter(f"{{{NS_SAML}}}Attribute")}
    user = dev.scim.get_user(adele).json()
    assert claims[CLAIM_OBJECT_ID] == [user["externalId"]]
    assert claims[CLAIM_TENANT_ID] == [service.entra_tenant_id(dev.id)]
    assert claims[CLAIM_EMAIL] == [f"adele.vance@{DOMAIN}"]
    assert claims[CLAIM_GIVEN_NAME] == ["Adele"] and claims[CLAIM_SURNAME] == ["Vance"]
    assert claims[CLAIM_AUTHN_METHODS]
    accepted = requests.post(form.pop("action"), data=form, allow_redirects=False, timeout=30,
                             headers={"Cookie": binding})
    assert accepted.status_code == 303, accepted.text
    session = set_cookies(accepted)[SESSION].value
    me = requests.get(f"{app_url}/api/sso/{dev.id}/me", headers={"Cookie": f"{SESSION}={session}"}, timeout=30)
    assert me.status_code == 200 and me.json()["id"] == adele


def test_without_a_login_hint_it_shows_the_tenants_employees_to_pick(dev):
    location, _ = dev.login()
    page = requests.get(location, timeout=30)
    assert page.status_code == 200
    assert "Gatehouse development IdP" in page.text and "for development only" in page.text
    listed = set(re.findall(r'data-upn="([^"]+)"', page.text))
    # The active employees; the dismissed one (Alex) is not offered, but may still be typed.
    assert listed == {f"{name}@{DOMAIN}" for name in ("adele.vance", "megan.bowen", "lee.gu", "nestor.wilke")}
    assert 'name="login_hint"' in page.text and "script-src 'none'" in page.headers["Content-Security-Policy"]


def _with_request_flags(location: str, **flags: str) -> str:
    """The IdP URL with the (unsigned, deflated) AuthnRequest's attributes set, as an OIDC prompt would set them."""
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    request = parse(zlib.decompress(base64.b64decode(query["SAMLRequest"]), -15))
    for name, value in flags.items():
        request.set(name, value)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    query["SAMLRequest"] = base64.b64encode(deflater.compress(etree.tostring(request)) + deflater.flush()).decode()
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def test_a_silent_request_without_a_login_hint_answers_no_passive_never_a_page(dev):
    location, cookies = dev.login()
    page = requests.get(_with_request_flags(location, IsPassive="true"), timeout=30)
    assert page.status_code == 200 and 'data-upn="' not in page.text  # no picker: a silent request shows nothing
    form = dev.post_form(page.text)
    document = parse(base64.b64decode(form["SAMLResponse"]))
    codes = [c.get("Value") for c in document.iter("{urn:oasis:names:tc:SAML:2.0:protocol}StatusCode")]
    assert codes[-1] == "urn:oasis:names:tc:SAML:2.0:status:NoPassive" and document.find(f"{{{NS_SAML}}}Assertion") is None
    refused = requests.post(form.pop("action"), data=form, allow_redirects=False, timeout=30,
                            headers={"Cookie": cookies})
    assert refused.status_code >= 400 and SESSION not in set_cookies(refused)  # nobody signs in


def test_a_force_authn_request_is_authenticated_now(dev):
    location, _ = dev.login()
    answer = requests.get(_with_request_flags(location, ForceAuthn="true"),
                          params={"login_hint": f"lee.gu@{DOMAIN}"}, timeout=30)
    document = parse(base64.b64decode(dev.post_form(answer.text)["SAMLResponse"]))
    statement = document.find(f".//{{{NS_SAML}}}AuthnStatement")
    assert statement.get("AuthnInstant") == document.get("IssueInstant")  # not an older session's instant


def test_a_dismissed_employee_is_signed_in_by_the_idp_and_refused_by_gatehouse(dev):
    refused = dev.sign_in(dev.report.dismissed)
    assert refused.status_code == 403, refused.text
    assert SESSION not in set_cookies(refused)
    rehired = dev.sign_in(dev.report.rehired)
    assert rehired.status_code == 303, rehired.text


def test_it_refuses_what_is_not_its_own_tenants_request(dev, new_tenant, app_url):
    location, _ = dev.login()
    sso_url = location.split("?")[0]
    unknown = requests.get(location, params={"login_hint": "nobody@contoso.example"}, timeout=30)
    assert unknown.status_code == 404 and "No employee of this tenant" in unknown.text
    assert "for development only" in unknown.text
    # Another tenant's AuthnRequest at this tenant's IdP: it would post a signed response to another ACS.
    other = new_tenant("Other Dev Corp", "https://other.example.com").tenant_id
    foreign = requests.get(f"{app_url}/api/dev-idp/{other}/saml2?{urlsplit(location).query}", timeout=30)
    assert foreign.status_code == 400 and "not from tenant" in foreign.text
    for query in ("", "?SAMLRequest=%%%", "?SAMLRequest=" + base64.b64encode(b"\x00" * 64).decode()):
        refused = requests.get(sso_url + query, timeout=30)
        assert refused.status_code == 400, (query, refused.text)
        assert "Development IdP (for development only)" in refused.text and "Traceback" not in refused.text


def test_single_logout_both_ways_with_signed_messages(dev, app_url):
    signed_in = dev.sign_in(f"megan.bowen@{DOMAIN}")
    session = set_cookies(signed_in)[SESSION].value
    cookie = {"Cookie": f"{SESSION}={session}"}
    # Entra-initiated: the employee signs out in Entra; the IdP sends Gatehouse a signed LogoutRequest.
    to_sp = requests.get(f"{app_url}/api/dev-idp/{dev.id}/logout", params={"login_hint": f"megan.bowen@{DOMAIN}"},
                         allow_redirects=False, timeout=30)
    assert to_sp.status_code == 302
    target = to_sp.headers["Location"]
    assert target.startswith(f"{app_url}/api/sso/{dev.id}/slo?")
    query = parse_qs(urlsplit(target).query)
    assert {"SAMLRequest", "SigAlg", "Signature"} <= set(query)
    answered = requests.get(target, headers=cookie, allow_redirects=False, timeout=30)
    # Gatehouse verified the signature and answers the IdP's SingleLogoutService with its LogoutResponse.
    assert answered.status_code == 303, answered.text
    assert answered.headers["Location"].startswith(f"{app_url}/api/dev-idp/{dev.id}/saml2?SAMLResponse=")
    done = requests.get(answered.headers["Location"], timeout=30)
    assert done.status_code == 200 and 'id="signed-out"' in done.text and "for development only" in done.text
    forged = requests.get(target.split("&Signature=")[0] + "&Signature=AAAA", headers=cookie, allow_redirects=False,
                          timeout=30)
    assert forged.status_code >= 400  # and Gatehouse checks that signature

    # SP-initiated: Gatehouse's LogoutRequest at the IdP's SingleLogoutService gets a signed LogoutResponse.
    sp = sign_in.service_provider(tenant_service.get_tenant(dev.id))
    request = saml.build_logout_request(sp, f"{app_url}/api/dev-idp/{dev.id}/saml2", f"megan.bowen@{DOMAIN}", None)
    answer = requests.get(request.url, allow_redirects=False, timeout=30)
    assert answer.status_code == 302
    back = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert answer.headers["Location"].startswith(sp.slo_url)
    assert {"SAMLResponse", "SigAlg", "Signature"} <= set(back)
    message = read_logout_message(urlsplit(answer.headers["Location"]).query,
                                  saml.IdpMetadata.from_dict(tenant_service.get_tenant(dev.id).idp))
    assert message.in_response_to == request.request_id


def test_its_entra_v2_key_set_verifies_its_id_tokens(dev, app_url):
    entra_tenant = service.entra_tenant_id(dev.id)
    keys = requests.get(f"{app_url}/api/dev-idp/{entra_tenant}/discovery/v2.0/keys", timeout=30)
    assert keys.status_code == 200
    (jwk,) = keys.json()["keys"]
    assert {"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"} <= set(jwk)
    issued = requests.get(f"{app_url}/api/dev-idp/{dev.id}/id-token", timeout=30,
                          params={"login_hint": f"lee.gu@{DOMAIN}", "client_id": "11111111-2222-3333-4444-555555555555"})
    assert issued.status_code == 200, issued.text
    token = jwt.decode(issued.json()["id_token"], KeySet.import_key_set(keys.json()), algorithms=["RS256"])
    assert token.header["kid"] == jwk["kid"]
    lee = dev.scim.get_user(dev.report.users[f"lee.gu@{DOMAIN}"]).json()
    assert token.claims["oid"] == lee["externalId"] and token.claims["tid"] == entra_tenant
    assert token.claims["iss"] == f"https://login.microsoftonline.com/{entra_tenant}/v2.0"
    assert token.claims["ver"] == "2.0" and token.claims["aud"] == "11111111-2222-3333-4444-555555555555"
    missing = requests.get(f"{app_url}/api/dev-idp/{dev.id}/id-token", params={"login_hint": "x@y.z"}, timeout=30)
    assert missing.status_code == 400 and "client_id" in missing.json()["message"]


@pytest.fixture(scope="module")
def self_keyed_host(app_settings, test_output) -> Iterator[LocalHost]:
    """A development host whose ENTRA_LOGIN_URL is its own development IdP (as the README suggests for mobile)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    host = LocalHost({**app_settings, "PORT": str(port), "PUBLIC_BASE_URL": base,
                      "ENTRA_LOGIN_URL": f"{base}/api/dev-idp"}, test_output / "local-host-dev-idp-mobile.log")
    host.start()
    yield host
    host.stop()


def test_the_mobile_token_exchange_accepts_its_id_tokens(self_keyed_host, operator_key, app_settings):
    base = self_keyed_host.url
    operator = {"Authorization": f"Bearer {operator_key}"}
    created = requests.post(f"{base}/api/tenants", headers=operator, timeout=30,
                            json={"name": "Mobile Dev", "app_url": "https://mobile.example.com"}).json()
    tenant = TenantHandle(base, created["tenant_id"], created["admin_key"], created)
    dev = DevTenant(tenant, base)
    entra_tenant, client_id = service.entra_tenant_id(dev.id), "0a1b2c3d-0000-4000-8000-123456789abc"
    package, signature = app_settings["MOBILE_ANDROID_PACKAGE_NAME"], app_settings["MOBILE_ANDROID_SIGNATURE_HASH"]
    msal = {"client_id": client_id, "authorization_user_agent": "DEFAULT",
            "redirect_uri": f"msauth://{package}/{quote(signature, safe='')}", "broker_redirect_uri_registered": True,
            "authorities": [{"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": entra_tenant}}]}
    pasted = tenant.api("PUT", "mobile", json={"msal_configuration": msal,
                                               "ios_redirect_uri": f"msauth.{app_settings['MOBILE_IOS_BUNDLE_ID']}://auth"})
    assert pasted.status_code == 200, pasted.text
    native = requests.post(f"{base}/api/tenants/{dev.id}/oidc/clients", headers=operator, timeout=30, json={
        "application_type": "native", "redirect_uris": ["com.example.gatehouse:/oauth2redirect"]}).json()
    # What MSAL would hand the app after Adele signed in to "Entra": the development IdP's ID token.
    issued = requests.get(f"{base}/api/dev-idp/{dev.id}/id-token", timeout=30,
                          params={"login_hint": f"adele.vance@{DOMAIN}", "client_id": client_id}).json()
    exchanged = requests.post(f"{base}/api/oidc/{dev.id}/token", timeout=30, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": issued["id_token"],
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token", "client_id": native["client_id"]})
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["access_token"] and exchanged.json()["id_token"]


def test_the_simulated_provisioning_leaves_the_directory_entra_described(dev):
    users = {upn: dev.scim.get_user(uid).json() for upn, uid in dev.report.users.items()}
    megan = users[f"megan.bowen@{DOMAIN}"]
    assert megan["title"] == "Head of Marketing"
    assert megan["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == \
        "Marketing & Communications"
    assert megan["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"] == \
        dev.report.users[f"adele.vance@{DOMAIN}"]
    assert users[dev.report.dismissed]["active"] is False
    assert users[dev.report.rehired]["active"] is True
    assert users[f"lee.gu@{DOMAIN}"]["name"] == {"formatted": "Lee Gu", "familyName": "Gu", "givenName": "Lee"}
    leadership = dev.scim.request("GET", f"/Groups/{dev.report.groups['Leadership']}").json()
    assert {m["value"] for m in leadership["members"]} == {dev.report.users[f"{n}@{DOMAIN}"]
                                                          for n in ("lee.gu", "nestor.wilke", "megan.bowen")}
    # A second run is another provisioning cycle: everyone is matched, nobody is created twice.
    again = run(dev.scim, DOMAIN)
    assert again.users == dev.report.users and again.groups == dev.report.groups
