"""The local Functions host serves a real v2 FunctionApp over real HTTP with the Functions host's semantics.

Most tests talk to one `python -m tools.local_host` process serving tests/sample_app; the rest run the
route templates, the settings loader and the in-process `LocalHost` API directly.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import azure.functions as func
import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # pytest puts tests/ on sys.path, not the repo root that holds tools/
    sys.path.insert(0, str(REPO_ROOT))

from tools.local_host import LocalHost, RouteTemplate, load_local_settings, read_route_prefix  # noqa: E402

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
READY_PREFIX = "Gatehouse local host listening on "


@dataclass
class RunningHost:
    process: subprocess.Popen
    url: str
    log_path: Path
    timer_mark: Path
    listing: str  # what the host printed before its ready line

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_host(workdir: Path, extra_env: dict[str, str] | None = None) -> RunningHost:
    """Start the CLI on a free port (--port 0) and wait for its ready line, which carries the real port."""
    timer_mark = workdir / "timer-ran.json"
    settings = workdir / "local.settings.json"
    settings.write_text(json.dumps({
        "IsEncrypted": False,
        "Values": {
            "SAMPLE_GREETING": "from-settings",
            "SAMPLE_OVERRIDDEN": "from-settings",
            "SAMPLE_TIMER_MARK": str(timer_mark),
        },
    }), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMPLE_") and k != "PORT"}
    env.update(extra_env or {})
    log_path = workdir / "host.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.local_host", "--app-dir", str(SAMPLE_APP), "--port", "0",
         "--settings", str(settings)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log_path.open("w"), text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    printed = []
    deadline = time.monotonic() + 60  # a ceiling for a loaded machine, not a speed check
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line.startswith(READY_PREFIX):
            url = line[len(READY_PREFIX):].strip()
            return RunningHost(process, url, log_path, timer_mark, "".join(printed))
        printed.append(line)
    process.kill()
    raise AssertionError(f"local host did not become ready:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> RunningHost:
    running = start_host(tmp_path_factory.mktemp("local_host"), {"SAMPLE_OVERRIDDEN": "from-environment"})
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


def get_json(url: str, **kwargs) -> dict:
    response = requests.get(url, timeout=10, **kwargs)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


# ---- start-up and settings


def test_ready_line_is_preceded_by_the_function_list(host):
    assert host.url.startswith("http://127.0.0.1:")
    assert f"order_by_guid: [GET] {host.url}/api/orders/{{id:guid}}" in host.listing
    assert f"inspect_request: [POST,PUT] {host.url}/api/inspect" in host.listing
    assert f"nightly_audit: timerTrigger (run now: POST {host.url}/admin/functions/nightly_audit)" in host.listing
    assert requests.get(f"{host.url}/", timeout=5).status_code == 200  # the host's landing page


def test_local_settings_are_loaded_before_the_app_is_imported_and_do_not_override_the_environment(host):
    settings = get_json(f"{host.url}/api/settings")
    assert settings == {"greeting_at_import": "from-settings", "overridden": "from-environment"}


def test_load_local_settings_exports_values_unless_already_set(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "file", "B": "file"}}))
    environ = {"B": "env"}
    assert load_local_settings(path, environ) == {"A": "file", "B": "file"}
    assert environ == {"A": "file", "B": "env"}


def test_load_local_settings_rejects_what_core_tools_cannot_read(tmp_path):
    non_string = tmp_path / "numbers.json"
    non_string.write_text(json.dumps({"IsEncrypted": False, "Values": {"TIMEOUT": 5}}))
    with pytest.raises(ValueError, match="TIMEOUT"):
        load_local_settings(non_string, {})
    encrypted = tmp_path / "encrypted.json"
    encrypted.write_text(json.dumps({"IsEncrypted": True, "Values": {"A": "xyz"}}))
    with pytest.raises(ValueError, match="encrypted"):
        load_local_settings(encrypted, {})


def test_route_prefix_comes_from_host_json_and_defaults_to_api(tmp_path):
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "/v1/"}}}))
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"version": "2.0"}))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    assert read_route_prefix(custom) == "v1"
    assert read_route_prefix(plain) == "api"
    assert read_route_prefix(empty) == ""
    assert read_route_prefix(SAMPLE_APP / "host.json") == "api"


# ---- routing


def test_guid_constraint_matches_a_guid_and_nothing_else(host):
    order_id = str(uuid.uuid4())
    assert get_json(f"{host.url}/api/orders/{order_id}") == {"matched": "guid", "id": order_id}
    assert requests.get(f"{host.url}/api/orders/not-a-guid-42", timeout=5).status_code == 404


def test_most_specific_route_wins_and_literals_ignore_case(host):
    assert get_json(f"{host.url}/api/orders/latest") == {"matched": "literal"}
    assert get_json(f"{host.url}/api/ORDERS/Latest") == {"matched": "literal"}
    assert get_json(f"{host.url}/api/orders/42") == {"matched": "int", "id": "42"}
    assert get_json(f"{host.url}/api/orders/oldest") == {"matched": "alpha", "name": "oldest"}


def test_int_constraint_rejects_numbers_beyond_32_bits(host):
    assert requests.get(f"{host.url}/api/orders/2147483648", timeout=5).status_code == 404


def test_catch_all_takes_the_decoded_rest_of_the_path_or_nothing(host):
    assert get_json(f"{host.url}/api/files/reports/2024/q1%20summary.pdf") == {"path": "reports/2024/q1 summary.pdf"}
    assert get_json(f"{host.url}/api/files") == {"path": None}


def test_optional_parameter_may_be_left_out(host):
    assert get_json(f"{host.url}/api/greetings/Ada") == {"greeting": "hello, Ada"}
    assert get_json(f"{host.url}/api/greetings") == {"greeting": "hello, world"}
    assert get_json(f"{host.url}/api/greetings/") == {"greeting": "hello, world"}


def test_function_without_route_is_served_under_its_function_name(host):
    assert get_json(f"{host.url}/api/whoami") == {"function_name": "WhoAmI"}


def test_unknown_paths_and_paths_outside_the_prefix_are_404(host):
    assert requests.get(f"{host.url}/api/nothing-here", timeout=5).status_code == 404
    assert requests.get(f"{host.url}/orders/42", timeout=5).status_code == 404
    assert requests.get(f"{host.url}/api/orders/42/extra", timeout=5).status_code == 404


def test_known_path_with_a_method_it_does_not_allow_is_405_with_allow(host):
    response = requests.get(f"{host.url}/api/inspect", timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST, PUT"


def test_two_functions_can_share_a_path_split_by_method(host):
    listed = requests.get(f"{host.url}/api/things", timeout=5)
    created = requests.post(f"{host.url}/api/things", timeout=5)
    refused = requests.delete(f"{host.url}/api/things", timeout=5)
    assert (listed.status_code, listed.text) == (200, "all the things")
    assert listed.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (created.status_code, created.text) == (201, "created")
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, POST"


# ---- requests in, responses out


def test_repeated_query_keys_are_joined_with_commas(host):
    inspected = requests.post(f"{host.url}/api/inspect?tag=a&tag=b&empty=&q=x+y%2Bz", timeout=5).json()
    assert inspected["params"] == {"tag": "a,b", "empty": "", "q": "x y+z"}
    assert inspected["url"] == f"{host.url}/api/inspect?tag=a&tag=b&empty=&q=x+y%2Bz"


def test_form_bodies_are_readable_through_req_form(host):
    inspected = requests.post(f"{host.url}/api/inspect", data={"name": "Ada Lovelace", "role": ["admin", "dev"]},
                              timeout=5).json()
    assert inspected["form"] == {"name": ["Ada Lovelace"], "role": ["admin", "dev"]}
    assert inspected["content_type"] == "application/x-www-form-urlencoded"


def test_raw_body_bytes_reach_the_function_unchanged(host):
    payload = bytes(range(256)) * 64
    response = requests.post(f"{host.url}/api/raw", data=payload, timeout=5)
    assert response.content == payload
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(len(payload))


def test_chunked_request_bodies_are_read(host):
    response = requests.post(f"{host.url}/api/raw", data=iter([b"first,", b"second"]), timeout=5)
    assert response.content == b"first,second"


def test_request_headers_are_case_insensitive(host):
    inspected = requests.put(f"{host.url}/api/inspect", headers={"X-Sample-HEADER": "yes"}, timeout=5).json()
    assert inspected["sample_header"] == "yes"
    assert inspected["method"] == "PUT"


def test_cookies_reach_the_function_and_each_set_cookie_is_its_own_header(host):
    response = requests.get(f"{host.url}/api/session", cookies={"theme": "light", "lang": "en"}, timeout=5)
    assert response.json() == {"cookies": {"theme": "light", "lang": "en"}}
    assert response.raw.headers.getlist("Set-Cookie") == [
        "session=abc123; Path=/; HttpOnly; SameSite=Lax",
        "theme=dark; Path=/",
    ]
    assert response.cookies["session"] == "abc123" and response.cookies["theme"] == "dark"


def test_unhandled_exception_is_a_bare_500_and_the_traceback_goes_to_the_log(host):
    response = requests.get(f"{host.url}/api/failure", timeout=5)
    assert response.status_code == 500
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    deadline = time.monotonic() + 5
    while "RuntimeError: database password is hunter2" not in host.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "RuntimeError: database password is hunter2" in host.log()


def test_request_body_over_10_mib_is_refused_with_413(host):
    too_big = b"x" * (10 * 1024 * 1024 + 1)
    assert requests.post(f"{host.url}/api/raw", data=too_big, timeout=30).status_code == 413
    exactly_the_limit = b"y" * (10 * 1024 * 1024)
    accepted = requests.post(f"{host.url}/api/raw", data=exactly_the_limit, timeout=30)
    assert accepted.status_code == 200 and len(accepted.content) == len(exactly_the_limit)


def test_one_keep_alive_connection_carries_several_requests(host):
    port = int(host.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        reader = connection.makefile("rb")
        for name in ("first", "second", "third"):
            connection.sendall(f"GET /api/greetings/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status_line = reader.readline()
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                key, value = line.decode().split(":", 1)
                headers[key.lower()] = value.strip()
            body = reader.read(int(headers["content-length"]))
            assert status_line.startswith(b"HTTP/1.1 200")
            assert json.loads(body) == {"greeting": f"hello, {name}"}
            assert headers.get("connection") != "close"


def test_requests_session_reuses_its_connection(host):
    with requests.Session() as session:
        for _ in range(5):
            assert session.get(f"{host.url}/api/orders/1", timeout=5).status_code == 200
        pools = session.get_adapter(host.url).poolmanager.pools
        (pool,) = [pools[key] for key in pools.keys()]
        assert (pool.num_connections, pool.num_requests) == (1, 5)


# ---- concurrency


def _rendezvous(host, kind: str, count: int) -> list[int]:
    """`count` requests at once to a handler that answers 200 only when all `count` are inside it together."""
    group = uuid.uuid4().hex
    url = f"{host.url}/api/rendezvous-{kind}?group={group}&count={count}&wait=10"
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: requests.get(url, timeout=30).status_code, range(count)))


def test_async_handlers_overlap_on_the_event_loop(host):
    assert _rendezvous(host, "async", 20) == [200] * 20  # one at a time, the first would wait alone: 504


def test_sync_handlers_run_in_a_thread_pool_concurrently(host):
    assert _rendezvous(host, "sync", 5) == [200] * 5


# ---- timer functions


def test_timer_function_runs_on_demand_through_the_admin_api(host):
    response = requests.post(f"{host.url}/admin/functions/nightly_audit", json={"input": ""}, timeout=5)
    assert response.status_code == 202
    deadline = time.monotonic() + 30
    while not host.timer_mark.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(host.timer_mark.read_text()) == {"past_due": False}


def test_admin_api_answers_404_for_an_unknown_function(host):
    response = requests.post(f"{host.url}/admin/functions/no_such_function", json={"input": ""}, timeout=5)
    assert response.status_code == 404


def test_a_function_disabled_by_its_app_setting_is_not_loaded(tmp_path):
    """`AzureWebJobs.<name>.Disabled` (and the `__` form of Linux plans), as the Functions host reads it."""
    running = start_host(tmp_path, {"AzureWebJobs.nightly_audit.Disabled": "true",
                                    "AzureWebJobs__order_by_guid__Disabled": "1"})
    try:
        assert "nightly_audit" not in running.listing and "order_by_guid" not in running.listing
        assert "inspect_request" in running.listing  # the others are loaded
        guid = uuid.uuid4()
        assert requests.get(f"{running.url}/api/orders/{guid}", timeout=5).status_code == 404
        assert requests.post(f"{running.url}/admin/functions/nightly_audit", json={"input": ""},
                             timeout=5).status_code == 404
    finally:
        running.process.terminate()
        running.process.wait(timeout=10)


# ---- stopping


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_host_stops_cleanly_on_a_signal_with_an_idle_connection_open(tmp_path, stop_signal):
    running = start_host(tmp_path)
    keep_alive = requests.Session()
    assert keep_alive.get(f"{running.url}/api/orders/1", timeout=5).status_code == 200  # an idle open connection
    running.process.send_signal(stop_signal)
    assert running.process.wait(timeout=10) == 0  # exit status 0; the timeout only keeps a hang from stalling CI
    keep_alive.close()


# ---- route templates, directly


@pytest.mark.parametrize("template, path, expected", [
    ("items/{id:long}", "items/9223372036854775807", {"id": "9223372036854775807"}),
    ("items/{id:long}", "items/9223372036854775808", None),
    ("items/{on:bool}", "items/TRUE", {"on": "TRUE"}),
    ("items/{on:bool}", "items/yes", None),
    ("items/{n:range(1,10)}", "items/10", {"n": "10"}),
    ("items/{n:range(1,10)}", "items/11", None),
    ("items/{n:int:min(5)}", "items/4", None),
    ("items/{code:length(3)}", "items/abc", {"code": "abc"}),
    ("items/{code:minlength(4)}", "items/abc", None),
    ("items/{code:regex(^[a-z]{{3}}\\d$)}", "items/ABC1", {"code": "ABC1"}),
    ("items/{code:regex(^[a-z]{{3}}\\d$)}", "items/abcd", None),
    ("items/{price:decimal}", "items/12.50", {"price": "12.50"}),
    ("items/{when:datetime}", "items/2024-02-29T10:00:00", {"when": "2024-02-29T10:00:00"}),
    ("items/{id:guid}", "items/{6f1c1b8e-6c1d-4a43-9e0e-2f4f0b7b8e11}", {"id": "{6f1c1b8e-6c1d-4a43-9e0e-2f4f0b7b8e11}"}),
    ("items/{id=first}", "items", {"id": "first"}),
    ("items/{id:int?}", "items", {}),
    ("items/{id:int?}", "items/x", None),
    ("docs/{name}.{ext}", "docs/report.final.pdf", {"name": "report.final", "ext": "pdf"}),
    ("docs/{name}.{ext}", "docs/readme", None),
    ("{**rest}", "a/b", {"rest": "a/b"}),
    ("", "", {}),
])
def test_route_template_matching(template, path, expected):
    segments = path.split("/") if path else []
    assert RouteTemplate(template).match(segments) == expected


def test_route_precedence_orders_literal_then_constrained_then_plain_then_catch_all():
    templates = ["{*rest}", "orders/{id}", "orders/{id:int}", "orders/latest", "{tenant}/latest"]
    ordered = sorted(templates, key=lambda t: RouteTemplate(t).precedence)
    assert ordered == ["orders/latest", "orders/{id:int}", "orders/{id}", "{tenant}/latest", "{*rest}"]


@pytest.mark.parametrize("template", [
    "items/{id:unknown}", "items/{id", "items/}", "{*rest}/more", "items/{id}/{ID}", "items/{*rest?}", "a//b",
])
def test_invalid_route_templates_are_refused_at_start_up(template):
    with pytest.raises(ValueError):
        RouteTemplate(template)


# ---- the Python API


def test_local_host_python_api_serves_an_app_in_a_thread_and_shuts_down():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="hello/{name}", methods=["GET"])
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"hello {req.route_params['name']}")

    local_host = LocalHost(app, route_prefix="v1")
    thread = threading.Thread(target=local_host.serve, args=("127.0.0.1", 0), daemon=True)
    thread.start()
    assert local_host.ready.wait(5)
    assert requests.get(f"{local_host.url}/v1/hello/there", timeout=5).text == "hello there"
    assert requests.get(f"{local_host.url}/api/hello/there", timeout=5).status_code == 404
    local_host.shutdown()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_local_host_refuses_a_function_whose_parameters_do_not_match_its_bindings():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="broken", trigger_arg_name="request")
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("unreachable")

    with pytest.raises(ValueError, match="broken"):
        LocalHost(app)
