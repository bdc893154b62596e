"""A sign-in started from Entra's My Apps (an unsolicited SAML response) lands in the product: the browser goes
to the client's initiate_login_uri with our iss (OpenID Connect Core §4) and gets no session, so the product
starts its own authorization request from the browser that is actually there."""
from __future__ import annotations

from tests.oidc.conftest import query


def test_unsolicited_response_goes_to_the_products_initiate_login_uri_without_a_session(op, employee):
    registered = op.register(redirect_uris=["https://product.example.com/callback"],
                             initiate_login_uri="https://product.example.com/login?from=entra")
    assert registered.status_code == 201, registered.text
    answer = op.sso.post_acs(op.sso.response_for(employee))  # no InResponseTo: IdP-initiated
    assert answer.status_code == 303, answer.text
    location = answer.headers["Location"]
    assert location.startswith("https://product.example.com/login?from=entra&")
    assert query(location)["iss"] == op.issuer
    assert not answer.raw.headers.getlist("Set-Cookie")


def test_initiate_login_uri_must_be_https(op):
    response = op.register(redirect_uris=["https://product.example.com/callback"],
                           initiate_login_uri="http://product.example.com/login")
    assert response.status_code == 422 and response.json()["field"] == "initiate_login_uri"
