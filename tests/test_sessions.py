"""shared_code/sign_in/sessions.py without storage or HTTP: the signed token format, its expiry to the second, the key
derived per purpose from SESSION_SIGNING_KEY, and each cookie's attributes. Fast on purpose: `make mutants` runs
it once per mutant of sessions.py (docs/mutation-testing.md)."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json

import pytest

from shared_code.sign_in import sessions
from shared_code.platform.settings import get_settings

KEY = "sessions-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def settings(monkeypatch):
    def use(base_url: str = "http://127.0.0.1:7071", key: str = KEY) -> None:
        monkeypatch.setenv("SESSION_SIGNING_KEY", key)
        monkeypatch.setenv("PUBLIC_BASE_URL", base_url)
        get_settings.cache_clear()
    use()
    yield use
    get_settings.cache_clear()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_token_is_v1_body_and_an_hmac_of_both_under_the_purposes_own_key():
    token = sessions.sign("purpose-a", {"x": 1}, 60, now=1_000_000)
    version, body, mac = token.split(".")
    assert version == "v1" and "=" not in body + mac
    assert json.loads(_unb64(body)) == {"x": 1, "iat": 1_000_000, "exp": 1_000_060}
    key = hmac.new(KEY.encode(), b"gatehouse/purpose-a/v1", hashlib.sha256).digest()
    assert _unb64(mac) == hmac.new(key, f"v1.{body}".encode(), hashlib.sha256).digest()
    assert sessions.verify("purpose-a", token, now=1_000_000) == {"x": 1, "iat": 1_000_000, "exp": 1_000_060}
    assert sessions.verify("purpose-b", token, now=1_000_000) is None


def test_a_token_expires_on_the_second_it_says():
    token = sessions.sign("p", {}, 60, now=1_000_000.9)
    assert sessions.verify("p", token, now=1_000_059.999) is not None
    assert sessions.verify("p", token, now=1_000_060) is None
    assert sessions.verify("p", token, now=1_000_060.5) is None


def test_a_token_signed_under_another_key_is_refused(settings):
    token = sessions.sign("p", {}, 60, now=1_000_000)
    settings(key="another-key-" + "x" * 20)
    assert sessions.verify("p", token, now=1_000_001) is None
    settings(key="")
    with pytest.raises(RuntimeError, match="^SESSION_SIGNING_KEY is not set; sessions cannot be signed$"):
        sessions.sign("p", {}, 60)


def _forge(body: dict, purpose: str = "p") -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    key = hmac.new(KEY.encode(), f"gatehouse/{purpose}/v1".encode(), hashlib.sha256).digest()
    mac = base64.urlsafe_b64encode(hmac.new(key, f"v1.{encoded}".encode(), hashlib.sha256).digest()).rstrip(b"=")
    return f"v1.{encoded}.{mac.decode()}"


@pytest.mark.parametrize("body", [[], "text", {"exp": "9999999999"}, {"exp": 2_000_000.5}, {}])
def test_a_genuinely_signed_body_without_an_integer_expiry_is_refused(body):
    assert sessions.verify("p", _forge(body), now=1_000_000) is None


def test_tampered_truncated_or_oversized_tokens_are_refused():
    token = sessions.sign("p", {"u": "a"}, 60, now=1_000_000)
    version, body, mac = token.split(".")
    assert sessions.verify("p", _forge({"u": "a", "exp": 1_000_060}), now=1_000_000) is not None
    for bad in (f"v2.{body}.{mac}", f"v1.{body}.", f"v1..{mac}", f"v1.{body}", f"v1.{body}.{mac[:-2]}AA",
                f"v1.{body}A.{mac}", "", None, 42, f"v1.{body}.{mac}.extra", f"v1.{body}.!!!!",
                f"v1.{body}é.{mac}", "v1.é.ü"):  # non-ASCII: still None, never an exception
        assert sessions.verify("p", bad, now=1_000_000) is None, bad
    by_length = {len(t): t for t in (sessions.sign("p", {"pad": "x" * n, "q": "y" * k}, 60, now=1_000_000)
                                     for n in range(1400, 1560) for k in range(3))}
    # A token is 47 characters plus an unpadded base64 body, so never a multiple of 4 long: 2048 cannot occur.
    limit = sessions.MAX_TOKEN_CHARS
    assert sessions.verify("p", by_length[limit - 1], now=1_000_000) is not None  # the longest we accept
    assert sessions.verify("p", by_length[limit + 1], now=1_000_000) is None


def test_the_purposes_keys_are_the_ones_cookies_already_out_there_were_signed_with():
    """A cookie issued before a deploy still reads after it: the session and the login binding each sign with
    the key derived from their purpose's name, which therefore never changes."""
    session = _forge({"t": "acme-000001", "u": "employee-1", "sid": "s", "iat": 1_000_000, "exp": 1_000_060},
                     purpose="session")
    assert sessions.read_session(session, "acme-000001", now=1_000_001).employee_id == "employee-1"
    binding = _forge({"n": "nonce-1", "iat": 1_000_000, "exp": 1_000_060}, purpose="login-binding")
    assert sessions.read_login_binding(binding, now=1_000_001) == "nonce-1"


def test_a_session_lives_8_hours_for_its_tenant_and_employee():
    token, session = sessions.issue_session("acme-000001", "employee-1", now=1_000_000)
    assert (session.tenant_id, session.employee_id, session.issued_at, session.expires_at) == (
        "acme-000001", "employee-1", 1_000_000, 1_000_000 + 8 * 3600)
    assert session.sid and session.recorded  # its row (Entra's LogoutRequest ends it) is named by its own sid
    assert sessions.read_session(token, "acme-000001", now=1_000_000 + 8 * 3600 - 1) == session
    assert sessions.read_session(token, "acme-000001", now=1_000_000 + 8 * 3600) is None
    assert sessions.read_session(token, "globex-00001", now=1_000_001) is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.employee_id = "employee-2"  # type: ignore[misc]
    other, _ = sessions.issue_session("acme-000001", "employee-1", now=1_000_000)
    assert other != token  # each carries its own sid
    no_employee = sessions.sign("session", {"t": "acme-000001", "u": 7}, 60, now=1_000_000)
    assert sessions.read_session(no_employee, "acme-000001", now=1_000_001) is None


def test_a_login_binding_lives_10_minutes_and_carries_its_nonce():
    binding = sessions.issue_login_binding("nonce-1", now=1_000_000)
    assert sessions.read_login_binding(binding, now=1_000_000 + 599) == "nonce-1"
    assert sessions.read_login_binding(binding, now=1_000_000 + 600) is None
    empty = sessions.issue_login_binding("", now=1_000_000)
    assert sessions.read_login_binding(empty, now=1_000_001) is None
    assert sessions.read_session(binding, "acme-000001", now=1_000_001) is None


def test_session_cookie_over_http_and_over_https(settings):
    assert sessions.session_cookie_name() == "gh_session"
    assert sessions.session_set_cookie("acme-000001", "TOKEN") == (
        "gh_session=TOKEN; Path=/api/sso/acme-000001/; Max-Age=28800; HttpOnly; SameSite=Lax")
    settings(base_url="https://gatehouse.example.com")
    assert sessions.session_cookie_name() == "__Secure-gh_session"
    assert sessions.session_set_cookie("acme-000001", "TOKEN") == (
        "__Secure-gh_session=TOKEN; Path=/api/sso/acme-000001/; Max-Age=28800; HttpOnly; Secure; SameSite=Lax")


def test_login_binding_cookie_and_browser_nonce():
    assert sessions.login_binding_set_cookie("T") == (
        "__Host-gh_login=T; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=None")
    nonce = sessions.new_browser_nonce()
    assert len(nonce) == 32 and nonce != sessions.new_browser_nonce()
    assert sessions.browser_nonce_hash(nonce) == hashlib.sha256(nonce.encode()).hexdigest()


@pytest.mark.parametrize("header, value", [
    ("a=1; gh_session=xyz; b=2", "xyz"),
    ("gh_session= xyz ", "xyz"),
    ("gh_session=a=b", "a=b"),
    ("gh_session_x=1", None),
    ("x_gh_session=1", None),
    ("gh_session=1; gh_session=2", None),
    ("gh_session=", None),
    ("", None),
    (None, None),
])
def test_cookie_values_are_read_exactly(header, value):
    assert sessions.cookie_value(header, "gh_session") == value
