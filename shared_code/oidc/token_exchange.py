"""OAuth 2.0 Token Exchange (RFC 8693) at the token endpoint: a mobile app trades the Entra ID token MSAL gave it
for the product's tokens.

    POST {issuer}/token
      grant_type=urn:ietf:params:oauth:grant-type:token-exchange
      subject_token=<the Entra ID token>
      subject_token_type=urn:ietf:params:oauth:token-type:id_token
      client_id=<one of the tenant's clients>   (a native client sends no secret: the Entra token is the proof)

The token endpoint (issue 13) authenticates the client, calls `exchange` and answers the same token response as the
code flow, with `issued_token_type` = `…:access_token`; with `requested_token_type=…:id_token` the answer's
`access_token` is the ID token itself and `issued_token_type` says so (RFC 8693 §2.2.1). `audience` and `resource`
may name only what we issue for: this tenant's issuer, or the client itself; anything else is `invalid_target`
(§2.2.2), since we cannot mint a token for another service.

`exchange` refuses with RFC 8693 §2.2.2's `invalid_request` for every unacceptable subject token and every sign-in
rule (RFC 6749 §5.2 JSON; the description says what to change). Order: the request's parameters, the tenant's
mobile setup, the token itself (`shared_code.entra`: signature, tenant, app registration, times), then the token is
spent (once), and only then is the directory read: no refusal to someone without a genuine, fresh token depends on
whether an employee exists. The employee is the one whose SCIM externalId is the token's `oid` (never matched by
e-mail or name), and today's sign-in rules apply (dismissed; outside the corporate domains once SSO is enforced).
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared_code import entra
from shared_code.sign_in import service as sign_in
from shared_code.tenancy import tenants
from shared_code.sign_in.mobile import MobileConfig
from shared_code.oidc import discovery
from shared_code.oidc.discovery import TOKEN_EXCHANGE as GRANT_TYPE
from shared_code.oidc.errors import OAuthError
from shared_code.storage import directory

log = logging.getLogger("gatehouse")

ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# RFC 8693 §2.2.1: the type of the `access_token` member of the response (the ID token rides next to it).
ISSUED_TOKEN_TYPE = ACCESS_TOKEN_TYPE
_REQUESTABLE = (ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE)
_INVALID = "invalid_request"  # RFC 8693 §2.2.2: for any invalid or unacceptable subject token
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def where_to_exchange(tenant_id: str) -> dict[str, str]:
    """What the mobile app needs to find the exchange (served with its MSAL configuration): the tenant's issuer, its
    token endpoint, and the two constants of the request."""
    return {"issuer": discovery.issuer(tenant_id), "token_endpoint": discovery.endpoints(tenant_id)["token_endpoint"],
            "grant_type": GRANT_TYPE, "subject_token_type": ID_TOKEN_TYPE}


def exchange(tenant_id: str, client: Any, form: Mapping[str, str], now: datetime | None = None):
    """The employee the Entra ID token in `form` signs in, under this tenant's rules; OAuthError otherwise.

    `client` is the already authenticated (or, for a native client, identified) client of this tenant; whom it may
    sign in does not depend on it. Returns a `shared_code.storage.directory.Employee`."""
    subject_token = _parameters(form)
    _check_target(tenant_id, getattr(client, "client_id", None), form)
    tenant = tenants.find_tenant(tenant_id)
    entra_tenant_id = ((tenant.idp or {}).get("entra_tenant_id") if tenant else None)
    if tenant is None or not entra_tenant_id:
        raise OAuthError(_INVALID, "This organisation has not connected Microsoft Entra yet, so it cannot accept "
                         "Entra tokens: its administrator must finish the single sign-on setup first.")
    mobile = MobileConfig.from_record(tenant.mobile) if tenant.mobile else None
    client_id = mobile.client_id if mobile else None
    if not client_id:
        raise OAuthError(_INVALID, "Mobile sign-in is not set up for this organisation: its administrator has not "
                         "pasted the MSAL configuration from Microsoft Entra, so no Entra app registration is trusted.")
    if _is_guid(mobile.tenant) and mobile.tenant.lower() != entra_tenant_id.lower():
        # The app signs in where the MSAL configuration says; single sign-on trusts another Entra tenant.
        raise OAuthError(_INVALID, f"This organisation's setup is inconsistent: its MSAL configuration signs in with "
                         f"Entra tenant {mobile.tenant}, but single sign-on is connected to Entra tenant "
                         f"{entra_tenant_id}. Its administrator must paste the MSAL configuration of an app "
                         "registration in the connected tenant.")
    try:
        identity = entra.verify_id_token(subject_token, entra_tenant_id=entra_tenant_id, client_id=client_id, now=now)
        entra.spend_token(tenant_id, identity)
    except entra.EntraTokenRejected as error:
        _log(tenant_id, error.reason)
        raise OAuthError(_INVALID, error.message) from None
    except entra.EntraUnavailable as error:
        _log(tenant_id, "entra_unavailable")
        raise OAuthError("temporarily_unavailable", error.message, status=503, headers=error.headers) from None
    employee = directory.find_user_by_external_id(tenant_id, identity.object_id)
    if employee is None:
        _log(tenant_id, "not_provisioned")
        raise OAuthError(_INVALID, "The Entra account in subject_token has not been provisioned to this app (no "
                         "employee has its object id). Ask the organisation's administrator to assign the user in "
                         "Entra (Users and groups, then Provision on demand), then sign in again.")
    try:
        sign_in.check_may_sign_in(tenant, employee)
    except sign_in.SignInRefused as error:
        _log(tenant_id, error.reason)
        raise OAuthError(_INVALID, _WHY.get(error.reason, "The employee may not sign in.") + " " + error.message) \
            from None
    return employee


_WHY = {
    "dismissed": "The employee is dismissed (deactivated in Entra) and cannot sign in. Tell the user:",
    "outside_corporate_domains": "The employee's email address is outside the organisation's corporate domains, "
                                 "and single sign-on is enforced. Tell the user:",
}


def _parameters(form: Mapping[str, str]) -> str:
    subject_token_type = form.get("subject_token_type")
    if not subject_token_type:
        raise OAuthError(_INVALID, f"subject_token_type is missing: send {ID_TOKEN_TYPE} with the Entra ID token as "
                         "subject_token.")
    if subject_token_type != ID_TOKEN_TYPE:
        raise OAuthError(_INVALID, f"subject_token_type {_shown(subject_token_type)} is not accepted: send the Entra "
                         f"ID token MSAL returned, with subject_token_type {ID_TOKEN_TYPE} (not the access token).")
    if not form.get("subject_token"):
        raise OAuthError(_INVALID, "subject_token is missing: send the ID token MSAL returned after the sign-in.")
    if form.get("actor_token") or form.get("actor_token_type"):
        raise OAuthError(_INVALID, "actor_token is not supported: this exchange signs in the user of subject_token "
                         "only (no delegation). Leave actor_token out.")
    requested = form.get("requested_token_type")
    if requested and requested not in _REQUESTABLE:
        raise OAuthError(_INVALID, f"requested_token_type {_shown(requested)} cannot be issued: leave it out, or ask "
                         f"for {ACCESS_TOKEN_TYPE} (the answer carries an ID token too).")
    return form["subject_token"]


def _check_target(tenant_id: str, client_id: str | None, form: Mapping[str, str]) -> None:
    """RFC 8693 §2.1 `audience` (a logical name) and `resource` (an absolute URI): only this tenant's issuer, or
    the requesting client (the ID token's audience), can be a target here."""
    ours = {discovery.issuer(tenant_id), client_id}
    for name in ("audience", "resource"):
        value = form.get(name)
        if value is not None and value not in ours:
            raise OAuthError("invalid_target", f"{name} {_shown(value)} is not something this issuer can issue a "
                             f"token for: leave it out, or name the issuer {discovery.issuer(tenant_id)} or your "
                             "client_id.")


def _is_guid(value: str | None) -> bool:
    return bool(value) and _GUID.match(value) is not None


def _log(tenant_id: str, outcome: str) -> None:
    log.info(json.dumps({"event": "token_exchange", "tenant": tenant_id, "outcome": outcome}))


def _shown(value: Any) -> str:
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return repr(text[:80] + ("…" if len(text) > 80 else ""))
