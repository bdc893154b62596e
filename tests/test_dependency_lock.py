"""The dependency locks match what people edit, and the deployment installs from the app's lock (issue 17).

When this fails after requirements.txt or requirements-dev.txt changed: run `make lock` and commit both locks.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import azd_hooks  # noqa: E402
import lock  # noqa: E402


def test_the_locks_match_requirements_txt():
    found = lock.problems()
    assert not found, "\n".join(found) + f"\n{lock.REGENERATE}"


def test_the_check_catches_a_new_package_a_bump_and_a_missing_hash(tmp_path):
    (tmp_path / "requirements.txt").write_text("requests==2.34.2\nidna==3.20  # why\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\npytest==9.2.0\n")
    entry = "{name}=={version} \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r {source}\n"
    (tmp_path / "requirements.lock").write_text(
        entry.format(name="requests", version="2.34.1", source="requirements.txt")
        + "urllib3==2.8.0\n    # via requests\n")
    (tmp_path / "requirements-dev.lock").write_text(
        entry.format(name="requests", version="2.34.2", source="requirements.txt")
        + entry.format(name="idna", version="3.20", source="requirements.txt")
        + entry.format(name="pytest", version="9.2.0", source="requirements-dev.txt"))
    found = "\n".join(lock.problems(tmp_path))
    assert "requirements.lock lacks idna" in found
    assert "requirements.lock has requests==2.34.1, requirements.txt pins 2.34.2" in found
    assert "requirements.lock: urllib3 has no --hash" in found
    assert "the tests would not run what Azure runs" in found


def test_the_check_says_to_run_make_lock(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lock, "problems", lambda root=None: ["requirements.lock lacks authlib (in requirements.txt)"])
    assert lock.main(["lock.py", "check"]) == 1
    assert "make lock" in capsys.readouterr().err


def test_make_installs_from_the_dev_lock_with_hashes_and_has_a_lock_target():
    makefile = (ROOT / "Makefile").read_text()
    install = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "tools/lock.py check" in install
    assert "--require-hashes --no-deps -r requirements-dev.lock" in install
    assert re.search(r"^lock:", makefile, re.M)
    assert "--generate-hashes" in makefile and "--output-file requirements.lock requirements.txt" in makefile


def test_the_deployment_installs_the_app_lock_for_the_flex_runtime():
    service = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"]["api"]
    assert service["remoteBuild"] is False, "a remote build would resolve the dependencies afresh"
    assert service["hooks"]["prepackage"]["posix"]["run"].endswith("tools/azd_hooks.py prepackage")
    command = azd_hooks.pip_install_command("requirements.lock", ".python_packages/lib/site-packages")
    assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(command)
    assert command[command.index("-r") + 1] == "requirements.lock"
    runtime = re.search(r"runtime:\s*\{\s*name:\s*'python'\s*version:\s*'([\d.]+)'",
                        (ROOT / "infra" / "modules" / "functionapp.bicep").read_text())
    assert runtime and runtime.group(1) == azd_hooks.FLEX_PYTHON_VERSION == command[command.index("--python-version") + 1]
    ignored = (ROOT / ".funcignore").read_text().splitlines()
    assert ".python_packages/" not in ignored and ".python_packages" not in ignored


def test_prepackage_refuses_a_stale_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "problems", lambda root=None: ["requirements.lock lacks authlib (in requirements.txt)"])
    with pytest.raises(azd_hooks.HookError, match="make lock"):
        azd_hooks.prepackage(str(ROOT))
