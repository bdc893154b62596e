"""Corporate domains: what the admin may list, how it is normalised, and which emails it covers."""
from __future__ import annotations

import pytest

from shared_code.directory.domains import MAX_DOMAINS, PUBLIC_MAIL_DOMAINS, CorporateDomains, normalise_domains
from shared_code.platform.errors import Unprocessable


def refusal(domains, include_subdomains=False) -> Unprocessable:
    with pytest.raises(Unprocessable) as caught:
        normalise_domains(domains, include_subdomains)
    return caught.value


# --- normalising ---------------------------------------------------------------------------------

def test_domains_are_lower_cased_sorted_and_stripped_of_spaces_and_a_trailing_dot():
    corporate = normalise_domains(["  Zeta.EXAMPLE ", "alpha.example.", "Mid.Example"])
    assert corporate.domains == ("alpha.example", "mid.example", "zeta.example")
    assert corporate.include_subdomains is False


def test_duplicates_are_folded_whatever_their_case_dot_or_script():
    corporate = normalise_domains(["example.com", "EXAMPLE.COM", "example.com.",
                                   "Bücher.example", "xn--bcher-kva.example", "XN--BCHER-KVA.EXAMPLE"])
    assert corporate.domains == ("bücher.example", "example.com")


def test_an_internationalised_domain_is_stored_in_its_unicode_form():
    assert normalise_domains(["Bücher.example"]).domains == ("bücher.example",)
    assert normalise_domains(["xn--bcher-kva.example"]).domains == ("bücher.example",)
    assert normalise_domains(["пример.рф"]).domains == ("пример.рф",)


def test_full_width_letters_and_ideographic_dots_are_mapped_as_browsers_do():
    assert normalise_domains(["ｅｘａｍｐｌｅ。com"]).domains == ("example.com",)


def test_sharp_s_is_kept_as_idna_2008_requires_not_folded_to_ss():
    assert normalise_domains(["faß.de"]).domains == ("faß.de",)


def test_the_subdomain_switch_is_kept():
    assert normalise_domains(["example.com"], include_subdomains=True).include_subdomains is True


def test_normalising_is_idempotent_so_a_stored_record_reads_back_unchanged():
    corporate = normalise_domains(["Bücher.example", "example.com"], include_subdomains=True)
    assert normalise_domains(**corporate.to_record()) == corporate


def test_fifty_domains_are_accepted():
    domains = [f"company{i}.example" for i in range(MAX_DOMAINS)]
    assert len(normalise_domains(domains).domains) == MAX_DOMAINS


def test_a_tenant_own_onmicrosoft_domain_is_accepted():
    assert normalise_domains(["contoso.onmicrosoft.com"]).domains == ("contoso.onmicrosoft.com",)


def test_a_name_under_a_public_suffix_is_accepted():
    assert normalise_domains(["example.co.uk"]).domains == ("example.co.uk",)


# --- refusals ------------------------------------------------------------------------------------

def test_more_than_fifty_domains_are_refused():
    error = refusal([f"company{i}.example" for i in range(MAX_DOMAINS + 1)])
    assert error.field == "domains"
    assert "At most 50" in error.message and "51" in error.message


def test_an_empty_list_is_refused():
    assert refusal([]).field == "domains"


def test_a_list_that_is_not_a_list_is_refused():
    assert refusal("example.com").field == "domains"


def test_a_subdomain_switch_that_is_not_a_boolean_is_refused():
    assert refusal(["example.com"], include_subdomains="yes").field == "include_subdomains"


def test_gmail_is_refused_as_a_public_mail_provider_with_the_reason():
    error = refusal(["example.com", "Gmail.com"])
    assert error.field == "domains[1]"
    assert error.message.startswith("gmail.com is a public mail provider: anyone can get an address there, "
                                    "so it cannot identify your employees")


@pytest.mark.parametrize("provider", ["googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
                                      "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com",
                                      "proton.me", "protonmail.com", "gmx.com", "gmx.de", "mail.ru", "yandex.ru",
                                      "yandex.com", "zoho.com", "qq.com", "163.com", "126.com", "web.de"])
def test_every_well_known_public_mail_provider_is_refused(provider):
    assert provider in PUBLIC_MAIL_DOMAINS
    error = refusal([provider])
    assert error.field == "domains[0]"
    assert f"{provider} is a public mail provider" in error.message


@pytest.mark.parametrize("suffix", ["co.uk", "github.io", "gov.uk"])
def test_a_public_suffix_is_refused_because_anyone_can_register_under_it(suffix):
    error = refusal([suffix], include_subdomains=True)
    assert error.field == "domains[0]"
    assert f"{suffix} is a public suffix" in error.message


def test_onmicrosoft_com_itself_is_refused_because_every_entra_tenant_shares_it():
    error = refusal(["onmicrosoft.com"])
    assert "every Microsoft Entra tenant" in error.message


@pytest.mark.parametrize("entry, says", [
    ("https://example.com/about", "web address; enter only the domain, such as example.com"),
    ("john@example.com", "email address; enter only the part after @, such as example.com"),
    ("example.com/path", "contains a path"),
    ("*.example.com", "wildcard"),
    ("example.com:8443", "port"),
    ("192.0.2.10", "IP address"),
    ("[2001:db8::1]", "IP address"),
    ("2001:db8::1", "IP address"),
    ("intranet", "at least two parts"),
    ("example..com", "empty part between dots"),
    (".example.com", "empty part between dots"),
    ("exa mple.com", "space"),
    ("exa_mple.com", "'_' is not allowed"),
    ("-example.com", "must not start or end with a hyphen"),
    ("example-.com", "must not start or end with a hyphen"),
    ("ab--cd.com", "3rd and 4th place"),
    ("xn--zz.example", "not valid punycode"),
    ("a" * 64 + ".com", "longer than 63 characters"),
    (".".join(["a" * 63] * 4) + ".com", "at most 253"),
    ("example.123", "never all digits"),
    ("", "is empty"),
    ("   ", "is empty"),
])
def test_a_malformed_entry_is_refused_naming_it_and_saying_what_to_fix(entry, says):
    error = refusal(["good.example", entry])
    assert error.field == "domains[1]"
    assert says in error.message
    if entry.strip():
        assert entry.strip()[:40] in error.message  # names the offending entry


def test_a_label_of_exactly_63_characters_is_accepted():
    label = "a" * 63
    assert normalise_domains([f"{label}.com"]).domains == (f"{label}.com",)


def test_a_non_string_entry_is_refused():
    assert refusal([42]).field == "domains[0]"


def test_an_absurdly_long_entry_is_refused_before_any_heavy_work():
    error = refusal(["a" * 100_000])
    assert "too long" in error.message


# --- covering emails -----------------------------------------------------------------------------

@pytest.fixture
def exact() -> CorporateDomains:
    return normalise_domains(["example.com", "Bücher.example"])


@pytest.fixture
def with_subdomains() -> CorporateDomains:
    return normalise_domains(["example.com", "Bücher.example"], include_subdomains=True)


def test_an_address_at_a_corporate_domain_is_covered(exact):
    assert exact.covers("anna@example.com")
    assert exact.why_outside("anna@example.com") is None


def test_the_domain_is_compared_without_regard_to_case_or_a_trailing_dot(exact):
    assert exact.covers("Anna@EXAMPLE.Com")
    assert exact.covers("anna@example.com.")


def test_the_domain_is_the_part_after_the_last_at_sign(exact):
    assert exact.covers('"anna@home"@example.com')
    assert not exact.covers("anna@example.com@evil.example")


def test_an_internationalised_domain_matches_in_unicode_and_in_punycode(exact):
    assert exact.covers("max@bücher.example")
    assert exact.covers("max@BÜCHER.example")
    assert exact.covers("max@xn--bcher-kva.example")
    assert exact.covers("max@XN--BCHER-KVA.EXAMPLE")


def test_a_domain_listed_in_punycode_matches_an_address_in_unicode():
    corporate = normalise_domains(["xn--bcher-kva.example"])
    assert corporate.covers("max@bücher.example")


def test_a_subdomain_is_outside_unless_the_switch_is_on(exact, with_subdomains):
    assert not exact.covers("anna@sales.example.com")
    assert exact.why_outside("anna@sales.example.com") == "domain sales.example.com is not a corporate domain"
    assert with_subdomains.covers("anna@sales.example.com")
    assert with_subdomains.covers("anna@eu.sales.example.com")
    assert with_subdomains.covers("max@lager.xn--bcher-kva.example")


def test_a_lookalike_suffix_is_not_a_subdomain(with_subdomains):
    assert not with_subdomains.covers("anna@notexample.com")
    assert not with_subdomains.covers("anna@example.com.evil.example")


def test_another_domain_is_outside_with_a_reason_naming_it(exact):
    assert not exact.covers("anna@example.org")
    assert exact.why_outside("anna@example.org") == "domain example.org is not a corporate domain"


def test_the_reason_shows_an_internationalised_domain_in_unicode(exact):
    assert exact.why_outside("max@xn--mnchen-3ya.de") == "domain münchen.de is not a corporate domain"


@pytest.mark.parametrize("email", [None, "", "   "])
def test_a_missing_email_is_outside_as_no_email_address(exact, email):
    assert not exact.covers(email)
    assert exact.why_outside(email) == "no email address"


@pytest.mark.parametrize("email", ["example.com", "@example.com", "anna@", "anna@."])
def test_a_string_that_is_not_an_address_is_outside_as_not_an_email_address(exact, email):
    assert not exact.covers(email)
    assert exact.why_outside(email) == "not an email address"
