"""Bodies of the admin's "Check now" (`shared_code/tenancy/idp_connection.py`) and of the self-check link
(`shared_code/sign_in/service.py`). Whether the metadata can be used (reachable, signed, unexpired, one field and not
both) is decided by `idp_connection.read_metadata`: a 422 JSON Schema cannot describe."""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from shared_code.bodies import Answer, Body
from shared_code.tenancy.idp_connection import MAX_URL_CHARS

Status = Literal["draft", "testing", "enabled"]


class IdpMetadataSource(Body):
    """`POST …/sso/idp-metadata`: exactly one of metadata_url and metadata_xml. Other members are ignored."""

    model_config = ConfigDict(extra="ignore")
    messages = {"metadata_url": "metadata_url must be the App Federation Metadata Url, a https:// address.",
                "metadata_xml": "metadata_xml must be the text of the Federation Metadata XML file."}

    metadata_url: str | None = Field(None, max_length=MAX_URL_CHARS,
                                     description="The App Federation Metadata Url from Entra (https://).")
    metadata_xml: str | None = Field(None, description="The downloaded Federation Metadata XML, as text.")


class Certificate(Answer):
    sha256: str
    not_after: str = Field(json_schema_extra={"format": "date-time"})


class IdpConnection(Answer):
    """The identity provider the tenant is now connected to."""

    connection: Literal["established"]
    idp_entity_id: str
    sso_url: str
    entra_tenant_id: str | None = None
    certificates: list[Certificate]
    checked_at: str = Field(json_schema_extra={"format": "date-time"})
    status: Status


class SelfCheckLink(Answer):
    """A one-time self-check sign-in link for the admin."""

    url: str = Field(json_schema_extra={"format": "uri"})
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    hint: str = ""
