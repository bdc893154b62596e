"""Verifying one Microsoft Entra v2.0 ID token for one Entra tenant and one app registration.

A token is accepted when, in this order (each refusal names what is wrong and what to do):
1. it is a compact JWS of at most 16 KiB whose header says `alg: RS256` (never `none`, never HS256: an HMAC
   "signed" with Entra's public key proves nothing) and names a `kid`;
2. its claims: `ver` is "2.0"; `tid` is not the personal-accounts tenant and is this tenant's Entra tenant (the GUID
   learned from the federation metadata); `iss` is exactly `https://login.microsoftonline.com/{tid}/v2.0`; `aud` is
   the app registration's client_id (of the tenant's MSAL configuration); `exp`, `nbf` and `iat` hold within
   `CLOCK_SKEW`; `oid` and `uti` are present. These are checked on the payload before the signature only so that an
   unacceptable token is refused without a key fetch and with a precise reason; nothing is accepted until step 3;
3. the signature verifies with the key `kid` that Entra publishes for the tenant (`keys.signing_key`; an unknown kid
   triggers one rate-limited refetch, for a rollover).
`spend_token` then records the token's `uti` (atomic insert, kept until the token expires): each token once.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from shared_code.entra import keys
from shared_code.entra.errors import EntraTokenRejected

PERSONAL_ACCOUNTS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
ISSUER_TEMPLATE = "https://login.microsoftonline.com/{tenant}/v2.0"
CLOCK_SKEW = timedelta(minutes=2)
MAX_TOKEN_CHARS = 16 * 1024
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_FRESH = ("acquireTokenSilent with forceRefresh (iOS: MSALSilentTokenParameters.forceRefresh = true; Android: "
          "AcquireTokenSilentParameters forceRefresh(true))")


@dataclass(frozen=True)
class EntraIdentity:
    """Who a verified Entra ID token is about."""

    object_id: str  # oid as sent (externalId is caseExact, and the SAML sign-in matches the claim as sent too)
    entra_tenant_id: str  # tid
    subject: str | None  # sub: pairwise per app registration
    preferred_username: str | None
    name: str | None
    token_id: str  # uti: Entra's unique id of this token
    expires_at: datetime


def verify_id_token(token: Any, *, entra_tenant_id: str, client_id: str, now: datetime | None = None) -> EntraIdentity:
    """The identity in `token` if it is an acceptable ID token (see the module docstring); else EntraTokenRejected
    (or EntraUnavailable when Entra's keys cannot be read)."""
    now = now or datetime.now(timezone.utc)
    entra_tenant_id = entra_tenant_id.lower()
    header, claims = _parse(token)
    kid = _check_header(header)
    identity = _check_claims(claims, entra_tenant_id, client_id, now)
    jwk = keys.signing_key(entra_tenant_id, kid, now)
    if jwk is None:
        raise EntraTokenRejected("unknown_key", f"subject_token is signed with a key (kid {_shown(kid)}) that Microsoft "
                                 f"Entra does not publish for tenant {entra_tenant_id}: it was not issued by Entra, or "
                                 f"with a key Entra has retired. Get a fresh ID token with {_FRESH}.")
    _check_signature(token, jwk)
    return identity


def spend_token(tenant_id: str, identity: EntraIdentity) -> None:
    """Use the verified token up; a second use is refused, at this Gatehouse tenant or any other (two of our
    tenants may trust the same Entra app registration: the token still signs in once)."""
    from shared_code.storage import sign_ins

    if not sign_ins.accept_entra_token_once(tenant_id, identity.token_id, identity.expires_at + CLOCK_SKEW):
        raise EntraTokenRejected("replayed", "subject_token has been exchanged already (here or at another "
                                 "organisation using this service); each Entra ID token can be exchanged once. Get a "
                                 f"new one with {_FRESH} and exchange that.")


# ---- the steps -------------------------------------------------------------------------------------------------

def _parse(token: Any) -> tuple[dict, dict]:
    not_jwt = ("subject_token is not a JWT (three base64url parts separated by dots). Send the ID token MSAL returned "
               "(iOS: MSALResult.idToken; Android: IAuthenticationResult.getAccount().getIdToken()), not the access "
               "token or the authorization code.")
    if not isinstance(token, str) or not token:
        raise EntraTokenRejected("malformed", not_jwt)
    if len(token) > MAX_TOKEN_CHARS:
        raise EntraTokenRejected("malformed", f"subject_token is longer than {MAX_TOKEN_CHARS} characters; an Entra "
                                 "ID token is a few kilobytes. " + not_jwt)
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.match(part) for part in parts):
        if len(parts) == 5:
            raise EntraTokenRejected("malformed", "subject_token is encrypted (a JWE); Entra ID tokens are signed, not "
                                     "encrypted. " + not_jwt)
        raise EntraTokenRejected("malformed", not_jwt)
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
    except (ValueError, binascii.Error):
        raise EntraTokenRejected("malformed", not_jwt) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise EntraTokenRejected("malformed", not_jwt)
    return header, claims


def _check_header(header: dict) -> str:
    alg = header.get("alg")
    if alg != "RS256":
        raise EntraTokenRejected("algorithm", f"subject_token is signed with {_shown(alg)}; only RS256 is accepted, "
                                 "which is what Microsoft Entra signs ID tokens with. Send the ID token MSAL returned, "
                                 "unchanged.")
    if "crit" in header:
        raise EntraTokenRejected("algorithm", "subject_token has critical header parameters (crit); Entra ID tokens "
                                 "have none. Send the ID token MSAL returned, unchanged.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 200:
        raise EntraTokenRejected("unknown_key", "subject_token's header names no signing key (kid); Entra ID tokens "
                                 "always do. Send the ID token MSAL returned, unchanged.")
    return kid


def _check_claims(claims: dict, entra_tenant_id: str, client_id: str, now: datetime) -> EntraIdentity:
    ver = claims.get("ver")
    if ver != "2.0":
        raise EntraTokenRejected("version", f"subject_token is an Entra v{_plain(ver)} token; only v2.0 ID tokens are "
                                 "accepted. Sign in with MSAL (it uses the v2.0 endpoint "
                                 f"https://login.microsoftonline.com/{entra_tenant_id}/oauth2/v2.0/authorize), not "
                                 "ADAL or the v1.0 endpoint.")
    tid = claims.get("tid")
    if isinstance(tid, str) and tid.lower() == PERSONAL_ACCOUNTS_TENANT:
        raise EntraTokenRejected("personal_account", "subject_token belongs to a personal Microsoft account; only work "
                                 f"accounts of this organisation's Entra tenant ({entra_tenant_id}) can sign in. Sign in "
                                 "with your work account, using the authority of the served MSAL configuration.")
    if not isinstance(tid, str) or tid.lower() != entra_tenant_id:
        raise EntraTokenRejected("other_tenant", f"subject_token is for another Entra tenant ({_shown(tid)}); this "
                                 f"organisation signs in with Entra tenant {entra_tenant_id}. Use the authority of the "
                                 "served MSAL configuration (not common or organizations).")
    expected_issuer = ISSUER_TEMPLATE.format(tenant=entra_tenant_id)
    if claims.get("iss") != expected_issuer:
        raise EntraTokenRejected("issuer", f"subject_token's issuer is {_shown(claims.get('iss'))}, expected exactly "
                                 f"{expected_issuer}. Send an ID token from Microsoft Entra's v2.0 endpoint.")
    aud = claims.get("aud")
    if aud != client_id:
        raise EntraTokenRejected("audience", f"subject_token is for another app registration (aud {_shown(aud)}); "
                                 f"request it with the client_id of the served MSAL configuration ({client_id}).")
    exp, nbf, iat = (_seconds(claims, name) for name in ("exp", "nbf", "iat"))
    stamp = now.timestamp()
    skew = CLOCK_SKEW.total_seconds()
    if exp is None or iat is None:
        raise EntraTokenRejected("malformed", "subject_token lacks its exp or iat claim; Entra ID tokens always have "
                                 "both. Send the ID token MSAL returned, unchanged.")
    if stamp > exp + skew:
        raise EntraTokenRejected("expired", f"subject_token expired at {_iso(exp)}. Get a fresh ID token with {_FRESH} "
                                 "and exchange it straight away.")
    if nbf is not None and stamp < nbf - skew:
        raise EntraTokenRejected("not_yet_valid", f"subject_token is not valid before {_iso(nbf)}; it is now "
                                 f"{_iso(stamp)}. Check that the device's clock is set automatically.")
    if stamp < iat - skew:
        raise EntraTokenRejected("not_yet_valid", f"subject_token was issued in the future ({_iso(iat)}); it is now "
                                 f"{_iso(stamp)}. Check that the device's clock is set automatically.")
    oid, uti = claims.get("oid"), claims.get("uti")
    if not isinstance(oid, str) or not oid or len(oid) > 100:
        raise EntraTokenRejected("no_object_id", "subject_token has no oid claim: request the openid and profile "
                                 "scopes when signing in with MSAL (MSAL adds them by default).")
    if not isinstance(uti, str) or not uti or len(uti) > 200:
        raise EntraTokenRejected("malformed", "subject_token has no uti claim; Entra ID tokens always have one. Send "
                                 "the ID token MSAL returned, unchanged.")
    return EntraIdentity(object_id=oid, entra_tenant_id=entra_tenant_id, subject=_text(claims.get("sub")),
                         preferred_username=_text(claims.get("preferred_username")), name=_text(claims.get("name")),
                         token_id=uti, expires_at=datetime.fromtimestamp(exp, timezone.utc))


def _check_signature(token: str, jwk: dict) -> None:
    from joserfc import jws  # only the token exchange loads JOSE code
    from joserfc.errors import JoseError
    from joserfc.jwk import RSAKey

    try:
        key = RSAKey.import_key(jwk)
        jws.deserialize_compact(token, key, algorithms=["RS256"])
    except (JoseError, ValueError, TypeError):
        raise EntraTokenRejected("signature", "subject_token's signature does not verify: the token was changed after "
                                 "Microsoft Entra signed it. Send the ID token MSAL returned, unchanged.") from None


# ---- small helpers -------------------------------------------------------------------------------------------

def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _seconds(claims: dict, name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e11:
        if value is None:
            return None
        raise EntraTokenRejected("malformed", f"subject_token's {name} claim is not a number of seconds. Send the ID "
                                 "token MSAL returned, unchanged.")
    return float(value)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _plain(value: Any) -> str:
    return value if isinstance(value, str) and len(value) <= 10 and value.replace(".", "").isalnum() else "?"


def _shown(value: Any) -> str:
    """A value from the token, safe and short enough to quote back."""
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(ch for ch in text if ch.isprintable())
    return repr(text[:80] + ("…" if len(text) > 80 else ""))
