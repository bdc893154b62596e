"""The Storage Queue `webhook-deliveries` that wakes a tenant's delivery run, and the notifier that feeds it.

A message is `{"tenant": "<id>"}`, base64-encoded (what the Functions queue trigger expects): "this tenant
may have events to deliver". Messages carry no events, so a duplicate, a late or a lost message costs nothing
but a wasted or a later run: the order is kept by the delivery lease, and the sweep timer re-enqueues every
tenant whose endpoint is behind, whatever happened to its messages (a poison message included).

The notifier puts a message after each commit that wrote events, from a background thread: the request that
made the change does not wait for the queue (no extra round trip on its path), and a burst of changes of one
tenant becomes one message. If the process dies before the message is sent, the sweep finds the tenant.

Connection (setting names from the trigger's `connection="GATEHOUSE_QUEUES"`): `GATEHOUSE_QUEUES` as a
connection string (Azurite locally), else `GATEHOUSE_QUEUES__queueServiceUri` with the managed identity
(`GATEHOUSE_QUEUES__clientId`), as the Functions host itself reads them.
"""
from __future__ import annotations

import json
import logging
import threading
import time

from shared_code.settings import get_settings

QUEUE = "webhook-deliveries"
POISON = QUEUE + "-poison"
MAX_VISIBILITY_DELAY = 6 * 24 * 3600  # a queue message can be hidden for at most 7 days
_log = logging.getLogger("gatehouse")
_client = None
_client_lock = threading.Lock()


def configured() -> bool:
    settings = get_settings()
    return bool(settings.gatehouse_queues or settings.gatehouse_queues_service_uri)


def client():
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, TextBase64EncodePolicy

                settings = get_settings()
                options = {"message_encode_policy": TextBase64EncodePolicy(),
                           "message_decode_policy": BinaryBase64DecodePolicy(),
                           "retry_total": 2, "connection_timeout": 3, "read_timeout": 10}
                if settings.gatehouse_queues:
                    _client = QueueClient.from_connection_string(settings.gatehouse_queues, QUEUE, **options)
                else:
                    from azure.identity import ManagedIdentityCredential

                    credential = ManagedIdentityCredential(client_id=settings.gatehouse_queues_client_id or None)
                    _client = QueueClient(settings.gatehouse_queues_service_uri, QUEUE, credential=credential,
                                          **options)
    return _client


def reset() -> None:
    global _client
    _client = None


def enqueue(tenant_id: str, delay_seconds: float = 0) -> None:
    """A message that wakes the tenant's delivery run after `delay_seconds` (created queue on first use)."""
    from azure.core.exceptions import ResourceNotFoundError

    text = json.dumps({"tenant": tenant_id})
    delay = max(0, min(MAX_VISIBILITY_DELAY, int(delay_seconds + 0.999)))
    queue = client()
    try:
        queue.send_message(text, visibility_timeout=delay)
    except ResourceNotFoundError:
        queue.create_queue()
        queue.send_message(text, visibility_timeout=delay)


def tenant_of(body: bytes | str) -> str | None:
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    tenant = message.get("tenant") if isinstance(message, dict) else None
    return tenant if isinstance(tenant, str) and tenant else None


class Notifier:
    """Collects tenants whose log moved and enqueues one message per tenant from a daemon thread."""

    def __init__(self):
        self._pending: set[str] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def __call__(self, tenant_id: str) -> None:
        with self._wake:
            self._pending.add(tenant_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="webhook-notifier", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _drain(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                tenants, self._pending = self._pending, set()
            for tenant_id in sorted(tenants):
                try:
                    enqueue(tenant_id)
                except Exception as error:  # noqa: BLE001 - the sweep re-enqueues within a minute
                    _log.warning("could not enqueue webhook delivery for %s (the sweep will): %s", tenant_id, error)
                    time.sleep(0.5)


notifier = Notifier()


def install() -> None:
    """Wake delivery after every commit that wrote events (only where a queue is configured)."""
    from shared_code.events import log as event_log

    if configured() and notifier not in event_log.after_commit:
        event_log.after_commit.append(notifier)
