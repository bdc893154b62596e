"""The one outbound policy (shared_code.platform.outbound): what it refuses, what it returns, and its real deadline."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared_code.platform import outbound
from tests.support import deadlines


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = 503 if self.path == "/busy" else 200
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path == "/slow-headers":  # the status line, then a header, trickle in for a minute
            try:
                for char in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 200:
                    self.wfile.write(bytes([char]))
                    self.wfile.flush()
                    time.sleep(0.3)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        self.send_response(302)
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_any_status_comes_back_as_an_answer(receiver):
    answer = outbound.request("POST", receiver + "/hook", body=b'{"a":1}', timeout=5, allow_private=True,
                              headers={"Content-Type": "application/json"})
    assert (answer.status, answer.body) == (200, b'{"a":1}')
    busy = outbound.request("POST", receiver + "/busy", body=b"x", timeout=5, allow_private=True)
    assert busy.status == 503 and busy.headers["retry-after"] == "7"


def test_redirects_are_not_followed_unless_asked(receiver):
    answer = outbound.request("GET", receiver + "/start", timeout=5, allow_private=True)
    assert answer.status == 302 and answer.headers["location"] == "/elsewhere"


def test_a_trickling_status_line_is_cut_off_at_the_deadline(receiver):
    """The server would trickle for a minute; the call ends at its deadline (plus the loaded-machine margin)."""
    deadline = 1.0
    started = time.monotonic()
    with pytest.raises(outbound.OutboundError) as info:
        outbound.request("GET", receiver + "/slow-headers", timeout=deadline, allow_private=True)
    assert f"no answer within {deadline:g} seconds" in info.value.message
    assert time.monotonic() - started < deadlines.bound(deadline)


def test_loopback_is_refused_without_the_development_switch(receiver):
    with pytest.raises(outbound.OutboundError) as info:
        outbound.request("POST", receiver.replace("http://", "https://") + "/hook", timeout=5, allow_private=False)
    assert "not public" in info.value.message and "127.0.0.1" not in info.value.message.split(":", 1)[1]


@pytest.mark.parametrize("url,reason", [
    ("http://example.com/hook", "must use https://"),
    ("ftp://example.com/hook", "must use https://"),
    ("https://user:pw@example.com/hook", "user name or password"),
    ("https:///hook", "no host name"),
    ("https://example.com:notaport/", "not a valid URL"),
    ("", "must be a URL"),
])
def test_urls_we_never_call(url, reason):
    with pytest.raises(outbound.OutboundError) as info:
        outbound.check_url(url, what="The webhook URL", allow_private=False)
    assert reason in info.value.message and info.value.message.startswith("The webhook URL")


def test_the_connected_peer_is_checked_again(receiver):
    """Even when the addresses checked were public, the socket's actual peer is checked after connecting."""
    call = outbound._Call(5, private_ok=False)
    port = int(receiver.rsplit(":", 1)[1])
    call.addresses["rebound.example"] = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    with pytest.raises(outbound._Refused):
        call.connect("rebound.example", port)
