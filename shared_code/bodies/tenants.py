"""Bodies of `shared_code/tenancy/tenants.py`'s endpoints: the operator's new tenant, the SSO setup summary, the SCIM
token and the default department. The app URL rules stay in `tenants.validate_app_url` (called from here)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from shared_code.tenancy import tenants
from shared_code.bodies import Answer, Body, core_rule, may_be_left_out
from shared_code.oidc.clients import Client
from shared_code.platform.errors import BadRequest

Status = Literal["draft", "testing", "enabled"]
# At least one character that str.strip() keeps (Python's isspace() also counts \x1c-\x1f and \x85, which
# ECMA-262's \s, what JSON Schema validators use, does not).
NOT_BLANK = r"^[\s\S]*[^\s\x1c-\x1f\x85][\s\S]*$"
_URI = {"format": "uri"}


class NewTenant(Body):
    """`POST /api/tenants`: the operator's new tenant. Other members are ignored (as they always were)."""

    model_config = ConfigDict(extra="ignore")
    refusal = BadRequest
    messages = {"name": tenants.NAME_REQUIRED, "app_url": tenants.APP_URL_REQUIRED,
                "app_url:string_pattern_mismatch": "app_url must be an absolute https:// URL without credentials, "
                                                   "query or fragment.",
                "app_url:string_too_long": "app_url is longer than {max_length} characters."}

    name: str = Field(min_length=1, max_length=tenants.NAME_MAX_CHARS, pattern=NOT_BLANK)
    # Surrounding blanks are allowed (validate_app_url strips them); only the ones every regex dialect and
    # str.strip() agree on, so a schema-valid URL is never refused as malformed.
    app_url: str = Field(max_length=2048, pattern=r"^[ \t\r\n]*https?://[^\s/?#@\[\]]+(/[^\s?#]*)?[ \t\r\n]*$",
                         description="The tenant's application: where employees land after signing in. https only "
                                     "(http is accepted when ALLOW_PRIVATE_METADATA_URLS is on, for local "
                                     "development); no credentials, query or fragment.")

    @field_validator("name", mode="after")
    @classmethod
    def _stripped(cls, name: str) -> str:
        return name.strip()

    @field_validator("app_url", mode="before")
    @classmethod
    def _app_url(cls, value: Any) -> Any:
        # The core's rules first, with their messages; the pattern above is what the document can say of them.
        return core_rule(tenants.validate_app_url, value)


class _Urls(Answer):
    sp_entity_id: str = Field(json_schema_extra=_URI)
    acs_url: str = Field(json_schema_extra=_URI)
    slo_url: str = Field(json_schema_extra=_URI, description="Single logout with Entra (its Logout Url)")
    sp_metadata_url: str = Field(json_schema_extra=_URI)
    login_url: str = Field(json_schema_extra=_URI)
    scim_tenant_url: str = Field(json_schema_extra=_URI)
    setup_url: str = Field(json_schema_extra=_URI)


class CreatedTenant(_Urls):
    """The new tenant, with its admin key: shown only in this answer, stored only as a hash."""

    tenant_id: str = Field(pattern=tenants.TENANT_ID.pattern)
    admin_key: str = Field(min_length=32, description="Shown once; stored only as a hash.")

    @classmethod
    def of(cls, tenant: tenants.Tenant, admin_key: str) -> "CreatedTenant":
        return cls(tenant_id=tenant.tenant_id, admin_key=admin_key, **tenant.urls())


class SetupStep(Answer):
    """One setup step's state: `done`, and what the step shows (its own members)."""

    model_config = ConfigDict(extra="allow")

    done: bool


class ProductConnection(Answer):
    """The product's side of the tenant's sign-in (OpenID Connect): its issuer and registered clients."""

    issuer: str = Field(json_schema_extra=_URI)
    discovery_url: str = Field(json_schema_extra=_URI)
    clients: list[Client]


class CertificateChange(Answer):
    """One change of the IdP's signing certificates (or of the IdP): when, by whom, from what, which came and went."""

    at: str = Field(json_schema_extra={"format": "date-time"})
    by: Literal["tenant_admin", "operator", "daily_refresh"]
    source: Literal["metadata_url", "metadata_xml"]
    idp_entity_id: str
    previous_idp_entity_id: str | None = None
    added: list[str] = Field(description="SHA-256 fingerprints of the certificates that came")
    removed: list[str] = Field(description="SHA-256 fingerprints of the certificates that went")


class SsoSetup(_Urls):
    """The tenant's SSO setup: the URLs to paste into Entra, the status and each setup step's state."""

    tenant_id: str
    name: str
    app_url: str
    status: Status
    steps: dict[str, SetupStep] = Field(description="Each setup step's state: service_provider, idp_metadata, "
                                                    "scim_token, domains, default_department, mobile (optional), "
                                                    "self_check, enabled.")
    certificate_changes: list[CertificateChange] = Field(
        default_factory=list, description="Every change of the IdP's signing certificates (the latest 50), oldest "
                                          "first. Once SSO is enabled they change only through the metadata URL on "
                                          "record or by the operator.")

    product: ProductConnection | None = may_be_left_out(
        description="The product's OpenID Connect connection: read-only, in GET /sso only.")

    @classmethod
    def of(cls, tenant: tenants.Tenant, product: dict | None = None) -> "SsoSetup":
        return cls(**tenant.sso_summary(), **({"product": product} if product is not None else {}))


class DisabledSso(SsoSetup):
    """The operator's way back from enabled: the tenant's SSO setup now, and what was done."""

    disabled: bool = Field(description="true when SSO was enabled and is now off")
    previous_status: Status
    message: str = Field(description="what was done, in a sentence for the support log")


class ScimToken(Answer):
    """A new SCIM secret token for Entra's provisioning settings; the previous one stops working."""

    scim_tenant_url: str = Field(json_schema_extra=_URI)
    secret_token: str = Field(min_length=32)
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class DefaultDepartment(Body):
    """`PUT …/default-department`: where SCIM-created employees without a department land."""

    model_config = ConfigDict(extra="ignore")
    refusal = BadRequest
    messages = {"department": tenants.DEPARTMENT_REQUIRED}

    department: str = Field(min_length=1, max_length=tenants.DEPARTMENT_MAX_CHARS, pattern=NOT_BLANK)


class SavedDepartment(Answer):
    department: str


class AdminKeyRotated(Answer):
    """The operator's rotation of a tenant's admin key: the new key, in plain form only here."""

    tenant_id: str
    admin_key: str = Field(min_length=32, description="The tenant's new admin key, shown once; the previous key "
                                                      "no longer works.")
    rotated_at: str = Field(json_schema_extra={"format": "date-time"})

