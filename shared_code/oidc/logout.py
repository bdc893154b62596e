"""Logout both ways.

From the product (OpenID Connect RP-Initiated Logout 1.0, `end_session`): the `id_token_hint` must be an ID
token this issuer signed (RS256 with a published key; an expired one is accepted, as the spec allows, but only
while its session lasts), naming a client of this tenant; `post_logout_redirect_uri` must be registered for that
client exactly. The request must be tied to this browser (§2 and §6 of the spec: the OP should confirm otherwise):
its first-party `gh_op` cookie names the hint's session and no foreign Origin sent it; else a confirmation page
with a one-time token comes first and nothing ends until the person confirms it there, in that browser (so a link
on any site, or a leaked ID token, cannot sign an employee out of the product and of Entra). The session the
token names ends (back-channel logout to the other clients of the session), and when Entra's metadata names a
SingleLogoutService, the browser goes to Entra with a SAML LogoutRequest (Issuer = this tenant's SP entity ID)
and comes back to our SLO endpoint, which returns it to the product with its `state`. Anything wrong is a page:
we never redirect to an unverified address.
Without an `id_token_hint` (the spec makes it RECOMMENDED, not required): `client_id` with one of its registered
`post_logout_redirect_uri`s goes straight back there (with `state`), and no parameters at all is our "you are
signed out" page. Neither ends a session here: without the hint nothing says whose session it would be, so the
product ends its own, and Entra's stays Entra's.

From Entra (`saml_logout`): a signed, fresh LogoutRequest addressed to this tenant's SLO URL, seen once (the
employee signed out elsewhere), ends the sessions of that Entra sign-in (by SessionIndex, else NameID) — the
product's and the Gatehouse cookie's — and is answered with a LogoutResponse; a signed LogoutResponse finishes a
logout we started, and a failed one is reported as such (`EntraLogoutFailed`), never as "signed out".

Every other end of trust ends sessions too, through shared_code/sign_in/trust.py: a dismissal or deletion
(`employee_dismissed`), the tenant's trust (`tenant_sessions_ended`: setup cancelled, IdP changed, SSO off), a
deleted client (`client_sessions_ended`).

Every one of these ends a session the same way (`_end`): the clients' back-channel notices are queued first,
durably, and only then is the session marked ended, under the ETag it was read with: a crash in between leaves
a live session whose clients are told already, never an ended one whose clients never hear of it.
"""
from __future__ import annotations

import functools
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from shared_code import saml
from shared_code.sign_in import service as sign_in, sessions
from shared_code.tenancy import tenants
from shared_code.platform.errors import BadRequest, GatehouseError
from shared_code.oidc import backchannel, discovery, keys
from shared_code.oidc.discovery import with_query
from shared_code.oidc.errors import OAuthError
from shared_code.platform.settings import get_settings
from shared_code.storage import oidc as store
from shared_code.storage import sign_ins

SLO_SECONDS = 10 * 60
CONFIRM_SECONDS = 10 * 60  # how long the confirmation page's one-time token works
_CONFIRM = "logout-confirm"
_KEPT = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id", "ui_locales")


class LogoutRefused(BadRequest):
    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.title, self.reason = "Sign-out could not be completed", reason


class EntraLogoutFailed(GatehouseError):
    """Entra answered our LogoutRequest with a failure: the employee is signed out of the app, not of Microsoft.
    `return_to` is the product's post-logout address, with `error=entra_logout_failed` (the product is told so)."""

    status, code = 502, "entra_logout_failed"
    TITLE = "You are signed out of the app, but not of Microsoft"
    FOR_PRODUCT = "Microsoft Entra did not confirm the sign-out: the employee may still be signed in to Microsoft."

    def __init__(self, return_to: str | None):
        super().__init__("You are signed out of the app, but Microsoft Entra reported that it could not sign you out "
                         "of your Microsoft account. Close every browser window to end that sign-in, or sign out at "
                         "https://myaccount.microsoft.com; on a shared computer, do it now.")
        self.return_to = return_to
        self.reason = "entra_logout_failed"


@dataclass(frozen=True)
class ConfirmLogout:
    """The request cannot be tied to a session of this browser: ask the person first (a form that posts `fields`
    back to the logout endpoint, with a one-time `confirm` token). Nothing has ended. `browser_nonce` goes into
    the `gh_op_confirm` cookie (SameSite=Strict): only the browser that was shown the page can confirm."""

    fields: dict[str, str]
    client_name: str | None
    browser_nonce: str


def _tied_to_this_browser(sid: str, browser_sid: str | None, origin: str | None) -> bool:
    """The browser holds our first-party cookie naming this session, and the request did not come from another
    site's page (a cross-site form POST carries its Origin; a top-level GET from the product carries none)."""
    if browser_sid is None or not hmac.compare_digest(browser_sid.encode(), sid.encode()):
        return False
    return origin is None or origin == _own_origin()


def _own_origin() -> str:
    parts = urlsplit(get_settings().public_base_url)
    return f"{parts.scheme}://{parts.netloc}"


def _confirmation_claims(tenant_id: str, hint: str, sub: str, sid: str) -> dict:
    return {"t": tenant_id, "sub": sub, "sid": sid, "h": store.digest(hint)[:32]}


def _confirmation(tenant_id: str, params: Mapping[str, str], hint: str, sub: str, sid: str, now: datetime,
                  client_name: str | None) -> ConfirmLogout:
    nonce = secrets.token_urlsafe(16)
    token = sessions.sign(_CONFIRM, {**_confirmation_claims(tenant_id, hint, sub, sid), "n": nonce},
                          CONFIRM_SECONDS, now.timestamp())
    fields = {name: params[name] for name in _KEPT if isinstance(params.get(name), str)}
    return ConfirmLogout({**fields, "confirm": token}, client_name, nonce)


def _confirmed(tenant_id: str, params: Mapping[str, str], hint: str, sub: str, sid: str, now: datetime,
               confirm_cookie: str | None, origin: str | None) -> bool:
    """The person confirmed on our page: the one-time token is genuine, for this very request, posted from our page
    (no foreign Origin) by the browser the page was shown to (its cookie holds the token's nonce), and unused."""
    token = params.get("confirm")
    if not token:
        return False
    claims = sessions.verify(_CONFIRM, token, now.timestamp())
    expected = _confirmation_claims(tenant_id, hint, sub, sid)
    if claims is None or any(claims.get(name) != value for name, value in expected.items()) \
            or not isinstance(claims.get("n"), str) or (origin is not None and origin != _own_origin()) \
            or confirm_cookie is None or not hmac.compare_digest(confirm_cookie.encode(), claims["n"].encode()):
        raise LogoutRefused("This sign-out confirmation has expired, belongs to another sign-out, or was not sent "
                            "from the confirmation page in this browser. Go back to the app and sign out again.",
                            "bad_confirmation")
    if not sign_ins.accept_logout_confirmation_once(tenant_id, claims["n"],
                                                    datetime.fromtimestamp(claims["exp"], timezone.utc)):
        raise LogoutRefused("This sign-out has been confirmed already. Go back to the app.", "confirmation_used")
    return True


def end_session(tenant_id: str, params: Mapping[str, str], now: datetime | None = None, *,
                browser_sid: str | None = None, origin: str | None = None,
                confirm_cookie: str | None = None) -> "str | ConfirmLogout | None":
    """Check an RP-initiated logout and end the session; returns where the browser goes next (Entra's
    SingleLogoutService, or the product's post_logout_redirect_uri), None for our own "signed out" page, or a
    `ConfirmLogout` when the request cannot be tied to this browser's session (`browser_sid`: the sid in its
    first-party `gh_op` cookie; `origin`: the request's Origin header) and carries no confirmation yet
    (`confirm_cookie`: the `gh_op_confirm` cookie the confirmation page set).
    An expired `id_token_hint` is accepted only while its session lasts."""
    now = now or datetime.now(timezone.utc)
    hint = params.get("id_token_hint")
    if not hint:
        return _without_hint(tenant_id, params)
    try:
        claims = keys.verify(hint, what="id_token_hint")
    except OAuthError:
        raise LogoutRefused("The app's sign-out request carries a token this service did not issue.",
                            "bad_hint") from None
    audience = claims.get("aud")
    client_id = audience if isinstance(audience, str) else (audience[0] if isinstance(audience, list) and
                                                            len(audience) == 1 else None)
    if claims.get("iss") != discovery.issuer(tenant_id) or not isinstance(client_id, str):
        raise LogoutRefused("The app's sign-out request carries a token of another sign-in service.", "other_issuer")
    if params.get("client_id") not in (None, client_id):
        raise LogoutRefused("The sign-out request names another app than its token.", "client_mismatch")
    client = store.get_client(tenant_id, client_id)
    if client is None:
        raise LogoutRefused("The app that sent you here is not registered for this company's sign-in.",
                            "unknown_client")
    post_logout = params.get("post_logout_redirect_uri")
    if post_logout is not None and post_logout not in client.post_logout_redirect_uris:
        raise LogoutRefused("The app asked to return to an address it has not registered, so the sign-out was "
                            "stopped to protect you. Go back to the app and sign out again; if it keeps happening, "
                            "tell the app's support team.", "bad_post_logout_redirect_uri")
    sub, sid, session = claims.get("sub"), claims.get("sid"), None
    if isinstance(sub, str) and isinstance(sid, str):
        session = store.get_session(tenant_id, sub, sid)
        expiry = claims.get("exp")
        if isinstance(expiry, (int, float)) and expiry <= now.timestamp() and (
                session is None or session.expires_at <= now):
            raise LogoutRefused("The app's sign-out request carries an ID token that expired, and the sign-in it "
                                "belongs to has ended already: there is nothing left to sign out of.", "expired_hint")
        if session is not None and session.ended_at is None and not _tied_to_this_browser(sid, browser_sid, origin):
            if not _confirmed(tenant_id, params, hint, sub, sid, now, confirm_cookie, origin):
                return _confirmation(tenant_id, params, hint, sub, sid, now, client.client_name)
    # The product is told to go away only after the checks above: from here on, the session ends.
    ended = _end(tenant_id, session, now) if session is not None else None  # as read above: no second read
    back = with_query(post_logout, {"state": params.get("state")}) if post_logout else None
    if ended is None:
        return back
    tenant = tenants.find_tenant(tenant_id)
    idp = (tenant.idp or {}) if tenant else {}
    if not idp.get("slo_url") or not ended.name_id:
        return back
    request = saml.build_logout_request(sign_in.service_provider(tenant), idp["slo_url"], ended.name_id,
                                        ended.session_index, ended.name_id_format)
    store.save_pending_slo(tenant_id, request.request_id, post_logout, params.get("state"),
                           now + timedelta(seconds=SLO_SECONDS))
    return request.url


def _without_hint(tenant_id: str, params: Mapping[str, str]) -> str | None:
    """RP-initiated logout without id_token_hint: back to a registered post_logout_redirect_uri of the named
    client, or (nothing to return to) our own page."""
    post_logout, client_id = params.get("post_logout_redirect_uri"), params.get("client_id")
    if post_logout is None:
        return None
    if not client_id:
        raise LogoutRefused("The app asked to return to an address without saying which app it is (send client_id "
                            "or id_token_hint with post_logout_redirect_uri).", "no_client")
    client = store.get_client(tenant_id, client_id)
    if client is None:
        raise LogoutRefused("The app that sent you here is not registered for this company's sign-in.",
                            "unknown_client")
    if post_logout not in client.post_logout_redirect_uris:
        raise LogoutRefused("The app asked to return to an address it has not registered, so the sign-out was "
                            "stopped to protect you. Go back to the app and sign out again; if it keeps happening, "
                            "tell the app's support team.", "bad_post_logout_redirect_uri")
    return with_query(post_logout, {"state": params.get("state")})


def saml_logout(tenant_id: str, raw_query: str, now: datetime | None = None) -> str | None:
    """A LogoutRequest or LogoutResponse from Entra at our SLO endpoint; returns the next URL or None (page)."""
    now = now or datetime.now(timezone.utc)
    tenant = sign_in._tenant_with_idp(tenant_id)  # noqa: SLF001 - the same "not set up" refusal as sign-in
    idp = saml.IdpMetadata.from_dict(tenant.idp)
    try:
        message = saml.read_logout_message(raw_query, idp, destination=tenant.urls()["slo_url"], now=now)
    except saml.SamlRejected as error:
        error.title = "Sign-out could not be completed"
        raise
    if message.kind == "response":
        pending = store.take_pending_slo(tenant_id, message.in_response_to, now)
        if pending is None:
            raise LogoutRefused("This sign-out answer does not belong to a sign-out in progress. You are signed out "
                                "of the app already.", "unknown_logout")
        back = pending.get("post_logout_redirect_uri")
        if not message.success:
            raise EntraLogoutFailed(with_query(back, {"state": pending.get("state"), "error": "entra_logout_failed",
                                                      "error_description": EntraLogoutFailed.FOR_PRODUCT})
                                    if back else None)
        if not back:
            return None
        return with_query(back, {"state": pending.get("state")})
    if not sign_ins.accept_logout_request_once(tenant_id, message.id, message.keep_until or now + saml.FRESHNESS):
        raise LogoutRefused("This sign-out message has been used already; it is not acted on twice.", "replayed")
    index = message.session_indexes[0] if message.session_indexes else None
    _end_each(tenant_id, store.find_sessions_by_session_index(tenant_id, message.name_id, index), now)
    if not idp.slo_url:
        return None
    return saml.build_logout_response(sign_in.service_provider(tenant), idp.slo_url, message.id, message.relay_state)


def _end(tenant_id: str, session: store.SessionRecord | tuple[str, str], now: datetime, *,
         back_channels: dict[str, str | None] | None = None) -> store.SessionRecord | None:
    """End one session, the one way every logout here does it: the back-channel notice is queued first (a
    durable row, one per session and client), then the session is marked ended under the ETag it was read with
    (`store.end_session`; a record as read is not read again, an (employee id, sid) pair is). So a logout or a
    consumer that dies between the two has told the clients already (or sends it when the event is handled
    again), ending twice queues nothing new, and a code redeemed in between (it touches the row) is seen and its
    client told. `back_channels` (client id → back-channel URI) names the clients when they can no longer be read
    (a client being deleted). The session
    record if this call ended it, else None."""
    known = session if isinstance(session, store.SessionRecord) else None
    employee_id, sid = (session.employee_id, session.sid) if known else session
    return store.end_session(tenant_id, employee_id, sid, now, session=known, before_ending=lambda: (
        backchannel.session_ended(tenant_id, employee_id, sid, now=now, back_channels=back_channels)))


def _end_each(tenant_id: str, sessions: Iterable[store.SessionRecord | tuple[str, str]], now: datetime,
              before: datetime | None = None, *, spare_unknown: Callable[[], bool] = lambda: False,
              back_channels: dict[str, str | None] | None = None) -> int:
    """End `sessions` (records as read, or (employee id, sid) pairs), each by `_end`; of the records, only those
    that started before `before`, when given. `spare_unknown` is asked (once) only about a session of unknown
    start. How many this call ended."""
    ended, spare_unknown = 0, functools.cache(spare_unknown)
    for session in sessions:
        if before is not None and isinstance(session, store.SessionRecord) and (
                session.started_at >= before if session.started_at is not None else spare_unknown()):
            continue  # signed in after the change (a rehire, a new IdP): not the one this change ended
        if _end(tenant_id, session, now, back_channels=back_channels) is not None:
            ended += 1
    return ended


def employee_dismissed(tenant_id: str, employee_id: str, now: datetime | None = None, *,
                       before: datetime | None = None, rehired: Callable[[], bool] = lambda: False) -> int:
    """End every live session of a dismissed (or deleted) employee (started before `before`, when given: the
    dismissal's time); the products hear it by back-channel. `rehired()`: active again since, so a session of
    unknown start (written before sessions recorded it) is spared rather than taken for an old one; asked only
    when such a session turns up (they last a day at most past the deployment that added the start)."""
    return _end_each(tenant_id, store.live_sessions(tenant_id, employee_id), now or datetime.now(timezone.utc),
                     before, spare_unknown=rehired)


def tenant_sessions_ended(tenant_id: str, now: datetime | None = None, *, before: datetime | None = None) -> int:
    """The tenant's trust ended (setup cancelled, IdP changed, SSO off): every live session ends (started before
    `before`, when given)."""
    return _end_each(tenant_id, store.all_live_sessions(tenant_id), now or datetime.now(timezone.utc), before)


def client_sessions_ended(tenant_id: str, client_id: str, backchannel_logout_uri: str | None,
                          now: datetime | None = None) -> int:
    """A client deleted: every session it holds tokens of ends, and it hears so on its back channel (the client
    row may be gone already, so its URI is passed in: its `client.deleted` event carries it). UserInfo refuses its
    tokens anyway."""
    return _end_each(tenant_id, sorted(store.client_sessions(tenant_id, client_id)), now or datetime.now(timezone.utc),
                     back_channels={client_id: backchannel_logout_uri})
