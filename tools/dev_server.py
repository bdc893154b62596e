"""`make run`: Azurite's Table and Queue services on loopback plus the Function App on the local host, in the
foreground.

Azurite keeps its data in `.azurite/` so a restart keeps your tenants. Ctrl-C stops both. Storage shards
(`TABLES_SHARDS`) whose connection strings name other accounts on the same Azurite are served by it too
(AZURITE_ACCOUNTS).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _settings() -> dict[str, str]:
    path = ROOT / "local.settings.json"
    return json.loads(path.read_text()).get("Values", {}) if path.exists() else {}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def azurite_accounts(values: dict[str, str], table_port: int) -> str:
    """AZURITE_ACCOUNTS for the shards of `TABLES_SHARDS` that live on this Azurite (empty when none do):
    their names and keys, plus the default account, which a custom list would otherwise switch off."""
    try:
        shards = json.loads(values.get("TABLES_SHARDS") or "[]")
    except json.JSONDecodeError:
        return ""  # the app itself refuses the setting, with a message naming it
    accounts = {}
    for entry in shards if isinstance(shards, list) else []:
        fields = dict(part.split("=", 1) for part in str(entry).split(";") if "=" in part)
        if f"127.0.0.1:{table_port}/" in fields.get("TableEndpoint", "") and fields.get("AccountKey"):
            accounts[fields.get("AccountName", "")] = fields["AccountKey"]
    if not accounts:
        return ""
    default = "devstoreaccount1:" + DEV_ACCOUNT_KEY
    return ";".join([default, *(f"{name}:{key}" for name, key in accounts.items() if name != "devstoreaccount1")])


def _azurite(service: str, port: int, children: list[subprocess.Popen], accounts: str = "") -> None:
    """Start Azurite's Table or Queue service on `port` (data in .azurite/), unless something answers there."""
    if _listening(port):
        print(f"{service} Storage already answers on 127.0.0.1:{port}; using it.")
        return
    (ROOT / ".azurite").mkdir(exist_ok=True)
    kind = service.lower()
    children.append(subprocess.Popen(
        [str(ROOT / f"node_modules/.bin/azurite-{kind}"), f"--{kind}Host", "127.0.0.1", f"--{kind}Port", str(port),
         "--location", str(ROOT / ".azurite"), "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl",
         "--silent", "--disableTelemetry"], start_new_session=True,
        env={**os.environ, "AZURITE_ACCOUNTS": accounts} if accounts else None))
    for _ in range(100):
        if _listening(port):
            break
        time.sleep(0.1)
    print(f"Azurite {service} service on http://127.0.0.1:{port} (data in .azurite/)")


def main() -> int:
    values = _settings()
    port = int(os.environ.get("PORT") or 7071)
    match = re.search(r"TableEndpoint=http://127\.0\.0\.1:(\d+)", values.get("TABLES_CONNECTION_STRING", ""))
    table_port = int(match.group(1)) if match else 10002
    children: list[subprocess.Popen] = []

    accounts = azurite_accounts(values, table_port)
    _azurite("Table", table_port, children, accounts)
    match = re.search(r"QueueEndpoint=http://127\.0\.0\.1:(\d+)", values.get("GATEHOUSE_QUEUES", ""))
    # Webhook deliveries ride the `webhook-deliveries` queue; the local host polls it like the real host.
    _azurite("Queue", int(match.group(1)) if match else 10001, children, accounts)

    env = dict(os.environ)
    # The sample's base URL names port 7071; on another PORT the setup URLs must name the port really served.
    if values.get("PUBLIC_BASE_URL", "").rstrip("/") == "http://127.0.0.1:7071" and "PUBLIC_BASE_URL" not in env:
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    children.append(subprocess.Popen([sys.executable, "-m", "tools.local_host", "--port", str(port)], cwd=ROOT,
                                     env=env, start_new_session=True))
    operator_key = values.get("PLATFORM_ADMIN_KEY", "<PLATFORM_ADMIN_KEY>")
    for _ in range(200):
        if _listening(port):
            break
        time.sleep(0.1)
    print(f"""
Gatehouse is running on http://127.0.0.1:{port}. Create your first tenant:

  curl -s -X POST http://127.0.0.1:{port}/api/tenants \\
    -H 'Authorization: Bearer {operator_key}' -H 'Content-Type: application/json' \\
    -d '{{"name": "Acme", "app_url": "https://acme.example.com"}}'

No Entra tenant at hand? In another terminal: make demo (the development IdP, simulated provisioning, a demo product).

Press Ctrl-C to stop.""", flush=True)

    def stop(*_):
        for child in reversed(children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A child process stopped; shutting down.", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
