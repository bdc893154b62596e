"""`.ci/run` runs the suite and the infrastructure check; a missing check is a CI failure, never a skip.

The script runs in a copy of the repo's `.ci/` with `make`, `node` and `chromium` stubbed on PATH, so what
is tested is the script's own control flow.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _executable(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_ci(tmp_path: Path, validate_infra: str | None) -> tuple[subprocess.CompletedProcess, Path]:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "tools").mkdir()
    if validate_infra is not None:
        (repo / "tools" / "validate_infra.sh").write_text(validate_infra)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    _executable(stubs / "make", f'echo "make $*" >> {calls}')
    _executable(stubs / "node", "exit 0")
    _executable(stubs / "chromium", "exit 0")
    env = {**os.environ, "PATH": f"{stubs}:/usr/bin:/bin"}
    result = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True,
                            timeout=60)
    return result, calls


def test_ci_fails_when_the_infrastructure_check_is_missing(tmp_path):
    result, calls = _run_ci(tmp_path, validate_infra=None)
    assert result.returncode != 0
    assert "validate_infra.sh is missing" in result.stderr


def test_ci_runs_the_suite_and_the_infrastructure_check(tmp_path):
    result, calls = _run_ci(tmp_path, validate_infra=f'echo "validate_infra" >> {tmp_path / "calls"}\n')
    assert result.returncode == 0, result.stderr
    assert calls.read_text().split("\n")[:2] == ["make test", "validate_infra"]


def test_ci_fails_when_the_infrastructure_check_fails(tmp_path):
    result, calls = _run_ci(tmp_path, validate_infra="exit 3\n")
    assert result.returncode != 0
    assert "make test" in calls.read_text()
