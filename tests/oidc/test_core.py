"""Core checks without HTTP: the signing-key setting, and the SAML logout messages' signature and issuer."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from shared_code.platform.errors import StorageUnavailable
from shared_code.oidc import keys
from shared_code.saml import SamlRejected, parse_idp_metadata, read_logout_message
from tests.support import oidc_keys
from tests.support.idp import TestIdp
from tests.support.idp_server import IdpServer


@pytest.mark.parametrize("value", ["", "not json", "[]", '["-----BEGIN PRIVATE KEY-----\\nnope"]', "{}", "[1]"])
def test_unusable_signing_keys_answer_503_and_never_sign(value):
    with pytest.raises(StorageUnavailable) as refused:
        keys._parse(value)
    assert "OIDC_SIGNING_KEYS" in refused.value.message and "BEGIN" not in refused.value.message


def test_a_small_rsa_key_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(StorageUnavailable):
        keys._parse(json.dumps([small]))


def test_the_first_key_signs_and_every_key_is_published():
    parsed = keys._parse(oidc_keys.setting("core-new", "core-old"))
    assert [k["kid"] for k in parsed.jwks["keys"]] == [parsed.kid, parsed.jwks["keys"][1]["kid"]]
    assert parsed.kid != parsed.jwks["keys"][1]["kid"]


@pytest.fixture
def entra():
    server = IdpServer(TestIdp(key_label="core-logout"))
    yield server
    server._server.server_close()


def _metadata(idp: TestIdp):
    from datetime import datetime, timezone

    return parse_idp_metadata(idp.metadata_xml(), datetime.now(timezone.utc))


def test_a_signed_logout_request_is_read(entra):
    url = entra.logout_request_url("https://gh.example/api/sso/acme/metadata", "alice@acme.example", "sess-1")
    message = read_logout_message(urlsplit(url).query, _metadata(entra.idp))
    assert message.kind == "request" and message.name_id == "alice@acme.example"
    assert message.session_indexes == ["sess-1"] and message.signed


def test_logout_request_refused_unsigned_tampered_other_key_or_other_issuer(entra):
    metadata = _metadata(entra.idp)
    url = entra.logout_request_url("https://gh.example/api/sso/acme/metadata", "alice@acme.example")
    query = urlsplit(url).query
    unsigned = query.split("&SigAlg=")[0]
    with pytest.raises(SamlRejected, match="signed"):
        read_logout_message(unsigned, metadata)
    tampered = query.replace("SAMLRequest=", "SAMLRequest=A", 1)
    with pytest.raises(SamlRejected):
        read_logout_message(tampered, metadata)
    stranger = IdpServer(TestIdp(entity_id=entra.idp.entity_id, key_label="core-logout-stranger"))
    try:
        forged = urlsplit(stranger.logout_request_url("https://gh.example/api/sso/acme/metadata", "a@b.c")).query
    finally:
        stranger._server.server_close()
    with pytest.raises(SamlRejected, match="signature"):
        read_logout_message(forged, metadata)
    other = _metadata(TestIdp(key_label="core-logout"))  # same key, another Entra tenant (entity ID)
    with pytest.raises(SamlRejected, match="another identity provider"):
        read_logout_message(query, other)
    sha1 = query.replace("rsa-sha256", "rsa-sha1")
    with pytest.raises(SamlRejected, match="RSA-SHA256"):
        read_logout_message(sha1, metadata)
