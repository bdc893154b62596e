"""Gatehouse Function App (Python v2 model): one blueprint per module of `functions/`.

Kept light on purpose: each blueprint module imports only what its endpoints need at import time; SAML,
xmlsec and azure.identity load on first use, so a SCIM request on a cold instance does not pay for them.
"""
import importlib
import logging
import pkgutil

import azure.functions as func

import functions
from shared_code import dev_idp
from shared_code.storage import tables

# The Azure SDK logs every HTTP call at INFO; our own one line per request is what operators read.
logging.getLogger("azure").setLevel(logging.WARNING)
# A malformed TABLES_SHARDS stops the app here, with a message naming the setting; shards are tried once.
tables.check_at_startup()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Modules registered only where a setting turns them on: the development IdP exists only with DEV_IDP=true on an
# http:// PUBLIC_BASE_URL (shared_code/dev_idp); elsewhere its routes are not there at all.
CONDITIONAL = {"dev_idp": dev_idp.enabled}

for module in sorted(m.name for m in pkgutil.iter_modules(functions.__path__) if not m.name.startswith("_")):
    if module in CONDITIONAL and not CONDITIONAL[module]():
        continue
    app.register_functions(importlib.import_module(f"functions.{module}").bp)