"""The OpenID Provider's promised numbers and checks, each tested so that breaking it fails here (issue 26;
docs/mutation-testing.md lists the one-line breakages these were seen failing against).

Time is given to the code (`now`), never slept: a code lives 60 s, a back-channel logout is retried for a
day and then given up, UserInfo checks the employee itself (not only the session a dismissal ends), a client's
back-channel URI is checked at registration, and a rotated client secret works and is stored only as its hash.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from shared_code.platform import credentials
from shared_code.sign_in import sessions
from shared_code.platform.errors import Unprocessable
from shared_code.oidc import authorization, backchannel, clients, logout, tokens
from shared_code.oidc.errors import OAuthError
from shared_code.storage import directory, tables
from shared_code.storage import oidc as store
from tests.oidc.conftest import pkce_pair, query


def _basic(client: dict) -> str:
    return "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()


def _issue(op, employee: dict, now: datetime) -> tuple[str, str, str]:
    """A code issued at `now` for `employee` through the authorization core; (code, verifier, sid)."""
    verifier, challenge = pkce_pair()
    context = {"client_id": op.client["client_id"], "redirect_uri": op.client["redirect_uris"][0],
               "code_challenge": challenge, "nonce": "n-0S6_WzA2Mj", "scope": "openid", "state": "s"}
    # As the ACS does: the employee as the sign-in read them, and the SAML answer (here a fresh request id)
    # accepted once in the transaction that starts the session.
    answered = (f"id{secrets.token_hex(20)}", now + timedelta(minutes=15))
    location, sid = authorization.issue_code_with_sid(op.tenant_id, directory.get_user(op.tenant_id, employee["id"]),
                                                      context, None, answered, now=now)
    return query(location)["code"], verifier, sid


def _redeem(op, code: str, verifier: str, at: float) -> dict:
    return tokens.token_request(op.tenant_id, _basic(op.client), {
        "grant_type": "authorization_code", "code": code, "redirect_uri": op.client["redirect_uris"][0],
        "code_verifier": verifier}, now=at)


# ---- a code lives 60 seconds -----------------------------------------------------------------------------------------

def test_a_code_is_good_for_60_seconds_and_not_one_more(op, employee):
    issued = datetime.now(timezone.utc).replace(microsecond=0)
    code, verifier, _ = _issue(op, employee, issued)
    assert "id_token" in _redeem(op, code, verifier, issued.timestamp() + 59.9)
    code, verifier, _ = _issue(op, employee, issued)
    with pytest.raises(OAuthError) as expired:
        _redeem(op, code, verifier, issued.timestamp() + 60)
    assert expired.value.error == "invalid_grant" and "expired" in expired.value.description


def test_the_tokens_of_a_code_live_an_hour_from_their_redemption(op, employee):
    issued = datetime.now(timezone.utc).replace(microsecond=0)
    code, verifier, _ = _issue(op, employee, issued)
    redeemed_at = issued.timestamp() + 30.5
    answer = _redeem(op, code, verifier, redeemed_at)
    payload = answer["id_token"].split(".")[1]
    id_claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (id_claims["iat"], id_claims["exp"]) == (int(redeemed_at), int(redeemed_at) + 3600)
    assert answer["expires_in"] == 3600 and answer["token_type"] == "Bearer" and answer["scope"] == "openid"
    # The access token is a Gatehouse token of its own purpose ("oidc-access"): good for the hour, not a second more.
    assert sessions.verify("oidc-access", answer["access_token"], now=int(redeemed_at) + 3599)["u"] == employee["id"]
    assert sessions.verify("oidc-access", answer["access_token"], now=int(redeemed_at) + 3600) is None


# ---- UserInfo checks the employee, not only the session ----------------------------------------------------------------

def test_userinfo_refuses_a_dismissed_employee_whose_session_is_still_live(op, employee):
    """A dismissal also ends the employee's sessions, which would hide a missing employee check: here only the
    employee row says so (a dismissal whose session ending has not been written yet)."""
    code, verifier, sid = _issue(op, employee, datetime.now(timezone.utc))
    access = _redeem(op, code, verifier, time.time())["access_token"]
    assert tokens.userinfo(op.tenant_id, access)["sub"] == employee["id"]
    row = {"PartitionKey": op.tenant_id, "RowKey": directory.USER + employee["id"]}
    tables.update(directory.TABLE, {**row, "active": False}, etag=None)
    assert store.session_is_live(op.tenant_id, employee["id"], sid)  # the session alone would let it through
    with pytest.raises(OAuthError) as refused:
        tokens.userinfo(op.tenant_id, access)
    assert refused.value.status == 401 and "deactivated" in refused.value.description
    # Rehired since the token was issued (active again, sessions before the rehire ended): still refused.
    tables.update(directory.TABLE, {**row, "active": True, "sessions_valid_from": int(time.time()) + 5}, etag=None)
    with pytest.raises(OAuthError) as stale:
        tokens.userinfo(op.tenant_id, access)
    assert "deactivated" in stale.value.description


# ---- back-channel logout: retried for a day, then given up --------------------------------------------------------

class RefusingClient:
    """A product's back-channel logout endpoint that answers 503 to every logout token (and counts them)."""

    def __init__(self):
        self.received = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.received += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/backchannel-logout"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def refusing() -> Iterator[RefusingClient]:
    server = RefusingClient()
    yield server
    server.close()


def test_a_refused_back_channel_logout_is_retried_for_a_day_then_given_up(op, employee, refusing):
    listening = op.register(redirect_uris=[op.client["redirect_uris"][0]], backchannel_logout_uri=refusing.url)
    assert listening.status_code == 201, listening.text
    op.client = listening.json()
    ended_at = datetime.now(timezone.utc)
    code, verifier, sid = _issue(op, employee, ended_at)
    _redeem(op, code, verifier, time.time())
    assert backchannel.session_ended(op.tenant_id, employee["id"], sid, now=ended_at) == 1
    key = f"{employee['id']}:{sid}:{op.client['client_id']}"
    deadline = time.monotonic() + 30  # the first attempt runs right away, off this thread
    # the attempt counts itself when it claims the row, before it posts: wait for the product to have been called
    while refusing.received < 1:
        assert time.monotonic() < deadline, "the first attempt never happened"
        time.sleep(0.05)
    pending = store.get_pending_logout(op.tenant_id, key)
    assert pending is not None and pending.attempts == 1 and refusing.received == 1
    assert not backchannel.attempt(pending, now=ended_at + timedelta(days=1) - timedelta(minutes=1))
    still = store.get_pending_logout(op.tenant_id, key)
    assert still is not None and still.attempts == 2, "given up before a day had passed"
    assert not backchannel.attempt(still, now=ended_at + timedelta(days=1, minutes=1))
    assert store.get_pending_logout(op.tenant_id, key) is None, "still retried after a day"
    assert refusing.received == 3


# ---- registration checks the back-channel URI ------------------------------------------------------------------------

@pytest.mark.parametrize("uri, says", [
    ("ftp://product.example.com/logout", "https://"),
    ("http://product.example.com/logout", "https://"),
    ("https://user:pw@product.example.com/logout", "user name or password"),
    ("https://product.example.com/logout#frag", "fragment"),
    ("https://product.example.com/log out", "spaces"),
    ("/relative/logout", "https://"),
])
def test_registration_refuses_a_back_channel_uri_we_would_not_call(op, uri, says):
    with pytest.raises(Unprocessable) as refused:
        clients.register(op.tenant_id, {"redirect_uris": [op.client["redirect_uris"][0]],
                                        "backchannel_logout_uri": uri})
    assert refused.value.field == "backchannel_logout_uri" and says in refused.value.message, refused.value.message
    answer = op.register(redirect_uris=[op.client["redirect_uris"][0]], backchannel_logout_uri=uri)
    assert answer.status_code == 422 and answer.json()["field"] == "backchannel_logout_uri", answer.text


def test_outside_local_development_registration_applies_the_outbound_policy_to_the_back_channel_uri(op, monkeypatch):
    """http:// on loopback is fine for a redirect URI in local development, but we call the back-channel URI
    ourselves: with private addresses off (production), only https:// to a public host will do."""
    from shared_code.platform.settings import get_settings

    monkeypatch.setenv("ALLOW_PRIVATE_METADATA_URLS", "false")
    get_settings.cache_clear()
    try:
        with pytest.raises(Unprocessable) as refused:
            clients.register(op.tenant_id, {"redirect_uris": [op.client["redirect_uris"][0]],
                                            "backchannel_logout_uri": "http://127.0.0.1:9/logout"})
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert refused.value.field == "backchannel_logout_uri" and "https://" in refused.value.message
    assert clients.register(op.tenant_id, {"redirect_uris": [op.client["redirect_uris"][0]],
                                           "backchannel_logout_uri": "http://127.0.0.1:9/logout"})["client_id"]


# ---- a rotated client secret ------------------------------------------------------------------------------------------

def test_a_rotated_client_secret_works_and_is_stored_only_as_its_hash(op, employee):
    old = dict(op.client)
    rotated = clients.rotate_secret(op.tenant_id, op.client["client_id"])
    new_secret = rotated["client_secret"]
    assert new_secret and new_secret != old["client_secret"]
    record = store.get_client(op.tenant_id, op.client["client_id"])
    assert record.secret_hash == hashlib.sha256(new_secret.encode()).hexdigest()
    assert record.secret_hash == credentials.hash_secret(new_secret)
    row = tables.get(store.TABLE, op.tenant_id, store.CLIENT + op.client["client_id"])
    assert all(new_secret not in str(value) for value in row.values())
    op.client = {**old, "client_secret": new_secret}
    code, verifier, _ = _issue(op, employee, datetime.now(timezone.utc))
    assert "access_token" in _redeem(op, code, verifier, time.time())  # the new secret authenticates
    assert op.redeem(op.sign_in(employee)).status_code == 200  # over HTTP too
    op.client = old
    code, verifier, _ = _issue(op, employee, datetime.now(timezone.utc))
    with pytest.raises(OAuthError) as refused:
        _redeem(op, code, verifier, time.time())
    assert refused.value.error == "invalid_client"  # the old one stopped working at once


def test_a_client_whose_secret_is_rotated_while_it_is_deleted_is_deleted(op, monkeypatch):
    """The delete reads the client (for its back-channel URI) and then deletes it: a secret rotated in between
    changes the row, not what the delete needs, so the client goes rather than answering "no such client"."""
    client_id = op.client["client_id"]
    read = tables.get

    def read_then_rotate(table, partition, row, *args, **kwargs):
        found = read(table, partition, row, *args, **kwargs)
        if row == store.CLIENT + client_id:
            monkeypatch.setattr(tables, "get", read)  # once
            clients.rotate_secret(op.tenant_id, client_id)  # another request, between the read and the delete
        return found

    monkeypatch.setattr(tables, "get", read_then_rotate)
    clients.delete(op.tenant_id, client_id)
    assert store.get_client(op.tenant_id, client_id) is None


# ---- what the token endpoint and UserInfo say (a developer acts on the description) ---------------------------------

def test_each_refusal_of_the_token_endpoint_says_what_is_wrong(op, employee):
    def refusal(form: dict, at: float | None = None) -> tuple[str, str]:
        with pytest.raises(OAuthError) as refused:
            tokens.token_request(op.tenant_id, _basic(op.client), form, now=at)
        return refused.value.error, refused.value.description

    redirect = op.client["redirect_uris"][0]
    assert refusal({}) == ("invalid_request", "grant_type is required.")
    assert refusal({"grant_type": "password"}) == ("unsupported_grant_type",
                                                   "grant_type 'password' is not supported here.")
    assert refusal({"grant_type": "g" * 150}) == ("unsupported_grant_type",  # quoted back, cut at 100 characters
                                                  f"grant_type {'g' * 100!r} is not supported here.")
    assert refusal({"grant_type": "authorization_code", "redirect_uri": redirect}) == (
        "invalid_request", "code and redirect_uri are required.")
    assert refusal({"grant_type": "authorization_code", "code": "c" * 43, "redirect_uri": redirect}) == (
        "invalid_grant", "The code is not valid (unknown, or issued to another client).")
    assert refusal({"grant_type": "authorization_code", "code": "c" * 43, "redirect_uri": redirect,
                    "code_verifier": "v" * 43}) == (
        "invalid_grant", "The code is not valid (unknown, or issued to another client).")
    now = datetime.now(timezone.utc)
    code, verifier, _ = _issue(op, employee, now)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "code_verifier": verifier}
    assert refusal(form, now.timestamp() + 61) == ("invalid_grant", "The code has expired (codes live 60 seconds).")
    assert refusal({**form, "redirect_uri": "http://127.0.0.1:8765/cb"}, now.timestamp()) == (
        "invalid_grant", "redirect_uri is not the one the code was issued for.")
    assert refusal({**form, "code_verifier": pkce_pair()[0]}, now.timestamp()) == (
        "invalid_grant", "The PKCE code_verifier does not match the code_challenge (S256).")
    access = _redeem(op, code, verifier, now.timestamp())["access_token"]
    assert refusal(form, now.timestamp()) == (
        "invalid_grant", "The code has been redeemed already; the tokens issued for it are revoked.")

    def userinfo_refusal(token: str | None) -> tuple[int, str]:
        with pytest.raises(OAuthError) as refused:
            tokens.userinfo(op.tenant_id, token)
        headers[0] = refused.value.headers
        return refused.value.status, refused.value.description

    headers: list = [None]
    assert userinfo_refusal(None) == (401, "An access token is required (Authorization: Bearer).")
    assert headers[0] == {"WWW-Authenticate": 'Bearer realm="userinfo"'}  # RFC 6750 §3: no error code yet
    with pytest.raises(OAuthError) as missing:
        tokens.userinfo(op.tenant_id, "")
    assert missing.value.error == "invalid_request"
    assert userinfo_refusal(access[:-4] + "AAAA") == (401, "The access token is not valid here, or it has expired.")
    assert userinfo_refusal(access) == (401, "The access token has been revoked.")  # the replay revoked it
    assert headers[0] == {"WWW-Authenticate": 'Bearer error="invalid_token", '
                                              'error_description="The access token has been revoked."'}


def test_userinfo_refuses_the_token_of_an_ended_session_and_a_code_of_a_dismissed_employee(op, employee):
    now = datetime.now(timezone.utc)
    code, verifier, sid = _issue(op, employee, now)
    access = _redeem(op, code, verifier, time.time())["access_token"]
    assert store.end_session(op.tenant_id, employee["id"], sid, now) is not None  # signed out
    with pytest.raises(OAuthError) as ended:
        tokens.userinfo(op.tenant_id, access)
    assert ended.value.description == "The session this access token belongs to has ended (signed out)."
    # A dismissal ends the employee's sessions; the code of one (redeemed without reading the employee again)
    # fails on its session row's ETag.
    code, verifier, sid = _issue(op, employee, now)
    assert store.end_session(op.tenant_id, employee["id"], sid, now) is not None
    with pytest.raises(OAuthError) as dismissed:
        _redeem(op, code, verifier, time.time())
    assert (dismissed.value.error, dismissed.value.description) == (
        "invalid_grant", "The sign-in this code comes from has ended (signed out, or the employee's account was "
                         "deactivated).")


def test_a_code_from_before_a_dismissal_stays_dead_after_the_rehire(op, employee):
    """A dismissal ends the employee's sessions (and sets `sessions_valid_from`); a code issued before it fails on
    its session row's ETag even once the employee is rehired. A code of the rehired employee is redeemed."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    code, verifier, sid = _issue(op, employee, now)
    assert store.end_session(op.tenant_id, employee["id"], sid, now) is not None  # the dismissal's reaction
    tables.update(directory.TABLE, {"PartitionKey": op.tenant_id, "RowKey": directory.USER + employee["id"],
                                    "sessions_valid_from": int(now.timestamp()) + 1}, etag=None)  # then a rehire
    with pytest.raises(OAuthError) as stale:
        _redeem(op, code, verifier, now.timestamp() + 2)
    assert stale.value.error == "invalid_grant" and "has ended" in stale.value.description
    code, verifier, _ = _issue(op, employee, now + timedelta(seconds=1))
    assert "id_token" in _redeem(op, code, verifier, now.timestamp() + 2)

# ---- ending a session: the row as read is not read again ----------------------------------------------------------

def _cost(action) -> tuple[object, int]:
    before = tables.round_trips()
    result = action()
    return result, tables.round_trips() - before


def test_a_session_just_read_is_ended_with_one_write_and_read_again_only_when_it_changed(op, employee):
    """`end_session` given the row as the caller read it writes under its ETag at once (1 round trip, was 2); a
    code redeemed since that read changed the ETag, so the row is read again and the notices queued again, now
    seeing the client that redeemed."""
    now = datetime.now(timezone.utc)
    _, _, sid = _issue(op, employee, now)
    session = store.get_session(op.tenant_id, employee["id"], sid)
    assert session is not None and session.etag
    ended, trips = _cost(lambda: store.end_session(op.tenant_id, employee["id"], sid, now, session=session))
    assert ended == session and trips == 1 and not store.session_is_live(op.tenant_id, employee["id"], sid)
    again, trips = _cost(lambda: store.end_session(op.tenant_id, employee["id"], sid, now))  # ended already
    assert again is None and trips == 1

    code, verifier, sid = _issue(op, employee, now)
    session = store.get_session(op.tenant_id, employee["id"], sid)
    _redeem(op, code, verifier, time.time())  # after the read: the row's ETag moved
    told: list[set[str]] = []
    ended, trips = _cost(lambda: store.end_session(
        op.tenant_id, employee["id"], sid, now, session=session,
        before_ending=lambda: told.append(store.session_clients(op.tenant_id, sid))))
    assert ended is not None and not store.session_is_live(op.tenant_id, employee["id"], sid)
    assert told == [{op.client["client_id"]}, {op.client["client_id"]}]  # before each write
    assert trips == 2 + 1 + 2  # the refused write, the read, the write; and the two lookups of the clients


def test_an_rp_initiated_logout_does_not_read_the_session_twice(op, employee):
    """The logout reads the session to check the hint against it and ends it under that read: 6 round trips
    (the client, the session, the clients that redeemed a code of it, each such client, the write, the tenant),
    not 7."""
    now = datetime.now(timezone.utc)
    code, verifier, sid = _issue(op, employee, now)
    hint = _redeem(op, code, verifier, time.time())["id_token"]
    _, trips = _cost(lambda: logout.end_session(op.tenant_id, {"id_token_hint": hint}, now, browser_sid=sid))
    assert trips == 6 and not store.session_is_live(op.tenant_id, employee["id"], sid)


def test_ending_an_employees_sessions_reads_each_once(op, employee):
    """A dismissal's reaction ends the sessions its range query read, without reading each again: per session,
    the clients to tell, each client, the write (3; was 4), after the one range query."""
    now = datetime.now(timezone.utc)
    for _ in range(2):
        code, verifier, _ = _issue(op, employee, now)
        _redeem(op, code, verifier, time.time())
    ended, trips = _cost(lambda: logout.employee_dismissed(op.tenant_id, employee["id"], now))
    assert ended == 2 and trips == 1 + 2 * 3 and store.live_sessions(op.tenant_id, employee["id"]) == []


def test_a_dismissal_asks_about_a_rehire_only_for_a_session_of_unknown_start(op, employee):
    """Whether the employee is active again (a directory read) matters only for a session written before
    sessions recorded their start: for every other session the reaction never asks."""
    now = datetime.now(timezone.utc)
    _, _, sid = _issue(op, employee, now)
    asked: list[bool] = []
    ended = logout.employee_dismissed(op.tenant_id, employee["id"], now, before=now + timedelta(seconds=5),
                                      rehired=lambda: asked.append(True) or True)
    assert ended == 1 and asked == []
    _, _, sid = _issue(op, employee, now)
    key = f"{store.SESSION}{employee['id']}:{sid}"
    row = {k: v for k, v in tables.get(tables.OIDC, op.tenant_id, key).items() if k != "started_at"}
    tables.update(tables.OIDC, row, etag=None, replace=True)  # as sessions were written before the column
    ended = logout.employee_dismissed(op.tenant_id, employee["id"], now, before=now + timedelta(seconds=5),
                                      rehired=lambda: asked.append(True) or True)
    assert ended == 0 and asked == [True] and store.session_is_live(op.tenant_id, employee["id"], sid)
