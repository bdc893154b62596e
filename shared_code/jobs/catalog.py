"""The background jobs: where each finds its tenants, one tenant's work, and how many tenants a message carries.

| job | timer | tenants | one tenant's work |
| --- | --- | --- | --- |
| `purge_sign_in_state` | every 6 h | all | expired sign-in and OIDC rows, 100 per transaction |
| `refresh_idp_metadata` | daily | with a metadata URL | refetch the IdP metadata (one tenant per message) |
| `events_purge` | daily | all | events older than 30 days, 100 per transaction |
| `domain_audit` | `DOMAIN_AUDIT_SCHEDULE` | with corporate domains | one audit run |
| `webhook_check` | every minute, a rotating shard | enabled endpoints | a delivery message if behind |
| `outbox_tenants`, `outbox_audits`, `outbox_oidc` | every 10 min | with outbox rows | append them to the event log |
| `trust_check` | every 10 min | all | a consumers' message if the trust consumer is behind the log |

The webhook check walks a shard of the endpoints per run, from where the previous run stopped (`jobs`
table cursor), sized so that every endpoint is checked within `WEBHOOK_RUNS_PER_CYCLE` runs: hourly at the
sweep's one run a minute, whatever the number of endpoints.

Each job's work imports its core when it first runs, not with this module: the metadata refresh loads pysaml2
(a second and a half), which no other job and no timer's walk needs.
"""
from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime
from typing import Callable

from shared_code.events import outbox
from shared_code.jobs import fanout
from shared_code.jobs.fanout import Job, Source
from shared_code.storage import jobs as job_store
from shared_code.storage import tables

_log = logging.getLogger("gatehouse.jobs")
WEBHOOK_RUNS_PER_CYCLE = 45  # every endpoint is checked within 45 sweep runs (under an hour at one a minute)
WEBHOOK_MIN_SHARD = 200  # below 200 × 45 endpoints a run checks 200 (a cycle is then shorter than 45 runs)
_TENANT_ROWS = "PartitionKey gt @after and RowKey eq @row"
_OUTBOX_ROWS = "PartitionKey gt @after and RowKey ge @lo and RowKey lt @hi"


def _json(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


# ---- each job's work for one tenant --------------------------------------------------------------------------

def purge_sign_in_state(tenant_id: str, now: datetime) -> int:
    from shared_code.storage import oidc, sign_ins

    return sign_ins.purge_expired(tenant_id, now) + oidc.purge_expired(tenant_id, now)


def refresh_idp_metadata(tenant_id: str, now: datetime) -> str:
    from shared_code.tenancy import idp_connection

    try:
        return idp_connection.refresh_tenant(tenant_id, now)
    except Exception as error:
        idp_connection.log.warning(json.dumps({"event": "idp_metadata_refresh", "tenant": tenant_id,
                                               "outcome": "failed", "message": fanout.describe(error)}))
        raise


def purge_events(tenant_id: str, now: datetime) -> int:
    from shared_code.events import retention

    return retention.purge_tenant(tenant_id, now=now)


def audit_domains(tenant_id: str, now: datetime) -> None:
    from shared_code.directory import domain_audit
    from shared_code.platform.errors import Conflict

    try:
        domain_audit.run_audit(tenant_id, domain_audit.TIMER)
    except Conflict:
        pass  # the admin removed the domains since the walk: nothing to audit


def check_webhook(tenant_id: str, now: datetime) -> bool:
    from shared_code.webhooks import delivery

    return delivery.wake_if_behind(tenant_id, now)


def check_trust(tenant_id: str, now: datetime) -> bool:
    from shared_code.sign_in import trust

    return trust.CONSUMER.wake_if_behind(tenant_id)


def _flush_outbox(table: str) -> Callable[[str, datetime], int]:
    def flush(tenant_id: str, now: datetime) -> int:
        from shared_code.events import outbox

        return outbox.flush(table, tenant_id)

    return flush


def _endpoint_not_waiting(row: dict) -> bool:
    from shared_code.webhooks import delivery

    return not delivery.waiting(row)


def _webhook_shard_ended(after: str, wrapped: bool, walked: int) -> None:
    cursor = job_store.cursor(WEBHOOK_CHECK)
    cycle = int(cursor.get("cycle_walked") or 0) + walked
    last_cycle = int(cursor.get("last_cycle_walked") or 0)
    if wrapped:
        last_cycle, cycle = cycle, 0
    job_store.save_cursor(WEBHOOK_CHECK, after=after, cycle_walked=cycle, last_cycle_walked=last_cycle)


# ---- the catalog ---------------------------------------------------------------------------------------------------

PURGE_SIGN_IN_STATE, REFRESH_IDP_METADATA, EVENTS_PURGE = "purge_sign_in_state", "refresh_idp_metadata", "events_purge"
DOMAIN_AUDIT, WEBHOOK_CHECK = "domain_audit", "webhook_check"
OUTBOXES = tuple(f"outbox_{table}" for table in outbox.TABLES)  # one job per table with an outbox
TRUST_CHECK = "trust_check"


def _catalog() -> dict[str, Job]:
    from shared_code.storage.tenants import ROW as TENANT_ROW
    from shared_code.webhooks import endpoint

    tenants = {"row": TENANT_ROW}
    outbox_range = {"lo": outbox.OUTBOX, "hi": outbox.OUTBOX[:-1] + ";"}
    jobs = [
        Job(PURGE_SIGN_IN_STATE, Source(tables.TENANTS, _TENANT_ROWS, tenants), purge_sign_in_state),
        Job(REFRESH_IDP_METADATA, Source(tables.TENANTS, _TENANT_ROWS, tenants, ("PartitionKey", "metadata_url"),
                                         lambda row: bool(row.get("metadata_url"))),
            refresh_idp_metadata, per_message=1),
        Job(EVENTS_PURGE, Source(tables.TENANTS, _TENANT_ROWS, tenants), purge_events),
        Job(DOMAIN_AUDIT, Source(tables.TENANTS, _TENANT_ROWS, tenants, ("PartitionKey", "domains"),
                                 lambda row: bool(_json(row.get("domains")).get("domains"))),
            audit_domains, per_message=5),
        Job(WEBHOOK_CHECK, Source(endpoint.TABLE, _TENANT_ROWS + " and enabled eq true", {"row": endpoint.ROW},
                                  ("PartitionKey", "next_attempt_at", "lease_until"), _endpoint_not_waiting),
            check_webhook, on_end=_webhook_shard_ended),
        *(Job(f"outbox_{table}", Source(table, _OUTBOX_ROWS, outbox_range, ("PartitionKey", "RowKey")),
              _flush_outbox(table)) for table in outbox.TABLES),
        Job(TRUST_CHECK, Source(tables.TENANTS, _TENANT_ROWS, tenants), check_trust, per_message=20),
    ]
    return {job.name: job for job in jobs}


_jobs: dict[str, Job] | None = None


def jobs() -> dict[str, Job]:
    global _jobs
    if _jobs is None:
        _jobs = _catalog()
    return _jobs


def start(name: str, *, budget: float = fanout.WALK_SECONDS,
          clock: Callable[[], float] = time.monotonic) -> fanout.WalkResult:
    """A timer's run of job `name`: walk its tenants onto the queue (a continuation message when cut)."""
    return fanout.start(jobs()[name], budget=budget, clock=clock)


def start_webhook_check(*, budget: float = fanout.WALK_SECONDS,
                        clock: Callable[[], float] = time.monotonic) -> fanout.WalkResult:
    """The sweep's run: the next shard of endpoints after where the previous run stopped."""
    cursor = job_store.cursor(WEBHOOK_CHECK)
    known = max(int(cursor.get("last_cycle_walked") or 0), int(cursor.get("cycle_walked") or 0))
    shard = max(WEBHOOK_MIN_SHARD, math.ceil(known * 1.1 / WEBHOOK_RUNS_PER_CYCLE))
    return fanout.start(jobs()[WEBHOOK_CHECK], limit=shard, after=cursor.get("after") or "", budget=budget,
                        clock=clock)


def handle(body: bytes | str, *, dequeue_count: int = 1, budget: float | None = None,
           clock: Callable[[], float] = time.monotonic) -> str:
    """One message of `gatehouse-jobs` (the queue function)."""
    return fanout.handle(jobs(), body, dequeue_count=dequeue_count, budget=budget, clock=clock)
