"""Revoking a tenant admin key: the operator's rotation (`POST /api/tenants/{tenant}/admin-key`) and its answer.

The key is the tenant admin's only long-lived credential; a leaked one must be revocable without recreating
the tenant. Rotating stores the hash of a new key, so the old one fails at once. Loaded only by that endpoint,
which keeps pydantic out of the cold start.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from shared_code import tenants


class AdminKeyRotated(BaseModel):
    """The answer to a rotation: the new key, in plain form only here."""

    tenant_id: str
    admin_key: str = Field(description="The tenant's new admin key, shown once; the previous key no longer works.")
    rotated_at: str = Field(description="When the key was rotated (ISO 8601, UTC).")


def rotate(tenant_id: str) -> AdminKeyRotated:
    tenant, admin_key = tenants.rotate_admin_key(tenant_id)
    return AdminKeyRotated(tenant_id=tenant.tenant_id, admin_key=admin_key,
                           rotated_at=tenant.admin_key_rotated_at or "")
