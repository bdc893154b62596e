"""Break each rule the README promises with a one-line change and check that its test fails (issue 26).

    .venv/bin/python tools/rule_mutations.py            # every mutation: apply, run its tests, expect a failure, undo
    .venv/bin/python tools/rule_mutations.py --list     # the table (docs/mutation-testing.md shows it)
    .venv/bin/python tools/rule_mutations.py code-lifetime backchannel-give-up   # some of them

Each mutation replaces one exact line (it must occur exactly once, so a refactor that moves it makes this
script say so rather than silently test nothing), runs only the tests named next to it, and restores the file
whatever happens. A mutation whose tests still pass is reported and the exit status is 1. This is not part of
`make test` (each mutation starts its own pytest, Azurite and app host); `make mutants` is the broad,
automatic run over the security-critical modules.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    rule: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation("code-lifetime", "an authorization code lives 60 s",
             "shared_code/oidc/authorization.py", "CODE_SECONDS = 60", "CODE_SECONDS = 3600",
             ("tests/oidc/test_oidc_rules.py::test_a_code_is_good_for_60_seconds_and_not_one_more",)),
    Mutation("backchannel-give-up", "a refused back-channel logout is given up after a day",
             "shared_code/oidc/backchannel.py", "GIVE_UP_AFTER = timedelta(days=1)",
             "GIVE_UP_AFTER = timedelta(days=3650)",
             ("tests/oidc/test_oidc_rules.py::test_a_refused_back_channel_logout_is_retried_for_a_day_then_given_up",)),
    Mutation("userinfo-employee-check", "UserInfo checks the employee is active (not only the session)",
             "shared_code/oidc/tokens.py",
             '    if employee is None or not employee.active or claims["iat"] < employee.sessions_valid_from:',
             "    if employee is None:",
             ("tests/oidc/test_oidc_rules.py::test_userinfo_refuses_a_dismissed_employee_whose_session_is_still_live",)),
    Mutation("backchannel-uri-check", "the back-channel logout URI is checked at registration",
             "shared_code/oidc/clients.py", "        check_uri(uri, what=\"backchannel_logout_uri\")",
             "        return uri",
             ("tests/oidc/test_oidc_rules.py::test_registration_refuses_a_back_channel_uri_we_would_not_call",)),
    Mutation("backchannel-uri-outbound-policy", "the back-channel logout URI follows the outbound policy at registration",
             "shared_code/oidc/clients.py", '            outbound.check_url(uri, what="The backchannel_logout_uri")',
             "            pass",
             ("tests/oidc/test_oidc_rules.py::"
              "test_outside_local_development_registration_applies_the_outbound_policy_to_the_back_channel_uri",)),
    Mutation("rotated-client-secret-hash", "a rotated client secret is stored as its SHA-256 hash",
             "shared_code/oidc/clients.py",
             "    if not store.set_client_secret(tenant_id, client_id, credentials.hash_secret(secret), rotated_at):",
             "    if not store.set_client_secret(tenant_id, client_id, credentials.hash_secret(secret + ' '), "
             "rotated_at):",
             ("tests/oidc/test_oidc_rules.py::test_a_rotated_client_secret_works_and_is_stored_only_as_its_hash",)),
    Mutation("webhook-rotation-overlap", "a rotated webhook secret keeps signing for 24 h, then stops",
             "shared_code/webhooks/endpoint.py", "ROTATION_OVERLAP = timedelta(hours=24)",
             "ROTATION_OVERLAP = timedelta(days=3650)",
             ("tests/events/test_webhook_and_log_rules.py::test_a_rotated_secret_keeps_signing_for_24_hours_and_then_stops",)),
    Mutation("webhook-give-up", "webhook retries of one event give up (disable the endpoint) after 3 days",
             "shared_code/webhooks/delivery.py", "GIVE_UP_AFTER = timedelta(days=3)",
             "GIVE_UP_AFTER = timedelta(days=3650)",
             ("tests/events/test_webhook_and_log_rules.py::test_a_failing_event_is_retried_for_3_days_then_the_endpoint_is_disabled",)),
    Mutation("webhook-retry-after", "a 429/503's Retry-After is the delay of the next delivery attempt",
             "shared_code/webhooks/delivery.py",
             '    delay = retry_after(getattr(attempt, "_retry_after", None), now) or backoff(attempts)',
             "    delay = backoff(attempts)",
             ("tests/events/test_webhook_and_log_rules.py::test_retry_after_in_seconds_schedules_the_next_attempt",
              "tests/events/test_webhook_and_log_rules.py::test_retry_after_as_an_http_date_and_its_bounds")),
    Mutation("event-head-if-match", "the event head is replaced only if unchanged since read (If-Match: its ETag)",
             "shared_code/events/log.py",
             '        ops.append(("update", new_head, {"mode": UpdateMode.REPLACE, "etag": etag,',
             '        ops.append(("update", new_head, {"mode": UpdateMode.REPLACE, "etag": "*",',
             ("tests/events/test_webhook_and_log_rules.py::test_a_writer_with_a_stale_head_cannot_reuse_a_purged_sequence_number",)),
    Mutation("webhook-secret-in-the-clear", "the webhook secret is stored only encrypted",
             "shared_code/webhooks/endpoint.py",
             '                    "secret": secrets.seal(secret, tenant_id), "enabled": True, "created_at": now_iso(),',
             '                    "secret": secrets.seal(secret, tenant_id), "copy": secret, "enabled": True, '
             '"created_at": now_iso(),',
             ("tests/test_secrets_at_rest.py::test_no_secret_is_stored_in_the_clear",)),
    Mutation("previous-webhook-secret-in-the-clear", "the previous webhook secret is stored only encrypted",
             "shared_code/webhooks/endpoint.py",
             '        fields = {"secret": secrets.seal(secret, tenant_id), "previous_secret": row.get("secret"),',
             '        fields = {"secret": secrets.seal(secret, tenant_id), "previous_secret": row.get("secret"), '
             '"copy": secrets.unseal(row["secret"], tenant_id),',
             ("tests/test_secrets_at_rest.py::test_no_secret_is_stored_in_the_clear",)),
    Mutation("client-secret-in-the-clear", "an OIDC client secret is stored only as its hash",
             "shared_code/oidc/clients.py",
             "        backchannel_logout_uri=registration.backchannel_logout_uri, client_name=registration.client_name,",
             "        backchannel_logout_uri=registration.backchannel_logout_uri, client_name=secret,",
             ("tests/test_secrets_at_rest.py::test_no_secret_is_stored_in_the_clear",)),
    Mutation("rotated-admin-key-in-the-clear", "a rotated tenant admin key is stored only as its hash",
             "shared_code/tenancy/tenants.py",
             '                                         "admin_key_rotated_at": utcnow().isoformat()})',
             '                                         "admin_key_rotated_at": utcnow().isoformat(), "copy": admin_key})',
             ("tests/test_secrets_at_rest.py::test_no_secret_is_stored_in_the_clear",)),
    Mutation("idp-refresh-sequential", "the daily IdP refresh fetches tenants concurrently",
             "shared_code/jobs/catalog.py",
             '            refresh_idp_metadata, per_message=1),',
             '            refresh_idp_metadata, per_message=100),',
             ("tests/jobs/test_refresh_concurrency.py::test_the_daily_refresh_fetches_the_tenants_metadata_concurrently",)),
]


def run(mutation: Mutation) -> tuple[bool, float, str]:
    """(the tests failed, seconds, last lines of their output); the file is restored in any case."""
    path = ROOT / mutation.path
    original = path.read_text()
    count = original.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.name}: {mutation.old!r} occurs {count} times in {mutation.path}; update the "
                         "mutation to the code as it is now")
    started = time.monotonic()
    try:
        path.write_text(original.replace(mutation.old, mutation.new))
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                 *mutation.tests], cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(original)
    lines = (result.stdout + result.stderr).strip().splitlines()
    why = next((line for line in lines if line.startswith("E ")), "")  # the first assertion that failed
    return result.returncode != 0, time.monotonic() - started, f"{lines[-1] if lines else ''} {why[:160]}"


def main(argv: list[str]) -> int:
    if "--list" in argv:
        print("| rule | mutation (one line) | test that fails |\n| --- | --- | --- |")
        for m in MUTATIONS:
            tests = "<br>".join(f"`{t}`" for t in m.tests)
            print(f"| {m.rule} | `{m.path}`: `{m.old.strip()}` → `{m.new.strip()}` | {tests} |")
        return 0
    chosen = [m for m in MUTATIONS if not argv or m.name in argv]
    survivors = []
    for mutation in chosen:
        failed, seconds, tail = run(mutation)
        print(f"{'killed  ' if failed else 'SURVIVED'} {mutation.name} ({seconds:.0f} s): {tail}")
        if not failed:
            survivors.append(mutation.name)
    if survivors:
        print("Rules whose breakage no test noticed: " + ", ".join(survivors))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
