"""The app's Storage Queues: one client per queue, messages as the Functions queue trigger reads them.

Every queue lives on the Storage account of the triggers' connection `GATEHOUSE_QUEUES`: a connection string
(Azurite locally), else `GATEHOUSE_QUEUES__queueServiceUri` with the managed identity
(`GATEHOUSE_QUEUES__clientId`), as the Functions host itself reads them. A message is JSON, base64-encoded
(host.json `messageEncoding`). A queue missing on first use is created (Azure declares them in infra/).

Users: `webhooks/queue.py` (`webhook-deliveries`) and `jobs/` (`gatehouse-jobs`, the background jobs' fan-out).
"""
from __future__ import annotations

import json
import threading

from shared_code.platform.settings import get_settings

MAX_VISIBILITY_DELAY = 6 * 24 * 3600  # a queue message can be hidden for at most 7 days
POISON_SUFFIX = "-poison"  # where the Functions host moves a message after maxDequeueCount failed tries
_clients: dict[str, object] = {}
_lock = threading.Lock()


def configured() -> bool:
    settings = get_settings()
    return bool(settings.gatehouse_queues or settings.gatehouse_queues_service_uri)


def client(name: str):
    """The QueueClient of queue `name` (no round trip)."""
    queue = _clients.get(name)
    if queue is None:
        with _lock:
            queue = _clients.get(name)
            if queue is None:
                from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, TextBase64EncodePolicy

                settings = get_settings()
                options = {"message_encode_policy": TextBase64EncodePolicy(),
                           "message_decode_policy": BinaryBase64DecodePolicy(),
                           "retry_total": 2, "connection_timeout": 3, "read_timeout": 10}
                if settings.gatehouse_queues:
                    queue = QueueClient.from_connection_string(settings.gatehouse_queues, name, **options)
                else:
                    from azure.identity import ManagedIdentityCredential

                    credential = ManagedIdentityCredential(client_id=settings.gatehouse_queues_client_id or None)
                    queue = QueueClient(settings.gatehouse_queues_service_uri, name, credential=credential, **options)
                _clients[name] = queue
    return queue


def reset() -> None:
    """Forget cached clients (tests that switch settings call this)."""
    with _lock:
        _clients.clear()


def send(name: str, message: dict, delay_seconds: float = 0) -> None:
    """Put `message` (JSON) on queue `name`, visible after `delay_seconds`; one round trip (two the first time,
    when the queue has to be created)."""
    from azure.core.exceptions import ResourceNotFoundError

    text = json.dumps(message, separators=(",", ":"))
    delay = max(0, min(MAX_VISIBILITY_DELAY, int(delay_seconds + 0.999)))
    queue = client(name)
    try:
        queue.send_message(text, visibility_timeout=delay)
    except ResourceNotFoundError:
        queue.create_queue()
        queue.send_message(text, visibility_timeout=delay)


def decode(body: bytes | str) -> dict | None:
    """A message's JSON object, None when it is not one (a hostile or mangled message is dropped, not retried)."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return message if isinstance(message, dict) else None
