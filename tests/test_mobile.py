"""Mobile sign-in: what the tenant admin pastes from Entra, how it is checked, and what the apps are served."""
from __future__ import annotations

import json

import pytest

from shared_code.platform.errors import BadRequest, Conflict, NotFound, Unprocessable
from shared_code.sign_in.mobile import (MSAL_CONFIGURATION_MAX_BYTES, MobileConfig, config_etag, operator_identifiers,
                                platform_config, validate_mobile_config)
from shared_code.platform.settings import Settings

BUNDLE_ID = "com.contoso.Gatehouse"
PACKAGE = "com.contoso.gatehouse"
# Base64 SHA-1 of the signing certificate, as `keytool ... | openssl sha1 -binary | openssl base64` prints it:
# it contains all three characters that Entra URL-encodes in the redirect URI.
SIGNATURE_HASH = "kK4vhd+2BkdKuzQ3X4yfySe7T/E="
ENCODED_HASH = "kK4vhd%2B2BkdKuzQ3X4yfySe7T%2FE%3D"
ANDROID_REDIRECT_URI = f"msauth://{PACKAGE}/{ENCODED_HASH}"
IOS_REDIRECT_URI = f"msauth.{BUNDLE_ID}://auth"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db46"

IDENTIFIERS = {"ios_bundle_id": BUNDLE_ID, "android_package_name": PACKAGE, "android_signature_hash": SIGNATURE_HASH}

# Exactly what Entra's portal shows under Authentication → Android → "MSAL Configuration" for a
# single-tenant app registration (note: no account_mode, no "default" on the authority).
ENTRA_ANDROID_MSAL_CONFIGURATION = f"""{{
  "client_id" : "{CLIENT_ID}",
  "authorization_user_agent" : "DEFAULT",
  "redirect_uri" : "{ANDROID_REDIRECT_URI}",
  "broker_redirect_uri_registered": true,
  "authorities" : [
    {{
      "type": "AAD",
      "audience": {{
        "type": "AzureADMyOrg",
        "tenant_id": "{TENANT_ID}"
      }}
    }}
  ]
}}"""


REMOVED = object()


def entra_configuration(**changes) -> dict:
    """Entra's configuration as an object, with top-level keys changed (REMOVED removes a key)."""
    config = json.loads(ENTRA_ANDROID_MSAL_CONFIGURATION)
    for key, value in changes.items():
        if value is REMOVED:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def with_authority(**authority) -> dict:
    return entra_configuration(authorities=[authority])


def validate(payload: dict, **identifiers) -> MobileConfig:
    return validate_mobile_config(payload, **{**IDENTIFIERS, **identifiers})


def refusal(payload, **identifiers) -> Unprocessable:
    with pytest.raises(Unprocessable) as caught:
        validate(payload, **identifiers)
    return caught.value


def msal_refusal(config, **identifiers) -> Unprocessable:
    return refusal({"msal_configuration": config}, **identifiers)


# --- accepted -----------------------------------------------------------------------------------

def test_the_configuration_pasted_from_entra_as_text_is_accepted_as_is():
    config = validate({"msal_configuration": ENTRA_ANDROID_MSAL_CONFIGURATION, "ios_redirect_uri": IOS_REDIRECT_URI})
    assert config.msal_configuration == json.loads(ENTRA_ANDROID_MSAL_CONFIGURATION)
    assert config.ios_redirect_uri == IOS_REDIRECT_URI
    assert config.client_id == CLIENT_ID
    assert config.tenant == TENANT_ID
    assert config.authority_url == f"https://login.microsoftonline.com/{TENANT_ID}"


def test_the_configuration_sent_as_a_json_object_is_accepted_too():
    config = validate({"msal_configuration": entra_configuration()})
    assert config.msal_configuration == entra_configuration()


def test_the_configuration_with_account_mode_added_as_microsoft_tutorials_suggest_is_accepted():
    for mode in ("SINGLE", "MULTIPLE"):
        assert validate({"msal_configuration": entra_configuration(account_mode=mode)}).msal_configuration[
            "account_mode"] == mode


@pytest.mark.parametrize("agent", ["DEFAULT", "BROWSER", "WEBVIEW"])
def test_every_authorization_user_agent_msal_knows_is_accepted(agent):
    validate({"msal_configuration": entra_configuration(authorization_user_agent=agent)})


def test_a_configuration_without_the_optional_keys_is_accepted():
    validate({"msal_configuration": entra_configuration(authorization_user_agent=REMOVED,
                                                        broker_redirect_uri_registered=REMOVED)})


def test_unknown_top_level_keys_are_kept_as_they_are():
    extra = {"http": {"connect_timeout": 10000, "read_timeout": 30000},
             "logging": {"pii_enabled": False, "log_level": "WARNING"}, "shared_device_mode_supported": True}
    config = validate({"msal_configuration": entra_configuration(**extra)})
    for key, value in extra.items():
        assert config.msal_configuration[key] == value


def test_a_verified_domain_may_name_the_tenant():
    config = validate({"msal_configuration": with_authority(
        type="AAD", audience={"type": "AzureADMyOrg", "tenant_id": "contoso.onmicrosoft.com"})})
    assert config.tenant == "contoso.onmicrosoft.com"
    assert config.authority_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com"


def test_an_authority_url_may_name_the_tenant_instead_of_an_audience():
    config = validate({"msal_configuration": with_authority(
        type="AAD", authority_url=f"https://login.microsoftonline.com/{TENANT_ID}/")})
    assert config.tenant == TENANT_ID
    assert config.authority_url == f"https://login.microsoftonline.com/{TENANT_ID}"


def test_an_authority_url_in_a_national_cloud_keeps_its_sign_in_host():
    config = validate({"msal_configuration": with_authority(
        type="AAD", authority_url=f"https://login.microsoftonline.us/{TENANT_ID}")})
    assert config.authority_url == f"https://login.microsoftonline.us/{TENANT_ID}"


@pytest.mark.parametrize("other", [
    {"type": "B2C", "authority_url": "https://contoso.b2clogin.com/tfp/contoso.onmicrosoft.com/B2C_1_SISO/"},
    {"type": "AAD", "audience": {"type": "AzureADandPersonalMicrosoftAccount"}},
    {"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": "9188040d-6c67-4c5b-b112-36a304b66dad"}},
    {"type": "AAD", "authority_url": "https://login.microsoftonline.com/common"},
], ids=["anyones-b2c-host", "personal-accounts", "the-personal-accounts-tenant", "common"])
def test_every_authority_is_checked_not_only_the_default(other):
    """MSAL can sign in through any listed authority, so a second one for strangers is refused too."""
    error = msal_refusal(entra_configuration(authorities=[
        other, {"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": TENANT_ID}, "default": True}]))
    assert error.field.startswith("msal_configuration.authorities[0]")


def test_an_authority_must_name_the_tenants_own_entra_tenant_once_it_is_known():
    assert validate({"msal_configuration": entra_configuration()}, entra_tenant_id=TENANT_ID.upper()).tenant == TENANT_ID
    error = refusal({"msal_configuration": entra_configuration()}, entra_tenant_id="0f0e0d0c-0b0a-4090-8070-605040302010")
    assert "this tenant's Entra tenant" in error.message and error.field == "msal_configuration.authorities[0]"


def test_pii_logging_is_refused():
    error = msal_refusal(entra_configuration(logging={"pii_enabled": True, "log_level": "VERBOSE"}))
    assert error.field == "msal_configuration.logging.pii_enabled" and "personal data" in error.message
    assert validate({"msal_configuration": entra_configuration(logging={"pii_enabled": False})})


def test_surrounding_spaces_around_the_ios_redirect_uri_are_ignored():
    assert validate({"ios_redirect_uri": f"  {IOS_REDIRECT_URI}\n"}).ios_redirect_uri == IOS_REDIRECT_URI


def test_an_operator_signature_hash_given_already_url_encoded_is_understood():
    validate({"msal_configuration": entra_configuration()}, android_signature_hash=ENCODED_HASH)


def test_the_operator_identifiers_may_be_echoed_back_when_they_match():
    validate({**IDENTIFIERS, "ios_redirect_uri": IOS_REDIRECT_URI})


def test_the_stored_configuration_is_a_copy_the_caller_cannot_change_by_accident():
    pasted = entra_configuration()
    config = validate({"msal_configuration": pasted})
    pasted["authorities"][0]["audience"]["tenant_id"] = "common"
    assert config.tenant == TENANT_ID


# --- partial updates ----------------------------------------------------------------------------

def test_only_the_ios_part_may_be_sent_and_the_msal_part_stays_unset():
    config = validate({"ios_redirect_uri": IOS_REDIRECT_URI})
    assert config == MobileConfig(ios_redirect_uri=IOS_REDIRECT_URI, msal_configuration=None)


def test_only_the_msal_part_may_be_sent_and_the_ios_part_stays_unset():
    config = validate({"msal_configuration": ENTRA_ANDROID_MSAL_CONFIGURATION})
    assert config.ios_redirect_uri is None


def test_an_update_merged_over_what_was_stored_keeps_the_parts_not_sent():
    stored = validate({"ios_redirect_uri": IOS_REDIRECT_URI})
    update = validate({"msal_configuration": ENTRA_ANDROID_MSAL_CONFIGURATION})
    merged = update.merged_over(stored)
    assert merged.ios_redirect_uri == IOS_REDIRECT_URI
    assert merged.client_id == CLIENT_ID


def test_an_update_merged_over_what_was_stored_replaces_the_parts_sent():
    stored = validate({"msal_configuration": ENTRA_ANDROID_MSAL_CONFIGURATION, "ios_redirect_uri": IOS_REDIRECT_URI})
    other_client = "0b3c5a9e-3f0e-4e4d-8f7b-2a6f1c9d4e21"
    merged = validate({"msal_configuration": entra_configuration(client_id=other_client)}).merged_over(stored)
    assert merged.client_id == other_client
    assert merged.ios_redirect_uri == IOS_REDIRECT_URI


def test_an_update_merged_over_nothing_is_itself():
    update = validate({"ios_redirect_uri": IOS_REDIRECT_URI})
    assert update.merged_over(None) == update


def test_a_stored_record_reads_back_equal():
    config = validate({"msal_configuration": ENTRA_ANDROID_MSAL_CONFIGURATION, "ios_redirect_uri": IOS_REDIRECT_URI})
    record = json.loads(json.dumps(config.to_record()))  # as it would come back from storage
    assert MobileConfig.from_record(record) == config


def test_a_payload_with_neither_part_is_refused():
    error = refusal({})
    assert "ios_redirect_uri, msal_configuration or both" in error.message


@pytest.mark.parametrize("part", ["ios_redirect_uri", "msal_configuration"])
def test_a_null_part_is_refused_rather_than_taken_as_clearing_it(part):
    error = refusal({part: None})
    assert error.field == part
    assert "leave the field out" in error.message


def test_an_unknown_payload_field_is_refused_by_name():
    error = refusal({"ios_redirect_uri": IOS_REDIRECT_URI, "ios_redirect": "x"})
    assert error.field == "ios_redirect"


def test_a_payload_that_is_not_an_object_is_a_bad_request():
    with pytest.raises(BadRequest):
        validate([IOS_REDIRECT_URI])


@pytest.mark.parametrize("name, value", [("ios_bundle_id", "com.other.app"), ("android_package_name", "com.other.app"),
                                         ("android_signature_hash", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")])
def test_an_echoed_operator_identifier_that_differs_is_refused(name, value):
    error = refusal({name: value, "ios_redirect_uri": IOS_REDIRECT_URI})
    assert error.field == name
    assert "fixed by the app's publisher" in error.message


# --- the iOS redirect URI -----------------------------------------------------------------------

def test_an_ios_redirect_uri_for_another_bundle_is_refused_with_the_expected_value():
    error = refusal({"ios_redirect_uri": "msauth.com.fabrikam.app://auth"})
    assert error.field == "ios_redirect_uri"
    assert error.message.startswith(f"expected {IOS_REDIRECT_URI}, got 'msauth.com.fabrikam.app://auth'.")
    assert f"enter {BUNDLE_ID} as the iOS bundle ID" in error.message


def test_an_ios_redirect_uri_differing_only_in_case_is_refused_because_msal_compares_exactly():
    error = refusal({"ios_redirect_uri": IOS_REDIRECT_URI.lower()})
    assert error.field == "ios_redirect_uri"
    assert "letter case" in error.message


@pytest.mark.parametrize("pasted, hint", [
    (IOS_REDIRECT_URI + "/", "trailing slash"),
    (ANDROID_REDIRECT_URI, "Android redirect URI"),
    ("https://login.microsoftonline.com/common/oauth2/nativeclient", ""),
])
def test_a_wrong_ios_redirect_uri_is_refused_with_a_hint(pasted, hint):
    error = refusal({"ios_redirect_uri": pasted})
    assert error.field == "ios_redirect_uri"
    assert f"expected {IOS_REDIRECT_URI}" in error.message
    assert hint in error.message


def test_an_ios_redirect_uri_that_is_not_a_string_is_refused():
    assert refusal({"ios_redirect_uri": 42}).field == "ios_redirect_uri"


def test_without_an_operator_bundle_id_the_ios_redirect_uri_cannot_be_checked():
    error = refusal({"ios_redirect_uri": IOS_REDIRECT_URI}, ios_bundle_id="")
    assert "MOBILE_IOS_BUNDLE_ID" in error.message


# --- the MSAL configuration as a whole ----------------------------------------------------------

def test_invalid_json_is_refused_with_its_line_and_column():
    error = msal_refusal(ENTRA_ANDROID_MSAL_CONFIGURATION.replace('"DEFAULT",', '"DEFAULT"'))
    assert error.field == "msal_configuration"
    assert "not valid JSON (line 4, column 3" in error.message
    assert "// comments" not in error.message  # msauth:// is a URI, not a comment


def test_json_copied_with_comments_from_the_docs_is_refused_with_a_hint():
    error = msal_refusal(ENTRA_ANDROID_MSAL_CONFIGURATION.replace('"broker_redirect_uri_registered": true,',
                                                                  '"broker_redirect_uri_registered": true, // broker'))
    assert "Remove the // comments" in error.message


def test_json_with_a_key_twice_is_refused():
    error = msal_refusal(ENTRA_ANDROID_MSAL_CONFIGURATION.replace(
        '"authorization_user_agent" : "DEFAULT",', '"authorization_user_agent" : "DEFAULT", "client_id": "x",'))
    assert "appears twice" in error.message


@pytest.mark.parametrize("pasted", ["[]", '"text"', "42", 42, ["a"]])
def test_something_other_than_a_json_object_is_refused(pasted):
    assert msal_refusal(pasted).field == "msal_configuration"


def test_a_configuration_over_16_kib_as_text_is_refused():
    padded = ENTRA_ANDROID_MSAL_CONFIGURATION[:-1] + ', "notes": "' + "x" * MSAL_CONFIGURATION_MAX_BYTES + '"}'
    error = msal_refusal(padded)
    assert error.field == "msal_configuration"
    assert "16 KiB" in error.message


def test_a_configuration_over_16_kib_as_an_object_is_refused():
    error = msal_refusal(entra_configuration(notes="x" * MSAL_CONFIGURATION_MAX_BYTES))
    assert "16 KiB" in error.message


def test_a_configuration_just_under_the_cap_is_accepted():
    base = len(json.dumps(entra_configuration(notes=""), ensure_ascii=False, separators=(",", ":")).encode())
    validate({"msal_configuration": entra_configuration(notes="x" * (MSAL_CONFIGURATION_MAX_BYTES - base))})


# --- client_id ----------------------------------------------------------------------------------

@pytest.mark.parametrize("client_id", ["Enter_the_Application_Id_Here", "6731de76-14a6-49ae-97bc-6eba6914391",
                                       "{6731de76-14a6-49ae-97bc-6eba6914391e}", "", 42])
def test_a_client_id_that_is_not_a_guid_is_refused(client_id):
    error = msal_refusal(entra_configuration(client_id=client_id))
    assert error.field == "msal_configuration.client_id"
    assert "Application (client) ID" in error.message


def test_a_missing_client_id_is_refused():
    error = msal_refusal(entra_configuration(client_id=REMOVED))
    assert error.field == "msal_configuration.client_id"


# --- the Android redirect URI -------------------------------------------------------------------

def test_the_android_redirect_uri_with_the_hash_not_url_encoded_is_refused_with_how_to_fix_it():
    error = msal_refusal(entra_configuration(redirect_uri=f"msauth://{PACKAGE}/{SIGNATURE_HASH}"))
    assert error.field == "msal_configuration.redirect_uri"
    assert error.message.startswith(f"expected {ANDROID_REDIRECT_URI}, got 'msauth://{PACKAGE}/{SIGNATURE_HASH}'.")
    assert "must be URL-encoded" in error.message and "%2B" in error.message


def test_the_android_redirect_uri_encoded_with_lower_case_hex_is_refused_because_msal_compares_exactly():
    error = msal_refusal(entra_configuration(redirect_uri=f"msauth://{PACKAGE}/kK4vhd%2b2BkdKuzQ3X4yfySe7T%2fE%3d"))
    assert error.field == "msal_configuration.redirect_uri"
    assert "upper-case hex" in error.message


def test_the_android_redirect_uri_of_another_package_is_refused_naming_the_app_package():
    error = msal_refusal(entra_configuration(redirect_uri=f"msauth://com.fabrikam.app/{ENCODED_HASH}"))
    assert f"enter {PACKAGE} as the package name" in error.message


def test_the_android_redirect_uri_of_another_signing_key_is_refused_naming_the_app_hash():
    error = msal_refusal(entra_configuration(redirect_uri=f"msauth://{PACKAGE}/AAAAAAAAAAAAAAAAAAAAAAAAAAA%3D"))
    assert f"enter {SIGNATURE_HASH} as the signature hash" in error.message


def test_the_ios_redirect_uri_pasted_as_the_android_one_is_refused_with_a_hint():
    error = msal_refusal(entra_configuration(redirect_uri=IOS_REDIRECT_URI))
    assert "That is the iOS redirect URI" in error.message


@pytest.mark.parametrize("redirect_uri", [REMOVED, None, 42])
def test_a_missing_or_non_string_android_redirect_uri_is_refused(redirect_uri):
    error = msal_refusal(entra_configuration(redirect_uri=redirect_uri))
    assert error.field == "msal_configuration.redirect_uri"
    assert f"expected {ANDROID_REDIRECT_URI}" in error.message


def test_without_an_operator_signature_hash_the_android_redirect_uri_cannot_be_checked():
    error = msal_refusal(entra_configuration(), android_signature_hash="")
    assert error.field == "msal_configuration.redirect_uri"
    assert "MOBILE_ANDROID_SIGNATURE_HASH" in error.message


# --- account_mode, authorization_user_agent, broker flag -----------------------------------------

@pytest.mark.parametrize("key, value, says", [
    ("account_mode", "single", "write SINGLE"),
    ("account_mode", "BOTH", "SINGLE, MULTIPLE"),
    ("account_mode", 1, "SINGLE, MULTIPLE"),
    ("authorization_user_agent", "browser", "write BROWSER"),
    ("authorization_user_agent", "CHROME", "DEFAULT, BROWSER, WEBVIEW"),
    ("broker_redirect_uri_registered", "true", "true or false"),
])
def test_a_setting_outside_what_msal_accepts_is_refused_naming_it(key, value, says):
    error = msal_refusal(entra_configuration(**{key: value}))
    assert error.field == f"msal_configuration.{key}"
    assert says in error.message


# --- authorities --------------------------------------------------------------------------------

@pytest.mark.parametrize("authorities", [REMOVED, None, [], {}, "AAD"])
def test_missing_or_empty_authorities_are_refused(authorities):
    error = msal_refusal(entra_configuration(authorities=authorities))
    assert error.field == "msal_configuration.authorities"


def test_an_authority_that_is_not_an_object_is_refused_by_position():
    error = msal_refusal(entra_configuration(authorities=[{"type": "AAD", "audience": {
        "type": "AzureADMyOrg", "tenant_id": TENANT_ID}}, "AAD"]))
    assert error.field == "msal_configuration.authorities[1]"


def test_an_authority_without_a_type_is_refused():
    error = msal_refusal(with_authority(audience={"type": "AzureADMyOrg", "tenant_id": TENANT_ID}))
    assert error.field == "msal_configuration.authorities[0].type"


def test_two_default_authorities_are_refused():
    aad = {"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": TENANT_ID}, "default": True}
    error = msal_refusal(entra_configuration(authorities=[aad, dict(aad)]))
    assert error.field == "msal_configuration.authorities[1].default"


def test_a_default_flag_that_is_not_a_boolean_is_refused():
    error = msal_refusal(with_authority(type="AAD", audience={"type": "AzureADMyOrg", "tenant_id": TENANT_ID},
                                        default="true"))
    assert error.field == "msal_configuration.authorities[0].default"


def test_a_b2c_default_authority_is_refused():
    error = msal_refusal(with_authority(
        type="B2C", authority_url="https://contoso.b2clogin.com/tfp/contoso.onmicrosoft.com/B2C_1_SISO/"))
    assert error.field == "msal_configuration.authorities[0].type"
    assert 'expected type "AAD"' in error.message


@pytest.mark.parametrize("audience_type", ["AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount",
                                           "PersonalMicrosoftAccount"])
def test_an_audience_open_to_other_organisations_is_refused_with_how_to_fix_it(audience_type):
    error = msal_refusal(with_authority(type="AAD", audience={"type": audience_type, "tenant_id": TENANT_ID}))
    assert error.field == "msal_configuration.authorities[0].audience.type"
    assert "Accounts in this organizational directory only" in error.message


def test_an_unknown_audience_type_is_refused():
    error = msal_refusal(with_authority(type="AAD", audience={"type": "MyOrg", "tenant_id": TENANT_ID}))
    assert error.field == "msal_configuration.authorities[0].audience.type"


def test_an_audience_that_is_not_an_object_is_refused():
    error = msal_refusal(with_authority(type="AAD", audience="AzureADMyOrg"))
    assert error.field == "msal_configuration.authorities[0].audience"


@pytest.mark.parametrize("tenant", ["common", "organizations", "consumers", "Common"])
def test_a_tenant_alias_that_names_no_single_organisation_is_refused(tenant):
    error = msal_refusal(with_authority(type="AAD", audience={"type": "AzureADMyOrg", "tenant_id": tenant}))
    assert error.field == "msal_configuration.authorities[0].audience.tenant_id"
    assert "not one tenant" in error.message


def test_the_personal_microsoft_accounts_tenant_is_refused():
    error = msal_refusal(with_authority(type="AAD", audience={
        "type": "AzureADMyOrg", "tenant_id": "9188040d-6c67-4c5b-b112-36a304b66dad"}))
    assert "personal Microsoft accounts" in error.message


@pytest.mark.parametrize("tenant, says", [
    ("72f988bf-86f1-41af-91ab-2d7cd011db4", "not a well-formed GUID"),
    ("Enter_the_Tenant_Info_Here", "not allowed in a domain name"),
    ("contoso", "at least two parts"),
    ("", "Directory (tenant) ID"),
    (42, "Directory (tenant) ID"),
])
def test_a_tenant_id_that_is_neither_a_guid_nor_a_domain_is_refused(tenant, says):
    error = msal_refusal(with_authority(type="AAD", audience={"type": "AzureADMyOrg", "tenant_id": tenant}))
    assert error.field == "msal_configuration.authorities[0].audience.tenant_id"
    assert says in error.message


def test_a_missing_tenant_id_is_refused():
    error = msal_refusal(with_authority(type="AAD", audience={"type": "AzureADMyOrg"}))
    assert error.field == "msal_configuration.authorities[0].audience.tenant_id"


def test_a_camel_case_tenant_id_from_an_old_doc_is_refused_with_the_name_msal_reads():
    error = msal_refusal(with_authority(type="AAD", audience={"type": "AzureADMyOrg", "tenantId": TENANT_ID}))
    assert error.field == "msal_configuration.authorities[0].audience.tenant_id"
    assert "rename tenantId" in error.message


def test_an_authority_naming_no_tenant_is_refused():
    error = msal_refusal(with_authority(type="AAD"))
    assert error.field == "msal_configuration.authorities[0]"


@pytest.mark.parametrize("url", [
    f"http://login.microsoftonline.com/{TENANT_ID}",
    f"https://login.evil.example/{TENANT_ID}",
    f"https://login.microsoftonline.com:8443/{TENANT_ID}",
    f"https://login.microsoftonline.com/{TENANT_ID}?x=1",
    f"https://login.microsoftonline.com/{TENANT_ID}/v2.0",
    "https://login.microsoftonline.com/",
    "https://login.microsoftonline.com/common",
    42,
])
def test_an_authority_url_that_is_not_one_tenant_on_entra_is_refused(url):
    error = msal_refusal(with_authority(type="AAD", authority_url=url))
    assert error.field == "msal_configuration.authorities[0].authority_url"


def test_an_authority_url_and_an_audience_naming_different_tenants_are_refused():
    error = msal_refusal(with_authority(type="AAD", audience={"type": "AzureADMyOrg", "tenant_id": TENANT_ID},
                                        authority_url="https://login.microsoftonline.com/fabrikam.com"))
    assert error.field == "msal_configuration.authorities[0].authority_url"
    assert "same tenant" in error.message


def test_the_default_authority_is_checked_even_when_it_is_not_first():
    error = msal_refusal(entra_configuration(authorities=[
        {"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": TENANT_ID}},
        {"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": "common"}, "default": True},
    ]))
    assert error.field == "msal_configuration.authorities[1].audience.tenant_id"


# --- what the apps are served -------------------------------------------------------------------

@pytest.fixture
def configured() -> MobileConfig:
    return validate({"msal_configuration": ENTRA_ANDROID_MSAL_CONFIGURATION, "ios_redirect_uri": IOS_REDIRECT_URI})


def serve(config, platform, **identifiers):
    return platform_config(config, platform, **{**IDENTIFIERS, **identifiers})


def test_android_is_served_the_msal_configuration_with_msal_defaults_made_explicit(configured):
    served = serve(configured, "android")
    assert served == {
        "client_id": CLIENT_ID,
        "authorization_user_agent": "DEFAULT",
        "redirect_uri": ANDROID_REDIRECT_URI,
        "account_mode": "MULTIPLE",
        "broker_redirect_uri_registered": True,
        "authorities": [{"type": "AAD", "audience": {"type": "AzureADMyOrg", "tenant_id": TENANT_ID}}],
    }


def test_android_is_served_the_admins_own_choices_and_extra_keys():
    config = validate({"msal_configuration": entra_configuration(account_mode="SINGLE", logging={"pii_enabled": False},
                                                                 broker_redirect_uri_registered=REMOVED)})
    served = serve(config, "android")
    assert served["account_mode"] == "SINGLE"
    assert served["logging"] == {"pii_enabled": False}
    assert served["broker_redirect_uri_registered"] is False


def test_ios_is_served_what_msal_for_ios_needs(configured):
    assert serve(configured, "ios") == {
        "client_id": CLIENT_ID,
        "redirect_uri": IOS_REDIRECT_URI,
        "authority": f"https://login.microsoftonline.com/{TENANT_ID}",
        "bundle_id": BUNDLE_ID,
    }


def test_an_unknown_platform_is_a_bad_request(configured):
    with pytest.raises(BadRequest) as caught:
        serve(configured, "windows")
    assert caught.value.field == "platform"


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_nothing_is_served_before_the_msal_configuration_is_pasted(platform):
    with pytest.raises(NotFound):
        serve(None, platform)
    with pytest.raises(NotFound):
        serve(validate({"ios_redirect_uri": IOS_REDIRECT_URI}), platform)


def test_ios_is_not_served_before_the_ios_redirect_uri_is_confirmed():
    config = validate({"msal_configuration": ENTRA_ANDROID_MSAL_CONFIGURATION})
    with pytest.raises(NotFound):
        serve(config, "ios")
    assert serve(config, "android")["client_id"] == CLIENT_ID


def test_a_configuration_made_for_an_older_signing_key_is_not_served_to_android(configured):
    with pytest.raises(Conflict) as caught:
        serve(configured, "android", android_signature_hash="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert caught.value.field == "msal_configuration.redirect_uri"


def test_a_configuration_made_for_an_older_bundle_id_is_not_served_to_ios(configured):
    with pytest.raises(Conflict) as caught:
        serve(configured, "ios", ios_bundle_id="com.contoso.NewApp")
    assert caught.value.field == "ios_redirect_uri"


def test_the_served_document_is_a_copy(configured):
    served = serve(configured, "android")
    served["authorities"][0]["audience"]["tenant_id"] = "common"
    assert configured.tenant == TENANT_ID


# --- ETags --------------------------------------------------------------------------------------

def test_the_etag_is_a_quoted_sha256_and_strong():
    etag = config_etag({"a": 1})
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert len(etag) == 66 and all(c in "0123456789abcdef" for c in etag[1:-1])


def test_the_etag_ignores_key_order_but_not_values(configured):
    served = serve(configured, "android")
    reordered = dict(reversed(list(served.items())))
    assert config_etag(served) == config_etag(reordered)
    assert config_etag(served) != config_etag({**served, "account_mode": "SINGLE"})


def test_the_ios_and_android_documents_have_different_etags(configured):
    assert config_etag(serve(configured, "ios")) != config_etag(serve(configured, "android"))


# --- operator identifiers -----------------------------------------------------------------------

def operator_settings(**mobile) -> Settings:
    values = {"mobile_ios_bundle_id": BUNDLE_ID, "mobile_android_package_name": PACKAGE,
              "mobile_android_signature_hash": SIGNATURE_HASH, **mobile}
    return Settings(tables_connection_string="", tables_endpoint="", platform_admin_key="", session_signing_key="",
                    public_base_url="http://127.0.0.1:7071", domain_audit_schedule="0 0 3 * * *",
                    allow_private_metadata_urls=False, **values)


def test_operator_identifiers_give_what_to_enter_in_entra_and_the_redirect_uris_it_will_show():
    assert operator_identifiers(operator_settings()) == {
        "ios": {"bundle_id": BUNDLE_ID, "redirect_uri": IOS_REDIRECT_URI},
        "android": {"package_name": PACKAGE, "signature_hash": SIGNATURE_HASH, "redirect_uri": ANDROID_REDIRECT_URI},
    }


def test_operator_identifiers_show_the_raw_hash_even_when_the_operator_set_it_url_encoded():
    identifiers = operator_identifiers(operator_settings(mobile_android_signature_hash=ENCODED_HASH))
    assert identifiers["android"]["signature_hash"] == SIGNATURE_HASH
    assert identifiers["android"]["redirect_uri"] == ANDROID_REDIRECT_URI


def test_operator_identifiers_not_set_are_none_and_so_are_their_redirect_uris():
    identifiers = operator_identifiers(operator_settings(mobile_ios_bundle_id="", mobile_android_signature_hash=""))
    assert identifiers["ios"] == {"bundle_id": None, "redirect_uri": None}
    assert identifiers["android"] == {"package_name": PACKAGE, "signature_hash": None, "redirect_uri": None}


def test_the_redirect_uris_from_operator_identifiers_are_accepted_when_pasted_back():
    identifiers = operator_identifiers(operator_settings())
    config = validate({"ios_redirect_uri": identifiers["ios"]["redirect_uri"],
                       "msal_configuration": entra_configuration(redirect_uri=identifiers["android"]["redirect_uri"])})
    assert config.ios_redirect_uri == IOS_REDIRECT_URI


def test_both_platforms_carry_where_to_exchange_the_entra_token_when_given(configured):
    where = {"issuer": "https://gh.example/api/oidc/acme-1", "token_endpoint": "https://gh.example/api/oidc/acme-1/token",
             "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
             "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}
    for platform in ("ios", "android"):
        served = platform_config(configured, platform, **IDENTIFIERS, token_exchange=where)
        assert served["token_exchange"] == where
        assert {key: value for key, value in served.items() if key != "token_exchange"} == serve(configured, platform)
