"""Corporate email domains: which addresses count as the tenant's employees.

The tenant admin lists the company's mail domains (`PUT /api/tenants/{tenant}/domains`); once SSO is
enabled, employees whose email is outside them cannot sign in, and the domain audit lists them.
This module only decides: `normalise_domains` checks and normalises the admin's list, and
`CorporateDomains.covers` / `why_outside` judge one address. The caller stores and serves.

Domains are kept in their Unicode form (`bücher.example`, what a person reads) and compared in their
ASCII form (`xn--bcher-kva.example`, what DNS and most mail systems carry), so an address written
either way matches a domain listed either way.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

from shared_code.platform.errors import Unprocessable


class _OnFirstUse:
    """A module imported when one of its names is first used, not when this module is: the IDNA tables and the
    Public Suffix List serve only the domain checks, and every cold start would otherwise load them."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        import importlib

        module = importlib.import_module(self._name)
        self.__dict__.update(module.__dict__)  # later lookups find the names directly
        return getattr(module, attribute)


idna = _OnFirstUse("idna")

MAX_DOMAINS = 50

# A raw entry longer than this cannot be a domain of at most 253 DNS characters, even before
# Unicode mapping; refusing it early keeps the IDNA work bounded.
_MAX_RAW_ENTRY = 1024

# Providers where anyone can open a mailbox, so an address there says nothing about employment.
# Not exhaustive (no list can be); it catches the domains admins actually paste by mistake.
PUBLIC_MAIL_DOMAINS = frozenset({
    # Google, Microsoft, Yahoo, Apple, AOL
    "gmail.com", "googlemail.com",
    "outlook.com", "outlook.de", "outlook.fr", "outlook.es", "outlook.it", "outlook.jp",
    "hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr", "hotmail.it", "hotmail.es",
    "live.com", "live.co.uk", "live.de", "live.fr", "live.it", "msn.com", "passport.com",
    "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.es", "yahoo.it", "yahoo.co.jp",
    "yahoo.com.br", "yahoo.co.in", "ymail.com", "rocketmail.com",
    "icloud.com", "me.com", "mac.com",
    "aol.com", "aim.com",
    # privacy-focused and independent providers
    "proton.me", "protonmail.com", "protonmail.ch", "pm.me",
    "tutanota.com", "tutanota.de", "tuta.io", "tuta.com",
    "fastmail.com", "fastmail.fm", "hey.com", "mailbox.org", "posteo.de", "posteo.net",
    "zoho.com", "zohomail.com", "mail.com", "email.com",
    # Europe
    "gmx.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de",
    "orange.fr", "wanadoo.fr", "laposte.net", "free.fr", "sfr.fr",
    "libero.it", "virgilio.it", "seznam.cz", "wp.pl", "o2.pl", "onet.pl", "interia.pl",
    "btinternet.com", "ukr.net",
    # Russia
    "mail.ru", "inbox.ru", "list.ru", "bk.ru", "yandex.ru", "yandex.com", "ya.ru", "rambler.ru",
    # Asia
    "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com", "sohu.com", "aliyun.com",
    "naver.com", "daum.net", "hanmail.net", "rediffmail.com",
    # Americas and Oceania
    "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "shaw.ca", "rogers.com",
    "uol.com.br", "bol.com.br", "terra.com.br", "bigpond.com",
})

# Domains shared by many organisations that are not mail providers but still identify no one company.
_SHARED_DOMAINS = {
    "onmicrosoft.com": "onmicrosoft.com is shared by every Microsoft Entra tenant, so it cannot identify "
                       "your company: enter your tenant's own domain, such as contoso.onmicrosoft.com",
}

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@lru_cache(maxsize=1)
def _public_suffixes():
    # Importing and parsing the bundled Public Suffix List takes a moment; do it once per process, on first use.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


@dataclass(frozen=True)
class CorporateDomains:
    """The tenant's corporate mail domains, normalised (Unicode, lower case, sorted, no duplicates).

    Build it with `normalise_domains`, which validates; constructing it directly trusts the caller.
    """

    domains: tuple[str, ...]
    include_subdomains: bool = False
    # ASCII (punycode) forms, what comparisons use; derived, so not part of equality or repr.
    _ascii: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ascii", frozenset(_to_ascii(d) or d for d in self.domains))

    def covers(self, email: str | None) -> bool:
        """True when the address's domain is a corporate domain (or below one, with include_subdomains)."""
        return self.why_outside(email) is None

    def why_outside(self, email: str | None) -> str | None:
        """None when `email` is covered; otherwise a short reason a person can read."""
        if email is None or not isinstance(email, str) or not email.strip():
            return "no email address"
        local, at, domain = email.strip().rpartition("@")
        domain = domain[:-1] if domain.endswith(".") else domain
        if not at or not local or not domain:
            return "not an email address"
        # Not a valid IDNA name (an underscore, say): compare it as written, lower-cased, so a
        # mailbox on an odd subdomain of a corporate domain is still judged by its suffix.
        ascii_domain = _to_ascii(domain) or domain.lower()
        if ascii_domain in self._ascii:
            return None
        if self.include_subdomains and any(ascii_domain.endswith("." + d) for d in self._ascii):
            return None
        return f"domain {_to_unicode(ascii_domain)} is not a corporate domain"

    def to_record(self) -> dict:
        """A JSON-ready form for storage; `normalise_domains(**record)` reads it back (it is idempotent)."""
        return {"domains": list(self.domains), "include_subdomains": self.include_subdomains}


def normalise_domains(domains: list[str], include_subdomains: bool = False) -> CorporateDomains:
    """Validate the admin's list of corporate domains and return it normalised.

    Raises `Unprocessable` naming the first offending entry (`field="domains[3]"`) and saying what to fix.
    """
    if not isinstance(domains, (list, tuple)):
        raise Unprocessable("domains must be a list of domain names, such as [\"example.com\"].",
                            field="domains")
    if not isinstance(include_subdomains, bool):
        raise Unprocessable("include_subdomains must be true or false.", field="include_subdomains")
    if not domains:
        raise Unprocessable("List at least one corporate domain, such as example.com: without one, "
                            "no employee's email could count as corporate.", field="domains")
    if len(domains) > MAX_DOMAINS:
        raise Unprocessable(f"At most {MAX_DOMAINS} corporate domains are allowed; you sent {len(domains)}. "
                            "Turn on include_subdomains instead of listing each subdomain.", field="domains")
    normalised = {_normalise_one(entry, f"domains[{i}]") for i, entry in enumerate(domains)}
    return CorporateDomains(domains=tuple(sorted(normalised)), include_subdomains=include_subdomains)


def validate_hostname(value: str, field_name: str) -> str:
    """One DNS hostname checked by the corporate-domain rules except the public-provider ones.

    Returns its Unicode, lower-case form. Other cores (mobile.py's verified tenant domains) reuse it.
    """
    return _hostname(value, field_name)


def dns_form(domain: str) -> str:
    """A domain's ASCII (punycode) form, lower case: how verified domains are stored and compared."""
    return _to_ascii(domain) or domain.lower()


def email_domain_verified(email: str | None, verified: Iterable[str] | None) -> bool:
    """True when `email`'s domain is exactly one of the `verified` ASCII domains (DNS-proven by the tenant): what
    the OpenID Provider's `email_verified` says. A subdomain of a verified domain is not verified by it."""
    if not verified or not isinstance(email, str):
        return False
    local, at, domain = email.strip().rpartition("@")
    domain = domain[:-1] if domain.endswith(".") else domain
    if not at or not local or not domain:
        return False
    return (_to_ascii(domain) or domain.lower()) in set(verified)


def _normalise_one(entry: object, field_name: str) -> str:
    unicode_name = _hostname(entry, field_name)
    ascii_name = _to_ascii(unicode_name) or unicode_name
    if ascii_name in PUBLIC_MAIL_DOMAINS or unicode_name in PUBLIC_MAIL_DOMAINS:
        raise Unprocessable(f"{unicode_name} is a public mail provider: anyone can get an address there, "
                            "so it cannot identify your employees. Remove it from the list.", field=field_name)
    if ascii_name in _SHARED_DOMAINS:
        raise Unprocessable(_SHARED_DOMAINS[ascii_name] + ".", field=field_name)
    if _public_suffixes().is_public(ascii_name):
        raise Unprocessable(f"{unicode_name} is a public suffix: anyone can register a name under it, so it "
                            f"cannot identify your company. Enter your own domain, such as yourcompany.{unicode_name}.",
                            field=field_name)
    return unicode_name


def _hostname(entry: object, field_name: str) -> str:
    """Check one entry as a real hostname; return its Unicode, lower-case form without a trailing dot."""
    if not isinstance(entry, str):
        raise Unprocessable(f"{field_name} must be a domain name in quotes, such as \"example.com\".",
                            field=field_name)
    raw = entry.strip()
    if not raw:
        raise Unprocessable(f"{field_name} is empty: enter a domain name such as example.com, or remove the entry.",
                            field=field_name)
    shown = raw if len(raw) <= 80 else raw[:77] + "..."
    if len(raw) > _MAX_RAW_ENTRY:
        raise Unprocessable(f"{shown!r} is too long to be a domain name (at most 253 characters).", field=field_name)
    if _SCHEME.match(raw):
        host = raw.split("://", 1)[1].split("/", 1)[0]
        raise Unprocessable(f"{shown!r} is a web address; enter only the domain, such as {host or 'example.com'}.",
                            field=field_name)
    if "@" in raw:
        after = raw.rpartition("@")[2] or "example.com"
        raise Unprocessable(f"{shown!r} looks like an email address; enter only the part after @, "
                            f"such as {after}.", field=field_name)
    if "/" in raw or "\\" in raw:
        before_path = re.split(r"[/\\]", raw, maxsplit=1)[0] or "example.com"
        raise Unprocessable(f"{shown!r} contains a path; enter only the domain, such as {before_path}.",
                            field=field_name)
    if "*" in raw:
        raise Unprocessable(f"{shown!r} contains a wildcard, which is not allowed: list the parent domain "
                            f"({raw.lstrip('*.') or 'example.com'}) and turn on include_subdomains.", field=field_name)
    if _is_ip_address(raw):
        raise Unprocessable(f"{shown!r} is an IP address; email domains are names, such as example.com.",
                            field=field_name)
    if ":" in raw:
        raise Unprocessable(f"{shown!r} contains a port or a colon; enter only the domain, such as "
                            f"{raw.split(':', 1)[0] or 'example.com'}.", field=field_name)
    if any(ch.isspace() for ch in raw):
        raise Unprocessable(f"{shown!r} contains a space; a domain name has none.", field=field_name)
    try:
        # UTS #46 mapping, as browsers and mail software apply it: case folding, full-width letters
        # and ideographic dots become their plain forms before the IDNA 2008 rules are checked.
        mapped = idna.uts46_remap(raw, std3_rules=True, transitional=False)
    except idna.IDNAError as exc:
        raise Unprocessable(f"{shown!r} is not a valid domain name: {_explain_idna_error(raw, exc)}.",
                            field=field_name) from None
    name = mapped[:-1] if mapped.endswith(".") else mapped  # a trailing dot is DNS's "fully qualified" mark
    labels = name.split(".")
    if any(not label for label in labels):
        raise Unprocessable(f"{shown!r} has an empty part between dots; write it like example.com.",
                            field=field_name)
    if len(labels) < 2:
        raise Unprocessable(f"{shown!r} is not a full domain: it needs at least two parts, such as "
                            f"{name}.com.", field=field_name)
    ascii_labels = []
    for label in labels:
        try:
            ascii_labels.append(idna.encode(label).decode("ascii"))
        except idna.IDNAError as exc:
            raise Unprocessable(f"{shown!r} is not a valid domain name: {_explain_idna_error(label, exc)}.",
                                field=field_name) from None
    ascii_name = ".".join(ascii_labels)
    if len(ascii_name) > 253:
        raise Unprocessable(f"{shown!r} is {len(ascii_name)} characters long in DNS form; a domain name has at "
                            "most 253.", field=field_name)
    if ascii_labels[-1].isdigit():
        raise Unprocessable(f"{shown!r} ends in a number ({ascii_labels[-1]}); a top-level domain such as .com "
                            "is never all digits.", field=field_name)
    return idna.decode(ascii_name)


def _explain_idna_error(label: str, exc: idna.IDNAError) -> str:
    text = str(exc)
    if isinstance(exc, idna.InvalidCodepoint):
        bad = next((ch for ch in label if not (ch.isalnum() or ch in "-.")), None)
        if bad is not None:
            return f"the character {bad!r} is not allowed in a domain name"
        return f"{label!r} has a character that is not allowed in a domain name"
    if "too long" in text.lower():
        return f"the part {label!r} is longer than 63 characters in DNS form"
    if "3rd and 4th" in text:
        return f"the part {label!r} has -- in 3rd and 4th place, which is reserved for xn-- (punycode) names"
    if "hyphen" in text.lower():
        return f"the part {label!r} must not start or end with a hyphen"
    if "a-label" in text.lower() or "punycode" in text.lower():
        return f"the part {label!r} starts with xn-- but is not valid punycode"
    return f"the part {label!r} is not a valid internationalised name ({text})"


def _is_ip_address(raw: str) -> bool:
    candidate = raw.strip("[]").rstrip(".")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _to_ascii(name: str) -> str | None:
    """The ASCII (punycode) form of a domain, or None when it is not a valid IDNA name."""
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def _to_unicode(ascii_name: str) -> str:
    try:
        return idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError, ValueError):
        return ascii_name
