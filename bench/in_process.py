"""The real app served over HTTP inside the benchmark's own process, so a benchmark can time the app's requests and
replay the same storage calls bare in one run (the ratio between the two is what the benchmarks report)."""
from __future__ import annotations

import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve_app(port: int):
    """Serve `function_app` on loopback `port` with the settings already in the environment; returns the local
    host (a `tools.local_host.LocalHost`) once it answers."""
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables
    from tools.local_host import LocalHost, read_route_prefix

    get_settings.cache_clear()
    tables.reset_clients()
    import function_app

    host = LocalHost(function_app.app, read_route_prefix(ROOT / "host.json"), str(ROOT))
    host.bind("127.0.0.1", port)
    threading.Thread(target=host.serve, daemon=True).start()
    host.ready.wait(10)
    return host
