"""The admin's "Check now" over HTTP — metadata fetched from a real local HTTP server (the app allows private
URLs in tests) or pasted as XML — each 422 message, the rules for an enabled tenant, and the daily refresh
timer that picks up a certificate rollover and logs, without stopping, one tenant's failure."""
from __future__ import annotations

import time

import pytest
import requests

from tests.sso.conftest import SsoTenant, assert_refused
from tests.support.idp import TestIdp, signing_identity
from tests.support.idp_server import METADATA_PATH, IdpServer
from tests.support.waiting import wait_until


@pytest.fixture
def tenant(new_tenant, app_url) -> SsoTenant:
    return SsoTenant(new_tenant("Metadata Co", "https://meta.example.com"), TestIdp(key_label="sso-tests"), app_url)


@pytest.fixture
def idp_server(tenant):
    with IdpServer(tenant.idp) as server:
        yield server


def test_metadata_from_the_app_federation_metadata_url_establishes_the_connection(tenant, idp_server):
    url = idp_server.publish_metadata()
    response = tenant.connect(metadata_url=url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["connection"] == "established"
    assert body["idp_entity_id"] == tenant.idp.entity_id
    assert body["sso_url"] == tenant.idp.sso_url
    assert body["certificates"] == [{"sha256": tenant.idp.identity.sha256,
                                     "not_after": tenant.idp.identity.not_after.isoformat()}]
    step = tenant.handle.api("GET", "sso").json()["steps"]["idp_metadata"]
    assert step["done"] is True and step["idp_entity_id"] == tenant.idp.entity_id and step["checked_at"]


def test_pasted_metadata_xml_establishes_the_connection(tenant):
    response = tenant.connect(metadata_xml=tenant.idp.metadata_xml().decode())
    assert response.status_code == 200, response.text
    assert response.json()["idp_entity_id"] == tenant.idp.entity_id


def test_a_rollover_metadata_lists_every_signing_certificate(tenant):
    new = signing_identity("sso-tests-rollover-next")
    response = tenant.connect(metadata_xml=tenant.idp.metadata_xml(extra_certs=[new]).decode())
    assert [c["sha256"] for c in response.json()["certificates"]] == [tenant.idp.identity.sha256, new.sha256]


def _published(server: IdpServer, path: str, body: bytes | str, **kwargs) -> str:
    return server.publish(path, body, **kwargs)


URL_PROBLEMS = [
    ("a-404", lambda s: _published(s, "/missing", b"nope", status=404, content_type="text/plain"), "answered 404"),
    ("a-web-page", lambda s: _published(s, "/page", b"<!doctype html><html><body>Sign in</body></html>",
                                        content_type="text/html"), "web page"),
    ("not-xml", lambda s: _published(s, "/text", b"hello", content_type="text/plain"), "did not return XML"),
    ("a-redirect-loop", lambda s: _published(s, "/loop", b"", status=302, headers={"Location": "/loop"}),
     "Too many redirects"),
    ("over-1-mib", lambda s: _published(s, "/huge", b"<x>" + b"a" * (1024 * 1024 + 1) + b"</x>"), "larger than 1 MiB"),
    ("no-server-listening", lambda s: "http://127.0.0.1:9/federationmetadata.xml", "Could not reach"),
    ("not-http", lambda s: "ftp://example.com/metadata.xml", "must use"),
    ("expired-certificates-only", lambda s: _published(s, "/expired", TestIdp(
        key_label="sso-expired", expired_certificate=True).metadata_xml()), "expired"),
]


@pytest.mark.parametrize("url_of,words", [c[1:] for c in URL_PROBLEMS], ids=[c[0] for c in URL_PROBLEMS])
def test_a_metadata_url_that_cannot_be_used_is_a_422_saying_why(tenant, idp_server, url_of, words):
    response = tenant.connect(metadata_url=url_of(idp_server))
    assert response.status_code == 422, response.text
    assert words in response.json()["message"]
    assert tenant.handle.api("GET", "sso").json()["steps"]["idp_metadata"]["done"] is False


def _our_own_sp_metadata(tenant: SsoTenant) -> str:
    return requests.get(f"{tenant.base_url}/api/sso/{tenant.tenant_id}/metadata", timeout=10).text


XML_PROBLEMS = [
    ("nothing-given", lambda t: {}, "Paste the App Federation Metadata Url"),
    ("empty-url", lambda t: {"metadata_url": "  "}, "Paste the App Federation Metadata Url"),
    ("both-given", lambda t: {"metadata_url": "https://x.example/m.xml", "metadata_xml": "<x/>"}, "not both"),
    ("not-xml", lambda t: {"metadata_xml": "this is not xml"}, "This is not XML"),
    ("a-doctype", lambda t: {"metadata_xml": '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'},
     "DOCTYPE"),
    ("no-signing-certificate", lambda t: {"metadata_xml": t.idp.metadata_xml(
        include_own_certificate=False, sign_metadata=False).decode()}, "no signing certificate"),
    ("our-sp-metadata-instead", lambda t: {"metadata_xml": _our_own_sp_metadata(t)},
     "metadata of a service provider"),
    ("not-a-string", lambda t: {"metadata_xml": 42}, "metadata_xml"),
]


@pytest.mark.parametrize("body_of,words", [c[1:] for c in XML_PROBLEMS], ids=[c[0] for c in XML_PROBLEMS])
def test_pasted_metadata_that_cannot_be_used_is_a_422_saying_why(tenant, body_of, words):
    response = tenant.handle.api("POST", "sso/idp-metadata", json=body_of(tenant))
    assert response.status_code == 422, response.text
    assert words in response.json()["message"], response.json()


def test_the_metadata_check_is_for_the_tenants_admin_only(tenant, new_tenant):
    body = {"metadata_xml": tenant.idp.metadata_xml().decode()}
    url = f"{tenant.base_url}/api/tenants/{tenant.tenant_id}/sso/idp-metadata"
    assert requests.post(url, json=body, timeout=10).status_code == 401
    stranger = new_tenant("Stranger")
    assert requests.post(url, json=body, headers={"Authorization": f"Bearer {stranger.admin_key}"},
                         timeout=10).status_code == 403


def _enable(tenant: SsoTenant) -> dict:
    from tests.sso.test_self_check import self_check_sign_in

    admin = tenant.provision("admin@meta.example.com")
    link = tenant.handle.api("POST", "sso/test-link").json()["url"]
    assert self_check_sign_in(tenant, link, admin).status_code == 200
    assert tenant.handle.api("POST", "sso/enable").json()["status"] == "enabled"
    return admin


def _rolled(tenant: SsoTenant, label: str = "sso-tests-rolled") -> TestIdp:
    """The same Entra application (entity ID) with another signing certificate."""
    rolled = TestIdp(tenant.idp.entity_id, tenant.idp.entra_tenant_id, key_label=label)
    rolled.sso_url = tenant.idp.sso_url
    return rolled


def test_an_enabled_tenant_takes_a_new_certificate_only_from_the_metadata_url_on_record(tenant, idp_server,
                                                                                       operator_key):
    url = idp_server.publish_metadata()
    assert tenant.connect(metadata_url=url).status_code == 200
    admin = _enable(tenant)
    # The swap: the same (public) entity ID, the attacker's certificate, pasted as XML.
    swapped = _rolled(tenant, "sso-tests-attacker")
    refused = tenant.connect(swapped)
    assert refused.status_code == 409, refused.text
    assert "Metadata URL on record" in refused.json()["message"]
    assert_refused(tenant.answer_login(admin, idp=swapped), 403, "certificate")
    # ... nor by pointing the metadata URL somewhere else.
    with IdpServer(swapped) as elsewhere:
        moved = tenant.connect(metadata_url=elsewhere.publish_metadata())
    assert moved.status_code == 409 and "URL on record" in moved.json()["message"]
    sso = tenant.handle.api("GET", "sso").json()
    assert sso["steps"]["idp_metadata"]["done"] and len(sso["certificate_changes"]) == 1  # the first connection

    # Entra rolls its certificate: "Check now" with the URL on record picks it up, and the record says so.
    rolled = _rolled(tenant)
    idp_server.publish(METADATA_PATH, rolled.metadata_xml())
    response = tenant.connect(metadata_url=url)
    assert response.status_code == 200, response.text
    assert tenant.answer_login(admin, idp=rolled).status_code == 303
    sso = tenant.handle.api("GET", "sso").json()
    assert sso["status"] == "enabled"
    first, rollover = sso["certificate_changes"]
    assert first["by"] == "tenant_admin" and first["added"] == [tenant.idp.identity.sha256]
    assert rollover["by"] == "tenant_admin" and rollover["source"] == "metadata_url" and rollover["at"]
    assert rollover["added"] == [rolled.identity.sha256] and rollover["removed"] == [tenant.idp.identity.sha256]

    # Support (the operator key) can change the certificates from pasted XML; that is recorded too.
    by_support = requests.post(f"{tenant.base_url}/api/tenants/{tenant.tenant_id}/sso/idp-metadata", timeout=30,
                               json={"metadata_xml": tenant.idp.metadata_xml().decode()},
                               headers={"Authorization": f"Bearer {operator_key}"})
    assert by_support.status_code == 200, by_support.text
    assert tenant.handle.api("GET", "sso").json()["certificate_changes"][-1]["by"] == "operator"


def test_pasting_the_same_certificates_after_enabling_keeps_the_metadata_url_refreshed(tenant, idp_server):
    url = idp_server.publish_metadata()
    assert tenant.connect(metadata_url=url).status_code == 200
    _enable(tenant)
    assert tenant.connect().status_code == 200  # the same certificates, pasted: nothing changes
    rolled = _rolled(tenant)
    idp_server.publish(METADATA_PATH, rolled.metadata_xml())
    assert tenant.connect(metadata_url=url).status_code == 200  # the URL is still the one on record


def test_an_enabled_tenant_cannot_switch_to_another_idp(tenant):
    assert tenant.connect().status_code == 200
    _enable(tenant)
    response = tenant.connect(TestIdp(key_label="sso-tests-other"))
    assert response.status_code == 409, response.text
    assert "support" in response.json()["message"]
    assert tenant.handle.api("GET", "sso").json()["steps"]["idp_metadata"]["idp_entity_id"] == tenant.idp.entity_id


def test_connecting_another_idp_before_enabling_asks_for_a_new_self_check(tenant):
    from tests.sso.test_self_check import self_check_sign_in

    assert tenant.connect().status_code == 200
    admin = tenant.provision("admin2@meta.example.com")
    link = tenant.handle.api("POST", "sso/test-link").json()["url"]
    assert self_check_sign_in(tenant, link, admin).status_code == 200
    assert tenant.connect().status_code == 200  # the same IdP again: the self-check still counts
    assert tenant.handle.api("GET", "sso").json()["status"] == "testing"
    assert tenant.connect(TestIdp(key_label="sso-tests-other")).json()["status"] == "draft"
    assert tenant.handle.api("GET", "sso").json()["steps"]["self_check"]["done"] is False


def _checked_at(tenant: SsoTenant) -> str | None:
    return tenant.handle.api("GET", "sso").json()["steps"]["idp_metadata"]["checked_at"]


def _run_refresh_timer(app_url: str, *tenants: SsoTenant, timeout: float = 60) -> None:
    before = {t.tenant_id: _checked_at(t) for t in tenants}
    response = requests.post(f"{app_url}/admin/functions/refresh_idp_metadata", json={"input": ""}, timeout=10)
    assert response.status_code == 202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_checked_at(t) != before[t.tenant_id] for t in tenants):
            return
        time.sleep(0.2)
    raise AssertionError("the refresh timer did not refresh the tenants in time")


def test_the_daily_refresh_picks_up_a_certificate_rollover_and_logs_a_failing_tenant(
        tenant, idp_server, new_tenant, app_url, local_host):
    assert tenant.connect(metadata_url=idp_server.publish_metadata()).status_code == 200
    admin = tenant.provision("admin3@meta.example.com")
    broken = SsoTenant(new_tenant("Broken metadata"), TestIdp(key_label="sso-tests"), app_url)
    with IdpServer(broken.idp) as broken_server:
        assert broken.connect(metadata_url=broken_server.publish_metadata()).status_code == 200
        broken_server.publish(METADATA_PATH, b"gone", status=500, content_type="text/plain")
        # Entra rolls its certificate: the metadata URL now lists only the new one.
        rolled = _rolled(tenant)
        idp_server.publish(METADATA_PATH, rolled.metadata_xml())

        def signed_by_the_new_key() -> requests.Response:
            return tenant.answer_login(admin, idp=rolled)

        assert signed_by_the_new_key().status_code == 403
        _run_refresh_timer(app_url, tenant)
        assert signed_by_the_new_key().status_code == 303
    assert tenant.handle.api("GET", "sso").json()["certificate_changes"][-1]["by"] == "daily_refresh"
    # each tenant is its own queue message: the broken one's may finish after the good one's refresh shows
    expected = (f'"tenant": "{broken.tenant_id}", "outcome": "failed"',
                f'"tenant": "{tenant.tenant_id}", "outcome": "refreshed"')
    wait_until(lambda: all(line in local_host.log_text() for line in expected), what=f"logged: {expected}")


def test_the_daily_refresh_never_switches_the_idp_behind_the_admins_back(tenant, idp_server, app_url, local_host):
    assert tenant.connect(metadata_url=idp_server.publish_metadata()).status_code == 200
    idp_server.publish(METADATA_PATH, TestIdp(key_label="sso-tests-other").metadata_xml())
    before = _checked_at(tenant)
    assert requests.post(f"{app_url}/admin/functions/refresh_idp_metadata", json={}, timeout=10).status_code == 202
    deadline = time.monotonic() + 60
    needle = f'"tenant": "{tenant.tenant_id}", "outcome": "skipped"'
    while needle not in local_host.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert needle in local_host.log_text()
    assert _checked_at(tenant) == before
    assert tenant.handle.api("GET", "sso").json()["steps"]["idp_metadata"]["idp_entity_id"] == tenant.idp.entity_id


def test_connecting_another_idp_or_cancelling_sso_ends_the_employees_sessions(tenant):
    from tests.sso.conftest import session_of

    assert tenant.connect().status_code == 200
    alice = tenant.provision("alice@meta.example.com")
    by_old = session_of(tenant.sign_in(alice))
    assert tenant.me(by_old).status_code == 200
    tenant.idp = TestIdp(key_label="sso-tests-other")  # the admin connects another Entra application
    assert tenant.connect().status_code == 200
    ended = tenant.me(by_old)
    assert ended.status_code == 401 and "sign-in settings" in ended.json()["message"]
    time.sleep(1.05)  # sessions carry whole seconds; the change ends those of its own second too
    by_new = session_of(tenant.sign_in(alice))
    assert tenant.me(by_new).status_code == 200
    assert tenant.handle.api("POST", "sso/cancel").status_code == 200
    assert tenant.me(by_new).status_code == 401


class TricklingMetadataServer:
    """Serves real metadata until `trickle()`; then answers 200 and sends a byte every half second until
    `release()`: a fetch that only checks its time limit between chunks never ends meanwhile. `started` is set
    when a trickling answer begins, `ended` when its reader has gone (the app cut the fetch off)."""

    def __init__(self, idp: TestIdp):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading

        self.metadata = idp.metadata_xml()
        self.trickling, self.released = threading.Event(), threading.Event()
        self.started, self.ended = threading.Event(), threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(server.metadata) if not server.trickling.is_set()
                                                       else 1 << 20))
                self.end_headers()
                if not server.trickling.is_set():
                    self.wfile.write(server.metadata)
                    return
                server.started.set()
                try:
                    while not server.released.wait(0.5):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:  # the app stopped reading: its fetch deadline cut it off
                    server.ended.set()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{METADATA_PATH}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def trickle(self) -> None:
        self.trickling.set()

    def release(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()


def test_a_trickling_metadata_server_stalls_neither_the_other_tenants_refresh_nor_the_purge(
        app_settings, test_output, operator_key):
    """On an app of its own with just these two tenants: on the suite's shared one, the walks over every tenant
    the suite made took a growing share of the 10 s this test has."""
    import datetime as dt

    from shared_code.storage import sign_ins, tables
    from tests.conftest import create_tenant, private_app, storage_of

    with private_app(app_settings, test_output, "trickling-metadata") as (azurite, host, _), storage_of(azurite):
        def tenant(name: str) -> SsoTenant:
            return SsoTenant(create_tenant(host.url, operator_key, name), TestIdp(key_label="sso-tests"), host.url)

        # "aaa" sorts first in the walk over tenants: the refresh meets the slow one before the good one.
        slow, good = tenant("aaa slow metadata"), tenant("zzz good metadata")
        trickling = TricklingMetadataServer(slow.idp)
        try:
            assert slow.connect(metadata_url=trickling.url).status_code == 200
            with IdpServer(good.idp) as good_server:
                assert good.connect(metadata_url=good_server.publish_metadata()).status_code == 200
                assert sign_ins.accept_request_once(good.tenant_id, "_stale-request",
                                                    dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
                stale_row = sign_ins.ANSWERED + sign_ins._digest("_stale-request")
                trickling.trickle()
                # While the slow tenant's fetch trickles on, the good tenant is refreshed ...
                _run_refresh_timer(host.url, good, timeout=25)
                # ... and expired sign-in rows are purged.
                assert requests.post(f"{host.url}/admin/functions/purge_sign_in_state", json={},
                                     timeout=10).status_code == 202
                deadline = time.monotonic() + 25
                while tables.get(tables.SIGN_INS, good.tenant_id, stale_row) is not None:
                    assert time.monotonic() < deadline, "the purge did not run while a metadata fetch trickled"
                    time.sleep(0.2)
                # All of it happened while the slow fetch was still going: the app cuts it off only after
                # REFRESH_FETCH_SECONDS (10 s), several times what the refresh and purge of two tenants take.
                assert trickling.started.is_set() and not trickling.ended.is_set(), (
                    "the slow fetch had not started, or had already been cut off: nothing shows it stalled no one")
        finally:
            trickling.release()


def test_an_http_single_sign_on_url_is_refused_outside_local_development(app_settings, monkeypatch):
    """/login redirects browsers to the IdP's sign-in URL: an http:// one is an open redirect."""
    import dataclasses

    from shared_code import saml
    from shared_code.tenancy import idp_connection
    from shared_code.platform.settings import get_settings

    idp = TestIdp(key_label="sso-tests")
    idp.sso_url = "http://login.example.net/saml2"
    production = dataclasses.replace(get_settings(), allow_private_metadata_urls=False)
    monkeypatch.setattr(idp_connection, "get_settings", lambda: production)
    with pytest.raises(saml.MetadataError, match="must use https"):
        idp_connection.read_metadata(metadata_xml=idp.metadata_xml().decode())
    assert not idp_connection.sso_url_allowed("http://login.example.net/saml2")
    idp.sso_url = "https://login.example.net/saml2"
    assert idp_connection.read_metadata(metadata_xml=idp.metadata_xml().decode())[0].sso_url == idp.sso_url
    monkeypatch.setattr(idp_connection, "get_settings", get_settings)  # local development: http allowed
    assert idp_connection.sso_url_allowed("http://127.0.0.1:8080/saml2")
