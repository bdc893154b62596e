"""A fresh machine: the Makefile names, in SYSTEM_PACKAGES, every Debian package the tests and benchmarks run,
and `make test` (and .ci/run) install the missing ones before the suite starts. Found by a `make test` on a
clean clone where pysaml2's SPConfig (tests/saml) could not find the `xmlsec1` program nobody installed."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = (ROOT / "Makefile").read_text()
# What the suite and the benchmarks run, and why: the program -> its Debian package.
PROGRAMS = {
    "xmlsec1": "xmlsec1",    # pysaml2 config.SPConfig() (tests/saml/test_saml_signature.py), bench/acs.py
    "chromium": "chromium",  # tests/browser/conftest.py CHROMIUM
    "node": "nodejs",        # Azurite (tests/conftest.py)
    "npm": "npm",            # `npm ci` installs Azurite
}


def system_packages() -> list[str]:
    match = re.search(r"^SYSTEM_PACKAGES\s*:?=\s*(.*)$", MAKEFILE, re.MULTILINE)
    assert match, "the Makefile has no SYSTEM_PACKAGES list"
    return match.group(1).split()


def test_the_makefile_names_every_system_package_the_suite_and_benchmarks_run():
    assert sorted(system_packages()) == sorted(PROGRAMS.values())


def test_every_named_package_is_installed_so_the_tests_that_need_them_run():
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    assert not missing, f"not installed: {missing}; `make test` (make system-deps) installs them"


def test_make_test_and_ci_install_the_system_packages_first():
    assert re.search(r"^test:.*\bsystem-deps\b", MAKEFILE, re.MULTILINE)
    assert re.search(r"^bench:.*\bsystem-deps\b", MAKEFILE, re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci  # which runs system-deps first
    assert "apt-get install" not in ci, "the package list lives in the Makefile only"


def test_on_a_machine_with_nothing_installed_system_deps_installs_every_package(tmp_path):
    """An empty PATH and no dpkg stand in for a fresh machine; apt-get is replaced by echo."""
    make = shutil.which("make")
    result = subprocess.run([make, "-s", "-C", str(ROOT), "system-deps", "APT_GET=echo apt-get", "SUDO="],
                            env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"apt-get install -y -qq {' '.join(system_packages())}" in result.stdout, result.stdout


def test_with_everything_installed_system_deps_runs_no_apt_get():
    make = shutil.which("make")
    result = subprocess.run([make, "-s", "-C", str(ROOT), "system-deps", "APT_GET=echo apt-get", "SUDO="],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "apt-get" not in result.stdout, result.stdout
