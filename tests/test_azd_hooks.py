"""tools/azd_hooks.py, the azd hooks that make the first `azd up` end with resolved Key Vault references.

Azure cannot be reached from here, so `az` is a stand-in (tests/support/fake_az.py) that keeps a vault's
secrets and an app's reference status in a JSON file and behaves like the platform does: a reference stays
unresolved until the app restarts after its role is effective, a role is effective only after some calls. The
postdeploy probe goes over real HTTP to the real app on the local host.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "tools" / "azd_hooks.py"
FAKE_AZ = ROOT / "tests" / "support" / "fake_az.py"


@pytest.fixture
def azure(tmp_path):
    """A fake subscription: state file plus the environment azd gives a hook."""
    state_path = tmp_path / "azure.json"

    def run(command: str, state: dict, **extra_env: str) -> tuple[subprocess.CompletedProcess, dict]:
        state_path.write_text(json.dumps({"secrets": {}, "calls": [], "restarts": 0, **state}))
        environ = {**os.environ, "GATEHOUSE_AZ": str(tmp_path / "az"), "FAKE_AZ_STATE": str(state_path),
                   "AZURE_KEY_VAULT_NAME": "kv-test", "AZURE_FUNCTION_APP_NAME": "func-test",
                   "AZURE_RESOURCE_GROUP": "rg-test", "GATEHOUSE_HOOK_POLL_SECONDS": "0",
                   "GATEHOUSE_HOOK_TIMEOUT": "0", **extra_env}
        done = subprocess.run([sys.executable, str(HOOKS), command], env=environ, capture_output=True,
                              text=True, timeout=120)
        return done, json.loads(state_path.read_text())

    launcher = tmp_path / "az"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE_AZ} \"$@\"\n")
    launcher.chmod(0o755)
    return run


def _keys(state: dict) -> list[str]:
    return json.loads(state["secrets"]["oidc-signing-keys"])


def test_azure_yaml_runs_the_hooks_after_provision_and_deploy():
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"]
    for event, command in (("postprovision", "postprovision"), ("postdeploy", "postdeploy")):
        for system in ("posix", "windows"):
            assert hooks[event][system]["run"].endswith(f"tools/azd_hooks.py {command}")


def test_first_provision_creates_one_signing_key_and_restarts_until_references_resolve(azure):
    done, state = azure("postprovision", {"resolve_after_restarts": 2},
                        GATEHOUSE_HOOK_TIMEOUT="60")
    assert done.returncode == 0, done.stderr
    keys = _keys(state)
    assert len(keys) == 1 and keys[0].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as the app reads it
    assert state["restarts"] == 2, "restarted until every reference said Resolved"
    assert "every Key Vault reference resolved" in done.stdout


def test_a_provision_never_replaces_existing_signing_keys(azure):
    existing = json.dumps(["-----BEGIN PRIVATE KEY-----\nnew\n-----END PRIVATE KEY-----\n",
                           "-----BEGIN PRIVATE KEY-----\nold\n-----END PRIVATE KEY-----\n"])
    done, state = azure("postprovision", {"secrets": {"oidc-signing-keys": existing}, "resolve_after_restarts": 0})
    assert done.returncode == 0, done.stderr
    assert state["secrets"]["oidc-signing-keys"] == existing
    assert not [call for call in state["calls"] if call[:3] == ["keyvault", "secret", "set"]]
    assert state["restarts"] == 0, "nothing to wait for when every reference already resolves"


def test_the_hook_waits_while_the_deployers_own_role_propagates(azure):
    done, state = azure("postprovision", {"forbidden_reads": 2, "resolve_after_restarts": 1},
                        GATEHOUSE_HOOK_TIMEOUT="60")
    assert done.returncode == 0, done.stderr
    assert "propagating" in done.stdout
    assert len(_keys(state)) == 1


def test_unresolved_references_fail_the_hook_and_say_which(azure):
    done, state = azure("postprovision", {"resolve_after_restarts": 99})
    assert done.returncode == 1
    assert "PLATFORM_ADMIN_KEY (AccessToKeyVaultDenied)" in done.stderr
    assert state["restarts"] >= 1


def test_the_key_never_appears_on_a_command_line(azure):
    done, state = azure("postprovision", {"resolve_after_restarts": 0})
    assert done.returncode == 0, done.stderr
    written = _keys(state)[0]
    assert not [call for call in state["calls"] if any("PRIVATE KEY" in arg for arg in call)]
    assert written not in done.stdout + done.stderr


def test_rotation_puts_a_new_key_first_and_keeps_the_previous_one_published(azure):
    current = "-----BEGIN PRIVATE KEY-----\ncurrent\n-----END PRIVATE KEY-----\n"
    retired = "-----BEGIN PRIVATE KEY-----\nretired\n-----END PRIVATE KEY-----\n"
    done, state = azure("rotate-oidc-key", {"secrets": {"oidc-signing-keys": json.dumps([current, retired])}})
    assert done.returncode == 0, done.stderr
    keys = _keys(state)
    assert len(keys) == 2 and keys[1] == current and keys[0] not in (current, retired)
    assert state["restarts"] == 1, "the app reads the new keys now, not at the next daily refresh"


def test_postdeploy_proves_the_operator_key_over_http(azure, app_url, operator_key):
    done, state = azure("postdeploy", {"secrets": {"platform-admin-key": operator_key}}, PUBLIC_BASE_URL=app_url)
    assert done.returncode == 0, done.stderr
    assert "the operator key is accepted" in done.stdout
    assert state["restarts"] == 0


def test_postdeploy_restarts_and_fails_while_the_app_refuses_the_operator_key(azure, app_url):
    done, state = azure("postdeploy", {"secrets": {"platform-admin-key": "not-the-key-the-app-has"}},
                        PUBLIC_BASE_URL=app_url)
    assert done.returncode == 1
    assert "answered 403" in done.stdout and state["restarts"] >= 1
