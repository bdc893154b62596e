"""Local stand-in for the Azure Functions host: serves a v2 `FunctionApp` over HTTP on loopback.

The command line, as `func start` behaves: `python -m tools.local_host [--app function_app] [--app-dir DIR]
[--port N] [--settings PATH]` exports `local.settings.json`, imports the app, serves it (server.py) and runs its
timers and queue functions (triggers.py) until Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import azure.functions as func

from tools.local_host.server import LocalHost
from tools.local_host.settings import DEFAULT_ROUTE_PREFIX, load_local_settings, read_json_file, read_route_prefix
from tools.local_host.triggers import Triggers

log = logging.getLogger("gatehouse.local_host")

DEFAULT_PORT = 7071


def _find_app(module: Any) -> func.FunctionRegister:
    """The module's one top-level FunctionApp, found the way the Python worker finds it."""
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise ValueError(f"{module.__name__}: expected exactly one top-level FunctionApp, found {len(apps)}")
    return apps[0]


def _resolve_port(cli_port: int | None, settings_path: str) -> int:
    """--port, else PORT, else local.settings.json Host.LocalHttpPort (as `func start` uses it), else 7071."""
    if cli_port is not None:
        return cli_port
    if os.environ.get("PORT"):
        if not os.environ["PORT"].isdigit():
            raise SystemExit(f"error: PORT must be a number, got {os.environ['PORT']!r}")
        return int(os.environ["PORT"])
    try:
        host_section = read_json_file(settings_path).get("Host") or {}
        if str(host_section.get("LocalHttpPort", "")).isdigit():
            return int(host_section["LocalHttpPort"])
    except (OSError, ValueError):
        pass
    return DEFAULT_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.local_host", description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="function_app", help="module that defines the FunctionApp")
    parser.add_argument("--app-dir", default=".", help="the Function App's root (host.json); default: cwd")
    parser.add_argument("--port", type=int, help="default: $PORT, else Host.LocalHttpPort, else 7071")
    parser.add_argument("--settings", help="local.settings.json to load; default: the one in the app dir")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[%(asctime)s] %(message)s")
    # The Azure SDK logs every storage call's headers at INFO, which would drown the function logs.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    app_dir = os.path.abspath(args.app_dir)
    settings_path = os.path.abspath(args.settings or os.path.join(app_dir, "local.settings.json"))
    # Read before the settings are exported: a PORT inside Values must not move the listener.
    port = _resolve_port(args.port, settings_path)

    # The worker runs with the app root as working directory and first on sys.path.
    os.chdir(app_dir)
    sys.path.insert(0, app_dir)
    if os.path.exists(settings_path):
        try:
            load_local_settings(settings_path)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    elif args.settings:
        print(f"error: settings file not found: {settings_path}", file=sys.stderr)
        return 2
    else:
        log.warning("no local.settings.json in %s; starting with the current environment only", app_dir)

    host_json = os.path.join(app_dir, "host.json")
    if os.path.exists(host_json):
        route_prefix = read_route_prefix(host_json)
    else:
        log.warning("no host.json in %s; using route prefix '%s'", app_dir, DEFAULT_ROUTE_PREFIX)
        route_prefix = DEFAULT_ROUTE_PREFIX

    try:
        local_host = LocalHost(_find_app(importlib.import_module(args.app)), route_prefix, app_dir)
        local_host.bind("127.0.0.1", port)
    except OSError as error:
        print(f"error: cannot listen on 127.0.0.1:{port}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    print("Functions:\n", flush=True)
    for line in local_host.describe_functions():
        print(f"\t{line}\n", flush=True)
    print(f"Gatehouse local host listening on {local_host.url}", flush=True)

    stopping = threading.Event()

    def stop(signum, frame):
        # Ask the serving loop to end from another thread (socketserver's way) rather than raising in whatever
        # the main thread is doing; a second Ctrl-C or SIGTERM while stopping ends the process at once.
        if stopping.is_set():
            os._exit(130 if signum == signal.SIGINT else 143)
        stopping.set()
        threading.Thread(target=local_host.shutdown, name="shutdown", daemon=True).start()

    # Both signals explicitly: a host started with SIGINT ignored (a background job) still stops on Ctrl-C.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    triggers = Triggers(local_host)  # timers on their schedule, queue functions polling their queue
    triggers.start()
    local_host.serve()
    triggers.stop()
    log.info("stopping")
    if not local_host.wait_for_idle(timeout=2.0):
        # A function still running would keep the pool's threads (and the process) alive; the real host
        # also kills its worker on shutdown.
        log.warning("functions still running; exiting without waiting for them")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0

