"""Tenants: creation by the operator, the admin key and SCIM token checks, SSO status and setup steps.

A tenant moves `draft` → `testing` (the admin's self-check sign-in succeeded) → `enabled` (SSO enforced for
every employee). Only the operator turns an enabled tenant back; `cancel` returns an unfinished setup to draft.
"""
from __future__ import annotations

import re
import secrets as _random
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from shared_code.platform import credentials, rate_limit
from shared_code.platform.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from shared_code.platform.settings import get_settings
from shared_code.storage import tenants as store

DRAFT, TESTING, ENABLED = "draft", "testing", "enabled"
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
_NOT_YOURS = "This key is not valid for this tenant."
NAME_MAX_CHARS = 200
DEPARTMENT_MAX_CHARS = 256
NAME_REQUIRED = f"name is required (1–{NAME_MAX_CHARS} characters)."
DEPARTMENT_REQUIRED = f"department is required (1–{DEPARTMENT_MAX_CHARS} characters)."
APP_URL_REQUIRED = ("app_url is required: the address of the tenant's application, e.g. https://acme.example.com.")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Tenant:
    """What the cores need to know about a tenant; secrets stay hashed in the store and never leave it."""

    tenant_id: str
    name: str
    app_url: str
    status: str = DRAFT
    created_at: str = ""
    idp: dict | None = None
    metadata_url: str | None = None
    domains: dict | None = None
    default_department: str | None = None
    mobile: dict | None = None
    self_check_at: str | None = None
    enabled_at: str | None = None
    scim_token_created_at: str | None = None
    certificate_changes: list | None = None  # who changed the IdP's signing certificates, when (idp_connection)
    sessions_valid_from: int | None = None  # employee sessions issued earlier have ended (IdP changed, cancelled)
    wizard_generation: int | None = None  # wizard sessions of earlier generations have ended (setup_access)
    admin_key_rotated_at: str | None = None
    verified_domains: list | None = None  # ASCII domains the tenant proved it owns by DNS (domain_verification)
    etag: str | None = field(default=None, repr=False)

    @classmethod
    def from_record(cls, record: dict) -> "Tenant":
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in record.items() if key in known})

    @property
    def sso_enforced(self) -> bool:
        return self.status == ENABLED

    def urls(self) -> dict[str, str]:
        base = get_settings().public_base_url
        tid = self.tenant_id
        return {
            "sp_entity_id": f"{base}/api/sso/{tid}/metadata",
            "acs_url": f"{base}/api/sso/{tid}/acs",
            "slo_url": f"{base}/api/sso/{tid}/slo",
            "sp_metadata_url": f"{base}/api/sso/{tid}/metadata",
            "login_url": f"{base}/api/sso/{tid}/login",
            "scim_tenant_url": f"{base}/api/scim/{tid}/v2",
            "setup_url": f"{base}/api/setup/{tid}",
        }

    def steps(self) -> dict[str, dict[str, Any]]:
        """Each setup step's state, derived from what is stored (nothing to keep in sync)."""
        idp = self.idp or {}
        return {
            "service_provider": {"done": True},
            "idp_metadata": {"done": bool(idp), "idp_entity_id": idp.get("entity_id"),
                             "checked_at": idp.get("checked_at")},
            "scim_token": {"done": bool(self.scim_token_created_at), "created_at": self.scim_token_created_at},
            "domains": {"done": bool((self.domains or {}).get("domains")),
                        "domains": (self.domains or {}).get("domains", [])},
            "default_department": {"done": bool(self.default_department), "department": self.default_department},
            "mobile": {"done": bool(self.mobile), "optional": True},
            "self_check": {"done": bool(self.self_check_at), "at": self.self_check_at},
            "enabled": {"done": self.status == ENABLED, "at": self.enabled_at},
        }

    def sso_summary(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "name": self.name, "app_url": self.app_url, "status": self.status,
                **self.urls(), "steps": self.steps(), "certificate_changes": list(self.certificate_changes or [])}


# ---- creation and authentication ------------------------------------------------------------------------

def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:24].strip("-")
    return slug or "tenant"


def validate_app_url(app_url: Any) -> str:
    if not isinstance(app_url, str) or not app_url.strip():
        raise BadRequest(APP_URL_REQUIRED, field="app_url")
    app_url = app_url.strip().rstrip("/")
    parts = urlsplit(app_url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise BadRequest("app_url must be an absolute https:// URL without credentials.", field="app_url")
    if parts.scheme == "http" and not get_settings().allow_private_metadata_urls:
        raise BadRequest("app_url must use https://.", field="app_url")
    if parts.query or parts.fragment:
        raise BadRequest("app_url must not carry a query or fragment.", field="app_url")
    return app_url


def create_tenant(name: Any, app_url: Any) -> tuple[Tenant, str]:
    """Create a tenant; returns it with its admin key, which exists in plain form only in this answer."""
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_CHARS:
        raise BadRequest(NAME_REQUIRED, field="name")
    app_url = validate_app_url(app_url)
    admin_key = credentials.new_secret("admin")
    for _ in range(5):
        fields = {"name": name.strip(), "app_url": app_url, "status": DRAFT, "created_at": utcnow().isoformat(),
                  "admin_key_hash": credentials.hash_secret(admin_key)}
        try:  # the id names the storage account the tenant is placed on (storage/accounts.py)
            tenant_id = store.insert_new_tenant_record(f"{_slug(name)}-{_random.token_hex(3)}", fields)
        except Conflict:
            continue
        return Tenant.from_record({**fields, "tenant_id": tenant_id}), admin_key
    raise Conflict("Could not allocate a tenant id; please retry.")


def authenticate_operator(key: str | None) -> None:
    if not key:
        raise Unauthorized("The operator key is required (Authorization: Bearer <PLATFORM_ADMIN_KEY>).")
    expected = get_settings().platform_admin_key
    if not credentials.same_secret(key, expected):
        rate_limit.failed_authentications.wrong_credential(rate_limit.OPERATOR)
        raise Forbidden("This operator key is not valid.")


def _limit_scope(tenant_id: str) -> str:
    """Failed attempts are counted per tenant; ids that cannot be a tenant share one (bounded) counter."""
    return tenant_id if TENANT_ID.match(tenant_id or "") else "(not a tenant id)"


def _record_for(tenant_id: str) -> dict | None:
    if not TENANT_ID.match(tenant_id or ""):
        return None
    return store.get_tenant_record(tenant_id)


def _tenant_holding(tenant_id: str, secret: str, hash_column: str, refusal: Exception) -> Tenant:
    """The tenant whose stored hash in `hash_column` matches `secret`, else `refusal` (or 429 once this client
    has failed too often). A wrong secret, an unknown tenant and another tenant's secret cost the same and
    look alike; a correct secret is never limited."""
    record = _record_for(tenant_id)
    if not credentials.secret_matches(secret, (record or {}).get(hash_column)) or record is None:
        rate_limit.failed_authentications.wrong_credential(_limit_scope(tenant_id))
        raise refusal
    return Tenant.from_record(record)


def authenticate_admin(tenant_id: str, key: str | None) -> Tenant:
    """The tenant for a valid admin key; a wrong key, an unknown tenant or another tenant's key look alike."""
    if not key:
        raise Unauthorized("The tenant admin key is required (Authorization: Bearer <admin_key>).")
    return _tenant_holding(tenant_id, key, "admin_key_hash", Forbidden(_NOT_YOURS))


def is_operator_key(key: str | None) -> bool:
    """Whether `key` is the operator key (constant time); callers that also take admin keys fall back to those."""
    return bool(key) and credentials.same_secret(key, get_settings().platform_admin_key)


def authenticate_admin_or_operator(tenant_id: str, key: str | None) -> Tenant:
    """Operator keys may act on any tenant (support); admin keys only on their own. A key that is neither counts
    as a failed guess of both."""
    if is_operator_key(key):
        return get_tenant(tenant_id)
    try:
        return authenticate_admin(tenant_id, key)
    except Forbidden:
        rate_limit.failed_authentications.record_failure(rate_limit.OPERATOR)
        raise


def authenticate_scim(tenant_id: str, token: str | None) -> Tenant:
    """The tenant for a valid SCIM secret token of *that* tenant; anything else is 401 (what Entra expects)."""
    if not token:
        raise Unauthorized("A bearer token is required: paste the Secret Token from the SSO setup into Entra.")
    return _tenant_holding(tenant_id, token, "scim_token_hash", Unauthorized(
        "The bearer token is not valid for this tenant. Generate a new Secret Token in the SSO setup."))


def get_tenant(tenant_id: str) -> Tenant:
    record = _record_for(tenant_id)
    if record is None:
        raise NotFound("No such tenant.")
    return Tenant.from_record(record)


def find_tenant(tenant_id: str) -> Tenant | None:
    record = _record_for(tenant_id)
    return Tenant.from_record(record) if record else None


# ---- changes ----------------------------------------------------------------------------------------------

def modify(tenant_id: str, change) -> Tenant:
    """Apply `change(Tenant) -> dict of columns` under optimistic concurrency."""
    return Tenant.from_record(store.modify_tenant_record(tenant_id, lambda record: change(Tenant.from_record(record))))


def rotate_scim_token(tenant_id: str) -> tuple[Tenant, str]:
    """A new SCIM secret token; the previous one stops working at once. Tokens never expire (Entra quarantines)."""
    token = credentials.new_secret("scim")
    tenant = modify(tenant_id, lambda _: {"scim_token_hash": credentials.hash_secret(token),
                                         "scim_token_created_at": utcnow().isoformat()})
    return tenant, token


def rotate_admin_key(tenant_id: str) -> tuple[Tenant, str]:
    """The operator's new admin key for a tenant: the old one stops working at once (a leaked key is revoked by
    rotating it). Shown once, stored as a hash."""
    admin_key = credentials.new_secret("admin")
    tenant = modify(tenant_id, lambda _: {"admin_key_hash": credentials.hash_secret(admin_key),
                                         "admin_key_rotated_at": utcnow().isoformat()})
    return tenant, admin_key


def end_wizard_sessions(tenant_id: str, before: int | None = None) -> Tenant:
    """End the tenant's setup-wizard sessions on the server: those of a generation below `before`, or every
    one so far (the next link then opens the new generation)."""
    def change(tenant: Tenant) -> dict:
        current = tenant.wizard_generation or 0
        wanted = current + 1 if before is None else max(current, before)
        return {} if wanted == current else {"wizard_generation": wanted}
    return modify(tenant_id, change)


def set_default_department(tenant_id: str, department: Any) -> Tenant:
    if not isinstance(department, str) or not department.strip() or len(department) > DEPARTMENT_MAX_CHARS:
        raise BadRequest(DEPARTMENT_REQUIRED, field="department")
    return modify(tenant_id, lambda _: {"default_department": department.strip()})


def mark_self_check_passed(tenant_id: str) -> Tenant:
    def change(tenant: Tenant) -> dict:
        columns = {"self_check_at": utcnow().isoformat()}
        if tenant.status == DRAFT:
            columns["status"] = TESTING
        return columns
    return modify(tenant_id, change)


def enable_sso(tenant_id: str) -> Tenant:
    """Enforce SSO for all employees. Needs the IdP connection and a passed self-check; cannot be undone here."""
    def change(tenant: Tenant) -> dict:
        if tenant.status == ENABLED:
            return {}
        if not tenant.idp:
            raise Conflict("Connect Entra first: paste the App Federation Metadata URL and click Check now.")
        if not tenant.self_check_at:
            raise Conflict("Run the self-check sign-in first, so you know SSO works before every employee depends on it.")
        return {"status": ENABLED, "enabled_at": utcnow().isoformat()}
    return modify(tenant_id, change)


def cancel_setup(tenant_id: str) -> Tenant:
    """Abandon an unfinished SSO setup: back to draft, the IdP connection and self-check forgotten, and every
    session it signed in ended (the product's too, by back-channel logout)."""
    def change(tenant: Tenant) -> dict:
        if tenant.status == ENABLED:
            raise Conflict("SSO is enabled for all employees; only the operator (technical support) can turn it off.")
        return {"status": DRAFT, "idp": None, "metadata_url": None, "self_check_at": None,
                "sessions_valid_from": int(utcnow().timestamp()) + 1}  # employees signed in by it sign in again
    return modify(tenant_id, change)  # its `sessions.revoked` event ends the sessions (shared_code/sign_in/trust.py)


def operator_disable_sso(tenant_id: str) -> dict[str, Any]:
    """The operator's way back from `enabled` (a support case): the tenant returns to testing. Answers the
    tenant's SSO summary and what was done (`disabled`, `previous_status`, a sentence for the support log)."""
    before: dict[str, str] = {}

    def change(tenant: Tenant) -> dict:
        before["status"] = tenant.status  # the last call is the one that counted (modify retries on a race)
        if tenant.status != ENABLED:
            return {}
        return {"status": TESTING if tenant.self_check_at else DRAFT, "enabled_at": None,
                "sessions_valid_from": int(utcnow().timestamp()) + 1}  # the sign-ins it enforced end

    tenant = modify(tenant_id, change)
    disabled = before["status"] == ENABLED  # its `sessions.revoked` event ends every session (shared_code/sign_in/trust.py)
    message = (f"SSO is no longer enforced for the employees of {tenant.name}; the setup is back in "
               f"{tenant.status}, and the tenant admin can enable it again." if disabled else
               f"Nothing changed: SSO was not enabled for {tenant.name} (status {tenant.status}).")
    return {**tenant.sso_summary(), "disabled": disabled, "previous_status": before["status"], "message": message}
