"""Gatehouse Function App (Python v2 model): one blueprint per module of `functions/`.

Kept light on purpose: each blueprint module imports only what its endpoints need at import time; SAML,
xmlsec and azure.identity load on first use, so a SCIM request on a cold instance does not pay for them.
"""
import logging

import azure.functions as func

import functions
from shared_code.storage import tables

# The Azure SDK logs every HTTP call at INFO; our own one line per request is what operators read.
logging.getLogger("azure").setLevel(logging.WARNING)
# A malformed TABLES_SHARDS stops the app here, with a message naming the setting; shards are tried once.
tables.check_at_startup()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# One blueprint per module of functions/ (the development IdP's only where DEV_IDP turns it on: functions.CONDITIONAL).
for blueprint in functions.blueprints():
    app.register_functions(blueprint)
