"""Mobile sign-in: the MSAL settings the iOS and Android apps need for one tenant.

The operator publishes the apps, so the iOS bundle ID and the Android package name and signature hash
are operator settings (`MOBILE_IOS_BUNDLE_ID`, `MOBILE_ANDROID_PACKAGE_NAME`,
`MOBILE_ANDROID_SIGNATURE_HASH`). The tenant admin enters them in the Entra app registration
(Authentication → Add a platform), then pastes back what Entra shows: the iOS redirect URI and the
Android "MSAL Configuration" JSON. `validate_mobile_config` checks those against the operator's
identifiers, `platform_config` turns the result into what `GET /api/mobile/{tenant}/config` serves.

Partial updates: `validate_mobile_config` validates only the parts present in the payload and leaves
the others `None`; the caller merges with what it stored:

    update = validate_mobile_config(body, ios_bundle_id=..., android_package_name=...,
                                    android_signature_hash=...)
    config = update.merged_over(MobileConfig.from_record(stored) if stored else None)
    store(config.to_record())

Pure functions and dataclasses: the caller stores and serves.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from shared_code.directory.domains import idna, validate_hostname  # idna: imported on first use
from shared_code.platform.errors import BadRequest, Conflict, NotFound, Unprocessable

MSAL_CONFIGURATION_MAX_BYTES = 16 * 1024

# Values MSAL for Android accepts (its enums are read case-sensitively).
ACCOUNT_MODES = ("SINGLE", "MULTIPLE")
AUTHORIZATION_USER_AGENTS = ("DEFAULT", "BROWSER", "WEBVIEW")

# MSAL for Android's own defaults (msal_default_config.json), made explicit in what we serve so the
# app never depends on which MSAL version fills them in.
_ANDROID_DEFAULTS = {
    "authorization_user_agent": "DEFAULT",
    "account_mode": "MULTIPLE",
    "broker_redirect_uri_registered": False,
}

# Microsoft Entra sign-in hosts (public cloud and its aliases, US Government, China).
ENTRA_LOGIN_HOSTS = frozenset({
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net",
    "login.microsoftonline.us", "login.partner.microsoftonline.cn", "login.chinacloudapi.cn",
})
DEFAULT_LOGIN_HOST = "login.microsoftonline.com"

# Tenant aliases that name no single organisation: accepting them would let accounts from any
# organisation (or personal Microsoft accounts) sign in to this tenant's app.
_TENANT_ALIASES = {"common", "organizations", "consumers"}
# The tenant that holds every personal Microsoft account (MSAL calls it the MSA "mega tenant").
_PERSONAL_ACCOUNTS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

_PAYLOAD_PARTS = ("ios_redirect_uri", "msal_configuration")
# The operator's identifiers may be echoed back by the setup page; they must then match.
_ECHOED_IDENTIFIERS = ("ios_bundle_id", "android_package_name", "android_signature_hash")


@dataclass(frozen=True)
class MobileConfig:
    """A tenant's mobile sign-in settings, as validated. A part is None until the admin supplies it.

    `msal_configuration` is the JSON object pasted from Entra, every key kept (MSAL has many optional
    ones); treat it as read-only.
    """

    ios_redirect_uri: str | None = None
    msal_configuration: dict[str, Any] | None = None

    @property
    def client_id(self) -> str | None:
        """The app registration's Application (client) ID."""
        return self.msal_configuration["client_id"] if self.msal_configuration else None

    @property
    def tenant(self) -> str | None:
        """The customer's Entra tenant (a GUID or a verified domain) named by the default authority."""
        if not self.msal_configuration:
            return None
        return _authority_target(self.msal_configuration)[1]

    @property
    def authority_url(self) -> str | None:
        """`https://login.microsoftonline.com/<tenant>` (or the authority's own cloud host)."""
        if not self.msal_configuration:
            return None
        host, tenant = _authority_target(self.msal_configuration)
        return f"https://{host}/{_ascii_tenant(tenant)}"

    def merged_over(self, stored: MobileConfig | None) -> MobileConfig:
        """This update applied to what was stored: parts sent now win, parts not sent are kept."""
        if stored is None:
            return self
        return MobileConfig(
            ios_redirect_uri=self.ios_redirect_uri if self.ios_redirect_uri is not None else stored.ios_redirect_uri,
            msal_configuration=(self.msal_configuration if self.msal_configuration is not None
                                else stored.msal_configuration),
        )

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready copy for storage."""
        return {"ios_redirect_uri": self.ios_redirect_uri,
                "msal_configuration": copy.deepcopy(self.msal_configuration)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> MobileConfig:
        """Read back what `to_record` produced (already validated when it was stored)."""
        return cls(ios_redirect_uri=record.get("ios_redirect_uri"),
                   msal_configuration=copy.deepcopy(record.get("msal_configuration")))


# --- operator identifiers ---------------------------------------------------------------------------

def ios_redirect_uri_for(bundle_id: str) -> str:
    """The redirect URI MSAL for iOS expects for a bundle ID (it compares it exactly, case included)."""
    return f"msauth.{bundle_id}://auth"


def android_redirect_uri_for(package_name: str, signature_hash: str) -> str:
    """The redirect URI Entra shows and MSAL for Android expects: the base64 hash URL-encoded."""
    return f"msauth://{package_name}/{quote(_raw_signature_hash(signature_hash), safe='')}"


def operator_identifiers(settings: Any) -> dict[str, dict[str, str | None]]:
    """What the tenant admin copies into Entra's app registration, from the operator's settings.

    `settings` is a `shared_code.platform.settings.Settings` (or anything with its three `mobile_*` attributes).
    A value the operator has not set is None, and so is any redirect URI derived from it.
    """
    bundle_id = (settings.mobile_ios_bundle_id or "").strip() or None
    package = (settings.mobile_android_package_name or "").strip() or None
    signature = _raw_signature_hash(settings.mobile_android_signature_hash or "") or None
    return {
        "ios": {
            "bundle_id": bundle_id,
            "redirect_uri": ios_redirect_uri_for(bundle_id) if bundle_id else None,
        },
        "android": {
            "package_name": package,
            "signature_hash": signature,
            "redirect_uri": android_redirect_uri_for(package, signature) if package and signature else None,
        },
    }


def _raw_signature_hash(value: str) -> str:
    # The operator may have pasted the hash already URL-encoded (as it appears in the redirect URI);
    # base64 never contains '%', so decoding is safe and makes both forms equal.
    value = value.strip()
    return unquote(value) if "%" in value else value


# --- validation -------------------------------------------------------------------------------------

def validate_mobile_config(payload: dict, *, ios_bundle_id: str, android_package_name: str,
                           android_signature_hash: str, entra_tenant_id: str | None = None) -> MobileConfig:
    """Validate the tenant admin's `PUT /api/tenants/{tenant}/mobile` body against the operator's identifiers.

    The body holds `ios_redirect_uri`, `msal_configuration` (an object or a JSON string of one), or both;
    it may also echo `ios_bundle_id`, `android_package_name`, `android_signature_hash`, which must then
    equal the operator's. Parts not sent are None in the result: merge with `MobileConfig.merged_over`.
    Every error is `Unprocessable` with `field` a dotted path such as `msal_configuration.redirect_uri`.
    `entra_tenant_id` (the tenant's own Entra tenant, from its connected IdP) is the only tenant an authority
    may name when it is known.
    """
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object with ios_redirect_uri, msal_configuration or both.")
    unknown = sorted(set(payload) - set(_PAYLOAD_PARTS) - set(_ECHOED_IDENTIFIERS))
    if unknown:
        raise Unprocessable(f"Unknown field {unknown[0]!r}: expected ios_redirect_uri and/or msal_configuration.",
                            field=unknown[0])
    _check_echoed_identifiers(payload, ios_bundle_id, android_package_name, android_signature_hash)
    if not any(part in payload for part in _PAYLOAD_PARTS):
        raise Unprocessable("Send ios_redirect_uri, msal_configuration or both: the values Entra shows after you "
                            "add the iOS and Android platforms to the app registration.")
    for part in _PAYLOAD_PARTS:
        if part in payload and payload[part] is None:
            raise Unprocessable(f"{part} is null: to keep the stored value, leave the field out.", field=part)

    ios_redirect_uri = None
    if "ios_redirect_uri" in payload:
        ios_redirect_uri = _validate_ios_redirect_uri(payload["ios_redirect_uri"], ios_bundle_id)
    msal_configuration = None
    if "msal_configuration" in payload:
        msal_configuration = _validate_msal_configuration(payload["msal_configuration"], android_package_name,
                                                          android_signature_hash, entra_tenant_id)
    return MobileConfig(ios_redirect_uri=ios_redirect_uri, msal_configuration=msal_configuration)


def _check_echoed_identifiers(payload: dict, ios_bundle_id: str, android_package_name: str,
                              android_signature_hash: str) -> None:
    expected = {"ios_bundle_id": ios_bundle_id.strip(), "android_package_name": android_package_name.strip(),
                "android_signature_hash": _raw_signature_hash(android_signature_hash)}
    for name in _ECHOED_IDENTIFIERS:
        if name not in payload:
            continue
        sent = payload[name]
        given = _raw_signature_hash(sent) if name == "android_signature_hash" and isinstance(sent, str) else sent
        if isinstance(given, str):
            given = given.strip()
        if given != expected[name]:
            raise Unprocessable(f"{name} is fixed by the app's publisher: expected {expected[name]!r}, got "
                                f"{_shown(sent)}. Use the publisher's value in Entra too.", field=name)


def _validate_ios_redirect_uri(value: Any, bundle_id: str) -> str:
    field = "ios_redirect_uri"
    bundle_id = bundle_id.strip()
    if not bundle_id:
        raise Unprocessable("The operator has not set MOBILE_IOS_BUNDLE_ID, so the iOS redirect URI cannot be "
                            "checked: ask the operator to set it.", field=field)
    if not isinstance(value, str):
        raise Unprocessable(f"ios_redirect_uri must be a string, the Redirect URI Entra shows for iOS / macOS "
                            f"(expected {ios_redirect_uri_for(bundle_id)}).", field=field)
    got = value.strip()  # surrounding spaces are copy-and-paste noise, never part of a URI
    expected = ios_redirect_uri_for(bundle_id)
    if got == expected:
        return got
    hint = ""
    if got.lower() == expected.lower():
        hint = (" Only the letter case differs, and MSAL for iOS compares it exactly: enter the bundle ID in Entra "
                f"as {bundle_id}.")
    elif got.rstrip("/") == expected:
        hint = " Remove the trailing slash."
    elif got.startswith("msauth://"):
        hint = " That is an Android redirect URI; the iOS one starts with msauth. followed by the bundle ID."
    elif got.startswith("msauth.") and got.endswith("://auth"):
        hint = f" The bundle ID in it is not the app's: enter {bundle_id} as the iOS bundle ID in Entra."
    raise Unprocessable(f"expected {expected}, got {_shown(got)}.{hint}", field=field)


def _validate_msal_configuration(value: Any, package_name: str, signature_hash: str,
                                 entra_tenant_id: str | None = None) -> dict[str, Any]:
    config = _parse_msal_configuration(value)
    _validate_client_id(config)
    _validate_android_redirect_uri(config, package_name, signature_hash)
    _validate_enum(config, "account_mode", ACCOUNT_MODES)
    _validate_enum(config, "authorization_user_agent", AUTHORIZATION_USER_AGENTS)
    if "broker_redirect_uri_registered" in config and not isinstance(config["broker_redirect_uri_registered"], bool):
        raise Unprocessable("broker_redirect_uri_registered must be true or false (without quotes), got "
                            f"{_shown(config['broker_redirect_uri_registered'])}.",
                            field="msal_configuration.broker_redirect_uri_registered")
    _validate_authorities(config, entra_tenant_id)
    _refuse_pii_logging(config)
    return config


def _refuse_pii_logging(config: dict[str, Any]) -> None:
    """MSAL's `logging.pii_enabled` writes employees' names, addresses and tokens' contents to the device log."""
    logging_config = config.get("logging")
    if isinstance(logging_config, dict) and logging_config.get("pii_enabled") not in (None, False):
        raise Unprocessable('pii_enabled must be false (or left out): it makes MSAL write employees\' personal data '
                            "to the device log.", field="msal_configuration.logging.pii_enabled")


def _parse_msal_configuration(value: Any) -> dict[str, Any]:
    field = "msal_configuration"
    what = "the JSON object Entra shows under MSAL Configuration for the Android platform"
    if isinstance(value, str):
        size = len(value.encode("utf-8"))
        if size > MSAL_CONFIGURATION_MAX_BYTES:
            raise Unprocessable(f"msal_configuration is {size} bytes; at most {MSAL_CONFIGURATION_MAX_BYTES} "
                                "(16 KiB) are accepted.", field=field)
        try:
            parsed = json.loads(value, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            # `//` after a colon is a URI (msauth://, https://); elsewhere it starts a comment copied from docs.
            has_comment = re.search(r"(^|[\s,{\[])//", value, re.MULTILINE) is not None
            hint = " Remove the // comments: JSON has none." if has_comment else ""
            raise Unprocessable(f"msal_configuration is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                                f"{exc.msg}). Paste {what}, from the first {{ to the last }}.{hint}",
                                field=field) from None
        except ValueError as exc:
            raise Unprocessable(f"msal_configuration is not valid JSON: {exc}.", field=field) from None
        except RecursionError:  # thousands of "[": the parser's stack, not a 500
            raise Unprocessable("msal_configuration nests JSON too deeply to be an MSAL configuration.",
                                field=field) from None
    else:
        parsed = value
    if not isinstance(parsed, dict):
        raise Unprocessable(f"msal_configuration must be {what}, got {type(parsed).__name__}.", field=field)
    try:
        size = len(json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    except (TypeError, ValueError):
        raise Unprocessable(f"msal_configuration must be {what}.", field=field) from None
    if size > MSAL_CONFIGURATION_MAX_BYTES:
        raise Unprocessable(f"msal_configuration is {size} bytes; at most {MSAL_CONFIGURATION_MAX_BYTES} "
                            "(16 KiB) are accepted.", field=field)
    return copy.deepcopy(parsed)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Which copy MSAL would use is up to its JSON reader; refuse rather than guess.
            raise ValueError(f"the key {key!r} appears twice in one object; keep one")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _validate_client_id(config: dict[str, Any]) -> None:
    field = "msal_configuration.client_id"
    value = config.get("client_id")
    if value is None:
        raise Unprocessable("client_id is missing: expected the Application (client) ID of the app registration, "
                            "a GUID like 8f2d6c1e-0a4b-4c7d-9e3f-2b1a0c9d8e7f.", field=field)
    if not isinstance(value, str) or not _GUID.match(value):
        raise Unprocessable("expected the Application (client) ID of the app registration, a GUID like "
                            f"8f2d6c1e-0a4b-4c7d-9e3f-2b1a0c9d8e7f, got {_shown(value)}.", field=field)


def _validate_android_redirect_uri(config: dict[str, Any], package_name: str, signature_hash: str) -> None:
    field = "msal_configuration.redirect_uri"
    package_name = package_name.strip()
    raw_hash = _raw_signature_hash(signature_hash)
    if not package_name or not raw_hash:
        missing = "MOBILE_ANDROID_PACKAGE_NAME" if not package_name else "MOBILE_ANDROID_SIGNATURE_HASH"
        raise Unprocessable(f"The operator has not set {missing}, so the Android redirect URI cannot be checked: "
                            "ask the operator to set it.", field=field)
    expected = android_redirect_uri_for(package_name, raw_hash)
    got = config.get("redirect_uri")
    if got is None:
        raise Unprocessable(f"redirect_uri is missing: expected {expected}.", field=field)
    if not isinstance(got, str):
        raise Unprocessable(f"expected {expected}, got {_shown(got)}.", field=field)
    if got == expected:
        return
    hint = ""
    if got == f"msauth://{package_name}/{raw_hash}":
        hint = (" The signature hash must be URL-encoded, as Entra shows it in the MSAL configuration "
                "(+ as %2B, / as %2F, = as %3D); copy the redirect URI from there.")
    elif got.startswith("msauth://") and unquote(got) == unquote(expected):
        hint = " Encode the hash exactly as Entra does, with upper-case hex (%2B, %2F, %3D)."
    elif got.startswith("msauth://"):
        sent_package, _, sent_hash = got[len("msauth://"):].partition("/")
        if sent_package != package_name:
            hint = f" The package name in it is not the app's: enter {package_name} as the package name in Entra."
        elif unquote(sent_hash) != raw_hash:
            hint = f" The signature hash in it is not the app's: enter {raw_hash} as the signature hash in Entra."
    elif got.startswith("msauth."):
        hint = " That is the iOS redirect URI; the Android one is in the MSAL configuration Entra shows for Android."
    raise Unprocessable(f"expected {expected}, got {_shown(got)}.{hint}", field=field)


def _validate_enum(config: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    if key not in config:
        return  # optional in MSAL; Entra's pasted configuration omits account_mode
    value = config[key]
    if value in allowed:
        return
    hint = ""
    if isinstance(value, str) and value.strip().upper() in allowed:
        hint = f" MSAL reads it case-sensitively: write {value.strip().upper()}."
    raise Unprocessable(f"{key} must be one of {', '.join(allowed)}, got {_shown(value)}.{hint}",
                        field=f"msal_configuration.{key}")


def _validate_authorities(config: dict[str, Any], entra_tenant_id: str | None = None) -> None:
    field = "msal_configuration.authorities"
    authorities = config.get("authorities")
    if authorities is None:
        raise Unprocessable("authorities is missing: expected the list Entra shows, such as "
                            '[{"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": "<your tenant ID>"}}].',
                            field=field)
    if not isinstance(authorities, list) or not authorities:
        raise Unprocessable("authorities must be a non-empty list naming your Entra tenant, such as "
                            '[{"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": "<your tenant ID>"}}].',
                            field=field)
    default_index = None
    for i, authority in enumerate(authorities):
        path = f"{field}[{i}]"
        if not isinstance(authority, dict):
            raise Unprocessable(f"each authority must be an object with a type, such as "
                                f'{{"type": "AAD", ...}}; got {_shown(authority)}.', field=path)
        if not isinstance(authority.get("type"), str):
            raise Unprocessable('type is missing: expected "AAD".', field=f"{path}.type")
        if "default" in authority:
            if not isinstance(authority["default"], bool):
                raise Unprocessable(f"default must be true or false, got {_shown(authority['default'])}.",
                                    field=f"{path}.default")
            if authority["default"]:
                if default_index is not None:
                    raise Unprocessable(f'Only one authority may have "default": true; authorities[{default_index}] '
                                        "already has it.", field=f"{path}.default")
                default_index = i
    # Every authority, not only the default: MSAL signs in through any listed one when asked to, so a second
    # authority for personal accounts, another organisation or anyone's B2C host would let strangers in.
    for i, authority in enumerate(authorities):
        named = _validate_default_authority(authority, f"{field}[{i}]")
        if entra_tenant_id and named.lower() != entra_tenant_id.lower():
            raise Unprocessable(f"The authority names tenant {_shown(named)}, but this tenant's Entra tenant (from "
                                f"its connected IdP) is {entra_tenant_id}: copy the MSAL configuration of the app "
                                "registration in your own Entra tenant.", field=f"{field}[{i}]")


def _validate_default_authority(authority: dict[str, Any], path: str) -> str:
    """Check one authority (each one, despite the name); returns the tenant it names."""
    if authority["type"] != "AAD":
        raise Unprocessable(f'expected type "AAD" (your Microsoft Entra workforce tenant), got {_shown(authority["type"])}: '
                            "Gatehouse signs in your employees, not B2C or external-ID customers.", field=f"{path}.type")
    audience_tenant = None
    if "audience" in authority:
        audience_tenant = _validate_audience(authority["audience"], f"{path}.audience")
    url_tenant = None
    if "authority_url" in authority:
        url_tenant = _validate_authority_url(authority["authority_url"], f"{path}.authority_url")
    if audience_tenant is None and url_tenant is None:
        raise Unprocessable('The authority must name your Entra tenant: expected "audience": {"type": "AzureADMyOrg", '
                            '"tenant_id": "<your tenant ID>"} or "authority_url": '
                            '"https://login.microsoftonline.com/<your tenant ID>".', field=path)
    if audience_tenant is not None and url_tenant is not None and audience_tenant.lower() != url_tenant.lower():
        raise Unprocessable(f"authority_url names tenant {url_tenant} but audience.tenant_id names {audience_tenant}: "
                            "they must be the same tenant.", field=f"{path}.authority_url")
    return audience_tenant or url_tenant


def _validate_audience(audience: Any, path: str) -> str:
    if not isinstance(audience, dict):
        raise Unprocessable('expected an object such as {"type": "AzureADMyOrg", "tenant_id": "<your tenant ID>"}, '
                            f"got {_shown(audience)}.", field=path)
    audience_type = audience.get("type")
    if audience_type != "AzureADMyOrg":
        if audience_type in ("AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"):
            raise Unprocessable(f'expected "AzureADMyOrg", got "{audience_type}", which lets accounts from outside your '
                                "organisation sign in. In Entra, set the app registration's Supported account types "
                                "to 'Accounts in this organizational directory only' and copy the MSAL configuration "
                                "again.", field=f"{path}.type")
        raise Unprocessable(f'expected "AzureADMyOrg", got {_shown(audience_type)}.', field=f"{path}.type")
    if "tenant_id" not in audience:
        hint = " MSAL reads tenant_id, with an underscore; rename tenantId." if "tenantId" in audience else ""
        raise Unprocessable("tenant_id is missing: expected your Directory (tenant) ID, a GUID, or one of your "
                            f"verified domains.{hint}", field=f"{path}.tenant_id")
    return _validate_tenant(audience["tenant_id"], f"{path}.tenant_id")


def _validate_authority_url(value: Any, path: str) -> str:
    example = "https://login.microsoftonline.com/<your tenant ID>"
    if not isinstance(value, str):
        raise Unprocessable(f"expected a URL like {example}, got {_shown(value)}.", field=path)
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise Unprocessable(f"expected a URL like {example}, got {_shown(value)}.", field=path) from None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or host not in ENTRA_LOGIN_HOSTS or port is not None or parts.username \
            or parts.password or parts.query or parts.fragment:
        raise Unprocessable(f"expected a Microsoft Entra sign-in URL like {example}, got {_shown(value)}.", field=path)
    segments = parts.path.strip("/").split("/")
    if len(segments) != 1 or not segments[0]:
        raise Unprocessable(f"expected exactly one path part, your tenant, as in {example}; got {_shown(value)}.",
                            field=path)
    return _validate_tenant(unquote(segments[0]), path)


def _validate_tenant(value: Any, path: str) -> str:
    what = "your Directory (tenant) ID from Entra's Overview page (a GUID) or one of your verified domains"
    if not isinstance(value, str) or not value.strip():
        raise Unprocessable(f"expected {what}, got {_shown(value)}.", field=path)
    tenant = value.strip()
    if tenant.lower() in _TENANT_ALIASES:
        raise Unprocessable(f'"{tenant}" is not one tenant: it lets accounts from other organisations sign in. '
                            f"Expected {what}.", field=path)
    if _GUID.match(tenant):
        if tenant.lower() == _PERSONAL_ACCOUNTS_TENANT:
            raise Unprocessable(f"{tenant} is the tenant of personal Microsoft accounts, not your organisation's. "
                                f"Expected {what}.", field=path)
        return tenant
    if re.fullmatch(r"[0-9a-fA-F-]{30,}", tenant):
        raise Unprocessable(f"{tenant!r} is not a well-formed GUID: expected 8-4-4-4-12 hex digits, like "
                            "8f2d6c1e-0a4b-4c7d-9e3f-2b1a0c9d8e7f.", field=path)
    try:
        validate_hostname(tenant, path)
    except Unprocessable as exc:
        raise Unprocessable(f"expected {what}; {exc.message}", field=path) from None
    return tenant


def _authority_target(config: dict[str, Any]) -> tuple[str, str]:
    """(sign-in host, tenant) of the default authority of an already validated configuration."""
    authorities = config["authorities"]
    authority = next((a for a in authorities if a.get("default") is True), authorities[0])
    if "authority_url" in authority:
        parts = urlsplit(authority["authority_url"].strip())
        return (parts.hostname or DEFAULT_LOGIN_HOST).lower(), unquote(parts.path.strip("/"))
    return DEFAULT_LOGIN_HOST, authority["audience"]["tenant_id"].strip()


def _ascii_tenant(tenant: str) -> str:
    if _GUID.match(tenant):
        return tenant
    try:
        return idna.encode(tenant, uts46=True).decode("ascii")
    except idna.IDNAError:
        return tenant


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# --- serving ----------------------------------------------------------------------------------------

def platform_config(config: MobileConfig | None, platform: str, *, ios_bundle_id: str, android_package_name: str,
                    android_signature_hash: str, token_exchange: dict[str, str] | None = None) -> dict[str, Any]:
    """What `GET /api/mobile/{tenant}/config?platform=ios|android` serves to the app.

    android: the MSAL for Android configuration file, as stored, with MSAL's defaults made explicit.
    ios: what `MSALPublicClientApplicationConfig` needs: client_id, redirect_uri, authority, bundle_id.
    With `token_exchange` (where and how the app trades the Entra ID token for the product's tokens: issuer,
    token_endpoint, grant_type, subject_token_type) both also carry it under that key; MSAL ignores keys it
    does not know.
    Raises BadRequest for an unknown platform, NotFound until the admin has supplied that platform's
    part, and Conflict when the operator's identifiers changed since (the admin must update Entra).
    """
    if platform not in ("ios", "android"):
        raise BadRequest(f"platform must be ios or android, got {_shown(platform)}.", field="platform")
    if config is None or config.msal_configuration is None:
        raise NotFound("Mobile sign-in is not set up for this organisation yet: its administrator has not pasted the "
                       "MSAL configuration from Microsoft Entra.")
    msal = config.msal_configuration
    if platform == "android":
        expected = android_redirect_uri_for(android_package_name.strip(), android_signature_hash)
        if msal.get("redirect_uri") != expected:
            raise Conflict("The Android app's identity changed since the administrator set up mobile sign-in: the "
                           f"redirect URI in Entra must now be {expected}. The administrator must update it and paste "
                           "the MSAL configuration again.", field="msal_configuration.redirect_uri")
        return {**_ANDROID_DEFAULTS, **copy.deepcopy(msal), **_exchange_part(token_exchange)}
    if config.ios_redirect_uri is None:
        raise NotFound("Mobile sign-in for iOS is not set up for this organisation yet: its administrator has not "
                       "confirmed the iOS redirect URI from Microsoft Entra.")
    bundle_id = ios_bundle_id.strip()
    expected = ios_redirect_uri_for(bundle_id)
    if config.ios_redirect_uri != expected:
        raise Conflict("The iOS app's bundle ID changed since the administrator set up mobile sign-in: the redirect "
                       f"URI in Entra must now be {expected}. The administrator must update it.",
                       field="ios_redirect_uri")
    return {
        "client_id": msal["client_id"],
        "redirect_uri": expected,
        "authority": config.authority_url,
        "bundle_id": bundle_id,
        **_exchange_part(token_exchange),
    }


def _exchange_part(token_exchange: dict[str, str] | None) -> dict[str, Any]:
    return {"token_exchange": dict(token_exchange)} if token_exchange else {}


def config_etag(document: dict[str, Any]) -> str:
    """A strong ETag (quoted) for a served document: sha256 of its canonical JSON.

    Canonical means sorted keys, no insignificant whitespace, UTF-8, so equal documents always
    get equal tags whatever order their keys were built in.
    """
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return '"' + hashlib.sha256(canonical.encode("utf-8")).hexdigest() + '"'
