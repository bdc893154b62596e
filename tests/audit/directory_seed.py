"""Large directories, fast: employees written straight into a tenant's directory partition, the rows a SCIM
POST would store (the user row and its index copies), many users to one entity-group transaction.

Provisioning 10,000 employees over SCIM means 10,000 requests; this is 400 transactions, and what the audit
reads is the same. The tests and bench/audit.py use it.
"""
from __future__ import annotations

import time
import uuid
from typing import Iterable

from shared_code.platform.errors import StorageUnavailable
from shared_code.scim.resources import clean_body
from shared_code.scim.schemas import ENTERPRISE_USER, USER_KIND
from shared_code.storage import directory, tables

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def entra_user(email: str, *, name: str | None = None, active: bool = True) -> dict:
    """A SCIM User the way Entra provisions one (objectId as externalId, work email, department)."""
    return {"schemas": [CORE_USER, ENTERPRISE_USER], "externalId": str(uuid.uuid4()), "userName": email,
            "active": active, "displayName": name or email.split("@")[0].title(),
            "emails": [{"primary": True, "type": "work", "value": email}],
            ENTERPRISE_USER: {"department": "Sales"}}


def seed_employees(tenant_id: str, users: Iterable[dict], *, index_rows: bool = True) -> list[str]:
    """Store SCIM users in one tenant's directory; returns their ids. userNames must be unique.

    `index_rows=False` writes only the `user:` rows, which is all the audit reads: Azurite checks each
    written key by scanning its partition, so 40,000 rows take it half an hour where 10,000 take minutes.
    """
    ids: list[str] = []
    batch: list[tuple] = []
    for body in users:
        stamp = directory.now()
        record = directory.UserRecord(directory.new_id(), clean_body(USER_KIND, body), stamp, stamp, 1)
        rows = directory._user_rows(tenant_id, record)  # the directory's own row layout, copies included
        if not index_rows:
            rows = {key: row for key, row in rows.items() if key.startswith(directory.USER)}
        if len(batch) + len(rows) > directory.BATCH:
            _write(batch)
            batch = []
        batch.extend(("upsert", row) for row in rows.values())
        ids.append(record.id)
    if batch:
        _write(batch)
    return ids


def _write(batch: list[tuple]) -> None:
    # A busy Azurite sometimes resets the connection of a transaction; the SDK does not retry a POST whose
    # answer was lost, and upserts make trying again safe whether or not the first attempt landed.
    for attempt in range(4):
        try:
            tables.transact(tables.DIRECTORY, batch)
            return
        except StorageUnavailable:
            if attempt == 3:
                raise
            time.sleep(1 + attempt)


def mixed_directory(count: int, outside_share: float, *, corporate: str = "contoso.example",
                    outside: str = "gmail.com", prefix: str = "") -> list[dict]:
    """`count` Entra users, every `1/outside_share`-th of them with an address at `outside`."""
    step = round(1 / outside_share) if outside_share else 0
    users = []
    for i in range(count):
        domain = outside if step and i % step == 0 else corporate
        users.append(entra_user(f"{prefix}employee{i:06d}@{domain}", name=f"Employee {i:06d}"))
    return users
