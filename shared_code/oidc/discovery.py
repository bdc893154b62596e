"""Each tenant's issuer and its OpenID Connect Discovery 1.0 document.

The issuer is `{PUBLIC_BASE_URL}/api/oidc/{tenant}`; every endpoint lives under it. The document advertises
only what is implemented: the code flow with PKCE S256 (required of native clients; a web client may use a
nonce instead), RS256 ID tokens, client_secret_basic/post (and `none`
for native clients), RFC 9207's `iss` in authorization responses, RP-initiated and back-channel logout, and the token-exchange grant
of the mobile apps (RFC 8693, `token_exchange.py`).
"""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from shared_code.platform.settings import get_settings

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
SCOPES = ("openid", "email", "profile", "roles", "groups")
CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "amr", "nonce", "sid", "email", "email_verified", "name",
          "given_name", "family_name", "preferred_username", "is_admin", "tenant", "roles", "groups")


def issuer(tenant_id: str) -> str:
    return f"{get_settings().public_base_url}/api/oidc/{tenant_id}"


def endpoints(tenant_id: str) -> dict[str, str]:
    base = issuer(tenant_id)
    return {"authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo", "jwks_uri": f"{base}/jwks",
            "end_session_endpoint": f"{base}/logout"}


def configuration(tenant_id: str) -> dict:
    grants = ["authorization_code", TOKEN_EXCHANGE]
    return {
        "issuer": issuer(tenant_id),
        **endpoints(tenant_id),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": list(SCOPES),
        "claims_supported": list(CLAIMS),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


def with_query(uri: str, params: dict[str, str]) -> str:
    """`uri` with `params` appended to its query (a registered query is kept, RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode({key: value for key, value in params.items() if value is not None})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"{parts.query}&{extra}" if parts.query else extra,
                       ""))
