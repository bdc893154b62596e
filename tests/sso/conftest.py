"""Fixtures for the SSO tests over real HTTP: a tenant connected to its own Entra-like TestIdp, employees
provisioned through the app's SCIM endpoint (externalId = Entra objectId, as Entra's mapping sends it), and a
browser-like client that keeps cookies by hand (requests would not send a Secure cookie over http://, a
browser on 127.0.0.1 does)."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.idp import TestIdp, decode_authn_request

SCIM_JSON = "application/scim+json"
LOGIN_BINDING = "__Host-gh_login"
PENDING_PREFIX = "__Host-gh_pending_"  # + the relay id: the sealed pending login (shared_code/sign_in/pending_logins.py)
SESSION = "gh_session"  # PUBLIC_BASE_URL is http:// in tests; over https the name is __Secure-gh_session


@dataclass(frozen=True)
class SetCookie:
    name: str
    value: str
    attributes: dict[str, str]  # lower-cased attribute names; flags map to ""


def set_cookies(response: requests.Response) -> dict[str, SetCookie]:
    """Every Set-Cookie of a response, by cookie name."""
    found = {}
    for header in response.raw.headers.getlist("Set-Cookie"):
        first, *rest = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attributes = {}
        for part in rest:
            key, _, val = part.partition("=")
            attributes[key.lower()] = val
        found[name] = SetCookie(name, value, attributes)
    return found


def login_cookies(response: requests.Response) -> dict[str, str]:
    """The cookies a login start set that the browser sends back with Entra's answer: the login binding and
    the sealed pending login (named by the relay id)."""
    return {name: cookie.value for name, cookie in set_cookies(response).items()
            if name == LOGIN_BINDING or name.startswith(PENDING_PREFIX)}


@dataclass
class Login:
    """An SP-initiated login as the app started it: the redirect, the decoded request, the browser cookies."""

    response: requests.Response
    request_id: str
    relay_state: str | None
    binding: str | None  # the value of the login-binding cookie the browser now holds
    authn_request: object
    pending: str | None = None  # the value of this login's sealed pending-login cookie

    @property
    def pending_cookie(self) -> dict[str, str]:
        return {PENDING_PREFIX + self.relay_state: self.pending} if self.pending else {}

    @property
    def cookies(self) -> dict[str, str]:
        """What this browser sends back with Entra's answer to this login."""
        return {LOGIN_BINDING: self.binding, **self.pending_cookie}


class SsoTenant:
    """A tenant with its TestIdp connected and a SCIM token; helpers to sign in over HTTP like a browser."""

    def __init__(self, handle, idp: TestIdp, base_url: str):
        self.handle = handle
        self.idp = idp
        self.base_url = base_url
        self.tenant_id = handle.tenant_id
        urls = handle.created
        self.sp_entity_id = urls["sp_entity_id"]
        self.acs_url = urls["acs_url"]
        self.login_url = urls["login_url"]
        self.me_url = f"{base_url}/api/sso/{self.tenant_id}/me"
        self.http = requests.Session()
        self._scim_token: str | None = None

    # -- setup through the admin API

    def connect(self, idp: TestIdp | None = None, **body) -> requests.Response:
        body = body or {"metadata_xml": (idp or self.idp).metadata_xml().decode()}
        return self.handle.api("POST", "sso/idp-metadata", json=body)

    def provision(self, user_name: str | None = None, *, object_id: str | None = None, email: str | None = None,
                  active: bool = True, display_name: str = "Alice Example") -> dict:
        """An employee created over SCIM as Entra would (externalId = objectId)."""
        if self._scim_token is None:
            self._scim_token = self.handle.scim_token()
        user_name = user_name or f"{uuid.uuid4().hex[:10]}@contoso.example"
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name,
                "active": active, "displayName": display_name,
                "emails": [{"value": email or user_name, "type": "work", "primary": True}]}
        if object_id is not False:
            body["externalId"] = object_id or str(uuid.uuid4())
        response = self.http.post(f"{self.handle.scim_url}/Users", json=body, timeout=30,
                                  headers={"Authorization": f"Bearer {self._scim_token}", "Content-Type": SCIM_JSON})
        assert response.status_code == 201, response.text
        return response.json()

    def set_active(self, user: dict, active: bool) -> None:
        response = self.http.patch(
            f"{self.handle.scim_url}/Users/{user['id']}", timeout=30,
            json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                  "Operations": [{"op": "replace", "path": "active", "value": active}]},
            headers={"Authorization": f"Bearer {self._scim_token}", "Content-Type": SCIM_JSON})
        assert response.status_code in (200, 204), response.text

    # -- the browser side

    def response_for(self, user: dict, **options) -> str:
        """A genuine signed SAMLResponse from this tenant's IdP for a provisioned employee."""
        return self.idp.response(self.sp_entity_id, self.acs_url, user["userName"], user.get("externalId"),
                                 **options)

    def post_acs(self, saml_response: str | bytes | None, relay_state: str | None = None,
                 cookies: dict[str, str] | None = None, acs_url: str | None = None, **kwargs) -> requests.Response:
        form = {}
        if saml_response is not None:
            form["SAMLResponse"] = saml_response
        if relay_state is not None:
            form["RelayState"] = relay_state
        return requests.post(acs_url or self.acs_url, data=form, allow_redirects=False, timeout=30,
                             headers=cookie_header(cookies), **kwargs)

    def login(self, target: str | None = None, cookies: dict[str, str] | None = None,
              query: dict[str, str] | None = None) -> Login:
        params = dict(query or {})
        if target is not None:
            params["RelayState"] = target
        response = requests.get(self.login_url, params=params, allow_redirects=False, timeout=30,
                                headers=cookie_header(cookies))
        assert response.status_code == 302, response.text
        request, relay_state = decode_authn_request(response.headers["Location"])
        binding = set_cookies(response).get(LOGIN_BINDING)
        pending = set_cookies(response).get(PENDING_PREFIX + (relay_state or ""))
        return Login(response, request.get("ID"), relay_state, binding.value if binding else None, request,
                     pending.value if pending else None)

    def answer_login(self, user: dict | str, target: str | None = None, *, object_id: str | None = None,
                     idp: TestIdp | None = None, **options) -> requests.Response:
        """An SP-initiated sign-in as a browser makes it: the login, then Entra's answer for `user` (a provisioned
        employee, or a NameID with `object_id`) posted from the same browser, signed by `idp` (the tenant's IdP
        unless given). Returns the ACS's answer as is."""
        login = self.login(target=target)
        if not isinstance(user, str):
            user, object_id = user["userName"], user.get("externalId")
        saml_response = (idp or self.idp).response(self.sp_entity_id, self.acs_url, user, object_id,
                                                   in_response_to=login.request_id, **options)
        return self.post_acs(saml_response, login.relay_state, login.cookies)

    def follow_unsolicited(self, answer: requests.Response, user: dict) -> requests.Response:
        """What the browser does with the ACS's answer to an unsolicited response: follow the redirect to Entra
        (an SP-initiated login, with its login-binding cookie), and post Entra's answer for `user` back."""
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:300])
        assert "Set-Cookie" in answer.headers and SESSION not in set_cookies(answer)
        request, relay_state = decode_authn_request(answer.headers["Location"])
        return self.post_acs(self.response_for(user, in_response_to=request.get("ID")), relay_state,
                             login_cookies(answer))

    def sign_in(self, user: dict, **options) -> requests.Response:
        """A complete SP-initiated sign-in; the 303 response carries the session cookie."""
        login = self.login()
        response = self.post_acs(self.response_for(user, in_response_to=login.request_id, **options),
                                 login.relay_state, login.cookies)
        assert response.status_code == 303, response.text
        return response

    def me(self, session: str | None, cookie_name: str = SESSION) -> requests.Response:
        cookies = {cookie_name: session} if session is not None else None
        return requests.get(self.me_url, headers=cookie_header(cookies), timeout=30)


def cookie_header(cookies: dict[str, str] | None) -> dict[str, str]:
    if not cookies:
        return {}
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items() if value is not None)}


def session_of(response: requests.Response) -> str:
    return set_cookies(response)[SESSION].value


CORRELATION = re.compile(r"<code>([0-9a-fA-F-]{8,64})</code>")


def assert_refused(response: requests.Response, status: int | tuple[int, ...], *words: str,
                   log_text=None) -> str:
    """A refusal as the contract wants it: 4xx, an HTML page a person can read, no cookie, no internals;
    returns the page's correlation id (which is in the app's log when `log_text` is given)."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html"), response.headers
    assert not response.raw.headers.getlist("Set-Cookie"), response.raw.headers.getlist("Set-Cookie")
    assert "Location" not in response.headers
    text = response.text
    assert "Traceback" not in text and "Exception" not in text
    for word in words:
        assert word in text, (word, text)
    match = CORRELATION.search(text)
    assert match, text
    assert response.headers.get("X-Correlation-Id") == match.group(1)
    if log_text is not None:
        assert match.group(1) in log_text(), "the page's correlation id is not in the app's log"
    return match.group(1)


@pytest.fixture
def sso(new_tenant, app_url) -> SsoTenant:
    """A fresh tenant (app_url https://acme.example.com) connected to a fresh TestIdp by pasted metadata XML."""
    tenant = SsoTenant(new_tenant("Acme SSO", "https://acme.example.com"), TestIdp(key_label="sso-tests"), app_url)
    response = tenant.connect()
    assert response.status_code == 200, response.text
    return tenant


@pytest.fixture
def alice(sso: SsoTenant) -> dict:
    return sso.provision("alice@acme.example.com", display_name="Alice Example")


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)
