"""The authorization endpoint (OpenID Connect Core §3.1.2, RFC 6749 §4.1, PKCE RFC 7636) and the code it ends with.

`begin` checks the request in the order RFC 6749 §4.1.2.1 prescribes: first the client and the redirect URI
(exactly as registered). If either is wrong we must not redirect — `InvalidClientRequest` becomes an error page.
Everything else is answered to the client's redirect URI (`AuthorizationRedirect`: error, state, iss).
A good request starts today's SP-initiated SAML sign-in (shared_code/sign_in/service.py) with the request
(`AuthorizationRequest.context()`, one dict: add new fields there) riding in the sealed pending-login cookie
(shared_code/sign_in/pending_logins.py) — the authorization endpoint writes no row; the ACS then calls `issue_code`
(or `refusal_redirect` when the sign-in was refused, e.g. a dismissed employee → access_denied, a stale
authentication → login_required).

PKCE and state as RFC 9700 §2.1.1 and OIDC Core §3.1.2.1 put them: a native (public) client must send an S256
`code_challenge`; a web (confidential) client may leave PKCE out when it sends a `nonce` (the nonce in the ID
token then stops code injection); `plain` is refused; `state` is optional (the product's own CSRF defence).
Whether the code carries a challenge is stored with it, and the token endpoint refuses both downgrades.

`prompt=login` and `max_age` ask Entra for ForceAuthn and are then judged by the assertion's AuthnInstant
(sign_in.check_fresh_authentication); `prompt=none` sends an IsPassive AuthnRequest; `id_token_hint` must be an
ID token of this issuer, and the sign-in must be of its `sub` (else `login_required`).

A code is sealed (shared_code/platform/sealing.py: AES-GCM, bound to the tenant), not stored: it carries what it is bound
to (client, redirect URI, PKCE challenge, nonce, scope), the employee as the sign-in found them, the
session id and the ETag its session row got, a random id (its grant key once redeemed: sha256 of it) and its
60-second lifetime. The ACS writes one transaction: the SAML answer's `answered:` row (once) and the session.
The token endpoint redeems the code by inserting its grant row — once — together with a merge of the session
row under that ETag, so a code whose session ended meanwhile (a sign-out, a dismissal) is refused without a
read (storage/oidc.py `redeem`).
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

from shared_code.platform import sealing
from shared_code.sign_in import service as sign_in
from shared_code.platform.errors import BadRequest, Forbidden, GatehouseError
from shared_code.oidc import discovery, keys
from shared_code.oidc.discovery import with_query
from shared_code.oidc.errors import OAuthError
from shared_code.storage import directory
from shared_code.storage import oidc as store

CODE_SECONDS = 60
ACCESS_TOKEN_SECONDS = 3600
SESSION_SECONDS = 8 * 3600  # as long as a Gatehouse browser session
MAX_STATE_CHARS = 2048
MAX_NONCE_CHARS = 512
MAX_MAX_AGE = 10 * 365 * 24 * 3600
PROMPTS = ("none", "login", "consent", "select_account")
_PKCE_S256 = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url(SHA-256) without padding
CODE_PURPOSE = b"gatehouse/oidc-code/v1"
_SINGLE = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
           "code_challenge_method", "prompt", "login_hint", "max_age", "response_mode", "request", "request_uri")


class InvalidClientRequest(BadRequest):
    """A bad client_id or redirect_uri: shown to the person, never redirected (RFC 6749 §4.1.2.1)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.title, self.reason = "The app's sign-in link is not valid", reason


class AuthorizationRedirect(GatehouseError):
    """An error answered to the client's registered redirect URI (RFC 6749 §4.1.2.1, RFC 9207 `iss`)."""

    status = 303

    def __init__(self, location: str, error: str):
        super().__init__(error)
        self.location, self.error = location, error


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    scope: str
    force_authn: bool
    login_hint: str | None
    is_passive: bool = False
    max_age: int | None = None
    prompt_login: bool = False
    requested_at: int = 0
    hint_sub: str | None = None

    def context(self) -> dict:
        """What the pending SAML request carries to the ACS."""
        return {"client_id": self.client_id, "redirect_uri": self.redirect_uri, "state": self.state,
                "nonce": self.nonce, "code_challenge": self.code_challenge or "", "scope": self.scope,
                "max_age": self.max_age, "prompt_login": self.prompt_login, "requested_at": self.requested_at,
                "hint_sub": self.hint_sub}


def error_redirect(tenant_id: str, redirect_uri: str, state: str | None, error: str,
                   description: str) -> AuthorizationRedirect:
    return AuthorizationRedirect(with_query(redirect_uri, {
        "error": error, "error_description": description, "state": state,
        "iss": discovery.issuer(tenant_id)}), error)


def parse(tenant_id: str, pairs: Sequence[tuple[str, str]], now: float | None = None) -> AuthorizationRequest:
    """Check an authorization request (its query or form body as name/value pairs, duplicates kept)."""
    params: dict[str, str] = {}
    duplicated = set()
    for name, value in pairs:
        if name in params:
            duplicated.add(name)
        params.setdefault(name, value)
    # RFC 6749 §3.1: a parameter sent without a value is treated as if it were omitted.
    params = {name: value for name, value in params.items() if value != ""}
    client_id, redirect_uri = params.get("client_id"), params.get("redirect_uri")
    if not client_id or "client_id" in duplicated:
        raise InvalidClientRequest("The sign-in link does not name the app (client_id is missing). Start the "
                                   "sign-in again from the app.", "missing_client_id")
    client = store.get_client(tenant_id, client_id)
    if client is None:
        raise InvalidClientRequest("The app that sent you here is not registered for this company's sign-in. "
                                   "Tell the app's support team.", "unknown_client")
    if not redirect_uri or "redirect_uri" in duplicated or redirect_uri not in client.redirect_uris:
        raise InvalidClientRequest("The app asked to return to an address it has not registered, so the sign-in "
                                   "was stopped to protect you. Tell the app's support team.", "bad_redirect_uri")
    state = params.get("state")

    def refuse(error: str, description: str) -> AuthorizationRedirect:
        return error_redirect(tenant_id, redirect_uri, state, error, description)

    if duplicated:
        raise refuse("invalid_request", f"Parameters sent more than once: {', '.join(sorted(duplicated))}.")
    if "request" in params:
        raise refuse("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise refuse("request_uri_not_supported", "request_uri is not supported.")
    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "Only response_type=code is supported.")
    if params.get("response_mode") not in (None, "query"):
        raise refuse("invalid_request", "Only response_mode=query is supported.")
    if state is not None and len(state) > MAX_STATE_CHARS:
        raise refuse("invalid_request", f"state must be at most {MAX_STATE_CHARS} characters.")
    scopes = (params.get("scope") or "").split()
    if "openid" not in scopes:
        raise refuse("invalid_scope", "The scope must include openid.")
    scope = " ".join(s for s in dict.fromkeys(scopes) if s in discovery.SCOPES)
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > MAX_NONCE_CHARS:
        raise refuse("invalid_request", f"nonce must be at most {MAX_NONCE_CHARS} characters.")
    method = params.get("code_challenge_method")
    challenge = params.get("code_challenge")
    if challenge is None:
        if method is not None:
            raise refuse("invalid_request", "code_challenge_method was sent without a code_challenge.")
        if client.application_type == "native":
            raise refuse("invalid_request", "This app is a public (native) client, so it must use PKCE: send "
                         "code_challenge with code_challenge_method=S256 (RFC 9700 §2.1.1).")
        if nonce is None:
            raise refuse("invalid_request", "Send PKCE (code_challenge with code_challenge_method=S256) or a nonce: "
                         "a confidential client may leave PKCE out only when it sends a nonce (RFC 9700 §2.1.1).")
    else:
        if method != "S256":
            raise refuse("invalid_request", "Only code_challenge_method=S256 is supported (plain, or no method, "
                         "which means plain, is refused).")
        if not _PKCE_S256.match(challenge):
            raise refuse("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier "
                         "(43 chars).")
    prompts = (params.get("prompt") or "").split()
    unknown = [p for p in prompts if p not in PROMPTS]
    if unknown:
        raise refuse("invalid_request", f"prompt {unknown[0][:40]!r} is not supported (none, login, consent, "
                     "select_account).")
    if "none" in prompts and len(set(prompts)) > 1:
        raise refuse("invalid_request", "prompt=none cannot be combined with another prompt value.")
    max_age = None
    if "max_age" in params:
        raw = params["max_age"]
        if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_MAX_AGE:
            raise refuse("invalid_request", "max_age must be a whole number of seconds (0 or more).")
        max_age = int(raw)
    hint_sub = None
    if "id_token_hint" in params:
        hint_sub = _hint_subject(tenant_id, client_id, params["id_token_hint"])
        if hint_sub is None:
            raise refuse("invalid_request", "id_token_hint is not an ID token this issuer gave this client.")
    login_hint = params.get("login_hint")
    if login_hint is not None and len(login_hint) > 256:
        login_hint = None
    prompt_login = "login" in prompts
    requested_at = int(now if now is not None else time.time())
    # prompt=login and max_age ask Entra for a fresh sign-in; the ACS checks that AuthnInstant shows one. A silent
    # request cannot have one (Entra would answer NoPassive): its max_age is judged on the session's AuthnInstant.
    force = (prompt_login or max_age is not None) and "none" not in prompts
    return AuthorizationRequest(client_id, redirect_uri, state, nonce, challenge, scope, force, login_hint or None,
                                is_passive="none" in prompts, max_age=max_age, prompt_login=prompt_login,
                                requested_at=requested_at, hint_sub=hint_sub)


def _hint_subject(tenant_id: str, client_id: str, hint: str) -> str | None:
    """The `sub` of an ID token this issuer signed for this client (expired ones too: OIDC Core §3.1.2.1 uses it
    to name the expected user, not to authenticate), else None."""
    try:
        claims = keys.verify(hint, what="id_token_hint")
    except OAuthError:
        return None
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    sub = claims.get("sub")
    if claims.get("iss") != discovery.issuer(tenant_id) or client_id not in audiences or not isinstance(sub, str):
        return None
    return sub


def begin(tenant_id: str, pairs: Sequence[tuple[str, str]], browser_nonce: str | None):
    """Check the request and start the SAML sign-in for it; the adapter redirects to Entra."""
    request = parse(tenant_id, pairs)
    try:
        return sign_in.start_login(tenant_id, None, browser_nonce, oidc=request.context(),
                                   force_authn=request.force_authn, is_passive=request.is_passive,
                                   login_hint=request.login_hint)
    except GatehouseError as error:
        if getattr(error, "reason", None) in ("sso_not_set_up", "unknown_tenant"):
            raise error_redirect(tenant_id, request.redirect_uri, request.state, "temporarily_unavailable",
                                 "Single sign-on is not set up for this company yet.") from None
        if getattr(error, "reason", None) == "pending_login_too_large":
            raise error_redirect(tenant_id, request.redirect_uri, request.state, "invalid_request",
                                 "state, nonce and redirect_uri together are too large to keep in the browser "
                                 "during the sign-in; keep state under 1 KB.") from None
        raise


def refusal_redirect(tenant_id: str, context: dict, error: GatehouseError) -> str:
    """Where a refused sign-in goes: back to the product, with `access_denied` (dismissed, outside the corporate
    domains, …) or the error the refusal names (`login_required`: no Entra session for prompt=none, or an
    authentication older than prompt=login / max_age allow)."""
    return error_redirect(tenant_id, context["redirect_uri"], context.get("state"),
                          getattr(error, "oauth_error", None) or "access_denied", error.message).location


def record_exchange(tenant_id: str, client_id: str, employee_id: str, now: datetime) -> store.CodeRecord:
    """The grant and session of a token exchange (the mobile sign-in): what `issue_code` + redemption make of a code
    flow sign-in, so the exchanged tokens carry a sid, can be revoked, and a dismissal reaches the client by
    back-channel. The 'code' is random and never disclosed: nothing can redeem it."""
    sid = secrets.token_urlsafe(16)
    grant = store.CodeRecord(
        key=store.digest(secrets.token_urlsafe(32)), client_id=client_id, redirect_uri="", code_challenge="",
        nonce=None, scope="openid", employee_id=employee_id, sid=sid, auth_time=int(now.timestamp()),
        code_expires_at=int(now.timestamp()), expires_at=now + timedelta(seconds=ACCESS_TOKEN_SECONDS), spent_at=now)
    store.save_exchanged_grant(tenant_id, grant, session_expires_at=now + timedelta(seconds=SESSION_SECONDS))
    return grant


# Entra's authnmethodsreferences values (SAML claim http://schemas.microsoft.com/claims/authnmethodsreferences) as
# RFC 8176 `amr` values. Unknown ones are left out rather than guessed.
_AMR = {
    "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password": "pwd",
    "http://schemas.microsoft.com/claims/multipleauthn": "mfa",
    "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/windows": "wia",
    "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/kerberos": "wia",
}


def amr_of(authn_methods) -> list[str] | None:
    """RFC 8176 values for Entra's authentication methods, in order, without repeats; None when none is known."""
    values = list(dict.fromkeys(_AMR[m] for m in authn_methods if m in _AMR))
    return values or None


class AnswerReplayed(Forbidden):
    """The product sign-in's SAML answer was accepted before: a page, not a redirect to the product."""

    code = "sign_in_refused"

    def __init__(self):
        super().__init__("This sign-in response has been used already, or its sign-in request was completed "
                         "already; each counts once. Start the sign-in again from the app's sign-in page.")
        self.title, self.reason = "Sign-in was not possible", "replayed"


# What a code carries of the employee (directory.Employee without its ETag and names): the token endpoint builds
# the ID token from it without reading the directory again.
_EMPLOYEE_SNAPSHOT = ("id", "user_name", "external_id", "work_email", "display_name", "active", "is_admin",
                      "department", "allowed_outside_domain", "sessions_valid_from")


def issue_code(tenant_id: str, employee: directory.Employee, context: dict, saml_session: tuple | None,
               answered: tuple, now: datetime | None = None, verified_domains: Sequence[str] = ()) -> str:
    """Accept the SAML answer once and start the session (one transaction), then seal the code; returns the
    redirect to the client (code, state, iss). `AnswerReplayed` when the answer was accepted before.
    `verified_domains`: the tenant's DNS-verified domains as the ACS read them (the ID token's email_verified)."""
    return issue_code_with_sid(tenant_id, employee, context, saml_session, answered, now, verified_domains)[0]


def issue_code_with_sid(tenant_id: str, employee: directory.Employee, context: dict, saml_session: tuple | None,
                        answered: tuple, now: datetime | None = None,
                        verified_domains: Sequence[str] = ()) -> tuple[str, str]:
    """`issue_code`, and the session id of the sign-in (the ACS names it in the browser's `gh_op` cookie)."""
    now = now or datetime.now(timezone.utc)
    sid = secrets.token_urlsafe(16)
    name_id, session_index, name_id_format = (tuple(saml_session or ()) + (None, None, None))[:3]
    request_id, keep_until = answered
    try:
        session_etag = store.save_answered_session(
            tenant_id, request_id, keep_until, employee.id, sid, name_id=name_id, session_index=session_index,
            name_id_format=name_id_format, session_expires_at=now + timedelta(seconds=SESSION_SECONDS))
    except store.AlreadyAnswered:
        raise AnswerReplayed() from None
    issued_at = int(now.timestamp())
    code = sealing.seal(CODE_PURPOSE, tenant_id.encode("utf-8"), {
        "id": secrets.token_urlsafe(32), "client_id": context["client_id"], "redirect_uri": context["redirect_uri"],
        "code_challenge": context.get("code_challenge") or "", "nonce": context.get("nonce"),
        "scope": context.get("scope") or "openid", "sid": sid,
        "auth_time": int(context.get("auth_time") or issued_at), "amr": amr_of(context.get("authn_methods") or ()),
        "exp": issued_at + CODE_SECONDS, "session_etag": session_etag, "verified_domains": list(verified_domains),
        "employee": {name: getattr(employee, name) for name in _EMPLOYEE_SNAPSHOT}, "names": employee.names or {}})
    return with_query(context["redirect_uri"], {"code": code, "state": context.get("state"),
                                                "iss": discovery.issuer(tenant_id)}), sid


def open_code(tenant_id: str, code: str) -> dict | None:
    """What a genuine code of this tenant says (see `issue_code`); None for anything else. Expiry and binding
    are the token endpoint's to check."""
    document = sealing.unseal(CODE_PURPOSE, tenant_id.encode("utf-8"), code)
    needed = {"id", "client_id", "redirect_uri", "code_challenge", "scope", "sid", "auth_time", "exp",
              "session_etag", "employee", "names"}
    if document is None or not needed <= set(document) or not isinstance(document["employee"], dict) \
            or set(document["employee"]) != set(_EMPLOYEE_SNAPSHOT):
        return None
    return document
