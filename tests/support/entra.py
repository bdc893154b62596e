"""A stand-in for Microsoft Entra's token side, on a real loopback port: what the token exchange sees of Entra.

- `GET /{tenant}/discovery/v2.0/keys` publishes the JWK Set of that Entra tenant (like login.microsoftonline.com:
  RSA keys with kid, x5t, n, e, use=sig), and counts every fetch per tenant;
- `id_token(...)` mints ID tokens shaped like Entra v2.0 ones (aud, iss, iat, nbf, exp, oid, tid, sub,
  preferred_username, name, uti, ver; header alg RS256, kid, typ JWT) signed with the tenant's current key (the
  shapes are the development IdP's, shared_code/dev_idp/documents.py: one Entra for both);
- `rotate(tenant)` publishes a new key and signs with it from then on (the old one is no longer published);
  `hs256_with_public_key` and `unsigned` forge the classic attacks.

Keys are generated once per stand-in (2048-bit RSA); every Entra tenant starts with the same published key, as on
the real Entra, until a test rotates that tenant's.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc import jwt
from joserfc.jwk import RSAKey

from shared_code.dev_idp.documents import v2_id_token_claims, v2_published_key

KEYS_PATH = "/{tenant}/discovery/v2.0/keys"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key() -> RSAKey:
    key = RSAKey.generate_key(2048)
    key.ensure_kid()  # RFC 7638 thumbprint; Entra's kids are opaque strings too
    return key


class EntraStandIn:
    """Entra's keys endpoint on loopback and an ID token minter; a context manager (stops its server on exit)."""

    def __init__(self):
        self.default_key = new_key()
        self._keys: dict[str, list[RSAKey]] = {}  # tenant → published keys, the first one signs
        self.fetches: Counter[str] = Counter()
        self.status: dict[str, int] = {}  # tenant → forced HTTP status of its keys endpoint
        self.delay: dict[str, float] = {}  # tenant → seconds its keys endpoint takes to answer (a slow Entra)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "EntraStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- keys

    def keys(self, tenant: str) -> list[RSAKey]:
        with self._lock:
            return list(self._keys.setdefault(tenant, [self.default_key]))

    def signing_key(self, tenant: str) -> RSAKey:
        return self.keys(tenant)[0]

    def rotate(self, tenant: str, *, keep_old: bool = False) -> RSAKey:
        """Publish a new key and sign with it; the old one stays published only with keep_old."""
        key = new_key()
        with self._lock:
            old = self._keys.setdefault(tenant, [self.default_key])
            self._keys[tenant] = [key, *old] if keep_old else [key]
        return key

    def jwks(self, tenant: str) -> dict:
        published = []
        for key in self.keys(tenant):
            jwk = key.as_dict(private=False)
            x5t = b64url(hashlib.sha1(jwk["n"].encode()).digest())  # opaque, like Entra's x5t
            published.append(v2_published_key(jwk, tenant, kid=jwk["kid"], x5t=x5t))
        return {"keys": published}

    # ---- tokens

    def claims(self, tenant: str, client_id: str, oid: str, /, **overrides) -> dict:
        claims = v2_id_token_claims(tenant, client_id, oid, now=int(time.time()), name="Alice Example",
                                    preferred_username="alice@acme.example.com")
        for name, value in overrides.items():
            if value is OMIT:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def id_token(self, tenant: str, client_id: str, oid: str, /, *, key: RSAKey | None = None,
                 header: dict | None = None, **claims) -> str:
        """An ID token as Entra v2.0 issues it; `claims` override (or OMIT) single claims."""
        key = key or self.signing_key(tenant)
        protected = {"typ": "JWT", "alg": "RS256", "kid": key.kid, **(header or {})}
        return jwt.encode(protected, self.claims(tenant, client_id, oid, **claims), key, algorithms=["RS256"])

    # ---- forgeries

    @staticmethod
    def unsigned(token: str) -> str:
        """The same claims with `alg: none` and no signature."""
        header, payload, _ = token.split(".")
        head = json.loads(base64.urlsafe_b64decode(header + "=="))
        head["alg"] = "none"
        return f"{b64url(json.dumps(head).encode())}.{payload}."

    def hs256_with_public_key(self, token: str, tenant: str) -> str:
        """The same claims "signed" with HMAC-SHA256 keyed with the published public key's PEM (alg confusion)."""
        header, payload, _ = token.split(".")
        head = json.loads(base64.urlsafe_b64decode(header + "=="))
        head["alg"] = "HS256"
        signing_input = f"{b64url(json.dumps(head).encode())}.{payload}"
        secret = self.signing_key(tenant).as_pem(private=False)
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature)}"

    @staticmethod
    def with_payload(token: str, **changes) -> str:
        """The token with claims changed after signing (the signature left as it was)."""
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims.update(changes)
        return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"

    # ---- HTTP

    def _handler_class(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) != 4 or parts[1:] != ["discovery", "v2.0", "keys"]:
                    self._answer(404, {"error": "invalid_request"})
                    return
                tenant = parts[0]
                with stand_in._lock:
                    stand_in.fetches[tenant] += 1
                status = stand_in.status.get(tenant, 200)
                if stand_in.delay.get(tenant):
                    time.sleep(stand_in.delay[tenant])
                self._answer(status, stand_in.jwks(tenant) if status == 200 else {"error": "temporarily_unavailable"})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        return Handler


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT = _Omit()
