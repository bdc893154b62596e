"""The development IdP for one Gatehouse tenant: its metadata, its sign-in and logout answers, its key set and ID
tokens. Every request here comes from a browser, so everything it carries is read as hostile: the SAMLRequest is
size-capped before and after inflating, parsed with `shared_code.saml.safe_xml`, and must come from this very
tenant's service provider (its Issuer and ACS URL); the IdP only ever posts to, or redirects to, the tenant's own
ACS and SLO URLs, so it cannot be used to send a signed response anywhere else.

Who it signs in: an employee provisioned in the tenant (over SCIM, e.g. by `tools/simulate_entra.py`), named by
user principal name (SCIM userName). Their claims are what Entra would send for that user: objectidentifier =
the SCIM externalId (Entra's objectId, what Gatehouse matches first), NameID = UPN, emailaddress, givenname,
surname, displayname, tenantid, identityprovider, authnmethodsreferences. A dismissed employee is signed in too
(Entra would refuse a disabled account; here Gatehouse's own refusal can be seen).

The Entra tenant the development IdP plays for a Gatehouse tenant has a fixed GUID derived from the tenant ID, so
the entity ID (`https://sts.windows.net/{guid}/`) and the `tid` of its ID tokens are stable.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import uuid
import zlib
from dataclasses import dataclass, field
from html import escape
from typing import Any

from shared_code.sign_in import service as sign_in
from shared_code.tenancy import tenants as tenant_service
from shared_code.dev_idp import ROUTE_PREFIX, keys
from shared_code.dev_idp.documents import (NS_SAML, NS_SAMLP, STATUS_NO_PASSIVE, STATUS_REQUESTER, EntraIdp,
                                           v2_id_token_claims, v2_published_key)
from shared_code.platform.errors import BadRequest, Conflict, NotFound
from shared_code.saml.safe_xml import UntrustedXmlError, parse_untrusted
from shared_code.platform.settings import get_settings
from shared_code.storage import directory

# A fixed namespace for the GUIDs of the Entra tenants the development IdP plays (uuid5 of the tenant ID).
_ENTRA_TENANTS = uuid.UUID("6f1c1f4e-3b0a-5d1e-9a57-6761746568f5")
MAX_REQUEST_CHARS = 16 * 1024  # a deflated, base64 AuthnRequest of Gatehouse is ~600 characters
MAX_INFLATED_BYTES = 64 * 1024
MAX_LOGIN_HINT_CHARS = 256
PICKER_SIZE = 50
DEV_BANNER = ("Gatehouse development IdP — for development only. It signs in whoever is picked, without a "
              "password; it exists only with DEV_IDP=true on an http:// PUBLIC_BASE_URL.")
_STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}"
          ".dev{background:#fff8c5;border:1px solid #d4a72c;padding:.6rem .8rem;border-radius:6px}"
          "h1{font-size:1.4rem}ul{padding:0;list-style:none}li{margin:.3rem 0}"
          "button{font:inherit;padding:.35rem .8rem;cursor:pointer}.hint{color:#57606a;font-size:.9rem}"
          ".bad{color:#cf222e}input[type=text]{font:inherit;width:22rem;padding:.3rem}")


@dataclass(frozen=True)
class Page:
    """An HTML page to answer with; `script_hashes` go into its Content-Security-Policy."""

    html: str
    status: int = 200
    script_hashes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class SamlRequest:
    kind: str  # "AuthnRequest" or "LogoutRequest"
    request_id: str | None
    issuer: str
    acs_url: str | None
    relay_state: str | None
    encoded: str = field(repr=False)
    tenant: Any = field(default=None, repr=False, compare=False)  # read once per request
    is_passive: bool = False  # IsPassive: no page may be shown (OIDC prompt=none)
    force_authn: bool = False  # ForceAuthn: the person authenticates now (prompt=login, max_age)


# ---- identity ------------------------------------------------------------------------------------------------

def entra_tenant_id(tenant_id: str) -> str:
    return str(uuid.uuid5(_ENTRA_TENANTS, tenant_id))


def base_url(tenant_id: str) -> str:
    return f"{get_settings().public_base_url}/api/{ROUTE_PREFIX}/{tenant_id}"


def metadata_url(tenant_id: str) -> str:
    return f"{base_url(tenant_id)}/metadata"


def _identity():
    secret = get_settings().session_signing_key
    if not secret:
        raise Conflict("The development IdP derives its key from SESSION_SIGNING_KEY, which is not set. Set it "
                       "in local.settings.json.")
    return keys.signing_identity(secret, dt.datetime.now(dt.timezone.utc).year)


def _tenant(tenant_id: str):
    tenant = tenant_service.find_tenant(tenant_id)
    if tenant is None:
        raise NotFound("There is no such tenant. Create it first (POST /api/tenants), then use its tenant ID here.")
    return tenant


def idp_for(tenant_id: str) -> EntraIdp:
    """The Entra-shaped IdP of this tenant: its own Entra tenant GUID, this deployment's key."""
    return EntraIdp(_identity(), entra_tenant_id(tenant_id), sso_url=f"{base_url(tenant_id)}/saml2")


def metadata(tenant_id: str) -> bytes:
    """App Federation Metadata, as Entra publishes it for an enterprise application (signed, one certificate,
    the sign-in URL also the SingleLogoutService)."""
    _tenant(tenant_id)
    return idp_for(tenant_id).metadata_xml()


# ---- reading what the browser brought ----------------------------------------------------------------------------

def read_request(tenant_id: str, saml_request: Any, relay_state: Any, *, parameter: str = "SAMLRequest") -> SamlRequest:
    """The AuthnRequest or LogoutRequest of the HTTP-Redirect binding, refused unless it is this tenant's."""
    tenant = _tenant(tenant_id)
    if not isinstance(saml_request, str) or not saml_request:
        raise BadRequest(f"This is the development IdP's sign-in URL; it expects a {parameter} from Gatehouse. "
                         f"Start at the tenant's login link instead: {tenant.urls()['login_url']}")
    if len(saml_request) > MAX_REQUEST_CHARS:
        raise BadRequest(f"The {parameter} is larger than any Gatehouse sends; start the sign-in again.")
    if relay_state is not None and (not isinstance(relay_state, str) or len(relay_state) > 1024):
        raise BadRequest("The RelayState is not one Gatehouse sends; start the sign-in again.")
    try:
        deflated = base64.b64decode(saml_request, validate=False)
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(deflated, MAX_INFLATED_BYTES)
        if inflater.unconsumed_tail:
            raise BadRequest(f"The {parameter} inflates to more than any Gatehouse sends; start the sign-in again.")
        root = parse_untrusted(xml)
    except (binascii.Error, ValueError, zlib.error, UntrustedXmlError):
        raise BadRequest(f"The {parameter} is not a deflated, base64 SAML message (HTTP-Redirect binding); start "
                         "the sign-in again from the tenant's login link.") from None
    kinds = {f"{{{NS_SAMLP}}}AuthnRequest": "AuthnRequest", f"{{{NS_SAMLP}}}LogoutRequest": "LogoutRequest",
             f"{{{NS_SAMLP}}}LogoutResponse": "LogoutResponse"}
    kind = kinds.get(root.tag)
    if kind is None or (kind == "LogoutResponse") != (parameter == "SAMLResponse"):
        raise BadRequest("The development IdP answers an AuthnRequest or a LogoutRequest (and takes the "
                         "LogoutResponse to its own LogoutRequest), nothing else.")
    urls = tenant.urls()
    issuer = (root.findtext(f"{{{NS_SAML}}}Issuer") or "").strip()
    acs_url = root.get("AssertionConsumerServiceURL")
    if issuer != urls["sp_entity_id"] or (kind == "AuthnRequest" and acs_url not in (None, urls["acs_url"])):
        raise BadRequest(f"This request is not from tenant {tenant_id}'s Gatehouse (its Issuer or ACS URL is "
                         "another service provider's); the development IdP answers only its own tenant.")
    return SamlRequest(kind, root.get("ID"), issuer, acs_url or urls["acs_url"], relay_state, saml_request, tenant,
                       is_passive=root.get("IsPassive") in ("true", "1"),
                       force_authn=root.get("ForceAuthn") in ("true", "1"))


# ---- sign-in ---------------------------------------------------------------------------------------------------

def sign_in_page(tenant_id: str, saml_request: Any, relay_state: Any, login_hint: Any,
                 saml_response: Any = None) -> Page | Redirect:
    """GET of the SSO URL: a LogoutRequest is answered (signed redirect to the tenant's SLO URL); an AuthnRequest
    with a `login_hint` naming a provisioned employee is answered with the auto-posting form Entra sends; without
    one, the page to pick an employee — unless the request IsPassive (a silent sign-in): like Entra without a
    session it then answers NoPassive, never a page (the `login_hint` stands for the session a browser would
    hold). The SP's LogoutResponse (after an Entra-initiated logout) ends on a page."""
    if saml_request is None and saml_response is not None:
        read_request(tenant_id, saml_response, relay_state, parameter="SAMLResponse")
        return _signed_out_page(tenant_id)
    request = read_request(tenant_id, saml_request, relay_state)
    if request.kind == "LogoutRequest":
        return Redirect(logout_response_url(tenant_id, request))
    if isinstance(login_hint, str) and login_hint.strip():
        hint = login_hint.strip()[:MAX_LOGIN_HINT_CHARS]
        employee = directory.find_user_by_user_name(tenant_id, hint)
        if employee is None:
            return _picker(tenant_id, request, error=f"No employee of this tenant has the user principal name "
                                                     f"{hint!r}. Provision them first (python -m tools.simulate_entra)"
                                                     ", or pick one below.", status=404)
        return _post_form(tenant_id, request, employee)
    if request.is_passive:
        return _no_passive(tenant_id, request)
    return _picker(tenant_id, request)


def claims_of(tenant_id: str, employee: directory.Employee) -> dict[str, Any]:
    """What Entra would say about this employee (the options of `EntraIdp.response`)."""
    record = directory.get_user_record(tenant_id, employee.id)
    data = record.data if record is not None else {}
    name = data.get("name") if isinstance(data.get("name"), dict) else {}
    object_id = employee.external_id or str(uuid.uuid5(_ENTRA_TENANTS, f"{tenant_id}/{employee.user_name}"))
    return {"name_id": employee.user_name, "object_id": object_id,
            "email": employee.work_email or employee.user_name,
            "display_name": employee.display_name or data.get("displayName") or employee.user_name,
            "given_name": name.get("givenName") if isinstance(name.get("givenName"), str) else None,
            "surname": name.get("familyName") if isinstance(name.get("familyName"), str) else None}


def _no_passive(tenant_id: str, request: SamlRequest) -> Page:
    """Entra's answer to an IsPassive request it cannot satisfy without a page: status NoPassive (AADSTS50058)."""
    sp = sign_in.service_provider(request.tenant)
    saml_response = idp_for(tenant_id).response(
        sp.entity_id, sp.acs_url, in_response_to=request.request_id, status=STATUS_REQUESTER,
        sub_status=STATUS_NO_PASSIVE, status_message="AADSTS50058: A silent sign-in request was sent but no user "
        "is signed in.")
    return _auto_post(request, sp.acs_url, saml_response, "Answering a silent sign-in: nobody is signed in…")


def _post_form(tenant_id: str, request: SamlRequest, employee: directory.Employee) -> Page:
    claims = claims_of(tenant_id, employee)
    sp = sign_in.service_provider(request.tenant)
    now = dt.datetime.now(dt.timezone.utc)
    # A ForceAuthn request is authenticated now; otherwise as from an Entra session a minute old (the default).
    saml_response = idp_for(tenant_id).response(
        sp.entity_id, sp.acs_url, claims.pop("name_id"), claims.pop("object_id"), claims.pop("email"),
        in_response_to=request.request_id, issue_instant=now,
        authn_instant=now if request.force_authn else None, **claims)
    return _auto_post(request, sp.acs_url, saml_response, f"Signing in {employee.user_name}…")


def _auto_post(request: SamlRequest, acs_url: str, saml_response: str, doing: str) -> Page:
    relay = (f'<input type="hidden" name="RelayState" value="{escape(request.relay_state)}">'
             if request.relay_state is not None else "")
    script = "document.forms[0].submit();"
    # Entra's own answer page: a form that posts itself to the ACS (here with the development banner).
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Working...</title>'
            f'<style>{_STYLE}</style></head><body><p class="dev">{escape(DEV_BANNER)}</p>'
            f'<p>{escape(doing)}</p>'
            f'<form method="POST" name="hiddenform" action="{escape(acs_url)}">'
            f'<input type="hidden" name="SAMLResponse" value="{saml_response}">{relay}'
            f'<noscript><button type="submit">Continue</button></noscript></form>'
            f'<script>{script}</script></body></html>')
    return Page(html, script_hashes=(_sha256(script),))


def _picker(tenant_id: str, request: SamlRequest, *, error: str | None = None, status: int = 200) -> Page:
    people = []
    for employee in directory.iter_active_people(tenant_id):
        people.append(employee)
        if len(people) >= PICKER_SIZE:
            break
    people.sort(key=lambda e: e.user_name.lower())
    action = f"{base_url(tenant_id)}/saml2"
    hidden = f'<input type="hidden" name="SAMLRequest" value="{escape(request.encoded)}">'
    if request.relay_state is not None:
        hidden += f'<input type="hidden" name="RelayState" value="{escape(request.relay_state)}">'
    items = "".join(
        f'<li><form method="GET" action="{escape(action)}">{hidden}'
        f'<input type="hidden" name="login_hint" value="{escape(e.user_name)}">'
        f'<button type="submit" data-upn="{escape(e.user_name)}">{escape(e.display_name or e.user_name)}</button> '
        f'<span class="hint">{escape(e.user_name)}</span></form></li>' for e in people)
    if not people:
        items = ('<li class="hint">Nobody is provisioned in this tenant yet: run <code>python -m tools.simulate_entra'
                 '</code> (or <code>make demo</code>), or type a user principal name below.</li>')
    problem = f'<p class="bad" id="error">{escape(error)}</p>' if error else ""
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>Sign in — development IdP</title><style>{_STYLE}</style></head><body>'
            f'<p class="dev" id="dev-banner">{escape(DEV_BANNER)}</p>'
            f'<h1>Sign in to {escape(tenant_id)}</h1>{problem}'
            f'<p>Pick one of the tenant\'s provisioned employees (as if they had signed in to Microsoft Entra):</p>'
            f'<ul id="employees">{items}</ul>'
            f'<form method="GET" action="{escape(action)}">{hidden}'
            f'<label>Or type a user principal name: <input type="text" name="login_hint" '
            f'autocomplete="off" placeholder="alice@contoso.example"></label> <button type="submit">Sign in</button>'
            f'</form><p class="hint">Entra tenant {escape(entra_tenant_id(tenant_id))} (simulated). '
            f'A <code>login_hint</code> in the sign-in URL skips this page.</p></body></html>')
    return Page(html, status=status)


# ---- single logout ---------------------------------------------------------------------------------------------

def _signed_out_page(tenant_id: str) -> Page:
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out — development IdP'
            f'</title><style>{_STYLE}</style></head><body><p class="dev" id="dev-banner">{escape(DEV_BANNER)}</p>'
            f'<h1 id="signed-out">You signed out</h1><p>Gatehouse ended the sessions of tenant {escape(tenant_id)} '
            f'that this sign-out named, and told the products by back-channel logout.</p></body></html>')
    return Page(html)


def logout_response_url(tenant_id: str, request: SamlRequest) -> str:
    """Entra's answer to the SP's LogoutRequest: a signed LogoutResponse to the tenant's SLO URL."""
    slo_url = request.tenant.urls()["slo_url"]
    idp = idp_for(tenant_id)
    return idp.signed_redirect(slo_url, "SAMLResponse", idp.logout_response_xml(slo_url, request.request_id),
                               request.relay_state)


def logout_request_url(tenant_id: str, login_hint: Any) -> str:
    """The signed LogoutRequest Entra sends when the employee signs out elsewhere (e.g. of Microsoft 365)."""
    if not isinstance(login_hint, str) or not login_hint.strip():
        raise BadRequest("Name the employee who signs out everywhere: ?login_hint=<user principal name>.")
    tenant = _tenant(tenant_id)
    employee = directory.find_user_by_user_name(tenant_id, login_hint.strip()[:MAX_LOGIN_HINT_CHARS])
    if employee is None:
        raise NotFound("No employee of this tenant has that user principal name.")
    slo_url = tenant.urls()["slo_url"]
    idp = idp_for(tenant_id)
    return idp.signed_redirect(slo_url, "SAMLRequest", idp.logout_request_xml(slo_url, employee.user_name))


# ---- Entra v2.0 key set and ID tokens (the mobile exchange) -------------------------------------------------------

def _key() -> tuple[Any, str, list[str]]:
    """The signing key as a JWK, its kid (Entra's kids are the certificate's x5t) and its certificate chain."""
    from joserfc.jwk import RSAKey

    identity = _identity()
    x5t = base64.urlsafe_b64encode(hashlib.sha1(identity.cert_der).digest()).rstrip(b"=").decode()  # noqa: S324
    return RSAKey.import_key(identity.key_pem), x5t, [identity.cert_b64]


def key_set(entra_tenant: str) -> dict:
    """`{ENTRA_LOGIN_URL}/{tenant}/discovery/v2.0/keys`, as Entra publishes it (the same key for every tenant)."""
    key, x5t, x5c = _key()
    return {"keys": [v2_published_key(key.as_dict(private=False), entra_tenant, kid=x5t, x5t=x5t, x5c=x5c)]}


def id_token(tenant_id: str, login_hint: Any, client_id: Any, now: dt.datetime | None = None) -> str:
    """An ID token as Entra v2.0 issues it to the mobile app (MSAL) for this employee and app registration."""
    from joserfc import jwt

    if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > 100:
        raise BadRequest("Name the app registration: ?client_id=<the client_id of the MSAL configuration>.")
    if not isinstance(login_hint, str) or not login_hint.strip():
        raise BadRequest("Name the employee: ?login_hint=<user principal name>.")
    _tenant(tenant_id)
    employee = directory.find_user_by_user_name(tenant_id, login_hint.strip()[:MAX_LOGIN_HINT_CHARS])
    if employee is None:
        raise NotFound("No employee of this tenant has that user principal name.")
    claims = claims_of(tenant_id, employee)
    issued = int((now or dt.datetime.now(dt.timezone.utc)).timestamp())
    payload = v2_id_token_claims(entra_tenant_id(tenant_id), client_id.strip(), claims["object_id"], now=issued,
                                 name=claims["display_name"], preferred_username=employee.user_name)
    key, kid, _ = _key()
    return jwt.encode({"typ": "JWT", "alg": "RS256", "kid": kid}, payload, key, algorithms=["RS256"])


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
