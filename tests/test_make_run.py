"""`make run` itself, as a developer runs it: in a copy of the project (the shared venv and node_modules linked
in, `local.settings.json` naming free ports instead of 7071/10002), `make run PORT=<free>` serves the app with
Azurite behind it; Ctrl-C (SIGINT to the foreground process group, as a terminal sends it) stops everything it
started: the local host and Azurite are gone afterwards, not left running in the background."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port

COPY_IGNORES = shutil.ignore_patterns(".git", ".venv", ".venv-infra", "node_modules", "test-output", ".azurite",
                                      ".hypothesis", ".pytest_cache", "__pycache__", "local.settings.json", "docs")


def _project_copy(where: Path) -> Path:
    copy = where / "gatehouse"
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORES)
    for linked in (".venv", "node_modules"):
        target = (ROOT / linked).resolve()
        if not (target / ".installed").exists():
            pytest.fail(f"{linked} is not installed: run `make test` (it installs before running the suite)")
        (copy / linked).symlink_to(target)
    # The links' .installed stamps are older than a fresh copy's requirement files; make would reinstall.
    for stamped in ("requirements.txt", "requirements-dev.txt", "package.json", "package-lock.json"):
        if (copy / stamped).exists():
            os.utime(copy / stamped, (0, 0))
    sample = (copy / "local.settings.sample.json").read_text()
    ports = {port: str(free_port()) for port in set(re.findall(r"127\.0\.0\.1:(\d+)", sample)) if port != "7071"}
    settings = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{ports.get(m.group(1), m.group(1))}", sample)
    (copy / "local.settings.json").write_text(settings)
    return copy


def _processes_under(copy: Path) -> dict[int, str]:
    """pid → command line of every live process running from the copy (its cwd or its arguments name it)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(copy) in cmdline or cwd == str(copy) or cwd.startswith(f"{copy}/")):
            found[int(entry.name)] = cmdline
    return found


def test_make_run_serves_the_app_and_ctrl_c_stops_the_host_and_azurite(tmp_path):
    copy = _project_copy(tmp_path)
    values = json.loads((copy / "local.settings.json").read_text())["Values"]
    port = free_port()
    # The suite's own settings must not leak in: the environment wins over local.settings.json.
    env = {name: value for name, value in os.environ.items() if name not in values and name != "PORT"}
    log = (tmp_path / "make-run.log").open("wb")
    make = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=copy, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    started: dict[int, str] = {}
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and make.poll() is None:
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/api/tenants", timeout=10,
                                       json={"name": "Make Run", "app_url": "https://make.example.com"},
                                       headers={"Authorization": f"Bearer {values['PLATFORM_ADMIN_KEY']}"})
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        output = (tmp_path / "make-run.log").read_text(errors="replace")
        assert answer is not None, output
        assert answer.status_code == 201, (answer.text, output)  # the app answers, and Azurite stores
        assert answer.json()["acs_url"].startswith(f"http://127.0.0.1:{port}/api/sso/")

        started = _processes_under(copy)
        assert any("azurite" in cmd for cmd in started.values()), started
        assert any("tools.local_host" in cmd for cmd in started.values()), started

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        make.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _processes_under(copy) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _processes_under(copy)
        assert left == {}, f"still running after Ctrl-C: {left}"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5)
    finally:
        for pid in set(started) | set(_processes_under(copy)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        log.close()
