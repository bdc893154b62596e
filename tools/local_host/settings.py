"""The local host's configuration files, read as `func start` reads them: `local.settings.json` (its `Values`
become environment variables) and `host.json` (the HTTP route prefix)."""
from __future__ import annotations

import json
import os
from typing import Mapping

DEFAULT_ROUTE_PREFIX = "api"


def load_local_settings(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read `Values` from a `local.settings.json` and export them the way `func start` does.

    Variables already present in the environment win over the file. Returns the file's `Values`.
    A value that is not a string is rejected: Core Tools cannot read such a file either, and accepting it
    here would let `func start` break where this host works.
    """
    environ = os.environ if environ is None else environ
    with open(path, encoding="utf-8-sig") as fh:  # editors on Windows add a BOM; Core Tools accepts it
        document = json.load(fh)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if document.get("IsEncrypted") is True:
        raise ValueError(f"{path}: encrypted settings are not supported; run `func settings decrypt` first")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: 'Values' must be an object of strings")
    for name, value in values.items():
        if not isinstance(value, str):
            raise ValueError(f"{path}: Values.{name} must be a string (Core Tools rejects other types)")
    for name, value in values.items():
        environ.setdefault(name, value)
    return dict(values)


def read_json_file(path: str) -> dict:
    with open(path, encoding="utf-8-sig") as fh:
        document = json.load(fh)
    return document if isinstance(document, dict) else {}


def read_route_prefix(host_json_path: str | os.PathLike) -> str:
    """The HTTP route prefix from `host.json` (`extensions.http.routePrefix`), `api` when unset."""
    document = read_json_file(os.fspath(host_json_path))
    prefix = ((document.get("extensions") or {}).get("http") or {}).get("routePrefix")
    return DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/")

