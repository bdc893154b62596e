"""A tiny v2 Function App that tests/test_local_host.py serves through tools.local_host (never deployed).

Each function exists to make one host behaviour observable over HTTP; it is also a valid app for `func start`.
"""
import asyncio
import json
import os
import threading
import time
from http.cookies import SimpleCookie

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Read at import time: shows that local.settings.json was applied before the host imported this module.
GREETING_AT_IMPORT = os.environ.get("SAMPLE_GREETING")


def _json(document, status_code=200):
    return func.HttpResponse(json.dumps(document), status_code=status_code, mimetype="application/json")


# Four routes that overlap on orders/{something}: the host must pick the most specific one that matches.
@app.route(route="orders/{id:guid}", methods=["GET"])
def order_by_guid(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"matched": "guid", "id": req.route_params["id"]})


@app.route(route="orders/{id:int}", methods=["GET"])
def order_by_number(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"matched": "int", "id": req.route_params["id"]})


@app.route(route="orders/{name:alpha}", methods=["GET"])
def order_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"matched": "alpha", "name": req.route_params["name"]})


@app.route(route="orders/latest", methods=["GET"])
def latest_order(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"matched": "literal"})


@app.route(route="files/{*path}", methods=["GET"])
def file_by_path(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"path": req.route_params.get("path")})


@app.route(route="greetings/{name?}", methods=["GET"])
def greeting(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"greeting": f"hello, {req.route_params.get('name', 'world')}"})


@app.route(route="inspect", methods=["POST", "PUT"])
def inspect_request(req: func.HttpRequest) -> func.HttpResponse:
    return _json({
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "sample_header": req.headers.get("x-SAMPLE-header"),
        "content_type": req.headers.get("Content-Type"),
        "form": {key: req.form.getlist(key) for key in req.form},
        "body_length": len(req.get_body()),
    })


@app.route(route="raw", methods=["POST"])
def raw_body(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), mimetype="application/octet-stream")


# One path, two functions, split by method.
@app.route(route="things", methods=["GET"])
def list_things(req: func.HttpRequest) -> str:
    return "all the things"


@app.route(route="things", methods=["POST"])
def create_thing(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("created", status_code=201)


@app.route(route="session", methods=["GET"])
def session(req: func.HttpRequest) -> func.HttpResponse:
    cookies = SimpleCookie(req.headers.get("Cookie", ""))
    response = _json({"cookies": {name: morsel.value for name, morsel in cookies.items()}})
    response.headers.add("Set-Cookie", "session=abc123; Path=/; HttpOnly; SameSite=Lax")
    response.headers.add("Set-Cookie", "theme=dark; Path=/")
    return response


@app.route(route="slow-async", methods=["GET"])
async def slow_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(float(req.params.get("seconds", "0.3")))
    return _json({"async": True})


@app.route(route="slow-sync", methods=["GET"])
def slow_sync(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(float(req.params.get("seconds", "0.3")))
    return _json({"async": False})


# Rendezvous: each request waits until `count` requests of its `group` have arrived. All of them answering
# 200 proves they were in the handler at the same time; a host that ran them one after another answers 504
# (after `wait` seconds) instead. Concurrency is asserted by what happened, not by a stopwatch.
_async_groups: dict[str, tuple[list[int], asyncio.Event]] = {}
_sync_groups: dict[str, threading.Barrier] = {}
_sync_lock = threading.Lock()


@app.route(route="rendezvous-async", methods=["GET"])
async def rendezvous_async(req: func.HttpRequest) -> func.HttpResponse:
    count, wait = int(req.params["count"]), float(req.params.get("wait", "10"))
    arrived, everyone = _async_groups.setdefault(req.params["group"], ([0], asyncio.Event()))
    arrived[0] += 1
    if arrived[0] >= count:
        everyone.set()
    try:
        await asyncio.wait_for(everyone.wait(), wait)
    except asyncio.TimeoutError:
        return _json({"met": arrived[0]}, status_code=504)
    return _json({"met": arrived[0]})


@app.route(route="rendezvous-sync", methods=["GET"])
def rendezvous_sync(req: func.HttpRequest) -> func.HttpResponse:
    count, wait = int(req.params["count"]), float(req.params.get("wait", "10"))
    with _sync_lock:
        barrier = _sync_groups.setdefault(req.params["group"], threading.Barrier(count))
    try:
        barrier.wait(wait)
    except threading.BrokenBarrierError:
        return _json({"met": barrier.n_waiting}, status_code=504)
    return _json({"met": count})


@app.route(route="failure", methods=["GET"])
def failure(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("database password is hunter2")


@app.route(route="settings", methods=["GET"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    return _json({
        "greeting_at_import": GREETING_AT_IMPORT,
        "overridden": os.environ.get("SAMPLE_OVERRIDDEN"),
    })


# No route given: the route is the function name, as in the real host.
@app.function_name(name="WhoAmI")
@app.route(methods=["GET"])
def who_am_i(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json({"function_name": context.function_name})


@app.function_name(name="nightly_audit")
@app.timer_trigger(schedule="0 0 3 * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
def run_nightly_audit(timer: func.TimerRequest) -> None:
    # Written beside the mark and renamed into place, so a reader never sees a half-written file.
    mark = os.environ["SAMPLE_TIMER_MARK"]
    with open(mark + ".tmp", "w", encoding="utf-8") as fh:
        json.dump({"past_due": timer.past_due}, fh)
    os.replace(mark + ".tmp", mark)
