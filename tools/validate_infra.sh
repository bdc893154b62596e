#!/usr/bin/env bash
# Validates infra/ offline (no Bicep compiler or Azure access here):
#   1. every .bicep parses with pycep-parser (the parser checkov uses; checkov alone skips files it cannot parse);
#   2. the wiring a Bicep build would check: main.parameters.json against main.bicep's parameters, every
#      module call against the module's parameters, every `<module>.outputs.<name>` against its outputs,
#      azure.yaml's service against the function app's azd-service-name tag;
#   3. checkov's Bicep checks pass, and every skipped check carries a reason (`//checkov:skip=ID: reason`);
#   4. the rules a Bicep build cannot know, read from the Bicep text by the project's tests: no site property
#      Flex Consumption rejects, every app setting the code reads, the webhook queues and their identity-based
#      connection, the roles, Key Vault references (and an OIDC key secret no provision overwrites), host.json's
#      request telemetry and queue settings, the azd hooks, and the dependency lock matching requirements.txt.
# The tools live in their own venv, .venv-infra, pinned by infra/validate-requirements.txt: checkov needs
# packaging<24 and pytest 9 needs packaging>=24, so they cannot share .venv. A second run reuses the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-infra
LOCK=infra/validate-requirements.txt
PYTHON=${PYTHON:-python3}
started=$SECONDS

lock_hash=$(sha256sum "$LOCK" | cut -c1-16)
stamp="$VENV/.installed-$lock_hash"
if [ ! -f "$stamp" ]; then
  echo "validate_infra: installing $LOCK into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  # (this machine's pip.conf names local index folders that may be absent: pip warns once per package)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$LOCK" \
    2> >(grep -v '^WARNING: Location .* is ignored' >&2)
  touch "$stamp"
fi

# Every skip must say why; checkov itself would report a bare one as "No comment provided" and pass.
bare_skips=$(grep -rnE 'checkov:skip=[A-Z0-9_]+[[:space:]]*$' infra --include='*.bicep' || true)
if [ -n "$bare_skips" ]; then
  echo "validate_infra: checkov skips without a reason (write //checkov:skip=ID: why):" >&2
  echo "$bare_skips" >&2
  exit 1
fi

"$VENV/bin/python" - <<'PY'
"""Parse every .bicep and check the wiring between main.bicep, its modules, the parameters file and azure.yaml."""
import json
import re
import sys
from pathlib import Path

import yaml
from pycep import BicepParser

infra = Path("infra")
problems: list[str] = []
parsed: dict[Path, dict] = {}
for path in sorted(infra.rglob("*.bicep")):
    try:
        parsed[path] = BicepParser().parse(file_path=path)
    except Exception as error:  # pycep raises lark errors of several kinds
        problems.append(f"{path}: does not parse: {str(error).splitlines()[0]}")
if problems:
    sys.exit("\n".join(problems))


def required(params: dict) -> set[str]:
    return {name for name, spec in params.items() if spec.get("default") is None}


main_path = infra / "main.bicep"
main = parsed[main_path]
main_params = main.get("parameters") or {}

supplied = set(json.loads((infra / "main.parameters.json").read_text())["parameters"])
for name in sorted(supplied - set(main_params)):
    problems.append(f"main.parameters.json: `{name}` is not a parameter of main.bicep")
for name in sorted(required(main_params) - supplied):
    problems.append(f"main.parameters.json: main.bicep requires `{name}` and azd would not supply it")

main_text = main_path.read_text()
for symbol, module in (main.get("modules") or {}).items():
    module_path = infra / module["detail"]["path"]
    if module_path not in parsed:
        problems.append(f"main.bicep: module `{symbol}` points at missing {module_path}")
        continue
    declared = parsed[module_path].get("parameters") or {}
    config = module["config"]
    if config.get("loop_type"):  # `[for i in range(...): {...}]`: the module's own config is one level down
        config = config.get("config") or {}
    passed = set((config.get("params") or {}))
    for name in sorted(passed - set(declared)):
        problems.append(f"main.bicep: module `{symbol}` passes `{name}`, which {module_path} does not declare")
    for name in sorted(required(declared) - passed):
        problems.append(f"main.bicep: module `{symbol}` does not pass `{name}`, which {module_path} requires")
    outputs = set(parsed[module_path].get("outputs") or {})
    for name in sorted(set(re.findall(rf"\b{symbol}\.outputs\.(\w+)", main_text)) - outputs):
        problems.append(f"main.bicep: `{symbol}.outputs.{name}` is not an output of {module_path}")

services = (yaml.safe_load(Path("azure.yaml").read_text()) or {}).get("services") or {}
tagged = set(re.findall(r"'azd-service-name':\s*'([^']+)'", main_text))
for name, service in services.items():
    if service.get("host") == "function" and name not in tagged:
        problems.append(f"azure.yaml: service `{name}` has no resource tagged azd-service-name '{name}' in main.bicep")
if not any(s.get("host") == "function" and s.get("language") == "python" for s in services.values()):
    problems.append("azure.yaml: no service with host: function and language: python")

if problems:
    sys.exit("\n".join(problems))
print(f"validate_infra: {len(parsed)} Bicep files parse; parameters, modules, outputs and azure.yaml agree")
PY

report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
"$VENV/bin/checkov" --framework bicep --skip-download -d infra --compact --quiet \
  -o cli -o json --output-file-path "console,$report" || status=$?

read -r passed failed skipped parsing_errors < <("$VENV/bin/python" -c '
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
print(summary["passed"], summary["failed"], summary["skipped"], summary["parsing_errors"])' "$report")
if [ "$parsing_errors" != 0 ]; then
  echo "validate_infra: checkov could not parse $parsing_errors file(s)" >&2
  status=1
fi
RULES="tests/test_settings_consistency.py tests/test_host_json.py tests/test_dependency_lock.py"
if [ -x .venv/bin/python ]; then
  .venv/bin/python -m pytest -q -p no:cacheprovider $RULES || status=1
else
  echo "validate_infra: .venv missing (run make deps): skipped $RULES" >&2
  status=1
fi
echo "validate_infra: done in $((SECONDS - started)) s"
# A closing line CI reads like a test runner's: checks that passed, failed and were skipped with a reason.
echo "infra: $passed passed, $failed failed, $skipped skipped"
exit "$status"
