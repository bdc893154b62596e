"""The layout's rules, read from the code's own imports: no import circle, no Azure Functions type in a core, and
the platform and protocol packages reach no area above them (README, "Layout")."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Packages of shared_code/ and what each may import of shared_code/ besides itself. The platform is the floor;
# SAML is a protocol package that knows only the platform (as authlib's protocol packages know no framework).
MAY_IMPORT = {
    "platform": set(),
    "saml": {"platform"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("shared_code", "functions"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours that `name` imports, at the top or inside a function (both tie the graph)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                          for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    found = {name: _imports(name, path, modules) for name, path in modules.items()}
    # the graph is the code's (an empty or moved tree would pass every rule below without being read)
    assert {"shared_code.platform.settings", "functions._http"} <= set(found) and found["functions._http"]
    return found


def test_the_module_graph_has_no_circle(graph):
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as circle:
        pytest.fail("an import circle: " + " -> ".join(circle.args[1]))


def test_no_core_knows_azure_functions():
    offenders = []
    for path in (ROOT / "shared_code").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):  # `from azure import functions` names it only with the alias
                named = [f"{node.module or ''}.{alias.name}" for alias in node.names]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in named if name.startswith("azure.functions")]
    assert offenders == []


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_the_floor_reaches_no_area_above_it(graph, package):
    inside = f"shared_code.{package}"
    assert any(name.startswith(inside + ".") for name in graph), f"no package {inside}: the rule names a moved one"
    reached = {target.split(".")[1] for name, targets in graph.items() if name == inside or name.startswith(inside + ".")
               for target in targets if target.startswith("shared_code.")}  # `from shared_code import x` too
    assert reached - {package} <= MAY_IMPORT[package], f"shared_code/{package} imports {sorted(reached - {package})}"
