"""Check that a tenant's directory partition is consistent (index copies, memberships, unfinished deletes).

    python -m tools.check_consistency --tenant acme-corp-1a2b3c
    python -m tools.check_consistency --all [--stuck-minutes 5] [--settings local.settings.json]

Reads the same settings as the app: the environment, else `local.settings.json` `Values` (the environment
wins, as with `func start`). Exit 0 with "0 problems"; 1 listing the problems; 2 when storage cannot be read
or there is no such tenant.
The rules are in `shared_code/storage/consistency.py`.
"""
from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_settings(path: str | None) -> None:
    settings = Path(path) if path else ROOT / "local.settings.json"
    if settings.exists():
        from tools.local_host import load_local_settings

        load_local_settings(settings)
    elif path:
        raise SystemExit(f"No settings file at {settings}.")


def _print(tenant_id: str, problems: list, out) -> None:
    print(f"tenant {tenant_id}: {len(problems)} problem{'' if len(problems) == 1 else 's'}", file=out)
    for problem in problems:
        print(f"  {problem}", file=out)


def main(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m tools.check_consistency", description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", help="the tenant id to check")
    which.add_argument("--all", action="store_true", help="every partition of the directory table")
    parser.add_argument("--stuck-minutes", type=float, default=5.0,
                        help="a group marked deleting for longer than this is stuck (default 5)")
    parser.add_argument("--settings", help="a local.settings.json to read (default: the repository's, if any)")
    args = parser.parse_args(argv)
    _load_settings(args.settings)

    from shared_code.platform.errors import StorageUnavailable
    from shared_code.storage import consistency

    stuck = timedelta(minutes=args.stuck_minutes)
    total = checked = 0
    try:
        if args.tenant:
            from shared_code.storage.tenants import get_tenant_record

            problems = consistency.check_tenant(args.tenant, stuck_after=stuck)
            if not problems and get_tenant_record(args.tenant) is None:
                print(f"There is no tenant {args.tenant!r} (and no directory rows under that id).", file=sys.stderr)
                return 2
            results = [(args.tenant, problems)]
        else:
            results = consistency.check_all(stuck_after=stuck)
        for tenant_id, problems in results:
            checked += 1
            total += len(problems)
            if problems or args.tenant:
                _print(tenant_id, problems, out)
    except StorageUnavailable as error:
        print(f"Storage cannot be read: {error.message} Check TABLES_CONNECTION_STRING / TABLES_ENDPOINT.",
              file=sys.stderr)
        return 2
    if args.all:
        print(f"{checked} partition{'' if checked == 1 else 's'} checked", file=out)
    print(f"{total} problem{'' if total == 1 else 's'}", file=out)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
