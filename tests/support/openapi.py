"""The OpenAPI document as the app assembles it from its functions' declarations (`functions/_openapi.py`), built
in a fresh process: building imports every blueprint module of functions/, as function_app does, and some of them
install process-wide hooks at import (webhook delivery wakes after each commit) that the test process must not get.
"""
from __future__ import annotations

import copy
import functools
import importlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

_BUILD = """
import json, sys
from functions._openapi import endpoints
from shared_code.openapi import document as openapi
document, models = openapi.build(sys.argv[1], endpoints())
models = {name: [model.__module__, model.__qualname__, mode] for name, (model, mode) in models.items()}
print(json.dumps({"document": document, "models": models}))
"""


@functools.lru_cache(maxsize=4)
def _built(base_url: str) -> dict:
    result = subprocess.run([sys.executable, "-c", _BUILD, base_url], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def document(base_url: str) -> dict:
    """The document with its server at `base_url` (a copy: callers may change it)."""
    return copy.deepcopy(_built(base_url)["document"])


def body_models(base_url: str) -> dict[str, tuple[type, str]]:
    """Name → (pydantic model, "validation" | "serialization") of every model the document refers to."""
    models = {}
    for name, (module, qualname, mode) in _built(base_url)["models"].items():
        models[name] = (getattr(importlib.import_module(module), qualname), mode)
    return models
