"""azd hooks (azure.yaml): the first `azd up` ends with every Key Vault reference resolved, and the OpenID
Provider's signing keys are created once and rotated without a redeploy.

    python tools/azd_hooks.py postprovision      # azd runs it after `azd provision` (and in `azd up`)
    python tools/azd_hooks.py postdeploy         # azd runs it after `azd deploy` (and at the end of `azd up`)
    python tools/azd_hooks.py rotate-oidc-key    # an operator, by hand (docs/deploy.md, "Signing keys")
    python tools/azd_hooks.py prepackage         # azd runs it before packaging the app (azure.yaml, services.api)

Why: infra/ grants the app's identity Key Vault Secrets User and applies the app settings seconds later, but a
role assignment takes minutes to become effective. A Key Vault reference that fails then keeps its literal
`@Microsoft.KeyVault(...)` text until the platform's next refresh (up to 24 hours): PLATFORM_ADMIN_KEY is empty
to the app and the operator key answers 403. Any restart makes the platform fetch every reference again, so:

* postprovision: creates the `oidc-signing-keys` secret if (and only if) it does not exist (the Bicep never
  writes it, so no provision replaces the keys or undoes a rotation); then reads the app's Key Vault reference
  status from Azure Resource Manager (`config/configreferences/appsettings`) and restarts the app until every
  reference says `Resolved`, or fails after GATEHOUSE_HOOK_TIMEOUT seconds (default 900) naming each reference
  and its status.
* postdeploy: proves it over HTTP once the code is there: the operator key, read from Key Vault, must get past
  authentication (`POST /api/tenants` with an empty body answers 400/422, not 403); restarts and retries the same way.
* rotate-oidc-key: a new RSA key first (it signs from the restart on), the previous first key kept second (still
  in the JWKS, so tokens it signed verify until they expire), any older key dropped; then a restart.

* prepackage: installs requirements.lock, hash-checked, into `.python_packages/lib/site-packages` as Linux
  (manylinux, CPython 3.11) wheels whatever the deployer's OS, which the Python worker puts on sys.path; azure.yaml
  deploys that package without a remote build, so Azure runs exactly the files the lock names instead of resolving
  the transitive dependencies afresh on every deploy. It refuses a lock that no longer matches requirements.txt.

Everything goes through the Azure CLI (`az`, signed in as for docs/deploy.md) with the values azd puts in the
environment (AZURE_KEY_VAULT_NAME, AZURE_FUNCTION_APP_NAME, AZURE_RESOURCE_GROUP, PUBLIC_BASE_URL). Standard
library only: it runs with any Python 3.9+, not the app's venv.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

OIDC_SECRET = "oidc-signing-keys"
OPERATOR_SECRET = "platform-admin-key"
# What the Flex Consumption runtime is (infra/modules/functionapp.bicep, functionAppConfig.runtime; a test keeps
# the two in step): the wheels prepackage installs must be for it, not for the deployer's machine.
FLEX_PYTHON_VERSION = "3.11"
FLEX_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")
PACKAGES_DIR = os.path.join(".python_packages", "lib", "site-packages")
KEPT_OIDC_KEYS = 2  # the signing key and the one before it (still published in the JWKS)
CONFIG_REFERENCES_API = "2022-03-01"


class HookError(Exception):
    pass


class TimedOut(HookError):
    pass


def log(message: str) -> None:
    print(f"gatehouse hook: {message}", flush=True)


def env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise HookError(f"{name} is not set: run this through azd (azure.yaml hooks) or `eval \"$(azd env get-values)\"`")
    return value


def timeout() -> float:
    return float(os.environ.get("GATEHOUSE_HOOK_TIMEOUT", "900"))


def poll_seconds() -> float:
    return float(os.environ.get("GATEHOUSE_HOOK_POLL_SECONDS", "20"))


# ---- az -----------------------------------------------------------------------------------------------------

def az(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """One Azure CLI call; its JSON or text output in .stdout. Raises HookError on failure when `check`."""
    command = [os.environ.get("GATEHOUSE_AZ", "az"), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise HookError("the Azure CLI (az) is not installed: see docs/deploy.md, 'Before you start'") from None
    if check and done.returncode != 0:
        raise HookError(f"az {' '.join(args[:3])} failed: {done.stderr.strip()[:500]}")
    return done


def _forbidden(stderr: str) -> bool:
    return "Forbidden" in stderr or "ForbiddenByRbac" in stderr or "AuthorizationFailed" in stderr


def _not_found(stderr: str) -> bool:
    return "SecretNotFound" in stderr or "was not found" in stderr or "NotFound" in stderr


def _retrying(what: str, attempt):
    """Run attempt() until it returns a value other than None; None means "not yet" (roles propagating)."""
    deadline = time.monotonic() + timeout()
    while True:
        result = attempt()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise TimedOut(f"gave up waiting for {what} after {timeout():.0f} s")
        time.sleep(poll_seconds())


# ---- signing keys ---------------------------------------------------------------------------------------------

def new_rsa_key_pem() -> str:
    """A new 2048-bit RSA private key, PKCS#8 PEM (what OIDC_SIGNING_KEYS holds; RS256 needs RSA)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:  # the deployer's Python may lack cryptography; openssl is on most posix machines
        try:
            done = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                                  capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            raise HookError("cannot generate an RSA key: `pip install cryptography` or install OpenSSL") from None
        return done.stdout
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def read_secret(vault: str, name: str) -> str | None:
    """The secret's value; None when it does not exist. Waits while the deployer's own role propagates."""
    def attempt():
        done = az("keyvault", "secret", "show", "--vault-name", vault, "--name", name, "--query", "value",
                  "-o", "tsv", check=False)
        if done.returncode == 0:
            return ("found", done.stdout.rstrip("\n"))
        if _forbidden(done.stderr):
            log(f"no access to {vault}/{name} yet (your Key Vault Secrets Officer role is propagating); waiting")
            return None
        if _not_found(done.stderr):
            return ("absent", None)
        raise HookError(f"reading {vault}/{name}: {done.stderr.strip()[:500]}")
    return _retrying(f"access to Key Vault {vault}", attempt)[1]


def write_secret(vault: str, name: str, value: str) -> None:
    """Write a new version; the value goes through a private temporary file, never the command line."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "value")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as file:
            file.write(value)
        done = az("keyvault", "secret", "set", "--vault-name", vault, "--name", name, "--file", path,
                  "--encoding", "utf-8", "--content-type", "application/json", "--output", "none", check=False)
    if done.returncode != 0 and "deleted but recoverable" in done.stderr:
        # `azd down` soft-deletes the vault's secrets with it; a recovered vault brings them back the same way.
        az("keyvault", "secret", "recover", "--vault-name", vault, "--name", name, "--output", "none")
        log(f"recovered the soft-deleted {name} instead of writing a new one")
        return
    if done.returncode != 0:
        raise HookError(f"writing {vault}/{name}: {done.stderr.strip()[:500]}")


def parse_keys(value: str) -> list[str]:
    try:
        keys = json.loads(value)
    except ValueError:
        raise HookError(f"{OIDC_SECRET} is not a JSON array of PEM keys; fix it in Key Vault first") from None
    if not isinstance(keys, list) or not all(isinstance(k, str) and "PRIVATE KEY" in k for k in keys) or not keys:
        raise HookError(f"{OIDC_SECRET} is not a JSON array of PEM private keys; fix it in Key Vault first")
    return keys


def ensure_oidc_signing_keys(vault: str) -> bool:
    """Create the secret with one new key if it does not exist; never change an existing one. True if created."""
    existing = read_secret(vault, OIDC_SECRET)
    if existing is not None:
        log(f"{OIDC_SECRET}: kept as it is ({len(parse_keys(existing))} key(s)); rotate with rotate-oidc-key")
        return False
    write_secret(vault, OIDC_SECRET, json.dumps([new_rsa_key_pem()]))
    log(f"{OIDC_SECRET}: created with one new RSA key")
    return True


def rotate_oidc_key(vault: str) -> list[str]:
    keys = parse_keys(read_secret(vault, OIDC_SECRET) or "null")
    rotated = [new_rsa_key_pem(), *keys][:KEPT_OIDC_KEYS]
    write_secret(vault, OIDC_SECRET, json.dumps(rotated))
    log(f"{OIDC_SECRET}: a new key signs from the restart on; the previous one stays in the JWKS"
        + (f"; {len(keys) + 1 - KEPT_OIDC_KEYS} older key(s) dropped" if len(keys) + 1 > KEPT_OIDC_KEYS else ""))
    return rotated


# ---- the app -------------------------------------------------------------------------------------------------

def restart(app: str, group: str) -> None:
    log(f"restarting {app} so that the platform fetches its Key Vault references again")
    az("functionapp", "restart", "--name", app, "--resource-group", group, "--output", "none")


def reference_statuses(app: str, group: str) -> dict[str, str] | None:
    """Each Key Vault reference app setting and its status (`Resolved`, `AccessToKeyVaultDenied`, …), as App
    Service reports it; None when Resource Manager does not report them for this app."""
    site = az("functionapp", "show", "--name", app, "--resource-group", group, "--query", "id", "-o", "tsv")
    url = (f"https://management.azure.com{site.stdout.strip()}/config/configreferences/appsettings"
           f"?api-version={CONFIG_REFERENCES_API}")
    done = az("rest", "--method", "get", "--url", url, check=False)
    if done.returncode != 0:
        log(f"Resource Manager does not report reference status here ({done.stderr.strip()[:200]})")
        return None
    # `name` is the setting, or `<site>/<setting>` in some API versions: the last segment either way.
    return {item["name"].split("/")[-1]: (item.get("properties") or {}).get("status", "Unknown")
            for item in json.loads(done.stdout or "{}").get("value", [])}


def wait_for_references(app: str, group: str) -> dict[str, str]:
    """Restart until every Key Vault reference resolves; the last statuses."""
    last: dict[str, str] = {}

    def attempt():
        nonlocal last
        statuses = reference_statuses(app, group)
        if not statuses:  # not reported: the postdeploy hook proves it over HTTP instead
            return {}
        last = statuses
        pending = {name: status for name, status in statuses.items() if status != "Resolved"}
        if statuses and not pending:
            return statuses
        log("not resolved yet: " + ", ".join(f"{name} ({status})" for name, status in sorted(pending.items())))
        restart(app, group)
        return None

    try:
        statuses = _retrying("the Key Vault references to resolve", attempt)
    except TimedOut:
        raise HookError("Key Vault references still unresolved: " + ", ".join(
            f"{n} ({s})" for n, s in sorted(last.items()) if s != "Resolved")
            + ". Check the role assignments in infra/modules/rbac.bicep, then run "
              "`python tools/azd_hooks.py postprovision` again") from None
    if statuses:
        log("every Key Vault reference resolved: " + ", ".join(sorted(statuses)))
    return statuses


def operator_key_accepted(base_url: str, operator_key: str) -> int:
    """The status of an operator call that creates nothing: 400/422 = the key is valid, 403 = it is not (the
    app has no resolved PLATFORM_ADMIN_KEY), 404/5xx = not up yet."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/api/tenants", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {operator_key}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def prove_operator_key(app: str, group: str, vault: str, base_url: str) -> int:
    operator_key = read_secret(vault, OPERATOR_SECRET)
    if not operator_key:
        raise HookError(f"{vault} has no {OPERATOR_SECRET}: run `azd provision` first")
    restarted = False

    def attempt():
        nonlocal restarted
        status = operator_key_accepted(base_url, operator_key)
        if status in (400, 422):
            return status
        log(f"POST {base_url}/api/tenants with the operator key answered {status or 'nothing'}"
            + (": PLATFORM_ADMIN_KEY is not resolved yet" if status == 403 else ": the app is not up yet"))
        if status == 403 or (status == 0 and not restarted):
            restart(app, group)
            restarted = True
        return None

    status = _retrying("the operator key to be accepted", attempt)
    log(f"the operator key is accepted ({status} for an empty tenant request): Key Vault references resolved")
    return status


# ---- the package ----------------------------------------------------------------------------------------------

def pip_install_command(lock_file: str, target: str) -> list[str]:
    """pip installing the lock for Azure's runtime: hash-checked, wheels only, no resolution of its own."""
    version = FLEX_PYTHON_VERSION.replace(".", "")
    command = [sys.executable, "-m", "pip", "install", "--require-hashes", "--no-deps", "--only-binary=:all:",
               "--python-version", FLEX_PYTHON_VERSION, "--implementation", "cp",
               "--abi", f"cp{version}", "--abi", "abi3", "--abi", "none", "--target", target,
               "--upgrade", "--disable-pip-version-check", "--quiet", "-r", lock_file]
    for platform in FLEX_PLATFORMS:
        command[command.index("--target"):command.index("--target")] = ["--platform", platform]
    return command


def prepackage(root: str) -> str:
    sys.path.insert(0, os.path.join(root, "tools"))
    import lock  # tools/lock.py, standard library only

    found = lock.problems()
    if found:
        raise HookError("the dependency lock does not match requirements.txt: " + "; ".join(found)
                        + f". {lock.REGENERATE}")
    target = os.path.join(root, PACKAGES_DIR)
    shutil.rmtree(os.path.join(root, ".python_packages"), ignore_errors=True)
    log(f"installing requirements.lock (hash-checked, CPython {FLEX_PYTHON_VERSION} manylinux wheels) into {PACKAGES_DIR}")
    done = subprocess.run(pip_install_command(os.path.join(root, "requirements.lock"), target), cwd=root)
    if done.returncode != 0:
        raise HookError("pip could not install requirements.lock for Azure's runtime (see above)")
    return target


# ---- commands ------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["postprovision", "postdeploy", "rotate-oidc-key", "prepackage"])
    args = parser.parse_args(argv)
    try:
        if args.command == "prepackage":
            prepackage(os.getcwd())
            return 0
        vault, app, group = env("AZURE_KEY_VAULT_NAME"), env("AZURE_FUNCTION_APP_NAME"), env("AZURE_RESOURCE_GROUP")
        if args.command == "postprovision":
            ensure_oidc_signing_keys(vault)
            wait_for_references(app, group)
        elif args.command == "postdeploy":
            prove_operator_key(app, group, vault, env("PUBLIC_BASE_URL"))
        else:
            rotate_oidc_key(vault)
            restart(app, group)
    except HookError as error:
        print(f"gatehouse hook: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
