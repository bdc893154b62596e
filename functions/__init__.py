"""The thin adapters: one blueprint per module (HTTP, timer or queue in → the core → out); `function_app.py`
registers `blueprints()`, and the OpenAPI document (`functions/_openapi.py`) walks the same ones."""
from __future__ import annotations

import importlib
import pkgutil

from shared_code import dev_idp

# Modules registered only where a setting turns them on: the development IdP exists only with DEV_IDP=true on an
# http:// PUBLIC_BASE_URL (shared_code/dev_idp); elsewhere its routes are not there at all.
CONDITIONAL = {"dev_idp": dev_idp.enabled}


def blueprints() -> list:
    """The blueprints the app serves, in module order (modules starting with `_` are helpers, not blueprints)."""
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        if module in CONDITIONAL and not CONDITIONAL[module]():
            continue
        found.append(importlib.import_module(f"{__name__}.{module}").bp)
    return found
