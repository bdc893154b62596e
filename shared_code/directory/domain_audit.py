"""The domain audit: which active employees have an email outside the tenant's corporate domains.

Once SSO is enabled, such employees cannot sign in, so before enabling it the admin lists the corporate
domains (`set_corporate_domains`), runs the audit (`run_audit`) and, for each employee it lists, fixes the
email or accepts the loss of access ("Allow", which the audit then counts instead of listing). A timer
re-runs it for every tenant with domains, so employees Entra provisions later show up: the `domain_audit` job
(shared_code/jobs/catalog.py), which fans the tenants out over the queue `gatehouse-jobs`.

An employee's email is the work email, else the userName (what Entra usually fills with the UPN). Every run
is stored (`shared_code.storage.audits`) before it starts and completed or failed after, so a run that is cut
short is reported as unfinished, never lost; the admin reads the latest with `latest_audit`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from shared_code.tenancy import tenants
from shared_code.directory.domains import CorporateDomains, normalise_domains
from shared_code.platform.errors import Conflict, GatehouseError, Unprocessable
from shared_code.storage import audits, directory
from shared_code.storage.directory import Employee

log = logging.getLogger("gatehouse.domain_audit")

ON_DEMAND, TIMER = "on_demand", "timer"
KEEP_RUNS = 30  # a month of nightly runs per tenant; older ones are deleted when a run completes
# A run still `running` after this was cut short: longer than any function may run (HTTP 230 s, timer 10 min).
ABANDONED_AFTER = timedelta(minutes=15)

# ---- corporate domains ---------------------------------------------------------------------------------------

def set_corporate_domains(tenant_id: str, corporate: CorporateDomains) -> CorporateDomains:
    """Store the admin's corporate domains, already validated (`bodies.domain_audit.CorporateDomainsUpdate`)."""
    tenants.modify(tenant_id, lambda _: {"domains": corporate.to_record()})
    return corporate


def corporate_domains_view(tenant: tenants.Tenant) -> dict[str, Any]:
    record = tenant.domains or {}
    return {"domains": list(record.get("domains") or []),
            "include_subdomains": bool(record.get("include_subdomains", False))}


def corporate_domains_of(tenant: tenants.Tenant) -> CorporateDomains | None:
    """The tenant's domains, checked again (the rules may have tightened since they were stored)."""
    record = tenant.domains or {}
    if not record.get("domains"):
        return None
    return normalise_domains(record["domains"], record.get("include_subdomains", False))


def audited_email(employee: Employee) -> str | None:
    """The address the audit and sign-in judge: the work email, else the userName."""
    return employee.work_email or employee.user_name or None


# ---- judging ---------------------------------------------------------------------------------------------------

@dataclass
class Verdict:
    """What one pass over the active employees found."""

    checked: int = 0
    allowed: int = 0
    outside: list[dict] = field(default_factory=list)


def judge(people: Iterable[Employee], corporate: CorporateDomains) -> Verdict:
    """Every active employee outside the corporate domains who is not "allowed", in email order."""
    verdict = Verdict()
    reasons: dict[str, str | None] = {}  # by the part after @: thousands of employees share a few domains
    for person in people:
        if not person.active:
            continue
        verdict.checked += 1
        email = audited_email(person)
        why = _why_outside(corporate, email, reasons)
        if why is None:
            continue
        if person.allowed_outside_domain:
            verdict.allowed += 1
            continue
        verdict.outside.append({"id": person.id, "name": person.display_name, "email": email, "why": why,
                                "user_name": person.user_name, "managed_by_entra": bool(person.external_id)})
    verdict.outside.sort(key=lambda entry: ((entry["email"] or "").casefold(), entry["id"]))
    return verdict


def _why_outside(corporate: CorporateDomains, email: str | None, reasons: dict[str, str | None]) -> str | None:
    local, at, domain = (email or "").strip().rpartition("@")
    if not (at and local and domain):
        return corporate.why_outside(email)
    # For a well-formed address the verdict depends on the domain alone, so it is worked out once per domain.
    if domain not in reasons:
        reasons[domain] = corporate.why_outside(email)
    return reasons[domain]


# ---- one tenant ------------------------------------------------------------------------------------------------

def run_audit(tenant_id: str, trigger: str = ON_DEMAND, *, domains: dict | None = None) -> audits.AuditRun:
    """Audit one tenant now and store the run. `domains` (the stored record) saves a read when known.

    Raises Conflict when the tenant has no corporate domains. Any other failure is stored as the run's
    reason (when storage allows) and raised again.
    """
    if domains is None:
        domains = tenants.get_tenant(tenant_id).domains
    if not (domains or {}).get("domains"):
        raise Conflict(f"Set the corporate domains first (PUT /api/tenants/{tenant_id}/domains): the audit lists "
                       "employees whose email is outside them.", field="domains")
    record = {"domains": list(domains["domains"]), "include_subdomains": bool(domains.get("include_subdomains"))}
    run = audits.start_run(tenant_id, trigger, record)
    try:
        corporate = normalise_domains(record["domains"], record["include_subdomains"])
        verdict = judge(directory.iter_active_people(tenant_id), corporate)
        run = audits.complete_run(run, checked=verdict.checked, allowed=verdict.allowed, outside=verdict.outside)
    except GatehouseError as error:
        log.warning("domain audit of %s failed: %s", tenant_id, error.message)
        reason = error.message
        if isinstance(error, Unprocessable):
            reason = f"The stored corporate domains are no longer accepted: {error.message} Set them again."
        _record_failure(run, reason)
        raise
    except Exception:
        log.exception("domain audit of %s failed unexpectedly (run %s)", tenant_id, run.run_id)
        _record_failure(run, f"An unexpected error stopped this run; it is logged under run {run.run_id}. "
                             "Run the audit again; if it fails again, contact support.")
        raise
    try:
        audits.prune_runs(tenant_id, KEEP_RUNS)
    except GatehouseError as error:  # housekeeping: the run itself is stored
        log.warning("could not delete old domain audits of %s: %s", tenant_id, error.message)
    log.info("domain audit of %s (%s): %d checked, %d outside, %d allowed", tenant_id, trigger,
             run.checked, run.outside_count, run.allowed)
    return run


def _record_failure(run: audits.AuditRun, reason: str) -> None:
    try:
        audits.fail_run(run, reason)
    except Exception:  # noqa: BLE001 - storage is failing too: the run stays `running` and reads as interrupted
        log.exception("could not record the failure of domain audit %s of %s", run.run_id, run.tenant_id)


def latest_audit(tenant: tenants.Tenant, *, now: datetime | None = None) -> dict[str, Any]:
    """The latest run as the admin reads it; `{"status": "never_run", ...}` before the first one."""
    run = audits.latest_run(tenant.tenant_id)
    if run is None:
        path = f"/api/tenants/{tenant.tenant_id}"
        if (tenant.domains or {}).get("domains"):
            next_step = f"Run one now with POST {path}/domain-audit; the timer also runs it on its schedule."
        else:
            next_step = (f"Set the corporate domains first (PUT {path}/domains), then run it with "
                         f"POST {path}/domain-audit.")
        return {"status": "never_run", "complete": False,
                "message": f"No domain audit has run for this tenant yet. {next_step}"}
    return run_view(run, now=now)


def run_view(run: audits.AuditRun, *, now: datetime | None = None) -> dict[str, Any]:
    status = run.status
    body: dict[str, Any] = {
        "run_id": run.run_id, "trigger": run.trigger, "status": status, "complete": status == audits.COMPLETE,
        "started_at": run.started_at, "finished_at": run.finished_at,
        "domains": run.domains.get("domains", []), "include_subdomains": run.domains.get("include_subdomains", False),
        "checked": run.checked, "allowed": run.allowed, "outside_count": run.outside_count,
        "outside": run.outside if status == audits.COMPLETE else None,
    }
    if status == audits.COMPLETE:
        body["outside_truncated"] = (run.outside_count or 0) > len(run.outside or [])
        if body["outside_truncated"]:
            body["message"] = (f"{run.outside_count} employees are outside the corporate domains; the first "
                               f"{len(run.outside or [])} (by email) are listed. Fix them and run the audit again.")
    elif status == audits.FAILED:
        body["reason"] = run.reason
    elif status == audits.RUNNING:
        if _started(run) < (now or datetime.now(timezone.utc)) - ABANDONED_AFTER:
            body["status"] = "interrupted"
            body["reason"] = ("This run stopped before it finished (the host restarted or timed out). The next "
                              "timer run audits this tenant again, or run one now.")
        else:
            body["message"] = "This run has not finished yet; read it again in a moment."
    return body


def _started(run: audits.AuditRun) -> datetime:
    try:
        return datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
