"""Bodies of the setup wizard's access endpoints (`shared_code/tenancy/setup_access.py`): the operator's setup link and
the wizard session a link's token opens. Whether a token is valid is the core's (403)."""
from __future__ import annotations

from pydantic import ConfigDict, Field

from shared_code.tenancy import setup_access
from shared_code.bodies import Answer, Body


class SetupLinkToken(Body):
    """`POST /setup/{tenant}/session`: the token from the setup link's fragment. Other members are ignored."""

    model_config = ConfigDict(extra="ignore")
    refusal = setup_access.SetupLinkRefused  # a link without a token is refused like any unusable link (403)
    messages = {"token": setup_access.NO_TOKEN}

    token: str = Field(min_length=1)


class SetupLink(Answer):
    """A one-time, expiring link to the setup wizard; its token is in the fragment, never sent to a server."""

    url: str = Field(json_schema_extra={"format": "uri"})
    expires_at: str = Field(json_schema_extra={"format": "date-time"})


class WizardSession(Answer):
    """The wizard session: its cookie is HttpOnly; the CSRF token goes in X-CSRF-Token on changes."""

    tenant_id: str
    csrf_token: str
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
