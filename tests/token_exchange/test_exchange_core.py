"""The token exchange core (`shared_code.oidc.token_exchange.exchange`), called directly: what makes an Entra ID token
acceptable, the attack corpus of the issue, and that no refusal says whether an employee exists.

The tenant, its Entra connection, MSAL configuration and employees are set up over HTTP (real app, real Azurite);
the Entra stand-in (tests/support/entra.py) publishes the keys on loopback and mints the tokens."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared_code.oidc.errors import OAuthError
from shared_code.oidc.token_exchange import exchange
from tests.support.entra import OMIT, EntraStandIn, new_key
from tests.support.idp import TestIdp

PERSONAL = "9188040d-6c67-4c5b-b112-36a304b66dad"


def refused(mobile, form, *words, now=None) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        exchange(mobile.tenant_id, None, form, now=now)
    error = caught.value
    assert error.error == "invalid_request", (error.error, error.description)
    assert error.status == 400
    for word in words:
        assert word in error.description, (word, error.description)
    return error


# ---- the accepted path ------------------------------------------------------------------------------------------

def test_a_genuine_entra_id_token_signs_in_the_employee_with_that_object_id(mobile, alice):
    employee = exchange(mobile.tenant_id, None, mobile.form(mobile.id_token(alice)))
    assert employee.id == alice["id"]
    assert employee.external_id == alice["externalId"]


def test_clock_skew_of_a_minute_either_way_is_tolerated(mobile, alice):
    now = int(time.time())
    late = mobile.id_token(alice, exp=now - 60, iat=now - 3660, nbf=now - 3660)
    early = mobile.id_token(alice, iat=now + 60, nbf=now + 60, exp=now + 3660)
    assert exchange(mobile.tenant_id, None, mobile.form(late)).id == alice["id"]
    assert exchange(mobile.tenant_id, None, mobile.form(early)).id == alice["id"]


# ---- the attack corpus ---------------------------------------------------------------------------------------

def test_another_entra_tenants_token_is_refused(mobile, alice):
    other = str(uuid.uuid4())
    token = mobile.entra.id_token(other, mobile.client_id, alice["externalId"])
    refused(mobile, mobile.form(token), "another Entra tenant", other, mobile.entra_tenant_id)


def test_a_token_with_our_tid_but_another_issuer_is_refused(mobile, alice):
    token = mobile.id_token(alice, iss=f"https://login.microsoftonline.com/{uuid.uuid4()}/v2.0")
    refused(mobile, mobile.form(token), "issuer", f"https://login.microsoftonline.com/{mobile.entra_tenant_id}/v2.0")


def test_a_token_for_another_app_registration_is_refused(mobile, alice):
    token = mobile.id_token(alice, aud=str(uuid.uuid4()))
    refused(mobile, mobile.form(token), "another app registration", mobile.client_id)


def test_a_personal_microsoft_account_is_refused(mobile, alice):
    token = mobile.entra.id_token(PERSONAL, mobile.client_id, alice["externalId"])
    refused(mobile, mobile.form(token), "personal Microsoft account")


def test_alg_none_is_refused(mobile, alice):
    refused(mobile, mobile.form(EntraStandIn.unsigned(mobile.id_token(alice))), "'none'", "RS256")


def test_hs256_signed_with_the_published_public_key_is_refused(mobile, alice):
    token = mobile.entra.hs256_with_public_key(mobile.id_token(alice), mobile.entra_tenant_id)
    refused(mobile, mobile.form(token), "'HS256'", "RS256")


def test_a_token_signed_with_a_key_entra_does_not_publish_is_refused(mobile, alice):
    refused(mobile, mobile.form(mobile.id_token(alice, key=new_key())), "does not publish")


def test_a_kid_naming_a_published_key_over_another_keys_signature_is_refused(mobile, alice):
    published = mobile.entra.signing_key(mobile.entra_tenant_id).kid
    token = mobile.id_token(alice, key=new_key(), header={"kid": published})
    refused(mobile, mobile.form(token), "signature does not verify")


def test_an_expired_token_is_refused(mobile, alice):
    now = int(time.time())
    token = mobile.id_token(alice, iat=now - 4000, nbf=now - 4000, exp=now - 400)
    refused(mobile, mobile.form(token), "expired at", "fresh ID token")


def test_a_token_not_yet_valid_is_refused(mobile, alice):
    now = int(time.time())
    refused(mobile, mobile.form(mobile.id_token(alice, nbf=now + 600)), "not valid before", "clock")
    refused(mobile, mobile.form(mobile.id_token(alice, iat=now + 600)), "issued in the future")


def test_a_replayed_token_is_refused(mobile, alice):
    token = mobile.id_token(alice)
    assert exchange(mobile.tenant_id, None, mobile.form(token)).id == alice["id"]
    refused(mobile, mobile.form(token), "exchanged already")


def test_a_tampered_payload_is_refused(mobile, alice):
    bob = mobile.provision()
    token = EntraStandIn.with_payload(mobile.id_token(alice), oid=bob["externalId"])
    refused(mobile, mobile.form(token), "signature does not verify")


def test_a_dismissed_employee_is_refused(mobile, alice):
    mobile.set_active(alice, False)
    refused(mobile, mobile.form(mobile.id_token(alice)), "dismissed")


def test_a_token_whose_oid_no_employee_has_is_refused(mobile):
    refused(mobile, mobile.form(mobile.id_token(str(uuid.uuid4()))), "not been provisioned")


def test_a_v1_token_is_refused(mobile, alice):
    token = mobile.id_token(alice, ver="1.0", iss=f"https://sts.windows.net/{mobile.entra_tenant_id}/")
    refused(mobile, mobile.form(token), "v1.0", "MSAL")


def test_an_employee_outside_the_corporate_domains_is_refused_once_sso_is_enforced(mobile):
    from shared_code.tenancy import tenants

    outsider = mobile.provision("mallory@elsewhere.example")
    assert mobile.handle.api("PUT", "domains", json={"domains": ["acme.example.com"]}).status_code == 200
    assert exchange(mobile.tenant_id, None, mobile.form(mobile.id_token(outsider))).id == outsider["id"]
    tenants.modify(mobile.tenant_id, lambda tenant: {"status": tenants.ENABLED})
    refused(mobile, mobile.form(mobile.id_token(outsider)), "outside the organisation's corporate domains")


@pytest.mark.parametrize("claim", ["oid", "uti", "exp", "iat"])
def test_a_token_missing_a_claim_entra_always_sends_is_refused(mobile, alice, claim):
    refused(mobile, mobile.form(mobile.id_token(alice, **{claim: OMIT})), "subject_token")


# ---- the request itself ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"subject_token_type": None}, ("subject_token_type is missing",)),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}, ("is not accepted",)),
    ({"subject_token": None}, ("subject_token is missing",)),
    ({"subject_token": "not a token"}, ("not a JWT",)),
    ({"subject_token": "a.b.c.d.e"}, ("encrypted",)),
    ({"subject_token": "x" * 20000}, ("longer than",)),
    ({"actor_token": "x", "actor_token_type": "urn:ietf:params:oauth:token-type:id_token"},
     ("actor_token is not supported",)),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:saml2"}, ("cannot be issued",)),
])
def test_a_malformed_request_says_what_to_send(mobile, alice, change, words):
    form = mobile.form(mobile.id_token(alice))
    for name, value in change.items():
        if value is None:
            form.pop(name)
        else:
            form[name] = value
    refused(mobile, form, *words)


def test_a_tenant_without_mobile_setup_refuses_every_token(new_tenant, entra_stand_in):
    tenant = new_tenant("No Mobile")
    token = entra_stand_in.id_token(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))
    with pytest.raises(OAuthError) as caught:
        exchange(tenant.tenant_id, None, {"subject_token": token,
                                          "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"})
    assert "not connected Microsoft Entra" in caught.value.description


# ---- nothing says whether an employee exists ------------------------------------------------------------------

def _forgeries(mobile, oid: str) -> list[str]:
    now = int(time.time())
    genuine = mobile.id_token(oid)
    return [
        mobile.entra.id_token(str(uuid.UUID(int=1)), mobile.client_id, oid),
        mobile.id_token(oid, aud="00000000-0000-0000-0000-000000000002"),
        mobile.entra.id_token(PERSONAL, mobile.client_id, oid),
        EntraStandIn.unsigned(genuine),
        mobile.entra.hs256_with_public_key(genuine, mobile.entra_tenant_id),
        mobile.id_token(oid, iat=now - 4000, nbf=now - 4000, exp=now - 400),
        mobile.id_token(oid, ver="1.0"),
        EntraStandIn.with_payload(genuine, name="Mallory"),
    ]


def test_no_refusal_of_a_bad_token_depends_on_whether_its_oid_is_an_employee(mobile, alice):
    stranger = str(uuid.uuid4())
    for of_employee, of_stranger in zip(_forgeries(mobile, alice["externalId"]), _forgeries(mobile, stranger)):
        a = refused(mobile, mobile.form(of_employee)).description
        b = refused(mobile, mobile.form(of_stranger)).description
        assert a.replace(alice["externalId"], "OID") == b.replace(stranger, "OID")


# ---- Entra unreachable -----------------------------------------------------------------------------------------

def test_when_entra_cannot_be_reached_the_answer_is_a_retryable_503(mobile, alice):
    mobile.entra.status[mobile.entra_tenant_id] = 503
    try:
        with pytest.raises(OAuthError) as caught:
            exchange(mobile.tenant_id, None, mobile.form(mobile.id_token(alice)))
        assert caught.value.error == "temporarily_unavailable" and caught.value.status == 503
        assert caught.value.headers.get("Retry-After")
    finally:
        mobile.entra.status.pop(mobile.entra_tenant_id)


# ---- at once -----------------------------------------------------------------------------------------------------

def test_ten_parallel_exchanges_of_one_token_sign_in_exactly_once(mobile, alice):
    from concurrent.futures import ThreadPoolExecutor

    token = mobile.id_token(alice)
    exchange(mobile.tenant_id, None, mobile.form(mobile.id_token(alice)))  # keys cached: the race is the spend

    def attempt(_):
        try:
            return exchange(mobile.tenant_id, None, mobile.form(token)).id
        except OAuthError as error:
            return error.description

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attempt, range(10)))
    assert outcomes.count(alice["id"]) == 1, outcomes
    assert all("exchanged already" in outcome for outcome in outcomes if outcome != alice["id"])


def test_an_msal_configuration_for_another_entra_tenant_than_the_connected_one_is_named(mobile, alice):
    """The MSAL configuration must name the connected Entra tenant when it is saved; connecting another IdP later
    (allowed before SSO is enabled) leaves the two disagreeing, and the refusal names both tenants."""
    other_idp = TestIdp(key_label="token-exchange-other-tenant")
    response = mobile.handle.api("POST", "sso/idp-metadata", json={"metadata_xml": other_idp.metadata_xml().decode()})
    assert response.status_code == 200, response.text
    token = mobile.entra.id_token(mobile.entra_tenant_id, mobile.client_id, alice["externalId"])
    refused(mobile, mobile.form(token), "inconsistent", mobile.entra_tenant_id, other_idp.entra_tenant_id)


def test_a_spent_token_is_remembered_until_it_expires_and_then_purged(mobile, alice):
    from shared_code.storage import sign_ins

    now = datetime.now(timezone.utc)
    token = mobile.id_token(alice, exp=int(now.timestamp()) + 600)
    assert exchange(mobile.tenant_id, None, mobile.form(token)).id == alice["id"]
    sign_ins.purge_expired(sign_ins.EXCHANGED_TOKENS, now + timedelta(minutes=10))  # not yet past exp + skew
    refused(mobile, mobile.form(token), "exchanged already")
    assert sign_ins.purge_expired(sign_ins.EXCHANGED_TOKENS, now + timedelta(minutes=13)) >= 1
    # once purged the token is long expired: it is refused for that, not let through
    refused(mobile, mobile.form(token), "expired", now=now + timedelta(minutes=13))
