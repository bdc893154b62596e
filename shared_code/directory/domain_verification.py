"""Domain verification: a tenant proves it owns a mail domain with a DNS TXT record.

    POST …/domains/{domain}/verification         → the record to create: `_gatehouse.<domain>` TXT
                                                   `gatehouse-verification=<token>` (the same token every time)
    POST …/domains/{domain}/verification/check   → looks the record up; verified, or 409 saying what is missing

Only a verified domain makes an employee's `email_verified` true in the OpenID Provider's tokens
(`domains.email_domain_verified` over `Tenant.verified_domains`): listing a domain as corporate proves nothing,
and a product that links accounts by email must not be handed another company's addresses.

One domain, one tenant: the first tenant whose check succeeds inserts the domain's claim row (an insert-once row
in the platform's `claim` partition, storage/domain_claims.py); every other tenant's check is refused, whatever
its DNS says.

The lookup asks the system's resolver, or the servers in `DNS_NAMESERVERS` (comma-separated `ip[:port]`), with
a deadline of `LOOKUP_SECONDS` for all attempts together; a resolver that does not answer is a 503 with
Retry-After, never a hung request.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import secrets
from datetime import datetime, timezone
from typing import Any

import dns.exception
import dns.nameserver
import dns.resolver

from shared_code.tenancy import tenants
from shared_code.directory.domains import dns_form, normalise_domains
from shared_code.platform.errors import Conflict, GatehouseError, NotFound
from shared_code.platform.settings import get_settings
from shared_code.storage import domain_claims as store

log = logging.getLogger("gatehouse.domain_verification")

RECORD_PREFIX = "_gatehouse."
VALUE_PREFIX = "gatehouse-verification="
LOOKUP_SECONDS = 3.0
MAX_SHOWN_VALUES = 5
VERIFIED, PENDING, UNVERIFIED = "verified", "pending", "unverified"


class DnsUnavailable(GatehouseError):
    status, code = 503, "dns_unavailable"

    def __init__(self, message: str):
        super().__init__(message, headers={"Retry-After": "30"})


class NotVerified(Conflict):
    """The check ran and the record is not (yet) right; `state` says what is missing."""

    def __init__(self, message: str, state: str):
        super().__init__(message)
        self.reason = state


def _domain(raw: str) -> tuple[str, str]:
    """(Unicode form, ASCII form) of the domain in the path, under the corporate-domain rules (no public mail
    providers or public suffixes: nobody can own those for a company)."""
    unicode_name = normalise_domains([raw]).domains[0]
    return unicode_name, dns_form(unicode_name)


def record_of(ascii_domain: str, token: str) -> dict[str, str]:
    return {"record_type": "TXT", "record_name": RECORD_PREFIX + ascii_domain, "record_value": VALUE_PREFIX + token}


def start(tenant_id: str, raw_domain: str, now: datetime | None = None) -> dict[str, Any]:
    """The TXT record the admin creates for `raw_domain` (the same record on every call)."""
    now = now or datetime.now(timezone.utc)
    shown, domain = _domain(raw_domain)
    verification = store.start_verification(tenant_id, domain, secrets.token_hex(16), now)
    return {"domain": shown, "state": VERIFIED if verification.verified_at else PENDING,
            **record_of(domain, verification.token)}


def check(tenant_id: str, raw_domain: str, now: datetime | None = None) -> dict[str, Any]:
    """Look the record up; on success the domain is the tenant's for good (claimed once across the platform)."""
    now = now or datetime.now(timezone.utc)
    shown, domain = _domain(raw_domain)
    verification = store.get_verification(tenant_id, domain)
    if verification is None:
        raise NotFound(f"Verification of {shown} has not been started: POST /api/tenants/{tenant_id}/domains/"
                       f"{shown}/verification first, create the TXT record it answers, then check again.")
    record = record_of(domain, verification.token)
    holder = store.claim_holder(domain)
    if holder not in (None, tenant_id):
        raise _claimed_elsewhere(tenant_id, shown)
    found = lookup_txt(record["record_name"])
    if not found:
        raise NotVerified(f"No TXT record was found at {record['record_name']}. Create a TXT record with that "
                          f"name and the value {record['record_value']} at your DNS provider, wait until it is "
                          "published (often minutes, sometimes hours), then check again.", "record_missing")
    if record["record_value"] not in found:
        shown_values = ", ".join(repr(_printable(value)) for value in found[:MAX_SHOWN_VALUES])
        raise NotVerified(f"The TXT record at {record['record_name']} does not hold {record['record_value']} "
                          f"(found: {shown_values}). Set its value exactly as shown, then check again.",
                          "wrong_value")
    if store.claim(tenant_id, domain, now) != tenant_id:
        raise _claimed_elsewhere(tenant_id, shown)
    store.mark_verified(tenant_id, domain, now)
    tenants.modify(tenant_id, lambda tenant: {} if domain in (tenant.verified_domains or []) else
                   {"verified_domains": sorted({*(tenant.verified_domains or []), domain})})
    log.info(json.dumps({"event": "domain_verified", "tenant": tenant_id, "domain": domain}))
    return {"domain": shown, "state": VERIFIED, "verified_at": now.isoformat(), **record}


def _claimed_elsewhere(tenant_id: str, shown: str) -> Conflict:
    log.warning(json.dumps({"event": "domain_verification_refused", "tenant": tenant_id, "domain": shown,
                            "why": "claimed_by_another_tenant"}))
    return NotVerified(f"{shown} has been verified by another organisation using this service, so it cannot be "
                       "verified here. If your company owns it, contact support.", "claimed_by_another_tenant")


def states(tenant: tenants.Tenant) -> list[dict[str, Any]]:
    """Each corporate domain and each domain with a verification, with its state and the record to create."""
    started = {v.domain: v for v in store.list_verifications(tenant.tenant_id)}
    listed = list((tenant.domains or {}).get("domains") or [])
    rows, seen = [], set()
    for shown in listed + sorted(started):
        domain = dns_form(shown)
        if domain in seen:
            continue
        seen.add(domain)
        verification = started.get(domain)
        verified = domain in (tenant.verified_domains or [])
        row: dict[str, Any] = {"domain": shown, "state": VERIFIED if verified else
                               PENDING if verification is not None else UNVERIFIED}
        if verification is not None:
            row.update(record_of(domain, verification.token))
        rows.append(row)
    return rows


# ---- DNS ----------------------------------------------------------------------------------------------------

def _resolver(lifetime: float = LOOKUP_SECONDS) -> dns.resolver.Resolver:
    configured = [part.strip() for part in get_settings().dns_nameservers.split(",") if part.strip()]
    if not configured:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration:
            raise DnsUnavailable("This server has no DNS resolver configured, so the record cannot be looked up "
                                 "now. Retry later; the operator can set DNS_NAMESERVERS.") from None
    else:
        resolver = dns.resolver.Resolver(configure=False)
        try:
            resolver.nameservers = [_nameserver(entry) for entry in configured]
        except ValueError:
            raise DnsUnavailable("DNS_NAMESERVERS is not a comma-separated list of ip[:port]; the operator must "
                                 "correct it before domains can be verified.") from None
    resolver.lifetime = lifetime  # all attempts and servers together
    resolver.timeout = lifetime / 2
    return resolver


def _nameserver(entry: str) -> dns.nameserver.Nameserver:
    host, port = entry, 53
    if entry.startswith("["):  # [ipv6]:port
        host, _, rest = entry[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif entry.count(":") == 1:
        host, _, text = entry.partition(":")
        port = int(text)
    ipaddress.ip_address(host)  # an address, never a name to resolve first (ValueError otherwise)
    if not 0 < port < 65536:
        raise ValueError(entry)
    return dns.nameserver.Do53Nameserver(host, port)


def lookup_txt(name: str, *, lifetime: float = LOOKUP_SECONDS) -> list[str]:
    """The TXT strings published at `name` (each record's strings joined, as RFC 7208 reads them); [] when the
    name or the record does not exist. DnsUnavailable when DNS does not answer within `lifetime` seconds."""
    try:
        answer = _resolver(lifetime).resolve(name, "TXT", raise_on_no_answer=False, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise DnsUnavailable(f"DNS did not answer for {name} within {lifetime:g} seconds. Retry in a "
                             "minute.") from None
    except (dns.resolver.NoNameservers, dns.exception.DNSException):
        raise DnsUnavailable(f"DNS could not answer for {name} right now (its servers failed). Retry in a "
                             "minute.") from None
    if answer.rrset is None:
        return []
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.rrset]


def _printable(value: str) -> str:
    text = "".join(ch for ch in value if ch.isprintable())
    return text[:80] + ("…" if len(text) > 80 else "")
