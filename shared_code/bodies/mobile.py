"""Bodies of the tenant admin's mobile endpoints (`shared_code/sign_in/mobile.py`). What Entra shows is checked against
the operator's app identifiers by `mobile.validate_mobile_config` (called from here, with its messages and
dotted `field` paths); the model says the shape the document can describe."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from shared_code.sign_in import mobile
from shared_code.bodies import Answer, Body, core_rule, may_be_left_out


class MsalAuthority(Body):
    """One authority of an MSAL configuration; the default one (or the first) must name your Entra tenant."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description='"AAD" for the default authority: your Microsoft Entra workforce tenant.')
    default: bool = may_be_left_out(description="At most one authority is the default.")


class MsalConfiguration(Body):
    """The MSAL Configuration Entra shows for the Android platform. Every key MSAL knows is kept; the ones
    Gatehouse checks are declared. Whether the redirect URI is the app's, the default authority names one
    organisation (not common, organizations, consumers or personal accounts), and so on, is a 422."""

    model_config = ConfigDict(extra="allow")

    client_id: str = Field(pattern=mobile._GUID.pattern, description="The Application (client) ID, a GUID.")
    redirect_uri: str = Field(description="msauth://<package name>/<URL-encoded signature hash>.")
    authorities: list[MsalAuthority] = Field(min_length=1)
    account_mode: Literal[mobile.ACCOUNT_MODES] = may_be_left_out()
    authorization_user_agent: Literal[mobile.AUTHORIZATION_USER_AGENTS] = may_be_left_out()
    broker_redirect_uri_registered: bool = may_be_left_out()


class MobileSetupUpdate(Body):
    """`PUT …/mobile`: ios_redirect_uri, msal_configuration or both; parts not sent keep their stored value."""

    # Parse with context= the operator's app identifiers (validate_mobile_config's keyword arguments).
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["ios_redirect_uri"]},
                                                           {"required": ["msal_configuration"]}]})

    ios_redirect_uri: str = may_be_left_out(description="The Redirect URI Entra shows for iOS / macOS.")
    msal_configuration: MsalConfiguration | str = may_be_left_out(
        description="The MSAL Configuration Entra shows for Android: the object, or its JSON text (at most "
                    f"{mobile.MSAL_CONFIGURATION_MAX_BYTES // 1024} KiB).")
    ios_bundle_id: str = may_be_left_out(description="Echoed identifiers must be the app's.")
    android_package_name: str = may_be_left_out(description="Echoed identifiers must be the app's.")
    android_signature_hash: str = may_be_left_out(description="Echoed identifiers must be the app's.")
    _update: mobile.MobileConfig = PrivateAttr()

    @model_validator(mode="wrap")
    @classmethod
    def _checked_against_the_apps(cls, data: Any, handler, info) -> "MobileSetupUpdate":
        # The core's checks first: they know which message helps (a null part, an Android URI pasted for iOS, …).
        update = core_rule(mobile.validate_mobile_config, data, **(info.context or {}))
        model = handler(data)
        model._update = update
        return model

    @property
    def update(self) -> mobile.MobileConfig:
        """The validated parts (None where not sent): merge with `MobileConfig.merged_over`."""
        return self._update


class MobileSetup(Answer):
    """The stored mobile settings (nulls until configured) and the app identifiers to enter in Entra."""

    ios_redirect_uri: str | None
    msal_configuration: dict[str, Any] | None
    configured: dict[str, bool] = Field(description="ios and android: whether the app can be served its settings.")
    config_urls: dict[str, str] = Field(description="ios and android: where the app reads its settings.")
    operator_identifiers: dict[str, dict[str, str | None]] = Field(
        description="ios (bundle_id, redirect_uri) and android (package_name, signature_hash, redirect_uri): "
                    "what to enter in the Entra app registration.")


class TokenExchangeEndpoint(Answer):
    """Where the app trades the Entra ID token MSAL gave it for the product's tokens (RFC 8693 at the tenant's
    OpenID Provider)."""

    issuer: str = Field(json_schema_extra={"format": "uri"})
    token_endpoint: str = Field(json_schema_extra={"format": "uri"})
    grant_type: Literal["urn:ietf:params:oauth:grant-type:token-exchange"]
    subject_token_type: Literal["urn:ietf:params:oauth:token-type:id_token"]


class IosAppConfig(Answer):
    """What the iOS app reads (`?platform=ios`): the values `MSALPublicClientApplicationConfig` needs."""

    client_id: str
    redirect_uri: str
    authority: str = Field(json_schema_extra={"format": "uri"})
    bundle_id: str
    token_exchange: TokenExchangeEndpoint


class AndroidAppConfig(Answer):
    """What the Android app reads (`?platform=android`): the MSAL for Android configuration file as Entra showed
    it, with MSAL's defaults made explicit; every other key MSAL knows is kept."""

    model_config = ConfigDict(extra="allow")

    client_id: str
    redirect_uri: str
    authorities: list[dict[str, Any]]
    authorization_user_agent: Literal[mobile.AUTHORIZATION_USER_AGENTS]
    account_mode: Literal[mobile.ACCOUNT_MODES]
    token_exchange: TokenExchangeEndpoint
    broker_redirect_uri_registered: bool
