"""Discovery (OpenID Connect Discovery 1.0) and the JWKS: per-tenant issuer, only what is implemented, every
configured key published with its RFC 7638 thumbprint as kid (a retired key stays during a rollover)."""
from __future__ import annotations

import base64
import hashlib
import json

import requests
from joserfc.jwk import RSAKey

from tests.support import oidc_keys


def test_discovery_names_the_tenant_issuer_and_only_what_is_implemented(op):
    config = op.discovery()
    assert config["issuer"] == op.issuer
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"):
        assert config[name].startswith(op.issuer + "/"), name
    assert config["response_types_supported"] == ["code"]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(config["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "none"}
    assert config["authorization_response_iss_parameter_supported"] is True
    assert config["request_uri_parameter_supported"] is False
    assert config["grant_types_supported"] == ["authorization_code",
                                               "urn:ietf:params:oauth:grant-type:token-exchange"]
    # What the OIDF plans read from it: the logout endpoints, silent sign-in, the scopes (no address/phone).
    assert config["end_session_endpoint"] == op.issuer + "/logout"
    assert config["backchannel_logout_supported"] is True and config["backchannel_logout_session_supported"] is True
    assert {"none", "login"} <= set(config["prompt_values_supported"])
    assert config["scopes_supported"] == ["openid", "email", "profile", "roles", "groups"]
    assert {"auth_time", "amr", "sid"} <= set(config["claims_supported"])


def test_unknown_tenant_has_no_issuer(app_url):
    response = requests.get(f"{app_url}/api/oidc/no-such-tenant/.well-known/openid-configuration", timeout=30)
    assert response.status_code == 404


def _thumbprint(jwk: dict) -> str:
    members = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


def test_jwks_publishes_every_configured_key_public_half_only(op):
    jwks = requests.get(op.discovery()["jwks_uri"], timeout=30).json()
    expected = [RSAKey.import_key(oidc_keys.signing_key_pem(label)) for label in ("op-current", "op-retired")]
    assert [key["kid"] for key in jwks["keys"]] == [key.thumbprint() for key in expected]
    for key in jwks["keys"]:
        assert key["kid"] == _thumbprint(key)  # RFC 7638, computed independently
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "a private member is published"
