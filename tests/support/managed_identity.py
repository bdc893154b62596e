"""Azure's own storage path, served on loopback: Table Storage over HTTPS that requires OAuth tokens, and the
managed-identity endpoint App Service / Azure Functions give every app.

* `TlsFiles.make(folder)`: a private CA and a certificate for 127.0.0.1/localhost signed by it (the server
  presents the certificate; clients trust the CA through REQUESTS_CA_BUNDLE).
* `OAuthAzurite`: Azurite's Table service with `--oauth basic` over HTTPS. Basic OAuth checks a bearer token's
  issuer (an Entra STS), audience (https://storage.azure.com), and lifetime, not its signature.
* `ManagedIdentityEndpoint`: the App Service managed-identity protocol that azure-identity's
  ManagedIdentityCredential (through msal) speaks when IDENTITY_ENDPOINT and IDENTITY_HEADER are set:
  `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>[&client_id=<user-assigned id>]` with
  header `X-IDENTITY-HEADER: {IDENTITY_HEADER}`, answered `{"access_token", "expires_on" (epoch seconds, a
  string), "resource", "token_type": "Bearer", "client_id"}`. Tokens are RS256 JWTs signed by a key made here.
"""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.conftest import AZURITE, Azurite, wait_for_port

STORAGE_RESOURCE = "https://storage.azure.com"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> "TlsFiles":
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = dt.datetime.now(dt.timezone.utc)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gatehouse test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        files = cls(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
        files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return files


class OAuthAzurite(Azurite):
    """Azurite's Table service over HTTPS, accepting bearer tokens (`--oauth basic`) as well as shared keys."""

    def __init__(self, location: Path, tls: TlsFiles, accounts: dict[str, str] | None = None):
        super().__init__(location, accounts)
        self.tls = tls

    @property
    def endpoint(self) -> str:
        return self.endpoint_of("devstoreaccount1")

    def endpoint_of(self, account: str) -> str:
        return f"https://127.0.0.1:{self.port}/{account}"

    @property
    def connection_string(self) -> str:  # shared key over HTTPS, for a test's own reads
        return super().connection_string.replace("http://", "https://").replace(
            "DefaultEndpointsProtocol=http;", "DefaultEndpointsProtocol=https;")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(AZURITE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port), "--location",
             str(self.location), "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--silent",
             "--disableTelemetry", "--oauth", "basic", "--cert", str(self.tls.certificate), "--key",
             str(self.tls.key)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=self._env())
        wait_for_port(self.port, process=self.process)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenRequest:
    resource: str | None
    client_id: str | None
    api_version: str | None
    header_ok: bool


@dataclass
class ManagedIdentityEndpoint:
    """The identity endpoint on loopback, serving tokens for `client_id` (a user-assigned identity)."""

    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    entra_tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audience: str = STORAGE_RESOURCE  # what tokens claim; a test may set another to see it refused
    requests: list[TokenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                request = TokenRequest(query.get("resource"), query.get("client_id"), query.get("api-version"),
                                       secrets.compare_digest(self.headers.get("X-IDENTITY-HEADER", ""), endpoint.header))
                endpoint.requests.append(request)
                if not request.header_ok:
                    return self._answer(401, {"error": "invalid_request", "error_description": "X-IDENTITY-HEADER"})
                if request.api_version != "2019-08-01" or not request.resource:
                    return self._answer(400, {"error": "invalid_request", "error_description": "api-version, resource"})
                if request.client_id not in (None, endpoint.client_id):
                    return self._answer(400, {"error": "invalid_request", "error_description": "unknown identity"})
                expires_on = int(time.time()) + 3600
                self._answer(200, {"access_token": endpoint.token(expires_on), "expires_on": str(expires_on),
                                   "resource": request.resource, "token_type": "Bearer",
                                   "client_id": endpoint.client_id})

            def _answer(self, status: int, document: dict) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"

    def token(self, expires_on: int) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        claims = {"aud": self.audience, "iss": f"https://sts.windows.net/{self.entra_tenant_id}/", "iat": now,
                  "nbf": now - 60, "exp": expires_on, "appid": self.client_id, "oid": str(uuid.uuid4()),
                  "sub": self.client_id, "tid": self.entra_tenant_id, "idtyp": "app", "ver": "1.0"}
        signing_input = (_b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "." +
                         _b64url(json.dumps(claims).encode()))
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def settings(self) -> dict[str, str]:
        """What App Service sets for the app (AZURE_CLIENT_ID: infra names the user-assigned identity)."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header, "AZURE_CLIENT_ID": self.client_id}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
