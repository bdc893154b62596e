"""The authorization endpoint (OpenID Connect Core §3.1.2, RFC 6749 §4.1, PKCE RFC 7636) and the code it ends with.

`begin` checks the request in the order RFC 6749 §4.1.2.1 prescribes: first the client and the redirect URI
(exactly as registered). If either is wrong we must not redirect — `InvalidClientRequest` becomes an error page.
Everything else is answered to the client's redirect URI (`AuthorizationRedirect`: error, state, iss).
A good request starts today's SP-initiated SAML sign-in (shared_code/sign_in.py) with the request riding in
the pending request; the ACS then calls `issue_code` (or `refusal_redirect` when the sign-in was refused, e.g.
a dismissed employee → access_denied).

A code is 256 random bits; only its SHA-256 is stored, with what it is bound to (client, redirect URI, PKCE
challenge, nonce, the employee, the session id) and its 60-second lifetime. The code and its session row are
written in one entity-group transaction.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from shared_code.errors import BadRequest, GatehouseError
from shared_code.oidc import discovery
from shared_code.storage import oidc as store

CODE_SECONDS = 60
ACCESS_TOKEN_SECONDS = 3600
SESSION_SECONDS = 8 * 3600  # as long as a Gatehouse browser session
MAX_STATE_CHARS = 2048
MAX_NONCE_CHARS = 512
_PKCE_S256 = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url(SHA-256) without padding
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
    state: str
    nonce: str | None
    code_challenge: str
    scope: str
    force_authn: bool
    login_hint: str | None

    def context(self) -> dict:
        """What the pending SAML request carries to the ACS."""
        return {"client_id": self.client_id, "redirect_uri": self.redirect_uri, "state": self.state,
                "nonce": self.nonce, "code_challenge": self.code_challenge, "scope": self.scope}


def with_query(uri: str, params: dict[str, str]) -> str:
    """`uri` with `params` appended to its query (a registered query is kept, RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode({key: value for key, value in params.items() if value is not None})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"{parts.query}&{extra}" if parts.query else extra,
                       ""))


def error_redirect(tenant_id: str, redirect_uri: str, state: str | None, error: str,
                   description: str) -> AuthorizationRedirect:
    return AuthorizationRedirect(with_query(redirect_uri, {
        "error": error, "error_description": description, "state": state,
        "iss": discovery.issuer(tenant_id)}), error)


def parse(tenant_id: str, pairs: Sequence[tuple[str, str]]) -> AuthorizationRequest:
    """Check an authorization request (its query as name/value pairs, duplicates kept)."""
    params: dict[str, str] = {}
    duplicated = set()
    for name, value in pairs:
        if name in params:
            duplicated.add(name)
        params.setdefault(name, value)
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
    if not state or len(state) > MAX_STATE_CHARS:
        raise refuse("invalid_request", f"state is required (at most {MAX_STATE_CHARS} characters).")
    scopes = (params.get("scope") or "").split()
    if "openid" not in scopes:
        raise refuse("invalid_scope", "The scope must include openid.")
    scope = " ".join(s for s in dict.fromkeys(scopes) if s in discovery.SCOPES)
    method = params.get("code_challenge_method")
    challenge = params.get("code_challenge")
    if not challenge:
        raise refuse("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256.")
    if method != "S256":
        raise refuse("invalid_request", "Only code_challenge_method=S256 is supported (plain is refused).")
    if not _PKCE_S256.match(challenge):
        raise refuse("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier (43 chars).")
    nonce = params.get("nonce")
    if nonce is not None and (not nonce or len(nonce) > MAX_NONCE_CHARS):
        raise refuse("invalid_request", f"nonce must be 1 to {MAX_NONCE_CHARS} characters.")
    prompts = set((params.get("prompt") or "").split())
    if "none" in prompts:
        raise refuse("login_required", "Silent sign-in is not available: the employee signs in through Entra.")
    login_hint = params.get("login_hint")
    if login_hint is not None and len(login_hint) > 256:
        login_hint = None
    # max_age: we cannot know when Entra last authenticated the employee, so any max_age forces a fresh sign-in.
    force = "login" in prompts or "max_age" in params
    return AuthorizationRequest(client_id, redirect_uri, state, nonce, challenge, scope, force, login_hint or None)


def begin(tenant_id: str, pairs: Sequence[tuple[str, str]], browser_nonce: str | None):
    """Check the request and start the SAML sign-in for it; the adapter redirects to Entra."""
    from shared_code import sign_in

    request = parse(tenant_id, pairs)
    try:
        return sign_in.start_login(tenant_id, None, browser_nonce, oidc=request.context(),
                                   force_authn=request.force_authn, login_hint=request.login_hint)
    except GatehouseError as error:
        if getattr(error, "reason", None) in ("sso_not_set_up", "unknown_tenant"):
            raise error_redirect(tenant_id, request.redirect_uri, request.state, "temporarily_unavailable",
                                 "Single sign-on is not set up for this company yet.") from None
        raise


def refusal_redirect(tenant_id: str, context: dict, error: GatehouseError) -> str:
    """Where a refused sign-in (dismissed, outside the corporate domains, …) goes: back to the product."""
    return error_redirect(tenant_id, context["redirect_uri"], context.get("state"), "access_denied",
                          error.message).location


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


def issue_code(tenant_id: str, employee_id: str, context: dict, saml_session: tuple | None,
               now: datetime | None = None) -> str:
    """Store a fresh code for this sign-in; returns the redirect to the client (code, state, iss)."""
    return issue_code_with_sid(tenant_id, employee_id, context, saml_session, now)[0]


def issue_code_with_sid(tenant_id: str, employee_id: str, context: dict, saml_session: tuple | None,
                        now: datetime | None = None) -> tuple[str, str]:
    """`issue_code`, and the session id of the sign-in (the ACS names it in the browser's `gh_op` cookie)."""
    now = now or datetime.now(timezone.utc)
    code = secrets.token_urlsafe(32)
    sid = secrets.token_urlsafe(16)
    record = store.CodeRecord(
        key=store.digest(code), client_id=context["client_id"], redirect_uri=context["redirect_uri"],
        code_challenge=context["code_challenge"], nonce=context.get("nonce"), scope=context.get("scope") or "openid",
        employee_id=employee_id, sid=sid, auth_time=int(now.timestamp()),
        code_expires_at=int(now.timestamp()) + CODE_SECONDS,
        expires_at=now + timedelta(seconds=CODE_SECONDS + ACCESS_TOKEN_SECONDS))
    name_id, session_index, name_id_format = (tuple(saml_session or ()) + (None, None, None))[:3]
    store.save_code_with_session(tenant_id, record, name_id=name_id, session_index=session_index,
                                 name_id_format=name_id_format,
                                 session_expires_at=now + timedelta(seconds=SESSION_SECONDS))
    return with_query(context["redirect_uri"], {"code": code, "state": context.get("state"),
                                                "iss": discovery.issuer(tenant_id)}), sid
