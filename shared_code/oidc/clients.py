"""The product's OAuth clients of one tenant: registration by the operator, and client authentication.

A client belongs to exactly one tenant (its row lives in the tenant's partition): another tenant's client id
is simply unknown here. A `web` client gets a secret, shown once and stored as a SHA-256 hash (it is 256
random bits, so no stretching is needed), compared in constant time; a `native` client (RFC 8252) has no
secret and relies on PKCE alone.

Redirect URIs are compared exactly, as registered: scheme, host, port, path and query (OAuth 2.0 Security BCP
§4.1.3). They must be https, except http on a loopback address for local development; a native app may also
use a private-use scheme named after a domain it owns (`com.example.app:/callback`, RFC 8252 §7.1).
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from datetime import datetime, timezone
from typing import Literal, Mapping
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator

from shared_code.platform import credentials
from shared_code.bodies import Body
from shared_code.platform.errors import BadRequest, NotFound, Unprocessable
from shared_code.oidc.discovery import issuer
from shared_code.oidc.errors import OAuthError
from shared_code.storage import oidc as store

MAX_URIS = 20
MAX_URI_CHARS = 2000
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_uri(uri: str, *, what: str, native: bool = False, allow_query: bool = True) -> str:
    """An absolute URI a client may register; raises ValueError with a sentence a developer can act on."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
        raise ValueError(f"each {what} must be an absolute URI of at most {MAX_URI_CHARS} characters")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in uri):
        raise ValueError(f"the {what} {uri!r} contains spaces, control or non-ASCII characters; percent-encode them")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"the {what} {uri!r} is not a valid URI") from None
    if parts.fragment or "#" in uri:
        raise ValueError(f"the {what} {uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    if parts.query and not allow_query:
        raise ValueError(f"the {what} {uri!r} must not contain a query")
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        pass
    elif scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        pass  # local development (RFC 8252 §7.3)
    elif native and "." in scheme and scheme not in ("http", "https"):
        return uri  # a private-use scheme of a native app
    else:
        raise ValueError(f"the {what} {uri!r} must use https:// (http:// only on a loopback address such as "
                         "127.0.0.1 for local development)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"the {what} {uri!r} must not carry a user name or password")
    return uri


class ClientRegistration(Body):
    """POST /api/tenants/{tenant}/oidc/clients: the product's registration as a client of this tenant's OP.
    A request `Body` (strict JSON types, unknown members refused); `register` maps its failures: 400 for a
    body that does not fit, 422 for a well-formed URI we will not use."""

    # First: pydantic validates fields in this order, and the redirect URI rules depend on the type.
    application_type: Literal["web", "native"] = Field(default="web", description=(
        "`web`: a confidential client with a secret; `native`: a public client (PKCE only, no secret)."))
    redirect_uris: list[str] = Field(min_length=1, max_length=MAX_URIS,
                                     description="Where authorization answers may go; compared exactly.")
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=MAX_URIS,
                                                 description="Where the end-session endpoint may return to.")
    initiate_login_uri: str | None = Field(default=None, max_length=MAX_URI_CHARS, description=(
        "The product's login URL for third-party-initiated login (OpenID Connect Core §4): a sign-in started in "
        "Entra's My Apps lands here with `iss`."))
    backchannel_logout_uri: str | None = Field(default=None, max_length=MAX_URI_CHARS, description=(
        "Receives a logout token (OpenID Connect Back-Channel Logout 1.0) when an employee's session ends."))
    client_name: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, uris: list[str], info) -> list[str]:
        native = info.data.get("application_type") == "native"
        what = "redirect URI" if info.field_name == "redirect_uris" else "post-logout redirect URI"
        checked = [check_uri(uri, what=what, native=native) for uri in uris]
        if len(set(checked)) != len(checked):
            raise ValueError(f"a {what} is listed twice")
        return checked

    @field_validator("initiate_login_uri")
    @classmethod
    def _initiate(cls, uri: str | None) -> str | None:
        return None if uri is None else check_uri(uri, what="initiate_login_uri")

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _backchannel(cls, uri: str | None) -> str | None:
        if uri is None:
            return None
        from shared_code.platform import outbound  # the same rules as the calls out to it (public https, no userinfo)

        check_uri(uri, what="backchannel_logout_uri")
        try:
            outbound.check_url(uri, what="The backchannel_logout_uri")
        except outbound.OutboundError as error:
            raise ValueError(error.message.rstrip(".")) from None
        return uri


class Client(BaseModel):
    """A registered client as the operator reads it (never its secret)."""

    client_id: str
    application_type: Literal["web", "native"]
    client_name: str | None = None
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    initiate_login_uri: str | None = None
    backchannel_logout_uri: str | None = None
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"]
    created_at: str
    secret_rotated_at: str | None = None
    issuer: str


class ClientCreated(Client):
    """The answer to a registration or a secret rotation: the secret is in it once, and nowhere else."""

    client_secret: str | None = Field(default=None, description="Shown once; null for a native client.")


class ClientList(BaseModel):
    clients: list[Client]


def validation_error(error: ValidationError) -> BadRequest | Unprocessable:
    """Our JSON error shape (a `field` and one sentence) for the first problem pydantic found: 400 for a body
    that does not fit the schema, 422 for a well-formed value we cannot use (an http redirect URI, …)."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ()) if not isinstance(part, int)) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = f"{field} is not a field of a client registration"
    kind = Unprocessable if first.get("type") == "value_error" else BadRequest
    return kind(f"{field}: {message}." if field else f"{message}.", field=field)


def _view(tenant_id: str, record: store.ClientRecord) -> dict:
    return Client(client_id=record.client_id, application_type=record.application_type,
                  client_name=record.client_name, redirect_uris=record.redirect_uris,
                  post_logout_redirect_uris=record.post_logout_redirect_uris,
                  initiate_login_uri=record.initiate_login_uri, backchannel_logout_uri=record.backchannel_logout_uri,
                  token_endpoint_auth_method="none" if record.application_type == "native" else "client_secret_basic",
                  created_at=record.created_at, secret_rotated_at=record.secret_rotated_at,
                  issuer=issuer(tenant_id)).model_dump()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def register(tenant_id: str, body: object) -> dict:
    """Register a client; the answer holds its secret (web) in plain form, once."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    try:
        registration = ClientRegistration.model_validate(body)
    except ValidationError as error:
        raise validation_error(error) from None
    secret = credentials.new_secret("client") if registration.application_type == "web" else None
    record = store.ClientRecord(
        client_id=secrets.token_hex(16), application_type=registration.application_type,
        secret_hash=credentials.hash_secret(secret) if secret else None, redirect_uris=registration.redirect_uris,
        post_logout_redirect_uris=registration.post_logout_redirect_uris,
        initiate_login_uri=registration.initiate_login_uri,
        backchannel_logout_uri=registration.backchannel_logout_uri, client_name=registration.client_name,
        created_at=_now())
    store.insert_client(tenant_id, record)
    return ClientCreated(**_view(tenant_id, record), client_secret=secret).model_dump()


def get(tenant_id: str, client_id: str) -> dict:
    record = store.get_client(tenant_id, client_id)
    if record is None:
        raise NotFound("There is no such client in this tenant.")
    return _view(tenant_id, record)


def connection(tenant_id: str) -> dict:
    """The product's connection as the tenant admin sees it (read-only): the issuer and its clients."""
    return {"issuer": issuer(tenant_id), "discovery_url": f"{issuer(tenant_id)}/.well-known/openid-configuration",
            "clients": [_view(tenant_id, r) for r in store.list_clients(tenant_id)]}


def list_all(tenant_id: str) -> dict:
    return ClientList(clients=[_view(tenant_id, r) for r in store.list_clients(tenant_id)]).model_dump()


def delete(tenant_id: str, client_id: str) -> None:
    """Delete a client: its tokens stop working at once (UserInfo checks the client), and every session it holds
    ends, with a back-channel logout to it (its `client.deleted` event, handled by shared_code/sign_in/trust.py)."""
    if not store.delete_client(tenant_id, client_id):
        raise NotFound("There is no such client in this tenant.")


def rotate_secret(tenant_id: str, client_id: str) -> dict:
    """A new secret for a web client; the old one stops working at once."""
    record = store.get_client(tenant_id, client_id)
    if record is None:
        raise NotFound("There is no such client in this tenant.")
    if record.application_type != "web":
        raise BadRequest("A native client has no secret to rotate: it authenticates with PKCE alone.",
                         field="application_type")
    secret = credentials.new_secret("client")
    rotated_at = _now()
    if not store.set_client_secret(tenant_id, client_id, credentials.hash_secret(secret), rotated_at):
        raise NotFound("There is no such client in this tenant.")
    record = store.get_client(tenant_id, client_id) or record
    return ClientCreated(**_view(tenant_id, record), client_secret=secret).model_dump()


# ---- client authentication at the token endpoint ------------------------------------------------------------------

def _basic(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("The Authorization header is not valid HTTP Basic.", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _invalid_client("The Authorization header is not valid HTTP Basic.", basic=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _invalid_client(description: str, *, basic: bool) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="token", charset="UTF-8"'} if basic else None
    return OAuthError("invalid_client", description, status=401, headers=headers)


def authenticate(tenant_id: str, authorization: str | None, form: Mapping[str, str]) -> store.ClientRecord:
    """The client making a token request: client_secret_basic, client_secret_post, or a native client's bare
    client_id (`none`). One method per request (RFC 6749 §2.3); secrets compared in constant time.

    Failed authentications are limited like wrong admin keys and SCIM tokens (shared_code/platform/rate_limit.py), and
    only they meet the limit: the credential is checked first, so a correct secret is never refused, whoever else
    guessed wrong from the same address (an office NAT, a shared egress). A wrong one from an address over its
    budget is answered 429 instead of 401."""
    from shared_code.platform import rate_limit

    scope = f"{tenant_id}/oidc-clients"
    try:
        return _authenticate(tenant_id, authorization, form)
    except OAuthError as error:
        if error.error == "invalid_client":
            rate_limit.failed_authentications.wrong_credential(scope)
        raise


def _authenticate(tenant_id: str, authorization: str | None, form: Mapping[str, str]) -> store.ClientRecord:
    basic = _basic(authorization)
    posted_secret = form.get("client_secret")
    if basic is not None:
        if posted_secret is not None or (form.get("client_id") not in (None, basic[0])):
            raise OAuthError("invalid_request", "Use one client authentication method: HTTP Basic or the form "
                             "fields, not both.")
        client_id, secret = basic
    else:
        client_id, secret = form.get("client_id") or "", posted_secret
    record = store.get_client(tenant_id, client_id) if client_id else None
    if record is None:
        credentials.secret_matches(secret or "x", None)  # the same work as for a known client
        raise _invalid_client("Unknown client, or the client authentication failed.", basic=basic is not None)
    if record.application_type == "native":
        if secret:
            raise _invalid_client("A native client has no secret; send client_id alone and the PKCE verifier.",
                                  basic=basic is not None)
        return record
    if not secret or not credentials.secret_matches(secret, record.secret_hash):
        raise _invalid_client("Unknown client, or the client authentication failed.", basic=basic is not None)
    return record
