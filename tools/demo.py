"""`make demo`: with `make run` in another terminal, the whole product on one machine, without an Entra tenant.

1. creates a fresh tenant (operator key from local.settings.json);
2. connects it to the development IdP by its App Federation Metadata URL (the admin's "Check now");
3. issues a SCIM token and runs Entra's provisioning, simulated (tools/simulate_entra.py): users with full
   profiles, groups with members, an update, a dismissal and a rehire;
4. starts the demo product (tools/demo_product): it registers itself as an OIDC client and receives the webhooks;
5. prints the URLs to open, and serves the demo product until Ctrl-C.

Options: --base (Gatehouse's URL; default http://127.0.0.1:$PORT, PORT defaulting to 7071), --port (the demo
product's; DEMO_PORT, default 8000, any free port when taken).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import requests

from tools.demo_product import DemoProduct
from tools.simulate_entra import EntraProvisioning, ProvisioningError, run

ROOT = Path(__file__).resolve().parent.parent


def _settings() -> dict[str, str]:
    for name in ("local.settings.json", "local.settings.sample.json"):
        path = ROOT / name
        if path.exists():
            return json.loads(path.read_text()).get("Values", {})
    return {}


def _free(port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            return 0


class Step:
    """Prints what is being done, and stops the demo with a clear message when Gatehouse refuses."""

    def __init__(self, http: requests.Session, base: str):
        self.http, self.base = http, base

    def call(self, what: str, method: str, path: str, expect: int, **kwargs) -> dict:
        print(f"• {what}: {method} {path}", flush=True)
        response = self.http.request(method, self.base + path, timeout=30, **kwargs)
        if response.status_code != expect:
            raise SystemExit(f"  ✗ {what} failed: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else {}


def main(argv: list[str] | None = None) -> int:
    values = _settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=f"http://127.0.0.1:{os.environ.get('PORT') or 7071}")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT") or 8000))
    parser.add_argument("--name", default="Contoso (demo)")
    parser.add_argument("--domain", default="contoso.example")
    args = parser.parse_args(argv)
    base = args.base.rstrip("/")
    operator_key = os.environ.get("PLATFORM_ADMIN_KEY") or values.get("PLATFORM_ADMIN_KEY", "")
    http = requests.Session()
    http.trust_env = False
    try:
        http.get(f"{base}/api/openapi.json", timeout=5)
    except requests.RequestException:
        print(f"Gatehouse does not answer on {base}. Start it first, in another terminal: make run", file=sys.stderr)
        return 2
    if (values.get("DEV_IDP") or "").lower() != "true" and not os.environ.get("DEV_IDP"):
        print('local.settings.json does not turn on the development IdP (it predates it): add "DEV_IDP": "true" '
              "to its Values (as in local.settings.sample.json), restart make run, then run make demo again.",
              file=sys.stderr)
        return 2
    step = Step(http, base)
    operator = {"Authorization": f"Bearer {operator_key}"}

    product = DemoProduct(base, "", port=_free(args.port))
    created = step.call("The operator creates a tenant", "POST", "/api/tenants", 201, headers=operator,
                        json={"name": args.name, "app_url": product.url + "/"})
    tenant, admin_key = created["tenant_id"], created["admin_key"]
    admin = {"Authorization": f"Bearer {admin_key}"}
    metadata_url = f"{base}/api/dev-idp/{tenant}/metadata"
    connected = step.call("The admin connects the development IdP by its metadata URL (\"Check now\")", "POST",
                          f"/api/tenants/{tenant}/sso/idp-metadata", 200, headers=admin,
                          json={"metadata_url": metadata_url})
    print(f"  connection {connected['connection']}: {connected['idp_entity_id']}", flush=True)
    scim = step.call("The admin issues the SCIM token for Entra", "POST", f"/api/tenants/{tenant}/scim/token", 201,
                     headers=admin)
    print("• Entra's provisioning job, simulated (python -m tools.simulate_entra):", flush=True)
    client = EntraProvisioning(scim["scim_tenant_url"], scim["secret_token"],
                               log=lambda line: print("    " + line, flush=True))
    product.tenant_id = tenant
    try:
        with product:
            print("• The demo product registers as an OIDC client and sets the tenant's webhook", flush=True)
            product.register(operator_key)
            try:
                report = run(client, args.domain)
            except ProvisioningError as error:
                raise SystemExit(f"  ✗ provisioning failed: {error}") from None
            link = step.call("The operator issues a setup link for the admin's wizard", "POST",
                             f"/api/tenants/{tenant}/setup-link", 201, headers=operator)
            first = next(iter(report.users))
            print(f"""
Ready. Open these in a browser:

  Demo product (sign in, see the ID token's claims and the webhook events):
    {product.url}/
  Straight to a sign-in as {first} (login_hint: no picker page):
    {product.url}/login?login_hint={first}
  The tenant admin's setup wizard (one-time link, 24 h):
    {link['url']}

For curl (see the README):
  BASE={base}  T={tenant}
  KEY={admin_key}
  SCIM_TOKEN={scim['secret_token']}
  development IdP metadata: {metadata_url}
  employees: {', '.join(report.users)}  (dismissed: {report.dismissed}; rehired: {report.rehired})

Press Ctrl-C to stop the demo product (Gatehouse keeps running).""", flush=True)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
