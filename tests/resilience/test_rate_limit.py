"""Failed authentications are limited per (tenant, client address) and per tenant; correct credentials never
are. Over HTTP against the running app (the address is `X-Forwarded-For`, as Azure's front end sets it),
plus the limiter's window arithmetic on a fake clock."""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from shared_code.platform.rate_limit import FailureLimiter, client_of

PER_CLIENT, PER_TENANT = 20, 200


def assert_429(response: requests.Response) -> int:
    assert response.status_code == 429, (response.status_code, response.text)
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= 60
    return wait


def test_twenty_wrong_scim_tokens_from_one_address_then_429_while_another_address_is_served(scim_tenant):
    _, scim = scim_tenant
    wrong = "gh_scim_" + uuid.uuid4().hex
    statuses = [scim.request("GET", "/Users", token=wrong).status_code for _ in range(PER_CLIENT)]
    assert statuses == [401] * PER_CLIENT

    refused = scim.request("GET", "/Users", token=wrong)
    assert_429(refused)
    assert refused.headers["Content-Type"].startswith("application/scim+json")
    assert refused.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert refused.json()["status"] == "429"
    # A correct token is never refused, not even from the address over its budget ...
    assert scim.request("GET", "/Users").status_code == 200
    # ... and the tenant's real client elsewhere is served too.
    assert scim.request("GET", "/Users", address="203.0.113.10").status_code == 200


def test_twenty_wrong_admin_keys_then_429_json_and_the_right_key_still_works_elsewhere(new_tenant):
    tenant = new_tenant("Limited Admin")
    attacker = {"Authorization": "Bearer gh_admin_" + uuid.uuid4().hex, "X-Forwarded-For": "192.0.2.77"}
    assert [tenant.api("GET", "sso", headers=attacker).status_code for _ in range(PER_CLIENT)] == [403] * PER_CLIENT
    refused = tenant.api("GET", "sso", headers=attacker)
    assert_429(refused)
    assert refused.json()["error"] == "too_many_requests"
    assert tenant.api("GET", "sso", headers={"X-Forwarded-For": "192.0.2.78"}).status_code == 200


def test_the_port_app_service_appends_does_not_make_each_connection_a_new_client(scim_tenant):
    _, scim = scim_tenant
    wrong = "gh_scim_" + uuid.uuid4().hex
    for port in range(PER_CLIENT):
        assert scim.request("GET", "/Users", token=wrong, address=f"198.18.0.9:{40000 + port}").status_code == 401
    assert_429(scim.request("GET", "/Users", token=wrong, address="10.0.0.1, 198.18.0.9:50000"))


def test_a_missing_token_is_not_a_guess_and_is_never_limited(scim_tenant):
    _, scim = scim_tenant
    for _ in range(PER_CLIENT + 5):
        response = scim.http.get(scim.base + "/Users", headers={"X-Forwarded-For": scim.address}, timeout=30)
        assert response.status_code == 401
    assert scim.request("GET", "/Users").status_code == 200


def test_wrong_operator_keys_are_limited_per_address_too(app_url, operator_key):
    url = f"{app_url}/api/tenants"
    body = {"name": "Never", "app_url": "https://never.example.com"}
    wrong = {"Authorization": "Bearer nope-" + uuid.uuid4().hex, "X-Forwarded-For": "192.0.2.200"}
    for _ in range(PER_CLIENT):
        assert requests.post(url, json=body, headers=wrong, timeout=10).status_code == 403
    assert_429(requests.post(url, json=body, headers=wrong, timeout=10))
    right = {"Authorization": f"Bearer {operator_key}", "X-Forwarded-For": "192.0.2.201"}
    assert requests.post(url, json=body, headers=right, timeout=10).status_code == 201


def test_a_spread_attack_never_refuses_a_correct_entra_job_sending_30_requests_per_second(scim_tenant):
    _, scim = scim_tenant
    wrong = "gh_scim_" + uuid.uuid4().hex
    attackers = [f"10.{i // 250}.{i % 250}.1" for i in range(PER_TENANT + 40)]

    def attack(address: str) -> int:
        return scim.request("GET", "/Users", token=wrong, address=address).status_code

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(attack, attackers[:PER_TENANT]))
        assert first == [401] * PER_TENANT
        # The tenant is over its budget: an address that failed recently is refused at its next attempt,
        # even though it failed only once.
        assert attack(attackers[0]) == 429

        # Entra's job, from its own address, at 30 requests per second for 3 seconds, while the attack goes on.
        attack_rest = pool.map(attack, attackers[PER_TENANT:])
        job, started = [], time.monotonic()
        for i in range(90):
            time.sleep(max(0.0, started + i / 30 - time.monotonic()))
            job.append(scim.request("GET", f'/Users?filter=userName eq "u{i}@contoso.example"',
                                    address="52.0.0.25").status_code)
        assert set(attack_rest) == {401}  # new addresses are still checked once each
    # Sent at 30/s and every one answered: the limiter refuses only failures, it never slows or refuses the job
    # (how fast the machine answers is the benchmarks' business, not an assertion here).
    assert job == [200] * 90


# --- the window itself, on a fake clock --------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides_a_client_is_let_in_again_once_its_oldest_failure_is_a_minute_old():
    clock = Clock()
    limiter = FailureLimiter(per_client=3, per_scope=100, window=60, clock=clock)
    for step in range(3):
        assert limiter.refusal("t", "a") is None
        limiter.failed("t", "a")
        clock.now += 10
    assert limiter.refusal("t", "a") == 30  # the first failure (at 1000) leaves the window at 1060
    clock.now = 1060
    assert limiter.refusal("t", "a") is None
    assert limiter.refusal("t", "b") is None and limiter.refusal("u", "a") is None


def test_a_tenant_over_its_budget_refuses_only_clients_that_failed_against_it():
    clock = Clock()
    limiter = FailureLimiter(per_client=5, per_scope=4, window=60, clock=clock)
    for address in "abcd":
        limiter.failed("t", address)
    assert limiter.refusal("t", "a") == 60
    assert limiter.refusal("t", "fresh") is None  # never failed: checked, and served if right
    assert limiter.refusal("other-tenant", "a") is None


def test_memory_is_bounded_the_least_recently_failed_are_forgotten_first():
    clock = Clock()
    limiter = FailureLimiter(per_client=2, per_scope=1000, window=60, max_clients=100, max_scopes=10, clock=clock)
    for i in range(1000):
        limiter.failed(f"t{i % 50}", f"client-{i}")
    assert len(limiter._clients) == 100 and len(limiter._scopes) == 10
    assert all(len(times) <= 1000 for times in limiter._scopes.values())


def test_spoofed_forwarded_entries_cannot_lock_out_the_client_they_name(scim_tenant):
    """The platform appends the address that connected; an attacker can only prepend. Twenty failures sent in
    Entra's name (as the first entry) count against the attacker's own address, the one the platform added."""
    _, scim = scim_tenant
    wrong = "gh_scim_" + uuid.uuid4().hex
    for _ in range(PER_CLIENT + 5):
        scim.request("GET", "/Users", token=wrong, address="52.0.0.77, 198.51.100.66")
    assert scim.request("GET", "/Users", address="52.0.0.77").status_code == 200
    assert scim.request("GET", "/Users", token=wrong, address="52.0.0.77").status_code == 401  # not 429
    assert_429(scim.request("GET", "/Users", token=wrong, address="52.0.0.77, 198.51.100.66"))


def test_wrong_keys_where_the_operator_key_is_accepted_count_as_operator_guesses_too(new_tenant, app_url,
                                                                                    operator_key):
    tenant = new_tenant("Operator Guesses")
    guess = {"Authorization": "Bearer " + uuid.uuid4().hex, "X-Forwarded-For": "192.0.2.210"}
    for _ in range(PER_CLIENT):
        assert tenant.api("GET", "sso", headers=guess).status_code == 403  # the admin or operator key
    body = {"name": "Never", "app_url": "https://never.example.com"}
    assert_429(requests.post(f"{app_url}/api/tenants", json=body, headers=guess, timeout=10))
    right = {"Authorization": f"Bearer {operator_key}", "X-Forwarded-For": "192.0.2.210"}
    assert requests.post(f"{app_url}/api/tenants", json=body, headers=right, timeout=10).status_code == 201


def test_the_client_address_is_the_last_forwarded_entry_without_port_and_ipv6_by_its_64_block():
    assert client_of({"x-forwarded-for": "10.0.0.4, 203.0.113.7:52144"}) == "203.0.113.7"
    assert client_of({"x-forwarded-for": "203.0.113.7:52144, 10.0.0.4"}) == "10.0.0.4"
    assert client_of({"x-forwarded-for": "[2001:db8:1:2:aaaa::1]:443"}) == "2001:db8:1:2::/64"
    assert client_of({"x-forwarded-for": "2001:db8:1:2:bbbb::9"}) == "2001:db8:1:2::/64"
    assert client_of({"x-forwarded-for": "::ffff:192.0.2.1"}) == "192.0.2.1"
    assert client_of({}) == "unknown"
    assert len(client_of({"x-forwarded-for": "x" * 10_000})) <= 65


def test_anonymous_login_starts_are_never_refused_because_they_write_nothing(new_tenant, app_url):
    """A login start seals its state into a cookie and writes no row, so there is no budget an anonymous sender
    could exhaust: more starts from one address than the old per-address cap (300 a minute), and a colleague's
    start after them, all go to Entra."""
    from tests.support.idp import TestIdp

    tenant = new_tenant("Login Flood")
    assert tenant.api("POST", "sso/idp-metadata",
                      json={"metadata_xml": TestIdp(key_label="flood").metadata_xml().decode()}).status_code == 200
    url = f"{app_url}/api/sso/{tenant.tenant_id}/login"
    flood = {"X-Forwarded-For": "198.51.100.99"}

    def start(headers) -> requests.Response:
        return requests.get(url, headers=headers, allow_redirects=False, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: start(flood).status_code, range(320)))
    assert statuses == [302] * 320
    assert start({"X-Forwarded-For": "198.51.100.100"}).status_code == 302  # a colleague elsewhere signs in
