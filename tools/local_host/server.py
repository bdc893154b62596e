"""The local host's HTTP side: `LocalHost` listens on loopback, turns each request into the
`azure.functions.HttpRequest` the worker would build (repeated query keys and headers joined with commas,
cookies in one header, the body as raw bytes), runs the routed function and turns what it returns into the
response the real host would send (several `Set-Cookie` headers kept, framing headers ours, an unhandled
exception a bare 500). `/admin/host/status` and `POST /admin/functions/{name}` (run a timer now, 202) answer
as the real host's admin API does.

Deliberate deviation from the real host: a path that matches a route whose methods exclude the request's
method answers 405 with `Allow` (the real host answers 404 there, see azure-functions-host#10098).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions import _abc as azf_abc
from azure.functions.decorators.timer import TimerTrigger
from azure.functions.http import HttpRequest as WorkerHttpRequest
from azure.functions.timer import TimerRequest

from tools.local_host.routing import ALL_HTTP_METHODS, Router, allow_header, decoded_segments
from tools.local_host.settings import DEFAULT_ROUTE_PREFIX
from tools.local_host.worker import IndexedFunction, Worker

log = logging.getLogger("gatehouse.local_host")

MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024
# Shown instead of anything the function raised: exception text can hold secrets and internals.
GENERIC_ERROR_BODY = b"Internal Server Error"
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclasses.dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def _text_reply(status: int, text: str = "", headers: Iterable[tuple[str, str]] = ()) -> _Reply:
    content_type = [("Content-Type", "text/plain; charset=utf-8")] if text else []
    return _Reply(status, [*content_type, *headers], text.encode())


def _json_reply(status: int, document: Any) -> _Reply:
    return _Reply(status, [("Content-Type", "application/json; charset=utf-8")], json.dumps(document).encode())


def _merged(pairs: Iterable[tuple[str, str]], separator: str = ",") -> dict[str, str]:
    """Repeated keys joined like ASP.NET's StringValues.ToString(); keys compared case-insensitively."""
    merged: dict[str, str] = {}
    spelling: dict[str, str] = {}
    for key, value in pairs:
        folded = key.lower()
        if folded in spelling:
            merged[spelling[folded]] += separator + value
        else:
            spelling[folded] = key
            merged[key] = value
    return merged


class LocalHost:
    """Serves one `FunctionApp` like the Functions host: `serve(host, port)` blocks until `shutdown()`."""

    def __init__(self, app: func.FunctionRegister, route_prefix: str = DEFAULT_ROUTE_PREFIX,
                 app_dir: str | None = None, max_workers: int | None = None) -> None:
        self.worker = Worker(app, app_dir, max_workers)
        self.app_dir = self.worker.app_dir
        self.functions = self.worker.functions
        self.router = Router(self.functions.values(), route_prefix)
        self.route_prefix = self.router.route_prefix
        self._server: ThreadingHTTPServer | None = None
        self._serving = False
        self._stopping = False
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.port: int | None = None

    # ---- lifecycle

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Open the listening socket (port 0 picks a free one) and return the port."""
        server = _Server((host, port), _RequestHandler)
        server.local_host = self
        self._server = server
        self.port = server.server_address[1]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind if needed and answer requests until `shutdown()` (or an exception such as KeyboardInterrupt)."""
        if self._server is None:
            self.bind(host, port)
        with self._lock:
            if self._stopping:
                self._close()
                return
            self._serving = True
        self.ready.set()
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def shutdown(self) -> None:
        """Stop serving; safe to call from any thread but the one inside `serve()`, and more than once."""
        with self._lock:
            self._stopping = True
            serving, server = self._serving, self._server
        if serving and server is not None:
            server.shutdown()

    def _close(self) -> None:
        if self._server is not None:
            self._server.server_close()
        self.worker.close()

    def wait_for_idle(self, timeout: float) -> bool:
        """Wait until no function is running (used on Ctrl-C); False if some are still busy after `timeout`."""
        return self.worker.wait_for_idle(timeout)

    def describe_functions(self) -> list[str]:
        """Lines like Core Tools prints at start-up: `name: [GET,POST] http://.../api/route`."""
        lines = []
        for function in self.functions.values():
            if function.route is not None:
                path = "/".join(p for p in (self.route_prefix, function.route.template) if p)
                methods = ",".join(m for m in ALL_HTTP_METHODS if m in function.methods)
                lines.append(f"{function.name}: [{methods}] {self.url}/{path}")
            else:
                lines.append(f"{function.name}: {function.trigger_type} "
                             f"(run now: POST {self.url}/admin/functions/{function.name})")
        return lines

    # ---- invocation

    def run(self, function: IndexedFunction, trigger_value: Any) -> concurrent.futures.Future:
        """Start one invocation of any of the app's functions, as `Worker.run` (the tests and benchmarks that
        call timers and queue functions directly start theirs here)."""
        return self.worker.run(function, trigger_value)

    def respond(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
                authority: str | None = None) -> _Reply:
        """Answer one HTTP request (already read in full) the way the Functions host would."""
        split = urlsplit(target)
        segments = decoded_segments(split.path)
        if segments and segments[0].lower() == "admin":
            return self._respond_admin(method, segments, body)
        found = self.router.find(method, segments)
        if found.function is not None:
            return self._invoke_http(found.function, method, split, headers, body, found.values, authority)
        if found.allowed:
            return _text_reply(405, "", [("Allow", allow_header(found.allowed))])
        if not segments:
            # The real host answers its root with a landing page; handy as a liveness check.
            return _text_reply(200, "Gatehouse local host is running.\n")
        return _text_reply(404)

    def _invoke_http(self, function: IndexedFunction, method: str, split, headers, body: bytes,
                     route_values: dict[str, str], authority: str | None) -> _Reply:
        header_pairs = list(headers)
        request_headers = _merged(((k, v) for k, v in header_pairs if k.lower() != "cookie"))
        cookies = [v for k, v in header_pairs if k.lower() == "cookie"]
        if cookies:
            request_headers["Cookie"] = "; ".join(cookies)
        host = next((v for k, v in header_pairs if k.lower() == "host"), None) or authority
        url = f"http://{host}{split.path}" + (f"?{split.query}" if split.query else "")
        request = WorkerHttpRequest(
            method=method,
            url=url,
            headers=request_headers,
            params=_merged(parse_qsl(split.query, keep_blank_values=True)),
            route_params=route_values,
            body_type="bytes",
            body=body,
        )
        future = self.run(function, request)
        try:
            result = future.result()
        except Exception:  # already logged with its traceback by the done-callback
            return _text_reply(500, GENERIC_ERROR_BODY.decode())
        if result is None and future.http_out is not None:
            result = future.http_out.get()
        return self._http_reply(function, result)

    @staticmethod
    def _http_reply(function: IndexedFunction, result: Any) -> _Reply:
        if isinstance(result, str):
            return _text_reply(200, result)
        if result is None:
            return _Reply(204, [])
        if not isinstance(result, azf_abc.HttpResponse):
            log.error("function '%s' returned %s; the HTTP output accepts HttpResponse or str",
                      function.name, type(result).__name__)
            return _text_reply(500, GENERIC_ERROR_BODY.decode())
        status = int(result.status_code)
        if not 100 <= status <= 599:
            log.error("function '%s' returned status %s", function.name, status)
            return _text_reply(500, GENERIC_ERROR_BODY.decode())
        # Framing headers are ours to set; a function's copy would contradict the body we send.
        headers = [(k, str(v)) for k, v in result.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        if not any(k.lower() == "content-type" for k, _ in headers):
            mimetype = result.mimetype
            headers.append(("Content-Type",
                            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype))
        return _Reply(status, headers, result.get_body() or b"")

    def _respond_admin(self, method: str, segments: list[str], body: bytes) -> _Reply:
        lowered = [s.lower() for s in segments]
        if lowered == ["admin", "host", "status"]:
            if method != "GET":
                return _text_reply(405, "", [("Allow", "GET")])
            return _json_reply(200, {"state": "Running"})
        if len(lowered) == 3 and lowered[1] == "functions":
            function = self.functions.get(lowered[2])
            if function is None:
                return _text_reply(404)
            if method != "POST":
                return _text_reply(405, "", [("Allow", "POST")])
            try:
                invocation = json.loads(body) if body.strip() else {}
            except ValueError:
                return _text_reply(400, 'The body must be JSON like {"input": ""}.')
            if not isinstance(invocation, dict):
                return _text_reply(400, 'The body must be JSON like {"input": ""}.')
            if not isinstance(function.trigger, TimerTrigger):
                return _text_reply(400, f"The local host invokes only timer functions here; "
                                        f"'{function.name}' has a {function.trigger_type}.")
            # Like the real host: accepted now, runs in the background; failures show in the log.
            self.run(function, TimerRequest(past_due=False))
            return _Reply(202, [])
        return _text_reply(404)


class _BadRequest(Exception):
    pass


class _TooLarge(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold the process open on Ctrl-C
    request_queue_size = 128  # many clients connecting at once must not overflow the listen backlog
    local_host: LocalHost

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve our own name (getfqdn), which can stall on odd DNS setups.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        # A client hanging up mid-response is routine (browsers, timeouts); anything else deserves a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        log.exception("error while serving %s", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "Gatehouse-LocalHost"
    disable_nagle_algorithm = True  # headers and body go out as two writes; don't let Nagle delay the second
    timeout = 120  # idle keep-alive connections are dropped eventually

    server: _Server

    def _declared_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        if not value.strip().isdigit():
            raise _BadRequest("invalid Content-Length")
        return int(value)

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it.
        try:
            length = self._declared_length()
        except _BadRequest:
            length = None
        if length is not None and length > MAX_REQUEST_BODY_BYTES:
            self._send(_text_reply(413, "Request body too large."), close=True)
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._declared_length()
        if not length:
            return b""
        if length > MAX_REQUEST_BODY_BYTES:
            raise _TooLarge
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("client closed the connection mid-body")
        return body

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("invalid chunk size") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are ignored
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BODY_BYTES:
                raise _TooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _dispatch(self) -> None:
        started = time.monotonic()
        try:
            body = self._read_body()
        except _TooLarge:
            self._send(_text_reply(413, "Request body too large."), close=True)
            self._discard_incoming()
            return
        except _BadRequest as error:
            self._send(_text_reply(400, str(error)), close=True)
            return
        except ConnectionError:
            self.close_connection = True  # the client went away mid-body; nobody to answer
            return
        authority = f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        try:
            reply = self.server.local_host.respond(self.command, self.path, self.headers.items(), body, authority)
        except Exception:
            log.exception("local host failed on %s %s", self.command, self.path)
            reply = _text_reply(500, GENERIC_ERROR_BODY.decode())
        self._send(reply)
        log.info('"%s %s" %d %dms', self.command, self.path, reply.status, (time.monotonic() - started) * 1000)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _send(self, reply: _Reply, close: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        informational = reply.status < 200
        if reply.status != 204 and not informational:
            self.send_header("Content-Length", str(len(reply.body)))
        if close:
            self.send_header("Connection", "close")  # also makes the handler close after this reply
        self.end_headers()
        if self.command != "HEAD" and reply.status not in _NO_BODY_STATUSES and not informational:
            self.wfile.write(reply.body)

    def _discard_incoming(self) -> None:
        """Read and drop what the client is still sending, so it sees our 413 instead of a connection reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline, discarded = time.monotonic() + 3.0, 0
            while time.monotonic() < deadline and discarded < 8 * MAX_REQUEST_BODY_BYTES:
                data = self.connection.recv(65536)
                if not data:
                    break
                discarded += len(data)
        except OSError:
            pass

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_request(self, code="-", size="-") -> None:
        pass  # _dispatch logs each request with its duration

    def log_message(self, format: str, *args: Any) -> None:
        log.warning("%s - %s", self.address_string(), format % args)
