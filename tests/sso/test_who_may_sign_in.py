"""Who signs in and who may: a genuine response is not enough — the employee must be provisioned, not dismissed,
the same Entra account they were provisioned from, and, once SSO is enforced, inside the corporate domains."""
from __future__ import annotations

import uuid

from tests.sso.conftest import assert_refused, session_of
from tests.support.idp import OMIT


def _enforce_sso(sso, alice, domains: list[str]) -> None:
    """Domains set, self-check passed (through a real self-check sign-in), SSO enabled for all."""
    assert sso.handle.api("PUT", "domains", json={"domains": domains}).status_code == 200
    link = sso.handle.api("POST", "sso/test-link").json()["url"]
    from tests.sso.test_self_check import self_check_sign_in

    assert self_check_sign_in(sso, link, alice).status_code == 200
    response = sso.handle.api("POST", "sso/enable")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "enabled"


def test_someone_not_provisioned_is_told_to_ask_for_an_assignment_in_entra(sso, local_host):
    stranger = sso.answer_login("stranger@acme.example.com", object_id=str(uuid.uuid4()))
    assert_refused(stranger, 403, "not been provisioned", "assign you in Entra",
                   log_text=local_host.log_text)


def test_a_dismissed_employee_cannot_sign_in(sso):
    gone = sso.provision("gone@acme.example.com", active=False)
    assert_refused(sso.answer_login(gone), 403, "deactivated")


def test_a_rehired_employee_can_sign_in_again(sso):
    frank = sso.provision("frank@acme.example.com")
    sso.set_active(frank, False)
    assert_refused(sso.answer_login(frank), 403, "deactivated")
    sso.set_active(frank, True)
    assert sso.answer_login(frank).status_code == 303


def test_another_entra_account_with_the_same_address_does_not_take_over_the_employee(sso, alice):
    # The mailbox was given to someone else in Entra (a new objectId); the app's account stays with the old one.
    newcomer = sso.answer_login(alice["userName"], object_id=str(uuid.uuid4()))
    assert_refused(newcomer, 403, "not the one")


def test_a_name_id_without_an_object_id_does_not_take_over_an_employee_provisioned_from_entra(sso, alice):
    assert_refused(sso.answer_login(alice["userName"], object_id=OMIT), 403, "not the one")


def test_the_email_claim_naming_another_employee_does_not_sign_in_as_them(sso, alice):
    # An Entra admin (or on-premises sync) set Mallory's email attribute to Alice's address.
    mallory = sso.answer_login("mallory@acme.example.com", object_id=str(uuid.uuid4()), email=alice["userName"])
    assert_refused(mallory, 403, "not been provisioned")


def test_a_name_id_with_the_kelvin_sign_or_long_s_does_not_match_another_employee(sso):
    kate = sso.provision("kate@acme.example.com", object_id=False)
    sam = sso.provision("sam@acme.example.com", object_id=False)
    # U+212A KELVIN SIGN and U+017F LONG S fold to "k" and "s" under Unicode case folding, never under ASCII's.
    assert_refused(sso.answer_login("\u212aate@acme.example.com", object_id=str(uuid.uuid4())), 403,
                   "not been provisioned")
    assert_refused(sso.answer_login("\u017fam@acme.example.com", object_id=str(uuid.uuid4())), 403,
                   "not been provisioned")
    # ASCII case still does not matter.
    assert sso.me(session_of(sso.answer_login("KATE@acme.example.com"))).json()["id"] == kate["id"]
    assert sso.me(session_of(sso.answer_login("Sam@Acme.Example.com"))).json()["id"] == sam["id"]


def test_an_employee_outside_the_corporate_domains_signs_in_until_sso_is_enforced(sso, alice):
    outsider = sso.provision("olga@gmail.com")
    assert sso.answer_login(outsider).status_code == 303
    _enforce_sso(sso, alice, ["acme.example.com"])
    page = assert_refused(sso.answer_login(outsider), 403, "olga@gmail.com",
                          "not a corporate domain", "administrator")
    assert page
    assert sso.answer_login(alice).status_code == 303


def test_allow_does_not_let_an_outside_employee_sign_in_once_enforced(sso, alice):
    outsider = sso.provision("pete@outside.example.org")
    _enforce_sso(sso, alice, ["acme.example.com"])
    allowed = sso.handle.api("POST", f"employees/{outsider['id']}/allow")
    assert allowed.status_code in (200, 204), allowed.text
    assert_refused(sso.answer_login(outsider), 403, "not a corporate domain")


def test_an_sp_initiated_sign_in_of_a_dismissed_employee_is_refused_and_spends_the_request(sso, alice):
    gone = sso.provision("gone2@acme.example.com", active=False)
    login = sso.login()
    cookies = login.cookies
    assert_refused(sso.post_acs(sso.response_for(gone, in_response_to=login.request_id), login.relay_state, cookies),
                   403, "deactivated")
    # The request is spent: not even an active employee's genuine answer to it signs in now.
    again = sso.post_acs(sso.response_for(alice, in_response_to=login.request_id), login.relay_state, cookies)
    assert_refused(again, 403, "completed already")


def test_an_enabled_tenant_still_signs_in_its_employees_by_sp_initiated_login(sso, alice):
    _enforce_sso(sso, alice, ["acme.example.com"])
    response = sso.sign_in(alice)
    assert sso.me(session_of(response)).json()["userName"] == alice["userName"]
