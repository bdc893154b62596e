"""Bodies of the corporate-domain and domain-audit endpoints (`shared_code/directory/domain_audit.py`). Each domain is
checked by `domains.normalise_domains` (public mail providers, public suffixes, IDNA), called from here."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from shared_code.bodies import Answer, Body, core_rule, may_be_left_out
from shared_code.directory.domains import MAX_DOMAINS, CorporateDomains, normalise_domains


class CorporateDomainsUpdate(Body):
    """`PUT …/domains`: the company's mail domains; 422 names the first offending entry (`domains[i]`) and why."""

    messages = {
        ":extra_forbidden": "Unknown field '{field}': send domains (a list) and, optionally, include_subdomains "
                            "(true or false).",
        "domains:missing": 'domains is required: the company\'s mail domains, such as ["contoso.com"].',
        "domains": 'domains must be a list of domain names, such as ["example.com"].',
        "domains:too_short": "List at least one corporate domain, such as example.com: without one, no employee's "
                             "email could count as corporate.",
        "domains:too_long": "At most {max_length} corporate domains are allowed; you sent {actual_length}. Turn on "
                            "include_subdomains instead of listing each subdomain.",
        "domains[]": '{field} must be a domain name in quotes, such as "example.com".',
        "domains[]:string_too_short": "{field} is empty: enter a domain name such as example.com, or remove the "
                                      "entry.",
        "include_subdomains": "include_subdomains must be true or false.",
    }

    domains: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, max_length=MAX_DOMAINS, description="Domain names such as contoso.com (no @, scheme or path).")
    include_subdomains: bool = False
    _corporate: CorporateDomains = PrivateAttr()

    @model_validator(mode="after")
    def _normalised(self) -> "CorporateDomainsUpdate":
        self._corporate = core_rule(normalise_domains, list(self.domains), self.include_subdomains)
        return self

    @property
    def corporate(self) -> CorporateDomains:
        """The domains normalised (Unicode, lower case, sorted, no duplicates): what is stored."""
        return self._corporate


class DomainVerification(Answer):
    """A domain's proof of ownership (`shared_code/directory/domain_verification.py`): its state and, once started, the TXT
    record to create at the domain's DNS provider."""

    domain: str
    state: Literal["unverified", "pending", "verified"]
    record_type: Literal["TXT"] = may_be_left_out()
    record_name: str = may_be_left_out(description="_gatehouse.<domain> (ASCII form)")
    record_value: str = may_be_left_out(description="gatehouse-verification=<token>")
    verified_at: str = may_be_left_out()


class CorporateDomainList(Answer):
    """The corporate domains as stored ([] until set); on GET also each domain's verification state."""

    domains: list[str]
    include_subdomains: bool
    verification: list[DomainVerification] = may_be_left_out(
        description="Each corporate domain (and each other domain whose verification was started): unverified, "
                    "pending (record to create shown), or verified. Only verified domains make email_verified true.")

    @classmethod
    def of(cls, corporate: CorporateDomains | dict) -> "CorporateDomainList":
        return cls(**(corporate.to_record() if isinstance(corporate, CorporateDomains) else corporate))


class OutsideEmployee(Answer):
    """An active employee whose email is outside the corporate domains (and who is not "allowed")."""

    model_config = ConfigDict(extra="allow")

    id: str
    email: str | None
    why: str
    name: str | None = None
    user_name: str | None = None
    managed_by_entra: bool = False


class AuditRun(Answer):
    """One domain audit run as the admin reads it (`status` never_run before the first)."""

    status: Literal["never_run", "running", "complete", "failed", "interrupted"]
    complete: bool
    run_id: str = ""
    trigger: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    domains: list[str] = []
    include_subdomains: bool = False
    checked: int | None = None
    allowed: int | None = None
    outside_count: int | None = None
    outside: list[OutsideEmployee] | None = None
    outside_truncated: bool = False
    message: str = ""
    reason: str | None = None
