"""The sign-in service: an employee's way from the login link through Entra to a session, and the self-check.

SP-initiated login (`start_login`) writes nothing to storage. We build an AuthnRequest and seal what its answer
will need — the request ID, an opaque relay id, where to land afterwards, whether it is a self-check, the
product's OpenID Connect request — with the hash of a random per-browser nonce into a cookie of its own
(`pending_logins`: AES-GCM, named by the relay id, 10 minutes). The nonce itself travels only in the browser's
signed login-binding cookie (`sessions`). Both are SameSite=None + Secure + HttpOnly, because Entra's answer
arrives as a cross-site POST, which is the one case where browsers send only SameSite=None cookies. RelayState
carries just the opaque relay id (≤ 80 bytes, SAML bindings 3.4.3), never the target: the target is sealed, so a
RelayState can neither be tampered into an open redirect nor tell anyone where the user was going.
Why cookies and not RelayState alone: RelayState travels inside the POST next to the response, so whoever
forwards a response (login CSRF: the attacker's own sign-in posted from the victim's browser) forwards its
RelayState too; only a cookie ties Entra's answer to the browser that asked. Chromium sends the SameSite=None;
Secure cookie with the cross-site POST, also on http://127.0.0.1 (tests/browser/test_sp_initiated_login.py).
No row also means nothing for an anonymous flood to fill, so login starts need no rate limit (platform/rate_limit.py).

Assertion consumer (`complete_sign_in`), in this order:
1. `saml.consume` verifies the response against this tenant's SP and IdP (signatures, audience, recipient,
   destination, issuer, times) — nothing below runs for a response that is not genuine;
2. InResponseTo present → the pending login sealed in the cookie named by the RelayState that came back must
   be genuine, of this tenant, unexpired, of this browser (its browser hash is this browser's cookie nonce) and
   for exactly this AuthnRequest ID — all checked in memory. Absent → an unsolicited response (Entra's My Apps,
   its "Test" button): it never signs this browser in by itself, because nothing ties it to this browser
   (whoever is assigned to the app could post their own response from a victim's browser: login CSRF). It
   starts an SP-initiated login in this browser instead, landing where its RelayState pointed; Entra completes
   that without a prompt when the employee has an Entra session;
3. once: a row keyed by the AuthnRequest ID is inserted (`storage/sign_ins.py`); the insert of a second answer
   fails, so a replayed response — and any second response to one request, even posted in parallel — signs in
   at most once. Every accepted response names its request in signed XML, so this row is also the assertion
   replay cache. A product's sign-in (OpenID Connect) inserts it instead in the transaction that starts its
   session (`oidc/authorization.issue_code`, after steps 4-5), saving a round trip;
4. who signs in: the employee whose SCIM externalId is the objectId claim, else the one whose userName is the
   NameID (Entra's UPN, unique in the Entra tenant), compared with ASCII-only case folding (so the Kelvin sign
   U+212A is not a "K" and "ſ" not an "s"). Never the email claim (Entra admins and on-premises sync can set
   it to another person's address), and never an employee provisioned with another objectId;
5. may they: not dismissed (active=false), and once SSO is enforced their email is in the corporate domains
   (an employee the admin "allowed" has accepted the loss of access: still refused);
5a. for an OpenID Connect request that asked for a fresh authentication (`prompt=login`, `max_age`), the
   assertion's AuthnInstant must be recent enough (`check_fresh_authentication`): our AuthnRequest is unsigned,
   so its ForceAuthn can be edited away in the browser; Entra's signed AuthnInstant cannot. A stale one is
   refused with `login_required` to the product, as is a silent sign-in Entra answered `NoPassive`;
6. a self-check answers with a success page and marks the tenant's self-check passed; anything else gets a
   session and a redirect to the pending login's target, an IdP-initiated RelayState that is a safe path of
   the tenant's app_url, or the app_url itself.

Every refusal is a GatehouseError with a `reason` (for logs and tests) and a message a person can act on.
"""
from __future__ import annotations

import contextvars
import hmac
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from shared_code import saml
from shared_code.platform import credentials
from shared_code.sign_in import pending_logins, sessions
from shared_code.tenancy import tenants as tenant_service
from shared_code.platform.errors import Conflict, Forbidden, GatehouseError, NotFound, Unauthorized
from shared_code.tenancy.idp_connection import sso_url_allowed
from shared_code.storage import directory
from shared_code.storage import oidc as oidc_store
from shared_code.storage import sign_ins as store
from shared_code.tenancy.tenants import ENABLED, Tenant

# Storage round trips (~5-20 ms each) dominate a sign-in, not the SAML checks (~1 ms); independent ones overlap.
_round_trips = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sign-in")


def _overlap(fn, *args):
    """Start one round trip on the pool, in this request's context (its storage deadline goes along)."""
    return _round_trips.submit(contextvars.copy_context().run, fn, *args)

PENDING_REQUEST_LIFETIME = timedelta(seconds=pending_logins.LIFETIME_SECONDS)
# How far Entra's clock (AuthnInstant) may be behind ours when a fresh authentication was asked for.
AUTHN_INSTANT_SKEW = timedelta(seconds=60)
SELF_CHECK_LINK_LIFETIME = timedelta(minutes=30)
MAX_TARGET_CHARS = 2048
SESSION, SELF_CHECK, UNSOLICITED = "session", "self_check", "unsolicited"
OIDC, THIRD_PARTY_LOGIN = "oidc", "third_party_login"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_fold(text: str) -> str:
    """Case folding for ASCII letters only: Unicode folding maps U+212A KELVIN SIGN to "k" and U+017F LONG S
    to "s", so a NameID written with them would match another person's userName."""
    return text.translate(_ASCII_LOWER)

AGAIN = "Start the sign-in again from the app's sign-in page; if it keeps happening, tell your administrator."
_SELF_CHECK_TOKEN = re.compile(r"^gh_selfcheck_[A-Za-z0-9_-]{20,100}$")


# ---- refusals --------------------------------------------------------------------------------------------

class SignInRefused(Forbidden):
    """A genuine or not-quite-genuine sign-in that this app refuses (403 unless said otherwise)."""

    code = "sign_in_refused"

    def __init__(self, reason: str, message: str, *, title: str = "Sign-in was not possible", status: int = 403):
        super().__init__(message)
        self.reason, self.title, self.status = reason, title, status


class LinkSpent(GatehouseError):
    status, code = 410, "link_spent"

    def __init__(self, message: str):
        super().__init__(message)
        self.reason, self.title = "self_check_link_spent", "This link cannot be used"


def _unknown_tenant() -> NotFound:
    error = NotFound("There is no sign-in for this address. Check the link, or ask your administrator for the "
                     "app's sign-in address.")
    error.title, error.reason = "Unknown sign-in address", "unknown_tenant"
    return error


def _not_set_up() -> Conflict:
    error = Conflict("SSO is not set up for this tenant: its administrator has not connected Microsoft Entra "
                     "yet. Sign in the usual way, or ask your administrator.")
    error.title, error.reason = "SSO is not set up for this tenant", "sso_not_set_up"
    return error


# ---- the tenant's SAML parties --------------------------------------------------------------------------------

def service_provider(tenant: Tenant):
    urls = tenant.urls()
    return saml.ServiceProvider(entity_id=urls["sp_entity_id"], acs_url=urls["acs_url"], slo_url=urls["slo_url"])


def _tenant(tenant_id: str) -> Tenant:
    tenant = tenant_service.find_tenant(tenant_id)
    if tenant is None:
        raise _unknown_tenant()
    return tenant


def _tenant_with_idp(tenant_id: str) -> Tenant:
    tenant = _tenant(tenant_id)
    if not tenant.idp:
        raise _not_set_up()
    if not sso_url_allowed(tenant.idp.get("sso_url") or ""):
        raise _not_set_up()  # stored before https was required: never redirect a browser to http://
    return tenant


def sp_metadata(tenant_id: str) -> str:
    """Our SP metadata for this tenant (what the admin may upload to Entra instead of typing the URLs)."""
    return saml.sp_metadata_xml(service_provider(_tenant(tenant_id)))


# ---- where to land after a sign-in ------------------------------------------------------------------------------

def safe_target(app_url: str, requested: str | None) -> str | None:
    """`requested` as an absolute URL inside the tenant's app_url, or None when it is absent or could leave it.

    Accepted: a path starting with a single "/" (`/projects/7?tab=x`) or an absolute URL of app_url's own
    origin; when app_url has a path, the target must lie below it. Refused (None): other origins, scheme-relative
    `//host`, backslashes (`/\\host`, which browsers read as `//host`), whitespace and control characters,
    non-ASCII, dot segments, and any of these hidden under percent-encoding.
    """
    if not isinstance(requested, str) or not requested or len(requested) > MAX_TARGET_CHARS:
        return None
    layer = requested
    for _ in range(4):  # look through nested encodings (%252F%252F…) as far as any decoder would
        if any(ch == "\\" or not 0x21 <= ord(ch) <= 0x7E for ch in layer) or layer.startswith("//"):
            return None
        decoded = unquote(layer)
        if decoded == layer:
            break
        layer = decoded
    else:
        return None
    app = urlsplit(app_url)
    try:
        wanted = urlsplit(requested)
    except ValueError:
        return None
    if wanted.scheme or wanted.netloc:
        if wanted.scheme.lower() != app.scheme or wanted.netloc.lower() != app.netloc.lower():
            return None
    elif not requested.startswith("/"):
        return None
    path = wanted.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        return None
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        return None  # "/acme/../globex" would leave the app's path once the browser resolves it
    base_path = app.path.rstrip("/")
    if base_path and path != base_path and not path.startswith(base_path + "/"):
        return None
    target = urlunsplit((app.scheme, app.netloc, path, wanted.query, wanted.fragment))
    parts = urlsplit(target)
    if (parts.scheme, parts.netloc) != (app.scheme, app.netloc):  # belt and braces: never another origin
        return None
    return target


# ---- SP-initiated login -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginRedirect:
    """Where to send the browser, the nonce its login-binding cookie must carry, and the sealed pending login
    (the value of the cookie named by `relay_id`)."""

    url: str
    browser_nonce: str
    relay_id: str
    pending_cookie: str


def start_login(tenant_id: str, requested_target: str | None, browser_nonce: str | None, *,
                self_check_token: str | None = None, session_token: str | None = None,
                now: datetime | None = None, oidc: dict | None = None, force_authn: bool = False,
                is_passive: bool = False, login_hint: str | None = None) -> LoginRedirect:
    """Begin an SP-initiated sign-in; with `self_check_token`, the admin's one-time self-check sign-in; with
    `oidc`, on behalf of an OpenID Connect authorization request (shared_code/oidc/authorization.py), which
    the sealed pending login carries to the ACS."""
    now = now or datetime.now(timezone.utc)
    return _start_login(_tenant_with_idp(tenant_id), requested_target, browser_nonce,
                        self_check_token=self_check_token, session_token=session_token, now=now, oidc=oidc,
                        force_authn=force_authn, is_passive=is_passive, login_hint=login_hint)


def _start_login(tenant: Tenant, requested_target: str | None, browser_nonce: str | None, *,
                 self_check_token: str | None = None, session_token: str | None = None,
                 now: datetime, oidc: dict | None = None, force_authn: bool = False,
                 is_passive: bool = False, login_hint: str | None = None) -> LoginRedirect:
    tenant_id = tenant.tenant_id
    if self_check_token is not None:
        if sessions.read_session(session_token, tenant_id) is not None:
            # The seed's rule: a self-check in a window that is already signed in proves nothing.
            error = Conflict("This browser is already signed in to the app. Open the self-check link in a private "
                             "(incognito) window, so that the test signs in from scratch through Microsoft Entra.")
            error.title, error.reason = "Open the link in a private window", "self_check_not_private"
            raise error
        _spend_self_check_link(tenant_id, self_check_token, now)
    nonce = browser_nonce or sessions.new_browser_nonce()
    relay_state = secrets.token_urlsafe(18)  # 24 characters, opaque
    redirect = saml.build_authn_request(service_provider(tenant), saml.IdpMetadata.from_dict(tenant.idp),
                                        relay_state, force_authn=force_authn, is_passive=is_passive,
                                        login_hint=login_hint)
    issued = int(now.timestamp())
    sealed = pending_logins.seal(pending_logins.PendingLogin(
        tenant_id=tenant_id, request_id=redirect.request_id, relay_id=relay_state,
        browser_hash=sessions.browser_nonce_hash(nonce), target=safe_target(tenant.app_url, requested_target),
        self_check=self_check_token is not None, issued_at=issued,
        expires_at=issued + pending_logins.LIFETIME_SECONDS, oidc=oidc))
    return LoginRedirect(url=redirect.url, browser_nonce=nonce, relay_id=relay_state, pending_cookie=sealed)


# ---- the assertion consumer ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignInOutcome:
    """A successful sign-in: a session to set and where to go, or a passed self-check; or, for an unsolicited
    response, the SP-initiated login this browser starts instead (no employee, no session)."""

    kind: str  # SESSION, SELF_CHECK, OIDC (a code for the product), THIRD_PARTY_LOGIN (My Apps → the product)
    #            or UNSOLICITED (My Apps without a product login: this browser starts its own sign-in)
    tenant: Tenant
    employee: directory.Employee | None
    initiated_by: str  # "sp" or "idp"
    redirect_to: str | None = None
    session_token: str | None = None
    oidc: dict | None = None  # the OpenID Connect authorization request this sign-in answers
    saml_session: tuple | None = None  # (NameID, SessionIndex, NameID Format) for a LogoutRequest later
    login: LoginRedirect | None = None
    answered_relay_id: str | None = None  # the pending login this answered: its cookie can go
    answered: tuple | None = None  # (AuthnRequest ID, keep until): a product sign-in accepts it with its session


def replayed() -> SignInRefused:
    return SignInRefused("replayed", "This sign-in response has been used already, or its sign-in request was "
                         "completed already; each counts once. " + AGAIN)


def complete_sign_in(tenant_id: str, saml_response: str, relay_state: str | None, browser_nonce: str | None,
                     pending_cookie: str | None = None, now: datetime | None = None) -> SignInOutcome:
    """Check the posted SAMLResponse and decide who signs in (see the module docstring for the order);
    `pending_cookie` is the value of the cookie named by RelayState (`pending_logins.cookie_name`)."""
    now = now or datetime.now(timezone.utc)
    tenant = _tenant_with_idp(tenant_id)
    try:
        verified = saml.consume(saml_response, service_provider(tenant), saml.IdpMetadata.from_dict(tenant.idp), now)
    except saml.SamlRejected as error:
        if error.reason == "no_passive" and error.in_response_to:
            _silent_sign_in_failed(tenant_id, error, relay_state, browser_nonce, pending_cookie, now)
        raise
    if verified.in_response_to is None:
        # Unsolicited (My Apps): nothing binds it to this browser, so it signs nobody in. When the product
        # registered an initiate_login_uri, the browser goes there and the product starts its own OpenID Connect
        # sign-in (OIDC Core §4); otherwise this browser asks Entra itself and lands where My Apps meant it to go.
        from shared_code.oidc import third_party_login  # only unsolicited sign-ins need it (and discovery): cold start

        product_login = third_party_login.initiate_login_url(tenant_id)
        if product_login is not None:
            return SignInOutcome(THIRD_PARTY_LOGIN, tenant, None, "idp", product_login)
        login = _start_login(tenant, relay_state, browser_nonce, now=now)
        return SignInOutcome(UNSOLICITED, tenant, None, "idp", login=login)
    # Only a verified answer to a login of this browser gets here. The employee lookup overlaps the answered
    # row of an employee's own sign-in.
    pending = _pending_login(tenant_id, pending_cookie, relay_state, browser_nonce, verified.in_response_to, now)
    product = pending.oidc is not None  # the ID token wants the employee's name parts too
    by_object_id = (_overlap(directory.find_user_by_external_id, tenant_id, verified.object_id, product)
                    if verified.object_id else None)
    # Kept as long as an answer to this request could be accepted (the login's own expiry), plus clock skew
    # between instances.
    answered = (pending.request_id, pending.expires() + timedelta(minutes=5))
    if not product and not store.accept_request_once(tenant_id, *answered):
        raise replayed()
    # A product sign-in's answer is accepted once in the transaction that starts its session (oidc/authorization).
    try:
        if pending.oidc is not None:
            check_fresh_authentication(pending.oidc, verified.authn_instant, now)
        employee = who_signs_in(tenant_id, verified, by_object_id.result() if by_object_id else None,
                                with_names=product)
        check_may_sign_in(tenant, employee)
        if pending.oidc is not None and pending.oidc.get("hint_sub") not in (None, employee.id):
            raise _login_required("another_user", "You are signed in to Microsoft as someone else than the app "
                                  "expected. Sign in again from the app.")
    except GatehouseError as error:
        if pending.self_check:
            error.title = "The self-check failed"
        if pending.oidc is not None:
            error.oidc = pending.oidc  # the ACS answers the product (access_denied), not a page
        raise
    relay_id = pending.relay_id
    if pending.self_check:
        tenant = tenant_service.mark_self_check_passed(tenant_id)
        return SignInOutcome(SELF_CHECK, tenant, employee, "sp", answered_relay_id=relay_id)
    if pending.oidc is not None:
        # What Entra said about the authentication itself travels to the code: auth_time and amr.
        oidc = {**pending.oidc, "auth_time": int((verified.authn_instant or now).timestamp()),
                "authn_methods": list(verified.authn_methods)}
        return SignInOutcome(OIDC, tenant, employee, "sp", oidc=oidc,
                             saml_session=(verified.name_id, verified.session_index, verified.name_id_format),
                             answered_relay_id=relay_id, answered=answered)
    target = safe_target(tenant.app_url, pending.target)  # app_url may have changed since the login began
    token, session = sessions.issue_session(tenant_id, employee.id, now.timestamp())
    # Recorded with Entra's NameID and SessionIndex, so Entra's LogoutRequest for this sign-in ends it.
    oidc_store.save_browser_session(tenant_id, employee.id, session.stored_sid, name_id=verified.name_id,
                                    session_index=verified.session_index,
                                    expires_at=datetime.fromtimestamp(session.expires_at, timezone.utc))
    return SignInOutcome(SESSION, tenant, employee, "sp", target or tenant.app_url, token,
                         answered_relay_id=relay_id)


def _login_required(reason: str, message: str) -> SignInRefused:
    """A refusal the OpenID Connect product hears as `login_required` (its request asked for more than this
    sign-in proves)."""
    error = SignInRefused(reason, message)
    error.oauth_error = "login_required"
    return error


def check_fresh_authentication(oidc: dict, authn_instant: datetime | None, now: datetime) -> None:
    """For `prompt=login` the employee must have authenticated after the request was made; for `max_age` at most
    that many seconds ago (both with AUTHN_INSTANT_SKEW for Entra's clock). Judged by the signed AuthnInstant, not
    by what the (unsigned, editable) AuthnRequest asked for."""
    limits = []
    if oidc.get("prompt_login") and oidc.get("requested_at") is not None:
        limits.append(datetime.fromtimestamp(int(oidc["requested_at"]), timezone.utc))
    if oidc.get("max_age") is not None:
        limits.append(now - timedelta(seconds=int(oidc["max_age"])))
    if not limits:
        return
    if authn_instant is None or authn_instant < max(limits) - AUTHN_INSTANT_SKEW:
        raise _login_required("authentication_not_fresh", "The app asked for a fresh sign-in, but Microsoft "
                              "reported an earlier one. Start the sign-in again from the app.")


def _silent_sign_in_failed(tenant_id: str, error: saml.SamlRejected, relay_state: str | None,
                           browser_nonce: str | None, pending_cookie: str | None, now: datetime) -> None:
    """Entra's NoPassive answer to our IsPassive request: the product's silent sign-in (`prompt=none`) hears
    `login_required` at its redirect URI. Only the browser that started it, with its pending-login cookie and
    RelayState, gets there (the status is unsigned); anything else stays the page the SamlRejected makes."""
    try:
        pending = _pending_login(tenant_id, pending_cookie, relay_state, browser_nonce, error.in_response_to, now)
    except GatehouseError:
        return
    if pending.oidc is not None:
        error.oidc, error.oauth_error = pending.oidc, "login_required"


def _pending_login(tenant_id: str, sealed: str | None, relay_state: str | None, browser_nonce: str | None,
                   in_response_to: str, now: datetime) -> pending_logins.PendingLogin:
    """The pending login this answer completes, from the browser's cookie; every check is in memory."""
    unknown = SignInRefused("unknown_request", "This sign-in answers a sign-in request this app does not know, or "
                            "one that was completed already. " + AGAIN)
    if browser_nonce is None:
        if not relay_state:
            raise unknown  # neither state nor cookie: nothing here ever asked for this answer
        raise SignInRefused("browser_not_bound", "This browser did not send back the sign-in cookie set when the "
                            "sign-in started. Allow cookies for this site, finish the sign-in in the same browser "
                            "window, and start again from the app's sign-in page.")
    if not relay_state or pending_logins.cookie_name(relay_state) is None:
        raise SignInRefused("relay_state_mismatch", "The sign-in response came back without the state this app "
                            "sent with the request. " + AGAIN)
    pending = pending_logins.unseal(relay_state, sealed)
    if pending is None or pending.tenant_id != tenant_id:
        # No cookie for this RelayState (another browser's login, one answered and cleared already, another
        # tenant's, or a cookie that is not genuine).
        raise unknown
    if pending.expires_at <= int(now.timestamp()):
        raise SignInRefused("request_expired", "The sign-in took longer than "
                            f"{int(PENDING_REQUEST_LIFETIME.total_seconds() // 60)} minutes. " + AGAIN)
    if not hmac.compare_digest(sessions.browser_nonce_hash(browser_nonce).encode(), pending.browser_hash.encode()):
        raise SignInRefused("other_browser", "This sign-in was started in another browser or window. Start the "
                            "sign-in again in this browser, from the app's sign-in page.")
    if not hmac.compare_digest(in_response_to.encode(), pending.request_id.encode()):
        raise SignInRefused("relay_state_mismatch", "The sign-in response came back with the state of another "
                            "sign-in request than the one it answers. " + AGAIN)
    return pending


# ---- who signs in, and may they ------------------------------------------------------------------------------------

_LOOK_IT_UP = object()


def who_signs_in(tenant_id: str, verified, by_object_id=_LOOK_IT_UP,
                 with_names: bool = False) -> directory.Employee:
    """The provisioned employee this verified sign-in is about: the one whose externalId is the objectId
    claim, else the one whose userName is the NameID (ASCII-only case folding), unless that employee was
    provisioned from another Entra account. Never by the email claim or a work email. `by_object_id` is the
    result (an Employee or None) of the objectId lookup when the caller has made it already."""
    if by_object_id is _LOOK_IT_UP:
        by_object_id = directory.find_user_by_external_id(tenant_id, verified.object_id, with_names) \
            if verified.object_id else None
    if by_object_id is not None:
        return by_object_id
    name = verified.name_id
    # The userName index folds case the Unicode way; keep only a match that ASCII folding also makes.
    employee = directory.find_user_by_user_name(tenant_id, name, with_names) if name else None
    if employee is not None and ascii_fold(employee.user_name) == ascii_fold(name):
        if employee.external_id and ascii_fold(employee.external_id) != ascii_fold(verified.object_id or ""):
            # Same UPN, another Entra account (a reused mailbox, a recreated user), or no objectId to prove it
            # is the same one: never a takeover.
            raise SignInRefused("other_entra_account", "Your Entra account is not the one this app's account for "
                                f"{employee.user_name} was provisioned from. Ask your administrator to "
                                "re-provision you in Entra (Provision on demand), then sign in again.")
        return employee
    raise SignInRefused("not_provisioned", "You have not been provisioned to this app yet; ask your administrator "
                        "to assign you in Entra (the app's Users and groups, then Provision on demand).",
                        title="You cannot sign in yet")


def check_may_sign_in(tenant: Tenant, employee: directory.Employee) -> None:
    if not employee.active:
        raise SignInRefused("dismissed", "Your account in this app has been deactivated. If you still work here, "
                            "ask your administrator to reactivate you in Entra.", title="Your account is deactivated")
    if tenant.status != ENABLED or not (tenant.domains or {}).get("domains"):
        return
    from shared_code.directory.domains import normalise_domains  # only enforced tenants pay for the IDNA tables

    email = employee.work_email or employee.user_name
    why = normalise_domains(**tenant.domains).why_outside(email)
    if why is not None:
        raise SignInRefused("outside_corporate_domains", f"Your email address {email} cannot sign in: {why}. "
                            "Single sign-on is enforced for this company, and only addresses in its corporate "
                            "domains may sign in. Ask your administrator to correct your email address.",
                            title="Your email address is not a company address")


# ---- the session ----------------------------------------------------------------------------------------------------

def signed_in_employee(tenant_id: str, session_token: str | None) -> directory.Employee:
    """The employee of a valid session cookie of this tenant, still active (a dismissal ends the session, for
    good: a session from before the last dismissal stays ended after a rehire)."""
    session = sessions.read_session(session_token, tenant_id)
    if session is None:
        raise Unauthorized("You are not signed in to this tenant. Sign in through the app's sign-in page.")
    live = (_overlap(oidc_store.session_is_live, tenant_id, session.employee_id, session.stored_sid)
            if session.recorded else None)
    employee_read = _overlap(directory.get_user, tenant_id, session.employee_id)
    tenant = tenant_service.find_tenant(tenant_id)
    if tenant is None or session.issued_at < (tenant.sessions_valid_from or 0):
        # The tenant's SSO was cancelled or its IdP changed since: whoever that IdP signed in signs in again.
        raise Unauthorized("Your session has ended because your company changed its sign-in settings. Sign in "
                           "again through the app's sign-in page.")
    employee = employee_read.result()
    if employee is None or not employee.active:
        raise Unauthorized("Your session has ended because your account is no longer active. Ask your "
                           "administrator if you think this is a mistake.")
    if session.issued_at < employee.sessions_valid_from:
        # Dismissed after this session began and rehired since: a rehire starts with a fresh sign-in.
        raise Unauthorized("Your session has ended because your account was deactivated after you signed in. "
                           "Sign in again through the app's sign-in page.")
    if live is not None and not live.result():
        raise Unauthorized("Your session has ended: you signed out (single sign-out with Microsoft, or the app's "
                           "sign-out). Sign in again through the app's sign-in page.")
    return employee


# ---- the self-check ------------------------------------------------------------------------------------------------

def issue_self_check_link(tenant: Tenant, now: datetime | None = None) -> tuple[str, datetime]:
    """A one-time login link for the admin's self-check (open it in a private window); the token is stored
    only as a hash and expires in 30 minutes."""
    if not tenant.idp:
        raise Conflict("Connect Entra first: paste the App Federation Metadata URL and click Check now.")
    now = now or datetime.now(timezone.utc)
    token = credentials.new_secret("selfcheck")
    expires_at = now + SELF_CHECK_LINK_LIFETIME
    store.save_self_check_link(tenant.tenant_id, token, expires_at)
    return f"{tenant.urls()['login_url']}?{urlencode({'self_check': token})}", expires_at


def _spend_self_check_link(tenant_id: str, token: str, now: datetime) -> None:
    expires_at = store.spend_self_check_link(tenant_id, token, now) if _SELF_CHECK_TOKEN.match(token or "") else None
    if expires_at is None:
        raise LinkSpent("This self-check link has been used already or is not valid; each link works once. Create "
                        "a new link in the SSO setup and open it in a private (incognito) window.")
    if expires_at <= now:
        raise LinkSpent("This self-check link has expired (links last "
                        f"{int(SELF_CHECK_LINK_LIFETIME.total_seconds() // 60)} minutes). Create a new link in "
                        "the SSO setup.")


# ---- upkeep --------------------------------------------------------------------------------------------------------

def purge_exchanged_tokens(now: datetime | None = None) -> int:
    """Delete the expired replay rows of exchanged Entra tokens: one platform partition, not any tenant's (so the
    per-tenant purge job never sees it); the purge timer runs this itself, 100 rows per transaction."""
    return store.purge_expired(store.EXCHANGED_TOKENS, now or datetime.now(timezone.utc))