"""RP-initiated logout tied to the browser (issue 22): a logout that cannot be tied to a session of this browser —
no first-party `gh_op` cookie for the hint's sid, or a request another site's page sent (a foreign Origin) — only
shows a confirmation page with a one-time token; nothing ends until the person confirms on that page in that
browser (no foreign Origin, its SameSite=Strict cookie), and the token works once.
An expired id_token_hint is accepted only while its session lasts."""
from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from html import unescape

import requests

from shared_code.storage import tables
from tests.oidc.test_logout import _logout, _signed_in, entra, product  # noqa: F401 - fixtures
from tests.sso.conftest import assert_refused, cookie_header, set_cookies

_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _form(page: requests.Response) -> dict[str, str]:
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.text[:300]
    assert "Location" not in page.headers
    return {name: unescape(value) for name, value in _FIELD.findall(page.text)}


def _still_signed_in(op, product, tokens) -> None:
    assert op.userinfo(tokens["access_token"]).status_code == 200
    assert not product.logout_tokens


def test_a_cross_site_logout_get_only_shows_a_confirmation(op, product, employee):
    tokens = _signed_in(op, product, employee)
    # A link on any site: the browser sends no gh_op cookie for the session (or none at all).
    page = _logout(op, id_token_hint=tokens["id_token"], post_logout_redirect_uri=f"{product.url}/bye", state="x")
    fields = _form(page)
    assert "Sign out of" in page.text and fields["confirm"] and fields["state"] == "x"
    _still_signed_in(op, product, tokens)

    shown_to = {"gh_op_confirm": set_cookies(page)["gh_op_confirm"].value}  # the browser that saw the page
    # Another site's page auto-submitting the same form in the victim's browser: foreign Origin, no Strict cookie.
    forged = requests.post(f"{op.issuer}/logout", data=fields, allow_redirects=False, timeout=30,
                           headers={"Origin": "https://evil.example"})
    assert_refused(forged, 400, "confirmation")
    _still_signed_in(op, product, tokens)

    confirmed = requests.post(f"{op.issuer}/logout", data=fields, allow_redirects=False, timeout=30,
                              headers={**cookie_header(shown_to), "Origin": op.sso.base_url})
    assert confirmed.status_code == 303, confirmed.text  # on to Entra's SingleLogoutService
    assert op.userinfo(tokens["access_token"]).status_code == 401
    # The token works once: even were the session live again, the same confirmation ends nothing.
    row = f"session:{tokens['claims']['sub']}:{tokens['claims']['sid']}"
    entity = dict(tables.get(tables.OIDC, op.tenant_id, row))
    entity.pop("ended_at")
    tables.update(tables.OIDC, entity, etag=None, replace=True)
    replayed = requests.post(f"{op.issuer}/logout", data=fields, allow_redirects=False, timeout=30,
                             headers=cookie_header(shown_to))
    assert_refused(replayed, 400, "confirmed already")
    assert tables.get(tables.OIDC, op.tenant_id, row).get("ended_at") is None


def test_another_browsers_cookie_or_a_foreign_origin_is_not_a_tie(op, product, employee):
    tokens = _signed_in(op, product, employee)
    other = _signed_in(op, product, employee)  # another sign-in: its cookie names another sid
    assert "confirm" in _form(_logout(op, other["browser"], id_token_hint=tokens["id_token"]))
    cross_site_post = requests.post(f"{op.issuer}/logout", allow_redirects=False, timeout=30,
                                    data={"id_token_hint": tokens["id_token"]},
                                    headers={**cookie_header(tokens["browser"]), "Origin": "https://evil.example"})
    assert "confirm" in _form(cross_site_post)
    _still_signed_in(op, product, tokens)
    # The browser that signed in, from the product's own link: no question asked.
    assert _logout(op, tokens["browser"], id_token_hint=tokens["id_token"]).status_code == 303


def test_an_expired_hint_is_accepted_only_while_its_session_lasts(op, product, employee):
    # The ID token expired (an hour) while its session (eight hours) goes on: the logout is accepted.
    tokens = _signed_in(op, product, employee)
    assert _logout(op, tokens["browser"], id_token_hint=_expired_copy(tokens["id_token"])).status_code == 303
    assert op.userinfo(tokens["access_token"]).status_code == 401
    # The session's lifetime has passed too (as if a day later): the expired hint is refused, nothing happens.
    later = _signed_in(op, product, employee)
    row = f"session:{later['claims']['sub']}:{later['claims']['sid']}"
    tables.update(tables.OIDC, {"PartitionKey": op.tenant_id, "RowKey": row,
                                "expires_at": datetime.now(timezone.utc) - timedelta(minutes=1)}, etag=None)
    refused = _logout(op, later["browser"], id_token_hint=_expired_copy(later["id_token"]))
    assert_refused(refused, 400, "expired")


def _expired_copy(id_token: str) -> str:
    """The same ID token, re-signed by the issuer's key with exp an hour ago (what a product holds hours later)."""
    from shared_code.oidc import keys

    payload = json.loads(base64.urlsafe_b64decode(id_token.split(".")[1] + "=="))
    past = int(datetime.now(timezone.utc).timestamp()) - 3600
    return keys.sign({**payload, "iat": past - 3600, "exp": past})
