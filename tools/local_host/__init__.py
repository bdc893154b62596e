"""Local stand-in for the Azure Functions host: serves a v2 `FunctionApp` over HTTP on loopback.

Azure Functions Core Tools (`func start`) cannot be installed on our machines, so this package reproduces the
parts of the real host that Gatehouse relies on, using only the stdlib and `azure.functions`, one concern a module:

* settings.py — `local.settings.json` `Values` become environment variables before the app module is imported;
  the route prefix comes from `host.json`;
* worker.py — the app is indexed once with `app.get_functions()`, exactly like the Python worker does; sync
  functions run in a thread pool and `async def` functions on one event loop, as in the worker; a function
  whose `AzureWebJobs.<name>.Disabled` setting is true is not loaded, as the host leaves it out;
* routing.py — HTTP routes use the host's ASP.NET-style templates (constraints, optional and catch-all
  parameters, case-insensitive literals, "more specific route wins") under the `host.json` route prefix;
* server.py — the HTTP server: query keys that repeat are joined with commas, bodies arrive as raw bytes,
  responses may carry several `Set-Cookie` headers, unhandled exceptions become a bare 500; non-HTTP (timer)
  functions run on demand via `POST /admin/functions/{name}`, answering 202;
* triggers.py — timer functions run on their schedule, and queue-triggered functions poll their queue, as the
  real host runs them;
* cli.py (`python -m tools.local_host [--app function_app] [--app-dir DIR] [--port N] [--settings PATH]`) —
  all of the above in one process, as `make run` starts it.

Deliberate deviation from the real host: a path that matches a route whose methods exclude the request's
method answers 405 with `Allow` (the real host answers 404 there, see azure-functions-host#10098).
"""
from tools.local_host.cli import main
from tools.local_host.routing import RouteTemplate
from tools.local_host.server import LocalHost
from tools.local_host.settings import load_local_settings, read_route_prefix

__all__ = ["LocalHost", "RouteTemplate", "load_local_settings", "read_route_prefix", "main"]
