"""Cold start: how long a fresh Python process takes to load the Function App and answer its first SCIM
request, next to a bare `import azure.functions` (what every Python function app pays), measured in the
same run, each in fresh processes, as medians.

    .venv/bin/python bench/coldstart.py [--runs 7] [--top 12]

A cold instance does what the Python worker does: import `function_app`, index it (`app.get_functions()`),
then call the function. Here the first request is Entra's lookup `GET /Users?filter=userName eq "…"` for a
tenant that exists in a private Azurite (started here, on a free port, removed afterwards): the function is
called directly with an `azure.functions.HttpRequest`, so the time includes the first storage connection and
the token check, not an HTTP server. Our modules are compiled to bytecode first, as installed packages are
(compiling them from source would add to every variant that imports them). Printed as ratios over the bare
import:

* `python -c pass` (the interpreter alone) — for scale;
* import function_app + index — what the worker does before the first request;
* import + index + first SCIM request answered (200) — the cold start a provisioning cycle meets;
* import + index + first tenant-admin request with a JSON body answered (`PUT …/default-department`) — for
  comparison: only requests with a body load pydantic and their models (`shared_code/bodies/`).

Then the modules that cost most to import (`python -X importtime -c "import function_app"`), by cumulative
time of the top-level packages.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import Azurite  # noqa: E402

BARE = "import azure.functions"
INDEX = "import function_app; function_app.app.get_functions()"
FIRST_SCIM = """
import json, sys
import azure.functions as func
import function_app
functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
tenant, token = sys.argv[1], sys.argv[2]
request = func.HttpRequest(
    method="GET", url=f"http://localhost/api/scim/{tenant}/v2/Users", body=b"",
    headers={"authorization": f"Bearer {token}", "accept": "application/scim+json"},
    params={"filter": 'userName eq "nobody@contoso.example"'}, route_params={"tenant": tenant})
response = functions["scim_list_users"].get_user_function()(request)
assert response.status_code == 200, response.get_body()
assert json.loads(response.get_body())["totalResults"] == 0
"""
FIRST_ADMIN = """
import json, sys
import azure.functions as func
import function_app
functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
tenant, key = sys.argv[1], sys.argv[2]
request = func.HttpRequest(
    method="PUT", url=f"http://localhost/api/tenants/{tenant}/default-department",
    body=json.dumps({"department": "New employees"}).encode(),
    headers={"authorization": f"Bearer {key}", "content-type": "application/json"}, route_params={"tenant": tenant})
response = functions["set_default_department"].get_user_function()(request)
assert response.status_code == 200, response.get_body()
"""


def timed_run(code: str, env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def prepare_tenant(env: dict[str, str]) -> tuple[str, str, str]:
    """A tenant with a SCIM token (and its admin key), made through the cores in this process."""
    os.environ.update(env)
    from shared_code.tenancy import tenants
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    get_settings.cache_clear()
    tables.reset_clients()
    tenant, admin_key = tenants.create_tenant("Cold Start Corp", "https://cold.example.com")
    _, token = tenants.rotate_scim_token(tenant.tenant_id)
    return tenant.tenant_id, token, admin_key


def import_costs(env: dict[str, str]) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """From `-X importtime`: function_app's own imports by cumulative ms, and every package by the sum of its
    modules' self ms (what loading that distribution costs wherever it is first imported)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import function_app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    rows = []  # (depth, own ms, cumulative ms, module); importtime prints a module after its imports
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append(((len(match.group(3)) - 1) // 2, int(match.group(1)) / 1000, int(match.group(2)) / 1000,
                         match.group(4)))
    end = next(i for i, row in enumerate(rows) if row[0] == 0 and row[3] == "function_app")
    start = max((i for i, row in enumerate(rows[:end]) if row[0] == 0), default=-1) + 1
    under = rows[start:end]  # what importing function_app loaded (the interpreter's own start excluded)
    direct = sorted(((cumulative, name) for depth, _, cumulative, name in under if depth == 1), reverse=True)
    packages: dict[str, float] = {}
    for _, own, _, name in under:
        packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0.0) + own
    return direct, sorted(((ms, name) for name, ms in packages.items()), reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    with Azurite.temporary(prefix="gatehouse-coldstart-") as azurite:
        env = {**os.environ, "TABLES_CONNECTION_STRING": azurite.connection_string, "TABLES_ENDPOINT": "",
               "PLATFORM_ADMIN_KEY": "cold-" + uuid.uuid4().hex, "SESSION_SIGNING_KEY": "cold-" + uuid.uuid4().hex,
               "PUBLIC_BASE_URL": "http://127.0.0.1:7071"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # Our modules as bytecode, like the installed packages: otherwise whether a run compiles them from source
        # depends on which __pycache__ directories earlier runs happened to leave (tests run without writing them).
        subprocess.run([sys.executable, "-m", "compileall", "-q", "function_app.py", "functions", "shared_code"],
                       cwd=ROOT, env=env, check=True)
        tenant, token, admin_key = prepare_tenant(env)
        # One untimed run of each warms the OS file cache: every timed run then starts equally "warm-disk".
        warm_up = ((BARE, ()), (INDEX, ()), (FIRST_SCIM, (tenant, token)), (FIRST_ADMIN, (tenant, admin_key)))
        for code, extra in warm_up:
            timed_run(code, env, *extra)
        samples: dict[str, list[float]] = {"pass": [], "bare": [], "index": [], "first": [], "admin": []}
        for _ in range(args.runs):  # interleaved, so a busy moment of the machine hits every variant alike
            samples["pass"].append(timed_run("pass", env))
            samples["bare"].append(timed_run(BARE, env))
            samples["index"].append(timed_run(INDEX, env))
            samples["first"].append(timed_run(FIRST_SCIM, env, tenant, token))
            samples["admin"].append(timed_run(FIRST_ADMIN, env, tenant, admin_key))
        median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
        base = median["bare"]
        print(f"cold start, median of {args.runs} fresh processes each (ratio to `{BARE}`):")
        print(f"  python -c pass                              {median['pass']:7.0f} ms  ×{median['pass'] / base:.2f}")
        print(f"  {BARE:43} {base:7.0f} ms  ×1.00")
        print(f"  import function_app + index                 {median['index']:7.0f} ms  ×{median['index'] / base:.2f}")
        print(f"  … + first SCIM request answered (200)       {median['first']:7.0f} ms  ×{median['first'] / base:.2f}")
        print(f"  the first request itself (difference)       {median['first'] - median['index']:7.0f} ms")
        admin = median["admin"]
        print(f"  … or first admin request with a JSON body   {admin:7.0f} ms  ×{admin / base:.2f} (pydantic, models)")
        direct, packages = import_costs(env)
        print("\nimports of function_app by cumulative ms (-X importtime):")
        for ms, name in direct[:args.top]:
            print(f"  {ms:7.1f}  {name}")
        print("costliest packages (sum of their modules' own import ms):")
        for ms, name in packages[:args.top]:
            print(f"  {ms:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
