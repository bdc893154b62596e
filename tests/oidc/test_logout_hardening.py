"""SAML single logout as the profile says (issue 22): Entra's LogoutRequest must be addressed to this tenant's SLO
URL, fresh, and is acted on once; a LogoutResponse must be signed, and a failed one is never reported as a
successful sign-out — the employee reads that Microsoft did not sign them out, and the product hears it too."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import requests

from tests.oidc.test_logout import _logout, _signed_in, entra, product  # noqa: F401 - fixtures
from tests.sso.conftest import assert_refused
from tests.support.idp import decode_authn_request

REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"


def _still_signed_in(op, tokens, product) -> None:
    assert op.userinfo(tokens["access_token"]).status_code == 200
    assert not product.logout_tokens


def test_a_year_old_logout_request_is_refused(op, product, employee, entra):
    tokens = _signed_in(op, product, employee)
    year_ago = datetime.now(timezone.utc) - timedelta(days=365)
    old = requests.get(entra.logout_request_url(op.sso.sp_entity_id, employee["userName"], issue_instant=year_ago),
                       allow_redirects=False, timeout=30)
    assert_refused(old, (400, 403), "too old")
    _still_signed_in(op, tokens, product)


def test_a_logout_request_addressed_to_another_service_is_refused(op, product, employee, entra):
    tokens = _signed_in(op, product, employee)
    foreign = requests.get(entra.logout_request_url(op.sso.sp_entity_id, employee["userName"],
                                                    destination="https://other-sp.example/saml/slo"),
                           allow_redirects=False, timeout=30)
    assert_refused(foreign, (400, 403), "another service")
    _still_signed_in(op, tokens, product)


def test_an_expired_logout_request_is_refused(op, product, employee, entra):
    tokens = _signed_in(op, product, employee)
    expired = requests.get(entra.logout_request_url(
        op.sso.sp_entity_id, employee["userName"], not_on_or_after=datetime.now(timezone.utc) - timedelta(minutes=10)),
        allow_redirects=False, timeout=30)
    assert_refused(expired, (400, 403), "expired")
    _still_signed_in(op, tokens, product)


def test_a_logout_request_is_acted_on_once(op, product, employee, entra):
    first = _signed_in(op, product, employee)
    url = entra.logout_request_url(op.sso.sp_entity_id, employee["userName"])
    assert requests.get(url, allow_redirects=False, timeout=30).status_code == 303
    assert op.userinfo(first["access_token"]).status_code == 401
    _signed_in(op, product, employee)  # signed in again; the same message replayed must not end this one
    assert_refused(requests.get(url, allow_redirects=False, timeout=30), 400, "used already")


def _rp_logout_to_entra(op, product, employee):
    tokens = _signed_in(op, product, employee)
    started = _logout(op, tokens["browser"], id_token_hint=tokens["id_token"],
                      post_logout_redirect_uri=f"{product.url}/bye", state="s-9")
    assert started.status_code == 303, started.text
    request, _ = decode_authn_request(started.headers["Location"])
    return request


def test_an_unsigned_failed_logout_response_is_not_reported_as_signed_out(op, product, employee, entra):
    request = _rp_logout_to_entra(op, product, employee)
    unsigned = requests.get(entra._logout_answer(request, {}, status=REQUESTER, sign=False), allow_redirects=False,
                            timeout=30)
    assert_refused(unsigned, (400, 403), "must be signed")
    assert "You are signed out" not in unsigned.text


def test_a_failed_logout_response_tells_the_employee_and_the_product(op, product, employee, entra):
    request = _rp_logout_to_entra(op, product, employee)
    failed = requests.get(entra._logout_answer(request, {}, status=REQUESTER), allow_redirects=False, timeout=30)
    assert failed.status_code == 502, failed.text
    assert failed.headers["Content-Type"].startswith("text/html") and "Location" not in failed.headers
    assert "not of Microsoft" in failed.text and "You have been signed out" not in failed.text
    link = failed.text.split('<a href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert link.startswith(f"{product.url}/bye?")
    told = {name: values[0] for name, values in parse_qs(urlsplit(link).query).items()}
    assert told["state"] == "s-9" and told["error"] == "entra_logout_failed"
