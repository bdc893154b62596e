"""Verified domains behind `email_verified` (issue 22): a tenant proves a domain by a DNS TXT record the app looks
up on a real DNS server the tests run on loopback (DNS_NAMESERVERS); one domain belongs to one tenant; and an ID
token or UserInfo says `email_verified: true` only for an email in a domain the tenant verified — so a tenant that
lists another company's domain as "corporate" cannot hand a product that company's addresses as verified."""
from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests

from tests.oidc.conftest import REDIRECT_URI, OidcTenant
from tests.sso.conftest import SsoTenant
from tests.support.idp import TestIdp


def _claims(id_token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(id_token.split(".")[1] + "=="))


def _domain() -> str:
    return f"corp-{uuid.uuid4().hex[:10]}.example"


def _start(handle, domain: str) -> requests.Response:
    return handle.api("POST", f"domains/{domain}/verification")


def _check(handle, domain: str) -> requests.Response:
    return handle.api("POST", f"domains/{domain}/verification/check")


def _oidc_tenant(new_tenant, app_url, operator_key, name: str) -> OidcTenant:
    sso = SsoTenant(new_tenant(name, "https://app.example.com"), TestIdp(key_label=f"dv-{name}"), app_url)
    assert sso.connect().status_code == 200
    tenant = OidcTenant(sso, operator_key)
    response = tenant.register(redirect_uris=[REDIRECT_URI])
    assert response.status_code == 201, response.text
    tenant.client = response.json()
    return tenant


def _tokens_for(tenant: OidcTenant, email: str) -> tuple[dict, dict]:
    """Sign `email` in through the tenant's OpenID Provider: (ID token claims, UserInfo)."""
    user = tenant.sso.provision(email, display_name="Someone")
    answer = tenant.redeem(tenant.sign_in(user))
    assert answer.status_code == 200, answer.text
    info = tenant.userinfo(answer.json()["access_token"])
    assert info.status_code == 200, info.text
    return _claims(answer.json()["id_token"]), info.json()


def test_another_company_domain_listed_as_corporate_is_never_email_verified(new_tenant, app_url, operator_key):
    victim_domain = _domain()
    attacker = _oidc_tenant(new_tenant, app_url, operator_key, "Attacker")
    listed = attacker.sso.handle.api("PUT", "domains", json={"domains": [victim_domain]})
    assert listed.status_code == 200, listed.text
    claims, info = _tokens_for(attacker, f"ceo@{victim_domain}")
    assert claims["email"] == info["email"] == f"ceo@{victim_domain}"
    assert claims["email_verified"] is False and info["email_verified"] is False
    assert "email_verified" in attacker.discovery()["claims_supported"]


def test_dns_verification_found_missing_wrong_value(new_tenant, app_url, operator_key, dns_server):
    tenant = _oidc_tenant(new_tenant, app_url, operator_key, "Verifier")
    domain = _domain()
    assert tenant.sso.handle.api("PUT", "domains", json={"domains": [domain]}).status_code == 200
    before = tenant.sso.handle.api("GET", "domains").json()
    assert before["verification"] == [{"domain": domain, "state": "unverified"}]

    started = _start(tenant.sso.handle, domain)
    assert started.status_code == 200, started.text
    record = started.json()
    assert record["record_name"] == f"_gatehouse.{domain}" and record["record_type"] == "TXT"
    assert record["record_value"].startswith("gatehouse-verification=") and record["state"] == "pending"
    assert _start(tenant.sso.handle, domain).json()["record_value"] == record["record_value"]  # stable

    missing = _check(tenant.sso.handle, domain)
    assert missing.status_code == 409 and record["record_name"] in missing.json()["message"], missing.text
    assert record["record_name"] in dns_server.queries  # a real lookup happened

    dns_server.publish_txt(record["record_name"], "v=spf1 -all", "gatehouse-verification=not-the-token")
    wrong = _check(tenant.sso.handle, domain)
    assert wrong.status_code == 409 and "does not hold" in wrong.json()["message"], wrong.text
    claims, _ = _tokens_for(tenant, f"bob@{domain}")
    assert claims["email_verified"] is False

    dns_server.publish_txt(record["record_name"], "v=spf1 -all", record["record_value"])
    verified = _check(tenant.sso.handle, domain)
    assert verified.status_code == 200, verified.text
    assert verified.json()["state"] == "verified"
    listed = tenant.sso.handle.api("GET", "domains").json()["verification"]
    assert listed[0]["domain"] == domain and listed[0]["state"] == "verified"

    claims, info = _tokens_for(tenant, f"carol@{domain}")
    assert claims["email_verified"] is True and info["email_verified"] is True
    sub_claims, _ = _tokens_for(tenant, f"dave@mail.{domain}")  # a subdomain is not the verified domain
    assert sub_claims["email_verified"] is False


def test_a_domain_verified_by_one_tenant_cannot_be_verified_by_another(new_tenant, app_url, operator_key,
                                                                       dns_server):
    owner = _oidc_tenant(new_tenant, app_url, operator_key, "Owner")
    attacker = _oidc_tenant(new_tenant, app_url, operator_key, "Squatter")
    domain = _domain()
    owner_record = _start(owner.sso.handle, domain).json()
    attacker_record = _start(attacker.sso.handle, domain).json()
    assert owner_record["record_value"] != attacker_record["record_value"]

    dns_server.publish_txt(owner_record["record_name"], owner_record["record_value"])
    refused = _check(attacker.sso.handle, domain)  # the TXT holds the owner's token, not the attacker's
    assert refused.status_code == 409 and "does not hold" in refused.json()["message"], refused.text
    assert _check(owner.sso.handle, domain).status_code == 200

    # Even with its own token published (a DNS provider mix-up, a dangling delegation), the second tenant is refused.
    dns_server.publish_txt(owner_record["record_name"], owner_record["record_value"], attacker_record["record_value"])
    taken = _check(attacker.sso.handle, domain)
    assert taken.status_code == 409 and "another organisation" in taken.json()["message"], taken.text
    assert attacker.sso.handle.api("PUT", "domains", json={"domains": [domain]}).status_code == 200
    claims, info = _tokens_for(attacker, f"ceo@{domain}")
    assert claims["email_verified"] is False and info["email_verified"] is False
    claims, _ = _tokens_for(owner, f"ceo@{domain}")
    assert claims["email_verified"] is True


@pytest.mark.parametrize("bad", ["gmail.com", "co.uk", "not a domain", "https:%2F%2Fx.example"])
def test_a_domain_nobody_can_own_for_a_company_is_refused(new_tenant, bad):
    handle = new_tenant("Refused", "https://app.example.com")
    response = _start(handle, bad)
    assert response.status_code in (404, 422), response.text


# ---- the lookup itself, in this process against real sockets ------------------------------------------------

@pytest.fixture
def nameservers(app_settings):
    """Point this process's DNS_NAMESERVERS elsewhere for one test (the app's host keeps the suite's server)."""
    import os

    from shared_code.platform.settings import get_settings

    def point(value: str) -> None:
        os.environ["DNS_NAMESERVERS"] = value
        get_settings.cache_clear()
    yield point
    os.environ["DNS_NAMESERVERS"] = app_settings["DNS_NAMESERVERS"]
    get_settings.cache_clear()


def test_a_resolver_that_never_answers_is_a_503_with_retry_after(nameservers):
    import socket

    from shared_code.directory import domain_verification

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes the query and never answers
    silent.bind(("127.0.0.1", 0))
    try:
        nameservers(f"127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(domain_verification.DnsUnavailable) as caught:
            domain_verification.lookup_txt("_gatehouse.example.com", lifetime=0.5)
        assert caught.value.status == 503 and caught.value.headers["Retry-After"]
        assert silent.recv(512)  # the query really went there
    finally:
        silent.close()


def test_dns_nameservers_takes_ip_and_port_and_refuses_anything_else(nameservers, dns_server):
    from shared_code.directory import domain_verification

    name = f"_gatehouse.{_domain()}"
    dns_server.publish_txt(name, "gatehouse-verification=abc", "other")
    nameservers(f" {dns_server.address} ")
    assert sorted(domain_verification.lookup_txt(name)) == ["gatehouse-verification=abc", "other"]
    assert domain_verification.lookup_txt(f"_gatehouse.{_domain()}") == []  # NXDOMAIN: nothing published
    for wrong in ("127.0.0.1:not-a-port", "dns.example", "127.0.0.1:0"):
        nameservers(wrong)
        with pytest.raises(domain_verification.DnsUnavailable, match="DNS_NAMESERVERS"):
            domain_verification.lookup_txt(name)
