"""The dependency locks: every package the app (requirements.lock) and the tests (requirements-dev.lock) install,
transitive ones included, pinned with the sha256 of every file PyPI publishes for that version.

    python tools/lock.py check     # exit 1, saying to run `make lock`, when a lock no longer matches its input

`make lock` writes both with pip-compile (pip-tools) from requirements.txt and requirements-dev.txt, the files
people edit; `make` installs from requirements-dev.lock and the deployment (tools/azd_hooks.py prepackage) from
requirements.lock, both in pip's hash-checking mode, so a build installs exactly the files the lock names.
"A lock matches its input" means: the packages pip-compile marked as coming from the input file are exactly the
input's packages, at the input's pinned versions, and every locked package has at least one hash; and the app's
packages are at the same versions in both locks (the tests run what Azure runs). Standard library only.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"requirements.lock": "requirements.txt", "requirements-dev.lock": "requirements-dev.txt"}
REGENERATE = "run `make lock` to regenerate the locks (then commit requirements.lock and requirements-dev.lock)"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Locked:
    version: str
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def read_input(path: Path) -> dict[str, str]:
    """name → pinned version ('' when not pinned with ==) of a requirements file, following `-r` includes."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            pins.update(read_input(path.parent / line.split(None, 1)[1]))
            continue
        if line.startswith("-"):
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(==\s*([^\s;]+))?", line)
        if match:
            pins[canonical(match.group(1))] = match.group(3) or ""
    return pins


def read_lock(path: Path) -> dict[str, Locked]:
    """name → version, hashes and the `# via` sources of a pip-compile output."""
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    in_via = False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", raw):
            current = locked.setdefault(canonical(match.group(1)), Locked(match.group(2)))
            in_via = False
        if current is None:
            continue
        current.hashes += re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)
        if line.startswith("# via"):
            in_via = True
            rest = line[len("# via"):].strip()
            if rest:
                current.via.add(rest)
        elif in_via and line.startswith("#   "):
            current.via.add(line[1:].strip())
        elif not line.startswith("#"):
            in_via = False
    return locked


def problems(root: Path = ROOT) -> list[str]:
    found: list[str] = []
    runtime: dict[str, Locked] = {}
    for lock_name, input_name in LOCKS.items():
        lock_path, input_path = root / lock_name, root / input_name
        if not lock_path.exists():
            found.append(f"{lock_name} does not exist")
            continue
        wanted, locked = read_input(input_path), read_lock(lock_path)
        if lock_name == "requirements.lock":
            runtime = locked
        direct = {name for name, entry in locked.items()
                  if any(source.startswith("-r ") for source in entry.via)}
        for name in sorted(set(wanted) - set(locked)):
            found.append(f"{lock_name} lacks {name} (in {input_name})")
        for name in sorted(direct - set(wanted)):
            found.append(f"{lock_name} still has {name}, which {input_name} no longer asks for")
        for name, version in sorted(wanted.items()):
            if name in locked and version and locked[name].version != version:
                found.append(f"{lock_name} has {name}=={locked[name].version}, {input_name} pins {version}")
        for name, entry in sorted(locked.items()):
            if not entry.hashes:
                found.append(f"{lock_name}: {name} has no --hash")
    dev = read_lock(root / "requirements-dev.lock") if (root / "requirements-dev.lock").exists() else {}
    for name, entry in sorted(runtime.items()):
        if name in dev and dev[name].version != entry.version:
            found.append(f"{name} is {entry.version} in requirements.lock but {dev[name].version} in "
                         "requirements-dev.lock: the tests would not run what Azure runs")
    return found


def main(argv: list[str]) -> int:
    if argv[1:] != ["check"]:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems()
    if found:
        print("The dependency locks do not match their inputs:\n  " + "\n  ".join(found) + f"\n{REGENERATE}",
              file=sys.stderr)
        return 1
    print("requirements.lock and requirements-dev.lock match requirements.txt and requirements-dev.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
