"""The sign-in state itself: signed tokens that only their own purpose, tenant and lifetime accept, the
target rule without HTTP in between (a property over many hostile strings), and the daily purge of expired rows
from the `signins` table."""
from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.sign_in import service as sign_in, sessions
from shared_code.storage import sign_ins, tables

APP = "https://acme.example.com/app"


@pytest.fixture(autouse=True)
def _settings(app_settings):
    """The core reads SESSION_SIGNING_KEY and the storage settings the app runs with."""


def test_a_session_is_accepted_only_for_its_tenant_and_only_until_it_expires():
    token, session = sessions.issue_session("acme-000001", "employee-1", now=1_000_000)
    assert sessions.read_session(token, "acme-000001", now=1_000_001) == session
    assert sessions.read_session(token, "globex-00001", now=1_000_001) is None
    assert sessions.read_session(token, "acme-000001", now=1_000_000 + sessions.SESSION_SECONDS) is None


def test_a_token_of_one_purpose_is_worthless_for_another():
    binding = sessions.issue_login_binding("nonce-1")
    assert sessions.read_login_binding(binding) == "nonce-1"
    assert sessions.read_session(binding, "acme-000001") is None
    token, _ = sessions.issue_session("acme-000001", "employee-1")
    assert sessions.read_login_binding(token) is None


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_nothing_but_a_genuine_token_verifies(garbage):
    assert sessions.read_session(garbage, "acme-000001") is None
    assert sessions.read_login_binding(garbage) is None


def test_cookie_values_are_read_exactly_and_ambiguity_is_refused():
    assert sessions.cookie_value("a=1; gh_session=xyz; b=2", "gh_session") == "xyz"
    assert sessions.cookie_value("gh_session_x=1", "gh_session") is None
    assert sessions.cookie_value("gh_session=1; gh_session=2", "gh_session") is None
    assert sessions.cookie_value(None, "gh_session") is None


@pytest.mark.parametrize("requested,expected", [
    ("/app", APP), ("/app/x?y=1#z", APP + "/x?y=1#z"), (APP + "/inbox", APP + "/inbox"),
    ("/", None), ("/apple", None), ("/app/../admin", None), ("/app/%2e%2e/admin", None), ("//evil.example", None),
    ("https://ACME.example.com/app/x", APP + "/x"), ("https://acme.example.com:444/app", None), ("", None),
    (None, None), ("/app/" + "a" * 3000, None), ("/app/\u00e9", None), ("/app/%00", None),
])
def test_targets_inside_the_app_are_kept_and_everything_else_is_dropped(requested, expected):
    assert sign_in.safe_target(APP, requested) == expected


PIECES = [*"/\\%2fF5cC:.@?#evil\t ", "https:", "//", "%2F", "%5C", "%25", "acme.example.com", "/app", APP]


@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
@settings(max_examples=2000, deadline=None)
def test_no_target_ever_leaves_the_apps_origin(requested):
    target = sign_in.safe_target(APP, requested)
    if target is not None:
        parts = urlsplit(target)
        assert (parts.scheme, parts.netloc) == ("https", "acme.example.com")
        assert parts.path.startswith("/app") and not parts.path.startswith("//")
        assert "\\" not in target


def test_the_purge_timer_purges_expired_sign_in_rows(sso, app_url):
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    assert sign_ins.accept_request_once(sso.tenant_id, "_expired-request", long_ago)
    assert sign_ins.accept_request_once(sso.tenant_id, "_fresh-request",
                                        dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))

    def row(request_id: str) -> dict | None:
        return tables.get(tables.SIGN_INS, sso.tenant_id, sign_ins.ANSWERED + sign_ins._digest(request_id))

    assert row("_expired-request") is not None
    assert requests.post(f"{app_url}/admin/functions/purge_sign_in_state", json={}, timeout=10).status_code == 202
    deadline = time.monotonic() + 60
    while row("_expired-request") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert row("_expired-request") is None
    assert row("_fresh-request") is not None
    # The purged row is gone (an answer to that request would be refused as expired by its login cookie).
    assert sign_ins.accept_request_once(sso.tenant_id, "_expired-request", long_ago) is True
