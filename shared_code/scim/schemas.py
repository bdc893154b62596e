"""What Gatehouse's SCIM server supports, declared once (RFC 7643 §7): the attribute definitions that
validation, filters and PATCH read, and the discovery documents built from them
(`/Schemas`, `/ResourceTypes`, `/ServiceProviderConfig`, RFC 7644 §4).

Only what is declared here is accepted; the documents describe exactly that. Left out on purpose:
`password` (employees sign in through SSO; Gatehouse never holds a password) and the User's read-only
`groups` (memberships are managed on the Group; Entra never reads them from the User).
"""
from __future__ import annotations

from dataclasses import dataclass

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# Entra puts this URN in the `schemas` of every group it creates; it declares no attributes.
ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

# Served page size cap (ServiceProviderConfig filter.maxResults); a larger `count` is treated as this.
MAX_RESULTS = 1000


@dataclass(frozen=True)
class Attribute:
    """One attribute definition (RFC 7643 §7 "attributes")."""

    name: str
    type: str = "string"  # string | boolean | complex | reference | binary | dateTime | integer | decimal
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"  # readOnly | readWrite | immutable | writeOnly
    returned: str = "default"  # always | never | default | request
    uniqueness: str = "none"  # none | server | global
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple["Attribute", ...] = ()
    description: str = ""

    def sub(self, name: str) -> "Attribute | None":
        """The sub-attribute called `name` (attribute names are case-insensitive, RFC 7643 §2.1)."""
        wanted = name.lower()
        for attribute in self.sub_attributes:
            if attribute.name.lower() == wanted:
                return attribute
        return None

    def to_scim(self) -> dict:
        document = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.canonical_values:
            document["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            document["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            document["subAttributes"] = [sub.to_scim() for sub in self.sub_attributes]
        return document


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        wanted = name.lower()
        for attribute in self.attributes:
            if attribute.name.lower() == wanted:
                return attribute
        return None

    def to_scim(self, base_url: str) -> dict:
        return {
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attribute.to_scim() for attribute in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.id}"},
        }


def _text(name: str, description: str = "", **kw) -> Attribute:
    return Attribute(name, "string", description=description, **kw)


def _flag(name: str, description: str = "", **kw) -> Attribute:
    return Attribute(name, "boolean", description=description, **kw)


def _multi(name: str, description: str, *subs: Attribute, canonical_types: tuple[str, ...] = ()) -> Attribute:
    """A multi-valued complex attribute with the usual `value`/`display`/`type`/`primary` shape."""
    return Attribute(name, "complex", multi_valued=True, description=description, sub_attributes=subs or (
        _text("value", f"The {name} value."),
        _text("display", "A human-readable name, primarily used for display purposes."),
        _text("type", "A label indicating the attribute's function.", canonical_values=canonical_types),
        _flag("primary", "Whether this is the preferred value; at most one value may be primary."),
    ))


def _read_only(name: str, description: str, **kw) -> Attribute:
    return Attribute(name, kw.pop("type", "string"), mutability="readOnly", description=description, **kw)


USER = Schema(CORE_USER, "User", "User Account", (
    _text("userName", "Unique identifier for the User, typically the Entra userPrincipalName. "
          "Unique within the tenant, compared case-insensitively.", required=True, uniqueness="server"),
    Attribute("name", "complex", description="The components of the user's real name.", sub_attributes=(
        _text("formatted", "The full name, formatted for display."),
        _text("familyName", "The family name (surname)."),
        _text("givenName", "The given (first) name."),
        _text("middleName", "The middle name(s)."),
        _text("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
        _text("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
    )),
    _text("displayName", "The name of the User, suitable for display to end-users."),
    _text("nickName", "The casual way to address the user."),
    Attribute("profileUrl", "reference", reference_types=("external",), description="A URI of the user's profile."),
    _text("title", "The user's title, such as 'Vice President'."),
    _text("userType", "The relationship between the organization and the user, e.g. 'Employee'."),
    _text("preferredLanguage", "The user's preferred written or spoken language, e.g. 'en-US'."),
    _text("locale", "The user's default location for localisation, e.g. 'en-US'."),
    _text("timezone", "The user's time zone, e.g. 'Europe/Berlin'."),
    _flag("active", "Whether the employee may work: false is a dismissal (no sign-in, admin rights dropped)."),
    _multi("emails", "Email addresses for the user. The one of type 'work' is the employee's work email.",
           canonical_types=("work", "home", "other")),
    _multi("phoneNumbers", "Phone numbers for the user, stored exactly as sent.",
           canonical_types=("work", "home", "mobile", "fax", "pager", "other")),
    _multi("ims", "Instant messaging addresses for the user.",
           canonical_types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
    Attribute("photos", "complex", multi_valued=True, description="URLs of photos of the user.", sub_attributes=(
        Attribute("value", "reference", reference_types=("external",), description="The URL of a photo."),
        _text("display", "A human-readable name, primarily used for display purposes."),
        _text("type", "A label indicating the photo's function.", canonical_values=("photo", "thumbnail")),
        _flag("primary", "Whether this is the preferred photo."),
    )),
    Attribute("addresses", "complex", multi_valued=True, description="Physical mailing addresses.", sub_attributes=(
        _text("formatted", "The full mailing address, formatted for display."),
        _text("streetAddress", "The full street address component."),
        _text("locality", "The city or locality component."),
        _text("region", "The state or region component."),
        _text("postalCode", "The zip code or postal code component."),
        _text("country", "The country name component."),
        _text("type", "A label indicating the address's function.", canonical_values=("work", "home", "other")),
        _flag("primary", "Whether this is the preferred address."),
    )),
    _multi("entitlements", "Entitlements for the user."),
    _multi("roles", "Roles for the user (Entra app role assignments)."),
    Attribute("x509Certificates", "complex", multi_valued=True, description="X.509 certificates of the user.",
              sub_attributes=(
                  Attribute("value", "binary", case_exact=True, description="The DER certificate, base64."),
                  _text("display", "A human-readable name, primarily used for display purposes."),
                  _text("type", "A label indicating the certificate's function."),
                  _flag("primary", "Whether this is the preferred certificate."),
              )),
))

ENTERPRISE = Schema(ENTERPRISE_USER, "EnterpriseUser", "Enterprise User", (
    _text("employeeNumber", "Numeric or alphanumeric identifier assigned to a person by the organization."),
    _text("costCenter", "Identifies the name of a cost center."),
    _text("organization", "Identifies the name of an organization."),
    _text("division", "Identifies the name of a division."),
    _text("department", "The employee's department. A user created without one lands in the tenant's "
          "default department."),
    Attribute("manager", "complex", description="The user's manager. Entra may send a bare id; it is returned as "
              "{value, $ref}. An empty string removes the manager.", sub_attributes=(
                  _text("value", "The id of the manager's User resource in this tenant."),
                  Attribute("$ref", "reference", reference_types=("User",), description="The URI of the manager."),
                  _read_only("displayName", "The manager's displayName (never returned by Gatehouse)."),
              )),
))

GROUP = Schema(CORE_GROUP, "Group", "Group", (
    _text("displayName", "A human-readable name for the Group, unique within the tenant "
          "(compared case-insensitively); Entra matches groups on it.", required=True, uniqueness="server"),
    Attribute("members", "complex", multi_valued=True, description="The users in the group. Only users can be "
              "members.", sub_attributes=(
                  Attribute("value", "string", mutability="immutable", description="The id of a member User."),
                  Attribute("$ref", "reference", mutability="immutable", reference_types=("User",),
                            description="The URI of the member User."),
                  Attribute("type", "string", mutability="immutable", canonical_values=("User",),
                            description="The type of the member; always 'User'."),
                  _read_only("display", "The member's name (ignored on input, never returned)."),
              )),
))

# Attributes every resource has (RFC 7643 §3.1); not listed in /Schemas but used by filters and validation.
COMMON = (
    Attribute("id", mutability="readOnly", returned="always", case_exact=True, uniqueness="server"),
    Attribute("externalId", case_exact=True, description="The identifier the provisioning client uses; for "
              "Entra users, the objectId that SAML sign-ins are matched on."),
    Attribute("meta", "complex", mutability="readOnly", sub_attributes=(
        Attribute("resourceType", mutability="readOnly", case_exact=True),
        Attribute("created", "dateTime", mutability="readOnly"),
        Attribute("lastModified", "dateTime", mutability="readOnly"),
        Attribute("location", "reference", mutability="readOnly", case_exact=True, reference_types=("uri",)),
        Attribute("version", mutability="readOnly", case_exact=True),
    )),
    Attribute("schemas", "reference", multi_valued=True, mutability="readOnly", case_exact=True,
              reference_types=("uri",)),
)


@dataclass(frozen=True)
class ResourceKind:
    """A resource type (RFC 7643 §6): its core schema and extensions."""

    name: str
    endpoint: str
    core: Schema
    extensions: tuple[Schema, ...] = ()
    key: str = "displayName"  # the attribute a client names it by (userName for a User); unique per tenant

    def schema_for(self, urn: str | None) -> Schema | None:
        if urn is None:
            return self.core
        for schema in (self.core, *self.extensions):
            if schema.id.lower() == urn.lower():
                return schema
        return None

    def common(self, name: str) -> Attribute | None:
        wanted = name.lower()
        return next((a for a in COMMON if a.name.lower() == wanted), None)

    def to_scim(self, base_url: str) -> dict:
        document = {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.core.description,
            "schema": self.core.id,
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/{self.name}"},
        }
        if self.extensions:
            document["schemaExtensions"] = [{"schema": s.id, "required": False} for s in self.extensions]
        return document


USER_KIND = ResourceKind("User", "/Users", USER, (ENTERPRISE,), key="userName")
GROUP_KIND = ResourceKind("Group", "/Groups", GROUP)
RESOURCE_KINDS = (USER_KIND, GROUP_KIND)


# The schemas that describe the discovery documents themselves (RFC 7643 §5-7); scim2-tester and strict
# clients expect them in /Schemas.
def _meta_schemas() -> tuple[Schema, ...]:
    ro = dict(mutability="readOnly")
    supported = _flag("supported", "Whether the operation is supported.", required=True, **ro)
    spc = Schema(SERVICE_PROVIDER_CONFIG_SCHEMA, "ServiceProviderConfig", "Service Provider Configuration", (
        Attribute("documentationUri", "reference", reference_types=("external",), **ro),
        Attribute("patch", "complex", required=True, sub_attributes=(supported,), **ro),
        Attribute("bulk", "complex", required=True, sub_attributes=(
            supported, Attribute("maxOperations", "integer", required=True, **ro),
            Attribute("maxPayloadSize", "integer", required=True, **ro)), **ro),
        Attribute("filter", "complex", required=True, sub_attributes=(
            supported, Attribute("maxResults", "integer", required=True, **ro)), **ro),
        Attribute("changePassword", "complex", required=True, sub_attributes=(supported,), **ro),
        Attribute("sort", "complex", required=True, sub_attributes=(supported,), **ro),
        Attribute("etag", "complex", required=True, sub_attributes=(supported,), **ro),
        Attribute("authenticationSchemes", "complex", multi_valued=True, required=True, sub_attributes=(
            _text("type", required=True, **ro), _text("name", required=True, **ro),
            _text("description", required=True, **ro),
            Attribute("specUri", "reference", reference_types=("external",), **ro),
            Attribute("documentationUri", "reference", reference_types=("external",), **ro),
            _flag("primary", **ro)), **ro),
    ))
    resource_type = Schema(RESOURCE_TYPE_SCHEMA, "ResourceType", "Specifies the schema that describes a SCIM "
                           "resource type", (
        _text("id", **ro), _text("name", required=True, **ro), _text("description", **ro),
        Attribute("endpoint", "reference", required=True, reference_types=("uri",), **ro),
        Attribute("schema", "reference", required=True, case_exact=True, reference_types=("uri",), **ro),
        Attribute("schemaExtensions", "complex", multi_valued=True, sub_attributes=(
            Attribute("schema", "reference", required=True, case_exact=True, reference_types=("uri",), **ro),
            _flag("required", required=True, **ro)), **ro),
    ))
    attribute_subs = (
        _text("name", required=True, case_exact=True, **ro),
        _text("type", required=True, canonical_values=("string", "complex", "boolean", "decimal", "integer",
                                                       "dateTime", "reference", "binary"), **ro),
        _flag("multiValued", required=True, **ro), _text("description", **ro), _flag("required", **ro),
        _text("canonicalValues", multi_valued=True, **ro), _flag("caseExact", **ro),
        _text("mutability", canonical_values=("readOnly", "readWrite", "immutable", "writeOnly"), **ro),
        _text("returned", canonical_values=("always", "never", "default", "request"), **ro),
        _text("uniqueness", canonical_values=("none", "server", "global"), **ro),
        _text("referenceTypes", multi_valued=True, **ro),
    )
    schema = Schema(SCHEMA_SCHEMA, "Schema", "Specifies the schema attribute", (
        _text("id", **ro), _text("name", **ro), _text("description", **ro),
        Attribute("attributes", "complex", multi_valued=True, required=True, sub_attributes=(
            *attribute_subs,
            Attribute("subAttributes", "complex", multi_valued=True, sub_attributes=attribute_subs, **ro),
        ), **ro),
    ))
    return spc, resource_type, schema


ALL_SCHEMAS = (USER, ENTERPRISE, GROUP, *_meta_schemas())


def service_provider_config(base_url: str) -> dict:
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "documentationUri": "https://learn.microsoft.com/entra/identity/app-provisioning/"
                            "use-scim-to-provision-users-and-groups",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Secret token",
            "description": "The tenant's SCIM secret token as 'Authorization: Bearer <token>' "
                           "(POST /api/tenants/{tenant}/scim/token issues one).",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": True,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url}/ServiceProviderConfig"},
    }


def schema_documents(base_url: str) -> list[dict]:
    return [schema.to_scim(base_url) for schema in ALL_SCHEMAS]


def schema_document(base_url: str, schema_id: str) -> dict | None:
    # Schema ids are URIs; compare them as clients may vary case in the URN namespace.
    return next((s.to_scim(base_url) for s in ALL_SCHEMAS if s.id.lower() == schema_id.lower()), None)


def resource_type_documents(base_url: str) -> list[dict]:
    return [kind.to_scim(base_url) for kind in RESOURCE_KINDS]


def resource_type_document(base_url: str, name: str) -> dict | None:
    return next((k.to_scim(base_url) for k in RESOURCE_KINDS if k.name.lower() == name.lower()), None)
