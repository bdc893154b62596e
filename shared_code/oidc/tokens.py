"""The token endpoint (RFC 6749 §3.2, §4.1.3; PKCE RFC 7636 §4.6), the tokens it issues, and UserInfo.

Dispatch on `grant_type`: `authorization_code` is here; `urn:ietf:params:oauth:grant-type:token-exchange` (the
mobile apps' Entra ID token) goes to `shared_code.oidc.token_exchange.exchange(tenant_id, client, form) ->
Employee`, and the answer for the employee it returns is issued here like any other (with a grant and session of its
own, `authorization.record_exchange`: revocable, and ended by back-channel on dismissal), plus `issued_token_type`
naming what `access_token` holds: our access token, or the ID token itself when `requested_token_type` asked
for `…:id_token` (RFC 8693 §2.2.1, `token_type` then `N_A`).

PKCE at redemption (RFC 7636 §4.6, RFC 9700 §2.1.1): a code issued with a `code_challenge` is never redeemed
without the matching `code_verifier`; a `code_verifier` sent for a code issued without a challenge is refused
too (a downgrade: someone holds a verifier the authorization request never committed to).

A code is sealed (authorization.py): it is opened and checked in memory, then redeemed once, atomically, by
inserting its grant row together with a merge of its session row under the ETag the sign-in got (one
transaction). Of parallel redemptions one insert wins; the others get 409 and `invalid_grant`. A redemption of
an already redeemed code also revokes the grant the first redemption got (RFC 6749 §4.1.2): its access token
stops working at once. A session that ended since the sign-in (sign-out, dismissal: its ETag changed) fails
the transaction: `invalid_grant`. Storage round trips: the client, then the transaction; the ID token's
claims are the employee's as the sign-in (≤ 60 s before) read them.

Tokens:
- ID token: RS256 JWT (keys.py) with iss, sub (the employee's id: stable within the tenant), aud, exp, iat,
  auth_time (Entra's AuthnInstant), amr (from Entra's authnmethodsreferences), nonce, sid, email, name,
  given_name, family_name, preferred_username, is_admin, tenant; with scope `roles`, `roles` (the employee's
  roles in the product: shared_code/directory/roles.py) and with scope `groups`, `groups` (every SCIM Group id they are in:
  no overage, however many — Entra's own tokens drop the claim above 150/200). A code carries no roles or groups
  (it travels in a URL): with those scopes the token endpoint reads the employee's row beside the redemption.
- access token: for our UserInfo only, so it is an HMAC-signed token (`sessions.sign`, its own derived key):
  tenant, grant id (the code's key), employee, client, sid, scope. UserInfo releases claims by scope (`sub`,
  `tenant`, `is_admin` always; `email` and `email_verified` for scope email; the names for scope profile) and
  checks the grant is live, its session not ended (logout), the tenant's trust not ended since
  (`sessions_valid_from`: setup cancelled, IdP changed, SSO off), the client still registered, and the employee
  active (and not dismissed since the token was issued) on every call; the reads overlap.
- `email_verified` rides with `email`: true only for a domain the tenant verified by DNS. The code flow's ID token
  takes the tenant's verified domains as the ACS read them (sealed in the code, ≤ 60 s old); a trust that ended
  in between ended the code's session row too (shared_code/sign_in/trust.py), so its redemption fails on the session ETag.
"""
from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from typing import Mapping

from shared_code.sign_in import sessions
from shared_code.tenancy import tenants
from shared_code.directory.domains import email_domain_verified
from shared_code.oidc import discovery, keys
from shared_code.oidc.authorization import ACCESS_TOKEN_SECONDS, open_code, record_exchange
from shared_code.oidc.clients import authenticate
from shared_code.oidc.errors import OAuthError
from shared_code.storage import directory
from shared_code.storage import oidc as store

ID_TOKEN_SECONDS = 3600
EXCHANGE_SCOPE = "openid email profile"  # the mobile sign-in: UserInfo tells what the code flow's full scope does
_ACCESS = "oidc-access"
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1
_CODE = re.compile(r"^v1\.[A-Za-z0-9_-]{60,6000}$")  # a sealed code (authorization.issue_code)
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
                         nonce=None, auth_time=grant.auth_time, scope=EXCHANGE_SCOPE,
                         verified_domains=_verified_domains(tenants.find_tenant(tenant_id)))
        if form.get("requested_token_type") == token_exchange.ID_TOKEN_TYPE:  # RFC 8693 §2.2.1: N_A, not Bearer
            return {"access_token": answer["id_token"], "issued_token_type": token_exchange.ID_TOKEN_TYPE,
                    "token_type": "N_A", "expires_in": ID_TOKEN_SECONDS, "scope": answer["scope"]}
        return {**answer, "issued_token_type": token_exchange.ACCESS_TOKEN_TYPE}
    raise OAuthError("unsupported_grant_type", f"grant_type {grant_type[:100]!r} is not supported here.")


def _redeem_code(tenant_id: str, authorization: str | None, form: Mapping[str, str], now: float) -> dict:
    code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
    if not code or not redirect_uri:
        raise OAuthError("invalid_request", "code and redirect_uri are required.")
    client = authenticate(tenant_id, authorization, form)
    sealed = open_code(tenant_id, code) if _CODE.match(code) else None
    if sealed is None or sealed["client_id"] != client.client_id:
        raise _invalid_grant("The code is not valid (unknown, or issued to another client).")
    if sealed["exp"] <= now:
        raise _invalid_grant("The code has expired (codes live 60 seconds).")
    if not hmac.compare_digest(redirect_uri.encode(), sealed["redirect_uri"].encode()):
        raise _invalid_grant("redirect_uri is not the one the code was issued for.")
    if sealed["code_challenge"]:
        if not verifier:
            raise _invalid_grant("This code was issued with a PKCE code_challenge: send its code_verifier.")
        if not _VERIFIER.match(verifier) or not hmac.compare_digest(_s256(verifier), sealed["code_challenge"]):
            raise _invalid_grant("The PKCE code_verifier does not match the code_challenge (S256).")
    elif verifier is not None:
        raise _invalid_grant("This code was issued without a PKCE code_challenge, so a code_verifier cannot be "
                             "checked: send the code_challenge with the authorization request, or no verifier.")
    employee = directory.Employee(**sealed["employee"])  # as the sign-in read it, ≤ 60 s ago
    # Roles and groups are not in the code (a URL): read from the employee's row, beside the redemption.
    directory_read = (_overlap(directory.get_user, tenant_id, employee.id)
                      if {"roles", "groups"} & set(sealed["scope"].split()) else None)
    grant = store.CodeRecord(
        key=store.digest(sealed["id"]), client_id=client.client_id, redirect_uri=sealed["redirect_uri"],
        code_challenge=sealed["code_challenge"], nonce=sealed.get("nonce"), scope=sealed["scope"],
        employee_id=employee.id, sid=sealed["sid"], auth_time=int(sealed["auth_time"]), amr=sealed.get("amr"),
        code_expires_at=int(sealed["exp"]), expires_at=datetime.fromtimestamp(now + ACCESS_TOKEN_SECONDS, timezone.utc))
    outcome = store.redeem(tenant_id, grant, sealed["session_etag"], datetime.fromtimestamp(now, timezone.utc))
    if outcome == store.REPLAYED:
        store.revoke_grant(tenant_id, grant.key)
        raise _invalid_grant("The code has been redeemed already; the tokens issued for it are revoked.")
    if outcome == store.SESSION_ENDED:
        # Signed out, or dismissed (which ends every session) since this sign-in: no tokens for it.
        raise _invalid_grant("The sign-in this code comes from has ended (signed out, or the employee's account "
                             "was deactivated).")
    current = directory_read.result() if directory_read is not None else None
    if current is not None:
        employee = replace(employee, roles=current.roles, group_ids=current.group_ids)
    return _tokens(tenant_id, client.client_id, employee, now=now, grant_key=grant.key, sid=grant.sid,
                   nonce=grant.nonce, auth_time=grant.auth_time, scope=grant.scope, names=sealed["names"],
                   amr=grant.amr, verified_domains=sealed.get("verified_domains") or [])


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _verified_domains(tenant: tenants.Tenant | None) -> list[str]:
    return list((tenant.verified_domains or []) if tenant is not None else [])


def employee_claims(tenant_id: str, employee: directory.Employee, names: dict[str, str] | None = None,
                    verified_domains: list[str] | None = None) -> dict:
    """The employee's claims. `email_verified` is true only when the email's domain is one the tenant proved it
    owns by DNS (shared_code/directory/domain_verification.py): listing a domain as corporate proves nothing."""
    claims = {"sub": employee.id, "preferred_username": employee.user_name, "is_admin": employee.is_admin,
              "tenant": tenant_id}
    for claim, part in (("given_name", "givenName"), ("family_name", "familyName")):
        if (names or {}).get(part):
            claims[claim] = names[part]
    if employee.work_email:
        claims["email"] = employee.work_email
        claims["email_verified"] = email_domain_verified(employee.work_email, verified_domains)
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
            names: dict[str, str] | None = None, amr: list[str] | None = None,
            verified_domains: list[str] | None = None) -> dict:
    issued = int(now)
    id_claims = {"iss": discovery.issuer(tenant_id), "aud": client_id, "iat": issued,
                 "exp": issued + ID_TOKEN_SECONDS, **employee_claims(tenant_id, employee, names, verified_domains),
                 **directory_claims(employee, scope)}
    if auth_time is not None:
        id_claims["auth_time"] = auth_time
    if nonce is not None:
        id_claims["nonce"] = nonce
    if sid is not None:
        id_claims["sid"] = sid
    if amr:
        id_claims["amr"] = list(amr)
    access = sessions.sign(_ACCESS, {"t": tenant_id, "g": grant_key, "u": employee.id, "c": client_id,
                                     "sid": sid, "s": scope}, ACCESS_TOKEN_SECONDS, now)
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
    tenant_read = _overlap(tenants.find_tenant, tenant_id)
    client_read = _overlap(store.get_client, tenant_id, claims.get("c") or "")
    employee, names = directory.get_user_and_names(tenant_id, employee_id) or (None, {})
    if live is not None and not live.result():
        raise InvalidToken("The access token has been revoked.")
    if session is not None and not session.result():
        raise InvalidToken("The session this access token belongs to has ended (signed out).")
    tenant = tenant_read.result()
    if tenant is None or claims["iat"] < (tenant.sessions_valid_from or 0):
        raise InvalidToken("The sign-in this access token belongs to has ended: the organisation changed its "
                           "sign-in settings.")
    if client_read.result() is None:
        raise InvalidToken("The app this access token was issued to is no longer registered.")
    if employee is None or not employee.active or claims["iat"] < employee.sessions_valid_from:
        raise InvalidToken("The employee's account is deactivated.")
    return released({**employee_claims(tenant_id, employee, names, _verified_domains(tenant)),
                     **directory_claims(employee, claims.get("s"))}, claims.get("s"))


_BY_SCOPE = {"email": ("email", "email_verified"),
             "profile": ("name", "given_name", "family_name", "preferred_username")}


def released(claims: dict, scope: str | None) -> dict:
    """The claims UserInfo releases for the granted `scope` (OIDC Core §5.4); `sub`, `tenant` and `is_admin` always.
    An access token from before scopes were recorded (no `s`) keeps the full set it was issued with."""
    if scope is None:
        return claims
    granted = set(scope.split())
    withheld = {claim for name, names in _BY_SCOPE.items() if name not in granted for claim in names}
    return {name: value for name, value in claims.items() if name not in withheld}
