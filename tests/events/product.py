"""The sample product: what a SaaS product embedding Gatehouse does with its events. It keeps its own copy of
the tenant's directory (the whole employee, groups and their members), started from the directory listing
(`start_from`) and fed either by webhooks (verified with the `standardwebhooks` package, as a receiver in any language would) or by the
Events API. It also records what a careful receiver must check: no event out of order, duplicates only as
exact repeats of an event already applied.

`WebhookReceiver` is its HTTP endpoint on loopback, with switches to misbehave: fail with a status (and a
Retry-After), hang past the sender's timeout, answer 410, or be gone (connection refused).
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from standardwebhooks import Webhook


class DirectoryCopy:
    """A directory rebuilt from events. Out of order = a sequence lower than one already applied that is not
    a repeat of an applied event; repeats (at least once) are ignored by id."""

    def __init__(self):
        self.employees: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.members: dict[str, set[str]] = {}
        self.applied: dict[str, int] = {}  # event id → sequence
        self.last_sequence = 0
        self.out_of_order: list[tuple[int, int]] = []
        self.duplicates = 0
        self.lock = threading.Lock()

    def start_from(self, employees: list[dict], groups: list[dict]) -> None:
        """The directory listing (GET …/directory/employees and …/groups, every page): the copy's start; then
        events from the listing's `events_after` are applied on top. Memberships come from the employees'
        `group_ids`."""
        with self.lock:
            self.employees = {e["id"]: e for e in employees}
            self.groups = {g["id"]: dict(g) for g in groups}
            self.members = {g["id"]: set() for g in groups}
            for employee in employees:
                for group_id in employee["group_ids"]:
                    self.members.setdefault(group_id, set()).add(employee["id"])

    def apply(self, event: dict) -> None:
        with self.lock:
            if event["id"] in self.applied:
                self.duplicates += 1
                return
            if event["sequence"] <= self.last_sequence:
                self.out_of_order.append((self.last_sequence, event["sequence"]))
            self.applied[event["id"]] = event["sequence"]
            self.last_sequence = max(self.last_sequence, event["sequence"])
            kind, data = event["type"], event["data"]
            if kind.startswith("employee."):
                if kind == "employee.deleted":
                    self.employees.pop(data["id"], None)
                    for members in self.members.values():
                        members.discard(data["id"])
                else:
                    self.employees[data["id"]] = data
            elif kind.startswith("group."):
                group = {k: data[k] for k in ("id", "display_name", "external_id")}
                if kind == "group.deleted":
                    self.groups.pop(data["id"], None)
                    self.members.pop(data["id"], None)
                    return
                self.groups[data["id"]] = group
                members = self.members.setdefault(data["id"], set())
                if kind == "group.members_added":
                    members.update(data["member_ids"])
                elif kind == "group.members_removed":
                    members.difference_update(data["member_ids"])

    def state(self) -> dict:
        """What the comparison with Gatehouse's directory looks at."""
        with self.lock:
            return {
                "employees": {i: (e["user_name"], e["active"], e["is_admin"]) for i, e in self.employees.items()},
                "groups": {i: g["display_name"] for i, g in self.groups.items()},
                "members": {g: sorted(m) for g, m in self.members.items() if g in self.groups},
            }


class WebhookReceiver:
    """The product's webhook endpoint. `mode`: "ok", ("status", code, retry_after), "hang" (past the
    sender's timeout), ("slow", seconds), "gone" (410); `stop()`/`start()` take it off the network (connection refused) and back on the same port."""

    def __init__(self, secret: str | None = None):
        self.secret = secret
        self.copy = DirectoryCopy()
        self.mode: object = "ok"
        self.received = 0
        self.rejected_signatures = 0
        self.arrivals: list[tuple[float, dict]] = []
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.hang_seconds = 12.0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gatehouse/events"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received += 1
                mode = receiver.mode
                if mode == "hang":
                    time.sleep(receiver.hang_seconds)
                    return self._answer(200)
                if isinstance(mode, tuple) and mode[0] == "slow":  # a busy receiver: slow, but it works
                    time.sleep(mode[1])
                if mode == "gone":
                    return self._answer(410)
                if isinstance(mode, tuple) and mode[0] == "meanwhile":  # something happens while it is posted
                    mode[1]()
                    return self._answer(204)
                if isinstance(mode, tuple) and mode[0] == "status":
                    return self._answer(mode[1], {"Retry-After": str(mode[2])} if mode[2] else {})
                try:
                    event = Webhook(receiver.secret).verify(body, dict(self.headers))
                except Exception:  # noqa: BLE001 - any verification failure
                    receiver.rejected_signatures += 1
                    return self._answer(401)
                receiver.arrivals.append((time.time(), event))
                if event.get("type") != "webhook.test":
                    receiver.copy.apply(event)
                self._answer(204)

            def _answer(self, status: int, headers: dict | None = None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class EventReader:
    """The product's side of the Events API: keeps `next` and polls."""

    def __init__(self, tenant, key: str | None = None):
        self.tenant = tenant
        self.key = key or tenant.admin_key
        self.cursor: str | None = None
        self.http = requests.Session()

    def page(self, after: str | None = None, limit: int | None = None) -> requests.Response:
        params = {k: v for k, v in (("after", after), ("limit", limit)) if v is not None}
        return self.http.get(f"{self.tenant.base_url}/api/tenants/{self.tenant.tenant_id}/events", params=params,
                             headers={"Authorization": f"Bearer {self.key}"}, timeout=30)

    def poll(self, limit: int = 500) -> list[dict]:
        """Every event after the cursor (following `next` until a page comes back empty)."""
        seen = []
        while True:
            response = self.page(self.cursor, limit)
            assert response.status_code == 200, response.text
            body = response.json()
            self.cursor = body["next"]
            seen += body["events"]
            if not body["events"]:
                return seen



class Operator:
    def __init__(self, base_url: str, key: str, tenant_id: str):
        self.url = f"{base_url}/api/tenants/{tenant_id}/webhook"
        self.headers = {"Authorization": f"Bearer {key}"}

    def put(self, url: str, **kwargs) -> requests.Response:
        return requests.put(self.url, json={"url": url}, headers=self.headers, timeout=30, **kwargs)

    def get(self) -> dict:
        response = requests.get(self.url, headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str) -> requests.Response:
        return requests.post(f"{self.url}/{path}", headers=self.headers, timeout=30)
