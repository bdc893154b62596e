"""Microsoft Entra ID as a token issuer: verifying the v2.0 ID tokens MSAL hands the mobile apps.

`id_token.verify_id_token` checks one token against one Entra tenant and one app registration (the rules are in
its docstring); `keys` fetches and caches the signing keys Entra publishes for that tenant; `spend_token` makes a
verified token usable once. Nothing here knows about HTTP frameworks or OAuth answers: refusals are
`EntraTokenRejected` (the caller's fault, with a description a mobile developer can act on) and
`EntraUnavailable` (Entra's keys could not be read: retry later).

Imports of JOSE code (joserfc) happen inside the functions that verify, so no other endpoint pays for them.
"""
from __future__ import annotations

from shared_code.entra.errors import EntraTokenRejected, EntraUnavailable

__all__ = ["EntraTokenRejected", "EntraUnavailable", "verify_id_token", "spend_token", "EntraIdentity",
           "PERSONAL_ACCOUNTS_TENANT"]


def __getattr__(name: str):
    if name in ("verify_id_token", "spend_token", "EntraIdentity", "PERSONAL_ACCOUNTS_TENANT"):
        from shared_code.entra import id_token

        return getattr(id_token, name)
    raise AttributeError(name)
