"""The daily IdP metadata refresh fetches tenants' metadata concurrently, so one slow IdP stalls no other
(issue 26: made sequential, this fails; see docs/mutation-testing.md). Since issue 20 the concurrency is the
queue's: the timer enqueues one tenant per message and the host runs a batch of messages at once, so the test
drives the real timer and one batch of `gatehouse-jobs` on the jobs' own Azurite.

No clock is watched: the metadata server holds every fetch until TENANTS of them are in flight at once (a
barrier). A concurrent refresh gets there at once; a sequential one never does, and the barrier's timeout
(reached only then, and shorter than the app's deadline for one fetch) breaks it, so the refresh fails
those tenants and the test says why.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared_code.tenancy import idp_connection
from tests.support.idp import TestIdp

TENANTS = 3
# Seconds a fetch waits for the others: inside the app's own deadline for one fetch, so a fetch the app gave up
# on never counts as in flight; only a sequential refresh ever waits this out (a concurrent one starts the three
# fetches within milliseconds of one another).
HELD_AT_MOST = 0.8 * idp_connection.REFRESH_FETCH_SECONDS


class BarrierMetadataServer:
    """Serves each tenant's metadata at /<index>; once `hold()` is called, every fetch waits until TENANTS of
    them are in flight together, and the most seen in flight at once is kept."""

    def __init__(self, idps: list[TestIdp]):
        self.documents = [idp.metadata_xml() for idp in idps]
        self.barrier = threading.Barrier(TENANTS, timeout=HELD_AT_MOST)
        self.holding = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = self.broken = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                document = server.documents[int(self.path.strip("/"))]
                if server.holding.is_set():
                    with server.lock:
                        server.in_flight += 1
                        server.most_in_flight = max(server.most_in_flight, server.in_flight)
                    try:
                        server.barrier.wait()
                    except threading.BrokenBarrierError:
                        server.broken += 1
                        return self._answer(503, b"no other fetch came")
                    finally:
                        with server.lock:
                            server.in_flight -= 1
                self._answer(200, document)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.barrier.abort()
        self._server.shutdown()
        self._server.server_close()


def test_the_daily_refresh_fetches_the_tenants_metadata_concurrently(jobs_app, make_tenants):
    from shared_code.tenancy import tenants as tenant_service

    ours = make_tenants(TENANTS, "Concurrent refresh")
    idps = [TestIdp(key_label="sso-tests") for _ in ours]
    server = BarrierMetadataServer(idps)
    try:
        for index, tenant_id in enumerate(ours):
            idp_connection.connect_idp(tenant_id, metadata_url=f"{server.base}/{index}")
        server.holding.set()
        jobs_app.timer("refresh_idp_metadata")  # one tenant per message onto gatehouse-jobs
        jobs_app.poll()  # one batch, as the host takes it: its messages run at once
    finally:
        server.close()
    assert server.most_in_flight == TENANTS and server.broken == 0, (
        f"at most {server.most_in_flight} of {TENANTS} fetches were in flight at once: the refresh is sequential")
    refreshed = [tenant_service.find_tenant(tenant_id) for tenant_id in ours]
    assert all(tenant is not None and tenant.metadata_url for tenant in refreshed)
