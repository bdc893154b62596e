"""A stand-in for the Azure CLI in tests/test_azd_hooks.py: the few `az` commands tools/azd_hooks.py uses,
over a JSON state file (FAKE_AZ_STATE) holding a vault's secrets and an app's Key Vault references.

Like the platform: a reference resolves only when the app restarts after its role has become effective
(`resolve_after_restarts` restarts), the OIDC reference only once its secret exists; the deployer's own reads
are refused (`forbidden_reads` times) while their role propagates. Every call is recorded in `calls`.
"""
from __future__ import annotations

import json
import os
import sys

REFERENCES = ("PLATFORM_ADMIN_KEY", "SESSION_SIGNING_KEY", "OIDC_SIGNING_KEYS")


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def main(args: list[str]) -> int:
    path = os.environ["FAKE_AZ_STATE"]
    with open(path, encoding="utf-8") as file:
        state = json.load(file)
    state["calls"].append(args)
    status = run(args, state)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(state, file)
    return status


def run(args: list[str], state: dict) -> int:
    secrets = state["secrets"]
    if args[:3] == ["keyvault", "secret", "show"]:
        if state.get("forbidden_reads", 0) > 0:
            state["forbidden_reads"] -= 1
            print("(Forbidden) Caller is not authorized to perform action on resource. Code: ForbiddenByRbac",
                  file=sys.stderr)
            return 1
        name = option(args, "--name")
        if name not in secrets:
            print(f"(SecretNotFound) A secret with (name/id) {name} was not found in this key vault.", file=sys.stderr)
            return 3
        print(secrets[name])
        return 0
    if args[:3] == ["keyvault", "secret", "set"]:
        with open(option(args, "--file"), encoding="utf-8") as file:
            secrets[option(args, "--name")] = file.read()
        return 0
    if args[:2] == ["functionapp", "restart"]:
        state["restarts"] += 1
        return 0
    if args[:2] == ["functionapp", "show"]:
        print("/subscriptions/0000/resourceGroups/rg-test/providers/Microsoft.Web/sites/func-test")
        return 0
    if args[:1] == ["rest"] and "/config/configreferences/appsettings" in option(args, "--url"):
        effective = state["restarts"] >= state.get("resolve_after_restarts", 0)

        def status(name: str) -> str:
            if name == "OIDC_SIGNING_KEYS" and "oidc-signing-keys" not in secrets:
                return "SecretNotFound"
            return "Resolved" if effective else "AccessToKeyVaultDenied"
        print(json.dumps({"value": [{"name": f"func-test/{n}" if n.startswith("S") else n,
                                     "properties": {"status": status(n)}} for n in REFERENCES]}))
        return 0
    print(f"fake az: unsupported command {args}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
