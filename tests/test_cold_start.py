"""Cold start: what only some endpoints need is loaded when they first run, not when the app is imported.
(How long a cold start takes is bench/coldstart.py's business; this checks what it loads.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADED = "import sys, function_app; function_app.app.get_functions(); print(' '.join(sorted(sys.modules)))"


def test_importing_the_app_loads_neither_the_public_suffix_list_nor_pydantic():
    modules = subprocess.run([sys.executable, "-c", LOADED], cwd=ROOT, capture_output=True, text=True, check=True,
                             timeout=120).stdout.split()
    assert "shared_code.directory.domains" in modules  # the module is there ...
    assert "publicsuffixlist" not in modules  # ... its list only for the first domain check
    assert "pydantic" not in modules  # the admin-key rotation's model only for that endpoint


def test_the_public_suffix_list_still_answers_once_needed():
    from shared_code.directory.domains import normalise_domains

    assert normalise_domains(["Contoso.COM"]).why_outside("a@fabrikam.com")
