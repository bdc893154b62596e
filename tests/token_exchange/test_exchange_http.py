"""The mobile path over real HTTP: the served MSAL configuration → an Entra ID token (the stand-in) → the token
exchange at the tenant's token endpoint → the product's ID token, verified as the product would (joserfc against the
JWKS discovery names), and UserInfo. Then the attack corpus of the issue, each refused at the endpoint with an RFC 6749
§5.2 JSON error, and Entra's key rollover as the running app sees it."""
from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.entra import EntraStandIn, new_key

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
PERSONAL = "9188040d-6c67-4c5b-b112-36a304b66dad"


class Product:
    """The product's backend (operator key) and its mobile app, for one tenant."""

    def __init__(self, mobile, base_url: str, operator_key: str):
        self.mobile = mobile
        self.base_url = base_url
        self.operator = {"Authorization": f"Bearer {operator_key}"}
        clients_url = f"{base_url}/api/tenants/{mobile.tenant_id}/oidc/clients"
        native = requests.post(clients_url, headers=self.operator, timeout=30, json={
            "application_type": "native", "redirect_uris": ["com.example.gatehouse:/oauth2redirect"]})
        assert native.status_code == 201, native.text
        self.native = native.json()
        web = requests.post(clients_url, headers=self.operator, timeout=30, json={
            "redirect_uris": ["https://product.example.com/callback"]})
        assert web.status_code == 201, web.text
        self.web = web.json()

    def served_config(self, platform: str = "android") -> dict:
        response = requests.get(f"{self.base_url}/api/mobile/{self.mobile.tenant_id}/config",
                                params={"platform": platform}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    @property
    def token_endpoint(self) -> str:
        return self.served_config()["token_exchange"]["token_endpoint"]

    def exchange(self, subject_token: str, *, client_id: str | None = None, auth=None, **extra) -> requests.Response:
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token, "subject_token_type": ID_TOKEN_TYPE,
                **extra}
        if client_id is not None:
            form["client_id"] = client_id
        elif auth is None:
            form["client_id"] = self.native["client_id"]
        return requests.post(self.token_endpoint, data=form, auth=auth, timeout=30)


@pytest.fixture
def product(mobile, app_url, operator_key) -> Product:
    return Product(mobile, app_url, operator_key)


def assert_refused(response: requests.Response, *words: str, error: str = "invalid_request",
                   status: int = 400) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers.get("Cache-Control") == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body and "id_token" not in body
    for word in words:
        assert word in body["error_description"], (word, body)
    return body["error_description"]


# ---- the whole path ---------------------------------------------------------------------------------------------

def test_the_mobile_app_goes_from_its_served_configuration_to_a_product_id_token(product, alice, entra_stand_in):
    config = product.served_config("android")
    client_id = config["client_id"]  # the app registration MSAL signs in with
    entra_tenant = config["authorities"][0]["audience"]["tenant_id"]
    where = config["token_exchange"]
    assert where["grant_type"] == TOKEN_EXCHANGE and where["subject_token_type"] == ID_TOKEN_TYPE
    assert product.served_config("ios")["token_exchange"] == where

    # MSAL signs Alice in to Entra and hands the app an ID token
    entra_id_token = entra_stand_in.id_token(entra_tenant, client_id, alice["externalId"])
    response = requests.post(where["token_endpoint"], timeout=30, data={
        "grant_type": where["grant_type"], "subject_token": entra_id_token,
        "subject_token_type": where["subject_token_type"], "client_id": product.native["client_id"]})
    assert response.status_code == 200, response.text
    assert response.headers.get("Cache-Control") == "no-store"
    answer = response.json()
    assert answer["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert answer["token_type"] == "Bearer" and answer["access_token"] and answer["expires_in"] > 0

    # the product verifies the ID token as any OIDC relying party does: discovery → JWKS → RS256 signature
    discovery = requests.get(f"{where['issuer']}/.well-known/openid-configuration", timeout=30).json()
    assert discovery["issuer"] == where["issuer"]
    assert discovery["token_endpoint"] == where["token_endpoint"]
    assert TOKEN_EXCHANGE in discovery["grant_types_supported"]
    jwks = KeySet.import_key_set(requests.get(discovery["jwks_uri"], timeout=30).json())
    claims = jwt.decode(answer["id_token"], jwks, algorithms=["RS256"]).claims
    assert claims["iss"] == where["issuer"]
    assert claims["aud"] == product.native["client_id"]
    assert claims["sub"] == alice["id"]
    assert claims["preferred_username"] == alice["userName"]
    assert claims["exp"] > time.time()

    userinfo = requests.get(discovery["userinfo_endpoint"], timeout=30,
                            headers={"Authorization": f"Bearer {answer['access_token']}"})
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == alice["id"]


def test_a_confidential_client_authenticates_as_usual(product, mobile, alice):
    web = product.web
    assert_refused(product.exchange(mobile.id_token(alice), client_id=web["client_id"]), error="invalid_client",
                   status=401)
    assert_refused(product.exchange(mobile.id_token(alice), auth=(web["client_id"], "wrong-secret")),
                   error="invalid_client", status=401)
    response = product.exchange(mobile.id_token(alice), auth=(web["client_id"], web["client_secret"]))
    assert response.status_code == 200, response.text
    assert response.json()["issued_token_type"] == ACCESS_TOKEN_TYPE


def test_a_native_client_sending_a_secret_or_an_unknown_client_is_refused(product, mobile, alice):
    assert_refused(product.exchange(mobile.id_token(alice), client_secret="x"), error="invalid_client", status=401)
    assert_refused(product.exchange(mobile.id_token(alice), client_id="no-such-client"), error="invalid_client",
                   status=401)


# ---- the attack corpus, at the endpoint ----------------------------------------------------------------------------

def _other_tenant(mobile, user):
    return mobile.entra.id_token(str(uuid.uuid4()), mobile.client_id, user["externalId"])


def _expired(mobile, user):
    now = int(time.time())
    return mobile.id_token(user, iat=now - 4000, nbf=now - 4000, exp=now - 400)


def _not_yet_valid(mobile, user):
    return mobile.id_token(user, nbf=int(time.time()) + 600)


ATTACKS = {
    "another Entra tenant's token": (_other_tenant, "another Entra tenant"),
    "a token for another app": (lambda m, u: m.id_token(u, aud=str(uuid.uuid4())), "another app registration"),
    "the personal-accounts tenant": (lambda m, u: m.entra.id_token(PERSONAL, m.client_id, u["externalId"]),
                                     "personal Microsoft account"),
    "alg none": (lambda m, u: EntraStandIn.unsigned(m.id_token(u)), "RS256"),
    "HS256 with the public key as secret": (lambda m, u: m.entra.hs256_with_public_key(m.id_token(u),
                                                                                        m.entra_tenant_id), "RS256"),
    "a kid not published": (lambda m, u: m.id_token(u, key=new_key()), "does not publish"),
    "an expired token": (_expired, "expired"),
    "a token not yet valid": (_not_yet_valid, "not valid before"),
    "a tampered payload": (lambda m, u: EntraStandIn.with_payload(m.id_token(u), oid=str(uuid.uuid4())),
                           "signature does not verify"),
    "a token whose oid no employee has": (lambda m, u: m.id_token(str(uuid.uuid4())), "not been provisioned"),
    "a v1.0 token": (lambda m, u: m.id_token(u, ver="1.0", iss=f"https://sts.windows.net/{m.entra_tenant_id}/"),
                     "v1.0"),
    "not a JWT at all": (lambda m, u: "eyJhbGciOiJub25lIn0", "not a JWT"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_attack_corpus_is_refused_at_the_token_endpoint(product, mobile, alice, attack):
    make, words = ATTACKS[attack]
    assert_refused(product.exchange(make(mobile, alice)), words)


def test_a_replayed_token_is_refused(product, mobile, alice):
    token = mobile.id_token(alice)
    assert product.exchange(token).status_code == 200
    assert_refused(product.exchange(token), "exchanged already")


def test_a_dismissed_employee_is_refused(product, mobile, alice):
    mobile.set_active(alice, False)
    assert_refused(product.exchange(mobile.id_token(alice)), "dismissed")
    mobile.set_active(alice, True)  # a rehire signs in again
    assert product.exchange(mobile.id_token(alice)).status_code == 200


def test_the_exchange_requires_the_id_token_type_and_a_subject_token(product, mobile, alice):
    assert_refused(product.exchange(mobile.id_token(alice), subject_token_type=ACCESS_TOKEN_TYPE), "not accepted")
    response = requests.post(product.token_endpoint, timeout=30, data={
        "grant_type": TOKEN_EXCHANGE, "subject_token_type": ID_TOKEN_TYPE, "client_id": product.native["client_id"]})
    assert_refused(response, "subject_token is missing")


# ---- Entra's key rollover, as the running app sees it -----------------------------------------------------------

def test_entra_key_rollover_needs_one_fetch_and_a_flood_of_unknown_kids_none(product, mobile, alice):
    tenant = mobile.entra_tenant_id
    old = mobile.entra.signing_key(tenant)
    assert product.exchange(mobile.id_token(alice)).status_code == 200
    assert mobile.entra.fetches[tenant] == 1

    mobile.entra.rotate(tenant)  # Entra publishes a new key and signs with it; the old one is gone
    response = product.exchange(mobile.id_token(alice))
    assert response.status_code == 200, response.text
    assert mobile.entra.fetches[tenant] == 2

    assert_refused(product.exchange(mobile.id_token(alice, key=old)), "does not publish")
    for _ in range(20):
        assert_refused(product.exchange(mobile.id_token(alice, header={"kid": uuid.uuid4().hex})),
                       "does not publish")
    assert mobile.entra.fetches[tenant] == 2
    assert product.exchange(mobile.id_token(alice)).status_code == 200


# ---- the product's backend exchanges, verifies with authlib, and hears the dismissal ----------------------------

def test_the_sample_product_exchanges_verifies_with_authlib_and_hears_the_dismissal(product, mobile, alice):
    """The app hands the Entra token to the product's backend (a confidential client with a back-channel logout
    URI, built on authlib); the exchanged sign-in is a session like any other: it carries a sid, and dismissing the
    employee ends it by back-channel and at UserInfo."""
    from tests.support.sample_product import SampleProduct

    where = product.served_config("ios")["token_exchange"]
    with SampleProduct(where["issuer"]) as backend:
        registered = requests.post(f"{product.base_url}/api/tenants/{mobile.tenant_id}/oidc/clients",
                                   headers=product.operator, timeout=30, json={
                                       "redirect_uris": [backend.redirect_uri],
                                       "backchannel_logout_uri": f"{backend.url}/backchannel-logout"})
        assert registered.status_code == 201, registered.text
        backend.client_id, backend.client_secret = registered.json()["client_id"], registered.json()["client_secret"]

        response = product.exchange(mobile.id_token(alice), auth=(backend.client_id, backend.client_secret))
        assert response.status_code == 200, response.text
        answer = response.json()
        claims = backend._verify(answer["id_token"], {"iss": {"essential": True, "value": where["issuer"]},
                                                      "aud": {"essential": True, "value": backend.client_id}})
        assert claims["sub"] == alice["id"] and claims["sid"]
        userinfo_url = backend.metadata["userinfo_endpoint"]
        bearer = {"Authorization": f"Bearer {answer['access_token']}"}
        assert requests.get(userinfo_url, headers=bearer, timeout=30).status_code == 200

        mobile.set_active(alice, False)
        deadline = time.monotonic() + 20
        while not backend.logout_tokens and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backend.logout_tokens, "no back-channel logout token after the dismissal"
        logout = backend.logout_tokens[0]
        assert logout["sub"] == alice["id"] and logout["sid"] == claims["sid"]
        assert requests.get(userinfo_url, headers=bearer, timeout=30).status_code == 401


def test_when_entra_cannot_be_reached_the_app_is_told_to_retry(product, mobile, alice):
    mobile.entra.status[mobile.entra_tenant_id] = 503
    try:
        response = product.exchange(mobile.id_token(alice))
    finally:
        mobile.entra.status.pop(mobile.entra_tenant_id)
    assert_refused(response, "Retry", error="temporarily_unavailable", status=503)
    assert int(response.headers["Retry-After"]) > 0


# ---- what was asked for, and what came back (RFC 8693 §2.1, §2.2) -------------------------------------------------

def test_requested_token_type_id_token_is_honoured_and_named(product, mobile, alice):
    response = product.exchange(mobile.id_token(alice), requested_token_type=ID_TOKEN_TYPE)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["issued_token_type"] == ID_TOKEN_TYPE and answer["token_type"] == "N_A"
    issuer = product.served_config()["token_exchange"]["issuer"]
    jwks = KeySet.import_key_set(requests.get(f"{issuer}/jwks", timeout=30).json())
    claims = jwt.decode(answer["access_token"], jwks, algorithms=["RS256"]).claims  # the ID token itself
    assert claims["sub"] == alice["id"] and claims["aud"] == product.native["client_id"] and claims["iss"] == issuer
    asked = product.exchange(mobile.id_token(alice), requested_token_type=ACCESS_TOKEN_TYPE).json()
    assert asked["issued_token_type"] == ACCESS_TOKEN_TYPE and asked["token_type"] == "Bearer"
    assert_refused(product.exchange(mobile.id_token(alice),
                                    requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"),
                   "cannot be issued")


def test_an_audience_or_resource_other_than_the_issuer_or_the_client_is_invalid_target(product, mobile, alice):
    issuer = product.served_config()["token_exchange"]["issuer"]
    for extra in ({"audience": "https://graph.microsoft.com"}, {"resource": "https://api.other.example/"},
                  {"audience": issuer + "x"}, {"resource": f"{issuer}/../other"}):
        assert_refused(product.exchange(mobile.id_token(alice), **extra), error="invalid_target")
    for extra in ({"audience": issuer}, {"resource": issuer}, {"audience": product.native["client_id"]}):
        response = product.exchange(mobile.id_token(alice), **extra)
        assert response.status_code == 200, (extra, response.text)
def test_the_exchanged_id_token_says_email_verified_only_for_a_dns_verified_domain(product, mobile, dns_server):
    """The mobile sign-in's tokens follow the same rule as the code flow's (issue 22): email_verified is true only
    for an address in a domain the tenant proved by DNS."""
    domain = f"mobile-{uuid.uuid4().hex[:10]}.example"
    user = mobile.provision(f"dana@{domain}")

    def email_verified() -> tuple[bool, bool]:
        answer = product.exchange(mobile.id_token(user))
        assert answer.status_code == 200, answer.text
        claims = json.loads(base64.urlsafe_b64decode(answer.json()["id_token"].split(".")[1] + "=="))
        info = requests.get(f"{product.served_config()['token_exchange']['issuer']}/userinfo", timeout=30,
                            headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
        assert info.status_code == 200, info.text
        return claims["email_verified"], info.json()["email_verified"]

    assert email_verified() == (False, False)
    record = mobile.handle.api("POST", f"domains/{domain}/verification").json()
    dns_server.publish_txt(record["record_name"], record["record_value"])
    assert mobile.handle.api("POST", f"domains/{domain}/verification/check").status_code == 200
    assert email_verified() == (True, True)
