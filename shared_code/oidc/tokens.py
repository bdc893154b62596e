"""The token endpoint (RFC 6749 §3.2, §4.1.3; PKCE RFC 7636 §4.6), the tokens it issues, and UserInfo.

Dispatch on `grant_type`: `authorization_code` is here; `urn:ietf:params:oauth:grant-type:token-exchange` (the
mobile apps' Entra ID token) goes to `shared_code.oidc.token_exchange.exchange(tenant_id, client, form) ->
Employee`, and the answer for the employee it returns is issued here like any other (with a grant and session of its
own, `authorization.record_exchange`: revocable, and ended by back-channel on dismissal), plus `issued_token_type`.

A code is redeemed once, atomically: the row is read, checked, then spent by an update with the ETag that was
read. Of parallel redemptions one update wins; the others get 412 and `invalid_grant`. A redemption of an
already spent code also revokes the grant the first redemption got (RFC 6749 §4.1.2): its access token stops
working at once. Storage round trips: (client ∥ code) → (spend ∥ employee); then two signatures in memory.

Tokens:
- ID token: RS256 JWT (keys.py) with iss, sub (the employee's id: stable within the tenant), aud, exp, iat,
  auth_time, nonce, sid, email, name, given_name, family_name, preferred_username, is_admin, tenant; with scope
  `roles`, `roles` (the employee's roles in the product: shared_code/roles.py) and with scope `groups`, `groups`
  (every SCIM Group id they are in: no overage, however many — Entra's own tokens drop the claim above 150/200).
- access token: for our UserInfo only, so it is an HMAC-signed token (`sessions.sign`, its own derived key):
  tenant, grant id (the code's key), employee, client, sid. UserInfo checks the grant is live, its session not
  ended (logout) and the employee active (and not dismissed since the token was issued) on every call; the
  three reads overlap.
"""
from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Mapping

from shared_code import sessions
from shared_code.oidc import discovery, keys
from shared_code.oidc.authorization import ACCESS_TOKEN_SECONDS, record_exchange
from shared_code.oidc.clients import authenticate
from shared_code.oidc.errors import OAuthError
from shared_code.storage import directory
from shared_code.storage import oidc as store

ID_TOKEN_SECONDS = 3600
_ACCESS = "oidc-access"
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1
_CODE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
_round_trips = ThreadPoolExecutor(max_workers=16, thread_name_prefix="oidc-token")


def _overlap(fn, *args):
    """Start a round trip on the pool in this request's context (the caller's address for the failed-
    authentication limit, and any per-request storage deadline, go along)."""
    return _round_trips.submit(contextvars.copy_context().run, fn, *args)


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def token_request(tenant_id: str, authorization: str | None, form: Mapping[str, str],
                  now: float | None = None) -> dict:
    """Answer a token request (form fields already read, each at most once)."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required.")
    if grant_type == "authorization_code":
        return _redeem_code(tenant_id, authorization, form, now if now is not None else time.time())
    if grant_type == discovery.TOKEN_EXCHANGE:
        from shared_code.oidc import token_exchange  # only mobile sign-ins load the Entra token checks

        client = authenticate(tenant_id, authorization, form)
        employee = token_exchange.exchange(tenant_id, client, form)
        stamp = now if now is not None else time.time()
        grant = record_exchange(tenant_id, client.client_id, employee.id, datetime.fromtimestamp(stamp, timezone.utc))
        answer = _tokens(tenant_id, client.client_id, employee, now=stamp, grant_key=grant.key, sid=grant.sid,
                         nonce=None, auth_time=grant.auth_time, scope="openid")
        return {**answer, "issued_token_type": token_exchange.ISSUED_TOKEN_TYPE}  # RFC 8693 §2.2.1
    raise OAuthError("unsupported_grant_type", f"grant_type {grant_type[:100]!r} is not supported here.")


def _redeem_code(tenant_id: str, authorization: str | None, form: Mapping[str, str], now: float) -> dict:
    code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
    if not code or not redirect_uri:
        raise OAuthError("invalid_request", "code and redirect_uri are required.")
    if not verifier:
        raise OAuthError("invalid_request", "code_verifier is required (PKCE).")
    client_read = _overlap(authenticate, tenant_id, authorization, form)
    record = store.get_code(tenant_id, store.digest(code)) if _CODE.match(code) else None
    client = client_read.result()
    if record is None or record.client_id != client.client_id:
        raise _invalid_grant("The code is not valid (unknown, or issued to another client).")
    if record.spent_at is not None:
        store.revoke_grant(tenant_id, record.key)  # a replayed code: what it was redeemed for stops working
        raise _invalid_grant("The code has been redeemed already; the tokens issued for it are revoked.")
    if record.code_expires_at <= now:
        raise _invalid_grant("The code has expired (codes live 60 seconds).")
    if not hmac.compare_digest(redirect_uri.encode(), record.redirect_uri.encode()):
        raise _invalid_grant("redirect_uri is not the one the code was issued for.")
    if not _VERIFIER.match(verifier) or not hmac.compare_digest(_s256(verifier), record.code_challenge):
        raise _invalid_grant("The PKCE code_verifier does not match the code_challenge (S256).")
    employee_read = _overlap(directory.get_user_and_names, tenant_id, record.employee_id)
    spent = store.spend_code(tenant_id, record, datetime.fromtimestamp(now, timezone.utc))
    employee, names = employee_read.result() or (None, {})
    if not spent:
        store.revoke_grant(tenant_id, record.key)
        raise _invalid_grant("The code has been redeemed already; the tokens issued for it are revoked.")
    if employee is None or not employee.active or record.auth_time < employee.sessions_valid_from:
        # Dismissed now, or dismissed after this sign-in and rehired since: a rehire means a new sign-in.
        store.revoke_grant(tenant_id, record.key)
        raise _invalid_grant("The employee's account is deactivated.")
    return _tokens(tenant_id, client.client_id, employee, now=now, grant_key=record.key, sid=record.sid,
                   nonce=record.nonce, auth_time=record.auth_time, scope=record.scope, names=names)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def employee_claims(tenant_id: str, employee: directory.Employee, names: dict[str, str] | None = None) -> dict:
    claims = {"sub": employee.id, "preferred_username": employee.user_name, "is_admin": employee.is_admin,
              "tenant": tenant_id}
    for claim, part in (("given_name", "givenName"), ("family_name", "familyName")):
        if (names or {}).get(part):
            claims[claim] = names[part]
    if employee.work_email:
        claims["email"] = employee.work_email
    if employee.display_name:
        claims["name"] = employee.display_name
    return claims


def directory_claims(employee: directory.Employee, scope: str | None) -> dict:
    """`roles` with scope roles, `groups` with scope groups: read from the user row itself (its one point read),
    where the membership's own transaction keeps them current."""
    scopes = (scope or "").split()
    claims: dict = {}
    if "roles" in scopes:
        claims["roles"] = list(employee.roles)
    if "groups" in scopes:
        claims["groups"] = list(employee.group_ids)
    return claims


def _tokens(tenant_id: str, client_id: str, employee: directory.Employee, *, now: float, grant_key: str | None,
            sid: str | None, nonce: str | None, auth_time: int | None, scope: str,
            names: dict[str, str] | None = None) -> dict:
    issued = int(now)
    id_claims = {"iss": discovery.issuer(tenant_id), "aud": client_id, "iat": issued,
                 "exp": issued + ID_TOKEN_SECONDS, **employee_claims(tenant_id, employee, names),
                 **directory_claims(employee, scope)}
    if auth_time is not None:
        id_claims["auth_time"] = auth_time
    if nonce is not None:
        id_claims["nonce"] = nonce
    if sid is not None:
        id_claims["sid"] = sid
    access = sessions.sign(_ACCESS, {"t": tenant_id, "g": grant_key, "u": employee.id, "c": client_id,
                                     "sid": sid, "scope": scope}, ACCESS_TOKEN_SECONDS, now)
    return {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS,
            "id_token": keys.sign(id_claims), "scope": scope}


# ---- UserInfo -------------------------------------------------------------------------------------------------

class InvalidToken(OAuthError):
    """RFC 6750 §3.1: 401 with WWW-Authenticate: Bearer error="invalid_token"."""

    def __init__(self, description: str):
        super().__init__("invalid_token", description, status=401, headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'})


def userinfo(tenant_id: str, access_token: str | None) -> dict:
    if not access_token:
        raise OAuthError("invalid_request", "An access token is required (Authorization: Bearer).", status=401,
                         headers={"WWW-Authenticate": 'Bearer realm="userinfo"'})
    claims = sessions.verify(_ACCESS, access_token)
    if claims is None or claims.get("t") != tenant_id:
        raise InvalidToken("The access token is not valid here, or it has expired.")
    grant, sid, employee_id = claims.get("g"), claims.get("sid"), claims.get("u") or ""
    live = _overlap(store.grant_is_live, tenant_id, grant) if grant else None
    session = _overlap(store.session_is_live, tenant_id, employee_id, sid) if sid else None
    employee, names = directory.get_user_and_names(tenant_id, employee_id) or (None, {})
    if live is not None and not live.result():
        raise InvalidToken("The access token has been revoked.")
    if session is not None and not session.result():
        raise InvalidToken("The session this access token belongs to has ended (signed out).")
    if employee is None or not employee.active or claims["iat"] < employee.sessions_valid_from:
        raise InvalidToken("The employee's account is deactivated.")
    return {**employee_claims(tenant_id, employee, names), **directory_claims(employee, claims.get("scope"))}
