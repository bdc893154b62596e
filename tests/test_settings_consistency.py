"""Every setting the code reads is set on Azure, listed for local runs and documented, and no new one can hide.

Where each list lives:
- the code's own list: `SETTING_NAMES` in shared_code/platform/settings.py;
- what the code actually reads: `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)` (and aliases of
  `os.environ`) and `%NAME%` binding placeholders in shared_code/, functions/ and function_app.py;
- Azure: the `var appSettings = { ... }` block of infra/main.bicep (top-level keys, two-space indent);
- local runs: the `Values` of local.settings.sample.json;
- people: the README's settings table (any markdown table whose first column holds `NAME` in backticks).

Host settings (`AzureWebJobs*`, `FUNCTIONS_*`, `APPLICATIONINSIGHTS_*`) and `AZURE_CLIENT_ID` (read by
azure-identity) may appear in infra/ and the sample without being in SETTING_NAMES.

A connection setting may be written in the Functions host's identity-based form: `NAME__queueServiceUri`,
`NAME__credential`, `NAME__clientId` stand for `NAME` (Azure sets those, the sample sets `NAME` itself).
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAIN_BICEP = ROOT / "infra" / "main.bicep"
FUNCTION_APP_BICEP = ROOT / "infra" / "modules" / "functionapp.bicep"
SAMPLE = ROOT / "local.settings.sample.json"
README = ROOT / "README.md"
CODE = [ROOT / "function_app.py", *sorted((ROOT / "shared_code").rglob("*.py")),
        *sorted((ROOT / "functions").rglob("*.py"))]

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_SETTING = re.compile(r"^(AzureWebJobs|FUNCTIONS_|APPLICATIONINSIGHTS_)")
# Read by libraries' conventions, not Gatehouse settings: DefaultAzureCredential picks the user-assigned identity
# by AZURE_CLIENT_ID; the table client passes requests' own CA-bundle variables on (they are unset on Azure).
SDK_SETTINGS = {"AZURE_CLIENT_ID", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"}
# Local development only: infra/ must never set these (the development IdP signs in whoever is picked), so they
# are required in the sample and the README but not in infra/main.bicep (test_infra_never_turns_on_the_dev_idp).
LOCAL_ONLY = {"DEV_IDP"}
# Set by the platform itself on every instance: the code may read them, nobody configures them.
PLATFORM_PROVIDED = re.compile(r"^(WEBSITE_|FUNCTIONS_|CONTAINER_NAME$)")
# App settings a Flex Consumption app rejects or ignores (runtime and scale live in functionAppConfig there).
FLEX_CONSUMPTION_REJECTS = {
    "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT", "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION", "WEBSITE_VNET_ROUTE_ALL",
    # Learn's "Flex Consumption plan deprecations" table, and settings Flex does not support.
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED", "WEBSITE_MOUNT_ENABLED", "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED",
    "WEBSITE_TIME_ZONE", "TZ", "WEBSITES_CONTAINER_START_TIME_LIMIT",
}


# ---- readers --------------------------------------------------------------------------------------------

def declared_setting_names() -> set[str]:
    """SETTING_NAMES, read from the source (no import: this test must not depend on the app importing)."""
    tree = ast.parse((ROOT / "shared_code" / "platform" / "settings.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SETTING_NAMES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("shared_code/platform/settings.py no longer defines SETTING_NAMES")


def _is_os_attr(node: ast.AST, attr: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == attr
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def settings_read_by(source: str) -> set[str]:
    """Names a module reads from the environment, plus `%NAME%` placeholders the Functions host resolves."""
    tree = ast.parse(source)
    environ_names: set[str] = set()  # `environ` from `from os import environ`, `env = os.environ`, ...
    getenv_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name == "environ":
                    environ_names.add(alias.asname or alias.name)
                if alias.name == "getenv":
                    getenv_names.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        value = getattr(node, "value", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and value is not None and (
                _is_os_attr(value, "environ") or (isinstance(value, ast.Name) and value.id in environ_names)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            environ_names.update(t.id for t in targets if isinstance(t, ast.Name))

    def is_environ(node: ast.AST) -> bool:
        return _is_os_attr(node, "environ") or (isinstance(node, ast.Name) and node.id in environ_names)

    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            names.add(_string(node.slice) or "")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if (isinstance(func, ast.Attribute) and is_environ(func.value)
                    and func.attr in {"get", "pop", "setdefault", "__getitem__", "__contains__"}):
                names.add(_string(node.args[0]) or "")
            elif _is_os_attr(func, "getenv") or (isinstance(func, ast.Name) and func.id in getenv_names):
                names.add(_string(node.args[0]) or "")
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            names.add(_string(node.left) or "")
        elif (text := _string(node)) is not None and (match := re.fullmatch(r"%([A-Za-z_][A-Za-z0-9_]*)%", text)):
            names.add(match.group(1))
    names.discard("")  # a name computed at run time (e.g. a loop over SETTING_NAMES) cannot be checked here
    return names


def code_setting_names() -> dict[str, list[str]]:
    """Every name the app's code reads, with the files that read it."""
    found: dict[str, list[str]] = {}
    for path in CODE:
        for name in settings_read_by(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def infra_app_settings() -> dict[str, str]:
    """The top-level entries of `var appSettings = { ... }` in infra/main.bicep, as raw Bicep expressions."""
    lines = MAIN_BICEP.read_text().splitlines()
    try:
        start = lines.index("var appSettings = {")
        end = lines.index("}", start)
    except ValueError:
        raise AssertionError("infra/main.bicep must keep every app setting in one `var appSettings = {` block "
                             "closed by a `}` line (this test reads its names from there)") from None
    settings = {}
    for line in lines[start + 1:end]:
        match = re.match(r"^  ([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+)$", line)
        if match:
            settings[match.group(1)] = match.group(2).strip()
    return settings


def sample_values() -> dict:
    return json.loads(SAMPLE.read_text())["Values"]


def readme_setting_names() -> set[str]:
    if not README.exists():
        pytest.fail("README.md does not exist yet: it must document every setting in its settings table")
    names = set()
    for line in README.read_text().splitlines():
        cells = line.strip().split("|")
        if len(cells) >= 3 and line.strip().startswith("|"):
            names.update(n for n in re.findall(r"`([^`]+)`", cells[1]) if NAME.fullmatch(n))
    return names


def required_setting_names() -> set[str]:
    """What infra, the sample and the README must all hold: the declared list plus anything the code reads."""
    read = {name for name in code_setting_names() if not PLATFORM_PROVIDED.match(name)
            and not HOST_SETTING.match(name) and name not in SDK_SETTINGS}
    return declared_setting_names() | read


def base_name(name: str) -> str:
    """`GATEHOUSE_QUEUES__queueServiceUri` → `GATEHOUSE_QUEUES`: the setting an identity-based connection is for."""
    return name.split("__", 1)[0]


def covered(required: set[str], present) -> set[str]:
    """The required names `present` lacks, counting `NAME__property` as `NAME` and the other way round."""
    bases = {base_name(name) for name in present}
    return {name for name in required if name not in present and base_name(name) not in bases}


def _missing(where: str, names: set[str]) -> str:
    return f"{where} lacks: " + ", ".join(sorted(names))


# ---- the checker checks itself ----------------------------------------------------------------------------

def test_scanner_finds_every_way_code_reads_a_setting():
    source = '''
import os
from os import environ as ENV, getenv
env = os.environ
a = os.environ["A"]
b = os.environ.get("B", "x")
c = os.getenv("C")
d = getenv("D")
e = ENV.get("E")
f = env["F"]
g = "G" in os.environ
schedule = "%H%"
not_a_setting = "50%"
i = os.environ.setdefault("I", "1")
'''
    assert settings_read_by(source) == {"A", "B", "C", "D", "E", "F", "G", "H", "I"}


def test_the_lists_this_test_reads_are_found():
    assert declared_setting_names(), "SETTING_NAMES is empty"
    assert infra_app_settings(), "infra/main.bicep: var appSettings holds no settings"
    assert sample_values(), "local.settings.sample.json holds no Values"


# ---- the three places agree with the code -----------------------------------------------------------------

def test_code_reads_only_declared_settings():
    undeclared = {name: files for name, files in code_setting_names().items()
                  if base_name(name) not in declared_setting_names() and not HOST_SETTING.match(name)
                  and not PLATFORM_PROVIDED.match(name) and name not in SDK_SETTINGS}
    assert not undeclared, (
        "The code reads settings that shared_code/platform/settings.py does not declare: "
        + "; ".join(f"{name} ({', '.join(files)})" for name, files in sorted(undeclared.items()))
        + ". Add each to SETTING_NAMES, infra/main.bicep (var appSettings), local.settings.sample.json "
          "and the README's settings table.")


def test_infra_sets_every_setting_the_code_reads():
    missing = covered(required_setting_names() - LOCAL_ONLY, set(infra_app_settings()))
    host_read = {name for name in code_setting_names() if HOST_SETTING.match(name) and not PLATFORM_PROVIDED.match(name)}
    missing |= host_read - set(infra_app_settings())
    assert not missing, _missing("infra/main.bicep (var appSettings)", missing)


def test_local_sample_lists_every_setting_the_code_reads():
    missing = covered(required_setting_names(), set(sample_values()))
    assert not missing, _missing("local.settings.sample.json (Values)", missing)


def test_readme_documents_every_setting_the_code_reads():
    missing = covered(required_setting_names(), readme_setting_names())
    assert not missing, _missing("README.md's settings table (first column, in backticks)", missing)


def test_infra_and_sample_hold_no_unknown_setting():
    known = declared_setting_names() | SDK_SETTINGS
    for where, names in (("infra/main.bicep", infra_app_settings()), ("local.settings.sample.json", sample_values())):
        unknown = {name for name in names if base_name(name) not in known and not HOST_SETTING.match(name)}
        assert not unknown, f"{where} sets names the code does not declare (typo or stale?): {sorted(unknown)}"


# ---- Azure: production defaults -----------------------------------------------------------------------------

def test_azure_keys_come_from_key_vault():
    settings = infra_app_settings()
    for name in ("PLATFORM_ADMIN_KEY", "SESSION_SIGNING_KEY", "OIDC_SIGNING_KEYS"):
        assert settings[name].startswith("'@Microsoft.KeyVault(SecretUri="), f"{name} must be a Key Vault reference"
    assert "keyVaultReferenceIdentity: identityId" in FUNCTION_APP_BICEP.read_text(), (
        "Key Vault references must resolve with the user-assigned identity")


def test_azure_reaches_tables_and_host_storage_with_the_managed_identity():
    settings = infra_app_settings()
    assert settings["TABLES_CONNECTION_STRING"] == "''", "no connection string on Azure"
    assert "tableEndpoint" in settings["TABLES_ENDPOINT"]
    assert "identity.outputs.clientId" in settings["AZURE_CLIENT_ID"]
    assert "AzureWebJobsStorage" not in settings, "host storage must use the identity (AzureWebJobsStorage__*)"
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert "Authorization=AAD" in settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]


def test_azure_refuses_private_metadata_urls():
    assert infra_app_settings()["ALLOW_PRIVATE_METADATA_URLS"] == "'false'"


def test_infra_never_turns_on_the_dev_idp():
    """No file under infra/ (nor azure.yaml) names DEV_IDP: a deployment never serves the development IdP."""
    files = [*sorted(INFRA.rglob("*")), ROOT / "azure.yaml"]
    naming = [str(path.relative_to(ROOT)) for path in files if path.is_file() and "DEV_IDP" in path.read_text(errors="replace")]
    assert not naming, f"these deployment files name DEV_IDP: {naming}"
    assert "DEV_IDP" not in infra_app_settings()


def test_azure_public_base_url_is_https():
    assert "'https://${" in MAIN_BICEP.read_text().split("var publicBaseUrl =", 1)[1].splitlines()[0]
    assert infra_app_settings()["PUBLIC_BASE_URL"] == "publicBaseUrl"


def test_azure_app_is_https_only_with_tls_1_2():
    text = FUNCTION_APP_BICEP.read_text()
    assert "httpsOnly: true" in text
    assert "minTlsVersion: '1.2'" in text


def test_azure_sets_nothing_flex_consumption_rejects():
    rejected = FLEX_CONSUMPTION_REJECTS & set(infra_app_settings())
    assert not rejected, f"Flex Consumption rejects these app settings (use functionAppConfig): {sorted(rejected)}"


# ---- local: safe values that only work on this machine -------------------------------------------------------

def test_local_sample_is_for_this_machine_only():
    document = json.loads(SAMPLE.read_text())
    values = document["Values"]
    assert document["IsEncrypted"] is False
    assert all(isinstance(v, str) for v in values.values()), "the Functions host reads only string values"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert "AccountName=devstoreaccount1" in values["TABLES_CONNECTION_STRING"]
    assert "TableEndpoint=http://127.0.0.1:" in values["TABLES_CONNECTION_STRING"]
    assert values["TABLES_ENDPOINT"] == ""
    assert values["PUBLIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert values["ALLOW_PRIVATE_METADATA_URLS"] == "true"
    for name in ("PLATFORM_ADMIN_KEY", "SESSION_SIGNING_KEY"):
        assert "local" in values[name] and "change-me" in values[name], f"{name} must look local-only"


# ---- Azure: the Flex Consumption site itself ------------------------------------------------------------------

INFRA = ROOT / "infra"
# Site and siteConfig properties a Flex Consumption app must not carry. ARM refuses them with error 51021
# ("… for Flex Consumption sites is invalid"), enforced region by region, so a template that deploys in one
# region fails in the next. The list is the union of Learn's "Flex Consumption plan deprecations"
# (functions-app-settings#flex-consumption-plan-deprecations) and the 51021 list Azure Verified Modules test
# against: runtime and scale live in `functionAppConfig` instead, and there is no FTP, 32-bit or Always On.
FLEX_CONSUMPTION_REJECTED_SITE_PROPERTIES = {
    "ftpsState", "use32BitWorkerProcess", "alwaysOn", "isReserved", "isXenon", "windowsFxVersion",
    "linuxFxVersion", "netFrameworkVersion", "javaVersion", "javaContainer", "javaContainerVersion",
    "powerShellVersion", "pythonVersion", "nodeVersion", "phpVersion", "preWarmedInstanceCount",
    "functionAppScaleLimit", "functionsRuntimeScaleMonitoringEnabled", "containerSize",
}


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def bicep_property_keys(text: str) -> set[str]:
    """Every object key written in a Bicep file (`name: value` lines, comments left out)."""
    keys = set()
    for line in text.splitlines():
        code = line.split("//", 1)[0]
        if match := re.match(r"^\s*'?([A-Za-z_][A-Za-z0-9_]*)'?\s*:", code):
            keys.add(match.group(1))
    return keys


def test_the_property_scanner_sees_keys_and_skips_comments():
    text = "siteConfig: {\n  ftpsState: 'Disabled'\n  // alwaysOn: true\n  'minTlsVersion': '1.2'\n}"
    assert bicep_property_keys(text) == {"siteConfig", "ftpsState", "minTlsVersion"}


def test_azure_sets_no_site_property_flex_consumption_rejects():
    rejected = {name.lower() for name in FLEX_CONSUMPTION_REJECTED_SITE_PROPERTIES}
    found = {f"{path.relative_to(ROOT)}: {key}" for path in bicep_files()
             for key in bicep_property_keys(path.read_text()) if key.lower() in rejected}
    assert not found, ("Flex Consumption rejects these site properties (ARM error 51021); runtime and scale "
                       f"belong in functionAppConfig: {sorted(found)}")


def test_azure_declares_no_ftp_publishing_policy():
    # Flex Consumption has no FTP endpoint; the Azure-Samples Flex templates declare no publishing policy at all.
    text = FUNCTION_APP_BICEP.read_text()
    assert not re.search(r"basicPublishingCredentialsPolicies@[^']*'\s*=\s*\{[^}]*name:\s*'ftp'", text, re.S)


def test_azure_runtime_is_in_function_app_config():
    text = FUNCTION_APP_BICEP.read_text()
    runtime = re.search(r"runtime:\s*\{\s*name:\s*'(\w+)'\s*version:\s*'([\d.]+)'", text)
    assert runtime and runtime.group(1) == "python", "functionAppConfig.runtime must name python"
    assert "'FlexConsumption'" in text and "'FC1'" in text


def test_azure_sets_http_per_instance_concurrency():
    # Flex runs Python at one HTTP request per instance unless told; the value is measured (bench/concurrency.py).
    text = FUNCTION_APP_BICEP.read_text()
    assert re.search(r"triggers:\s*\{\s*http:\s*\{\s*perInstanceConcurrency:\s*httpPerInstanceConcurrency", text)
    main_default = re.search(r"param httpPerInstanceConcurrency int = (\d+)", MAIN_BICEP.read_text())
    azd_default = re.search(r"FUNCTION_HTTP_PER_INSTANCE_CONCURRENCY=(\d+)", (INFRA / "main.parameters.json").read_text())
    assert main_default and azd_default and main_default.group(1) == azd_default.group(1)
    documented = re.search(r"Requests per instance: (\d+)", (ROOT / "docs" / "scaling.md").read_text())
    assert documented and documented.group(1) == main_default.group(1), "docs/scaling.md must state the value set"


# ---- Azure: webhook queues, OpenID Provider keys, Entra ----------------------------------------------------------

STORAGE_BICEP = INFRA / "modules" / "storage.bicep"
RBAC_BICEP = INFRA / "modules" / "rbac.bicep"
KEYVAULT_BICEP = INFRA / "modules" / "keyvault.bicep"
WEBHOOK_QUEUE = "webhook-deliveries"


def declared_queues() -> set[str]:
    text = STORAGE_BICEP.read_text()
    block = re.search(r"param queueNames array = \[(.*?)\]", text, re.S)
    assert block, "storage.bicep declares its queues in `param queueNames array = [...]`"
    assert re.search(r"queueServices/queues@[^']*'\s*=\s*\[for queueName in queueNames", text)
    return set(re.findall(r"'([a-z0-9-]+)'", block.group(1)))


def test_azure_declares_the_webhook_queue_and_its_poison_queue():
    assert {WEBHOOK_QUEUE, f"{WEBHOOK_QUEUE}-poison"} <= declared_queues()


def test_every_queue_the_code_triggers_on_is_declared_with_its_poison_queue():
    code = "\n".join(path.read_text() for path in CODE)
    for name in set(re.findall(r"queue_name\s*=\s*[\"']([a-z0-9-]+)[\"']", code)):
        assert {name, f"{name}-poison"} <= declared_queues(), f"queue {name} (and {name}-poison) not in storage.bicep"


def test_azure_queue_connection_uses_the_managed_identity():
    settings = infra_app_settings()
    # No connection string on Azure (an empty GATEHOUSE_QUEUES is no connection string: the host then reads the
    # identity-based GATEHOUSE_QUEUES__* properties).
    assert settings.get("GATEHOUSE_QUEUES", "''") == "''", "no connection string on Azure: the identity-based form"
    uri = settings["GATEHOUSE_QUEUES__queueServiceUri"]
    assert uri == "storage.outputs.queueEndpoint" or ".queue." in uri, "the storage account's queue endpoint"
    assert settings["GATEHOUSE_QUEUES__credential"] == "'managedidentity'"
    assert settings["GATEHOUSE_QUEUES__clientId"] == "identity.outputs.clientId"
    assert "output queueEndpoint string = account.properties.primaryEndpoints.queue" in STORAGE_BICEP.read_text()


def _app_roles() -> set[str]:
    """Role names (keys of rbac.bicep's `roles`) granted to the app's identity."""
    text = RBAC_BICEP.read_text()
    return set(re.findall(r"principalId: appPrincipalId\s+principalType: 'ServicePrincipal'\s+"
                          r"roleDefinitionId: subscriptionResourceId\('Microsoft.Authorization/roleDefinitions', "
                          r"roles\.(\w+)\)", text))


def test_app_identity_holds_the_data_roles_it_uses():
    roles = _app_roles()
    # Queue trigger and producer; tables; host storage and the package; Key Vault references (secrets, not keys:
    # the app signs with keys it reads, so Key Vault Crypto User would be the wrong role).
    assert {"storageQueueDataContributor", "storageTableDataContributor", "storageBlobDataOwner",
            "keyVaultSecretsUser", "monitoringMetricsPublisher"} <= roles
    text = RBAC_BICEP.read_text()
    assert "storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'" in text
    assert "keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'" in text


def test_oidc_signing_keys_are_never_written_by_a_provision():
    # A secret resource writes its value on every `azd provision`: that would replace the keys (every issued
    # token fails) or undo a rotation. tools/postprovision.py creates the secret once, if absent.
    text = KEYVAULT_BICEP.read_text()
    secrets = re.findall(r"resource \w+ 'Microsoft.KeyVault/vaults/secrets@[^']*' = \{[^}]*?name: ([^\n]+)", text, re.S)
    assert not [name for name in secrets if "oidc" in name.lower()], "oidc-signing-keys must not be a Bicep resource"
    reference = infra_app_settings()["OIDC_SIGNING_KEYS"]
    assert reference.startswith("'@Microsoft.KeyVault("), "OIDC_SIGNING_KEYS must be a Key Vault reference"
    assert "oidcSigningKeysSecretUri" in reference or "SecretName=oidc-signing-keys" in reference
    assert "secrets/${oidcSigningKeysSecretName}" in text or "SecretName=oidc-signing-keys" in reference
    # ... and a versionless one: the app follows a rotation without a redeployment.
    assert not re.search(r"secrets/[^/']+/[0-9a-f]{32}", reference)


def test_azure_entra_login_url_defaults_to_the_public_cloud():
    value = infra_app_settings()["ENTRA_LOGIN_URL"]
    assert "'https://login.microsoftonline.com'" in value, "Entra's public cloud unless another is chosen"
    if "entraLoginUrl" in value:
        assert "param entraLoginUrl string = 'https://login.microsoftonline.com'" in MAIN_BICEP.read_text()


def test_local_sample_has_queues_on_azurite_and_a_dev_only_signing_key():
    values = sample_values()
    assert "QueueEndpoint=http://127.0.0.1:" in values["GATEHOUSE_QUEUES"]
    keys = json.loads(values["OIDC_SIGNING_KEYS"])
    assert isinstance(keys, list) and keys and all(k.startswith("-----BEGIN PRIVATE KEY-----") for k in keys), (
        "OIDC_SIGNING_KEYS is a JSON array of PKCS#8 PEM keys")
    assert values["ENTRA_LOGIN_URL"] == "https://login.microsoftonline.com"
