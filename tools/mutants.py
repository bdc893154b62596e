"""`make mutants`: a mutation run (mutmut 2.5.1, from its own venv `.venv-mutants`) over the security-critical
modules, each module with the focused tests that cover it (a full-suite run per mutant is far too slow on 2 cores).

    make mutants                                   # every module below, one after the other (hours here)
    make mutants MUTANTS="sign_in/sessions oidc/tokens"    # some of them (names as in MODULES, without shared_code/ and .py)
    cp .mutmut/sign_in.sessions.sqlite .mutmut-cache && .venv-mutants/bin/mutmut results    # one module's survivors
                                                   # (then `mutmut show <id>` shows one mutant)

mutmut changes one line of the module on disk at a time and runs the module's tests (they must fail: the mutant is
"killed"); the file is put back after each. Do not edit the module, run other tests, or call `mutmut results`
meanwhile, and run it on a checkout nothing else uses. Each module's results are kept in `.mutmut/<module>.sqlite`
(a module run again re-tests only what changed). docs/mutation-testing.md lists the survivors found so far and
what became of each (killed by a new test, or equivalent: a change no test can see because behaviour does not
change).

Not part of `make test` or CI: a module takes minutes to hours (each mutant starts pytest, and most start
Azurite and the app host).
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = ROOT / ".venv-mutants" / "bin" / "mutmut"
CACHE = ROOT / ".mutmut-cache"  # where mutmut keeps a run's state
CACHES = ROOT / ".mutmut"  # one kept cache per module: mutmut's clean-run time, and so its timeout, is per module
PYTEST = f"{shlex.quote(str(ROOT / '.venv' / 'bin' / 'python'))} -m pytest -x -q -p no:cacheprovider"
# Tests that need no fixture of tests/conftest.py (no Azurite, no app host) run without it and without plugins:
# 4 s a mutant instead of 20 on a loaded machine.
PURE = {"tests/test_sessions.py", "tests/test_webhook_secrets.py", "tests/test_outbound.py"}

# module (under shared_code/, without .py) → the tests that must kill its mutants: fast, focused, the ones that
# exercise it directly. Listed in the order `make mutants` runs them (the most critical first).
MODULES: dict[str, list[str]] = {
    "sign_in/sessions": ["tests/test_sessions.py"],
    "webhooks/secrets": ["tests/test_webhook_secrets.py"],
    "oidc/tokens": ["tests/oidc/test_oidc_rules.py", "tests/oidc/test_code_flow.py",
                    "tests/token_exchange/test_exchange_core.py"],  # the token-exchange grant is answered here too
    "sign_in/service": ["tests/sso/test_sign_in_state.py", "tests/sso/test_acs_accepted.py",
                "tests/sso/test_who_may_sign_in.py"],
    "webhooks/delivery": ["tests/events/test_webhook_and_log_rules.py", "tests/events/test_webhooks.py"],
    "webhooks/endpoint": ["tests/events/test_webhook_and_log_rules.py", "tests/events/test_webhooks.py"],
    "webhooks/queue": ["tests/events/test_webhooks.py"],
    "events/log": ["tests/events/test_webhook_and_log_rules.py", "tests/events/test_event_log.py"],
    "oidc/authorization": ["tests/oidc/test_oidc_rules.py", "tests/oidc/test_code_flow.py"],
    "oidc/clients": ["tests/oidc/test_oidc_rules.py", "tests/oidc/test_clients.py"],
    "oidc/backchannel": ["tests/oidc/test_oidc_rules.py", "tests/oidc/test_logout.py"],
    "oidc/logout": ["tests/oidc/test_logout.py"],
    "oidc/keys": ["tests/oidc/test_core.py", "tests/oidc/test_discovery_and_keys.py"],
    "oidc/discovery": ["tests/oidc/test_discovery_and_keys.py"],
    "oidc/token_exchange": ["tests/token_exchange/test_exchange_core.py"],
    "oidc/third_party_login": ["tests/oidc/test_third_party_login.py"],
    "entra/id_token": ["tests/token_exchange/test_exchange_core.py"],
    "entra/keys": ["tests/token_exchange/test_entra_keys.py", "tests/token_exchange/test_exchange_core.py"],
    "platform/outbound": ["tests/test_outbound.py", "tests/saml/test_saml_metadata.py"],  # the latter: the address policy
    "saml/signature": ["tests/saml/test_saml_signature.py", "tests/saml/test_saml_consumer.py"],
    "saml/assertion_consumer": ["tests/saml/test_saml_consumer.py"],
    "saml/safe_xml": ["tests/saml/test_saml_consumer.py", "tests/saml/test_saml_metadata.py"],
    "saml/timestamps": ["tests/saml/test_saml_consumer.py"],
    "saml/metadata": ["tests/saml/test_saml_metadata.py"],
    "saml/logout": ["tests/oidc/test_core.py"],
    "saml/service_provider": ["tests/saml/test_saml_service_provider.py"],
    "saml/pysaml2_backend": ["tests/saml/test_saml_consumer.py"],
}


def run(module: str) -> int:
    tests = " ".join(shlex.quote(part) for part in MODULES[module])
    pure = set(MODULES[module]) <= PURE
    runner = f"env PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {PYTEST} --noconftest {tests}" if pure else f"{PYTEST} {tests}"
    # mutmut 2 counts only exit status 1 as a kill; pytest says 2 when a mutant breaks the import (a syntax
    # error, a failed unpacking), which is a kill too: any failure becomes 1.
    runner = f"sh -c {shlex.quote(runner + ' || exit 1')}"
    command = [str(MUTMUT), "run", "--paths-to-mutate", f"shared_code/{module}.py", "--tests-dir", "tests",
               "--runner", runner, "--simple-output", "--no-progress",
               # a loaded machine: a mutant is "timed out" only past 4x the clean run plus a minute
               "--test-time-multiplier", "4", "--test-time-base", "60"]
    print(f"== shared_code/{module}.py  ←  {' '.join(MODULES[module])}", flush=True)
    kept = CACHES / f"{module.replace('/', '.')}.sqlite"
    CACHE.unlink(missing_ok=True)
    if kept.exists():
        shutil.copy(kept, CACHE)  # resume: mutants already judged against the same tests are not run again
    try:
        code = subprocess.run(command, cwd=ROOT).returncode
        subprocess.run([str(MUTMUT), "results"], cwd=ROOT)
    finally:
        if CACHE.exists():
            CACHES.mkdir(exist_ok=True)
            shutil.move(CACHE, kept)
    return code


def main(argv: list[str]) -> int:
    if not MUTMUT.exists():
        raise SystemExit("mutmut is not installed: run `make mutants` (it installs it into .venv-mutants)")
    chosen = argv or list(MODULES)
    unknown = [name for name in chosen if name not in MODULES]
    if unknown:
        raise SystemExit(f"unknown module(s) {unknown}; choose from: {' '.join(MODULES)}")
    for module in chosen:
        code = run(module)
        if code & 1:  # mutmut's "fatal error" bit: e.g. the tests fail without any mutation
            raise SystemExit(f"mutmut could not run shared_code/{module}.py (exit {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
