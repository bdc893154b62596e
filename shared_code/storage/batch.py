"""Entity-group transactions (`$batch`) sent and read without azure-core's multipart machinery.

`TableClient.submit_transaction` costs ~8 ms of CPU however few rows it carries: azure-core writes and parses
the multipart body with the `email` package and starts a thread pool for each level of it (measured in
bench/ and docs/scaling.md). Every SCIM write is one transaction, so that was the largest item of its CPU.

Here the SDK still builds every operation (`TableBatchOperations`: entity serialisation, URLs, If-Match, merge
or replace) and the outer request still goes through the table client's own pipeline (authentication,
retries, the round-trip counter); only the multipart text is written and read here, following the Table
service's documented format (a batch holding one changeset of HTTP requests; the answer holds one changeset
response per operation, or a single error response naming the failed operation's index). Failures surface as
the SDK's own exceptions, `TableTransactionError` with `error_code` and `index`, so callers are unchanged.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any, Iterable

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, TableTransactionError
from azure.data.tables._table_batch import TableBatchOperations

_BOUNDARY = re.compile(r"boundary=([^\s;\"]+)", re.IGNORECASE)
_LINE = re.compile(r"\r?\n")


def submit(client: TableClient, operations: Iterable[tuple]) -> list[dict[str, Any]]:
    """Submit operations as one transaction; per operation a dict with its new `etag`."""
    batch = TableBatchOperations(
        config=client._client._config,  # noqa: SLF001 - the SDK's own builder, as submit_transaction uses it
        endpoint=f"{client.scheme}://{client._primary_hostname}",  # noqa: SLF001
        table_name=client.table_name,
        is_cosmos_endpoint=client._cosmos_endpoint,  # noqa: SLF001
    )
    for operation in operations:
        batch.add_operation(operation)
    outer, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    request = HttpRequest(
        "POST", f"{client.scheme}://{client._primary_hostname}/$batch",  # noqa: SLF001
        headers={"x-ms-version": client._client._config.version,  # noqa: SLF001
                 "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
                 "Content-Type": f"multipart/mixed; boundary={outer}", "Accept": "application/json"},
        content=_body(batch.requests, outer, changeset))
    # The client's pipeline (auth, retries, hooks); streamed, so that no policy tries to decode multipart.
    response = client._client.send_request(request, stream=True)  # noqa: SLF001
    response.read()
    if response.status_code != 202:  # refused as a whole: bad request, too large, throttled, failing
        raise _error(response, response.status_code, response.text())
    parts = _parts(response.text(), response.headers.get("Content-Type", ""))
    failed = [part for part in parts if not 200 <= part["status"] < 300]
    if failed:  # one failed operation fails them all
        raise _error(response, failed[0]["status"], failed[0]["body"])
    if len(parts) != len(batch.requests):
        raise _error(response, None, "")
    return [{"etag": part["headers"].get("etag")} for part in parts]


def _body(requests: list[HttpRequest], outer: str, changeset: str) -> bytes:
    chunks = [f"--{outer}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for index, request in enumerate(requests):
        content = request.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        content = content or b""
        headers = {key: value for key, value in request.headers.items() if key.lower() != "content-length"}
        head = [f"--{changeset}", "Content-Type: application/http", "Content-Transfer-Encoding: binary",
                f"Content-ID: {index}", "", f"{request.method} {request.url} HTTP/1.1",
                *(f"{key}: {value}" for key, value in headers.items())]
        if content:
            head.append(f"Content-Length: {len(content)}")
        chunks.append(("\r\n".join(head) + "\r\n\r\n").encode() + content + b"\r\n")
    chunks.append(f"--{changeset}--\r\n\r\n--{outer}--\r\n".encode())
    return b"".join(chunks)


def _parts(text: str, content_type: str) -> list[dict[str, Any]]:
    """The HTTP responses inside the answer's changeset, in order: status, headers (lower-case), body."""
    outer = _BOUNDARY.search(content_type)
    sections = text.split(f"--{outer.group(1)}", 2) if outer else []
    inner = _BOUNDARY.search(sections[1]) if len(sections) > 1 else None
    if inner is None:
        raise HttpResponseError(message="The storage service answered a transaction in an unknown format.")
    parts = []
    for section in text.split(f"--{inner.group(1)}")[1:]:
        if section.startswith("--"):
            break  # the closing delimiter
        lines = _LINE.split(section)
        try:
            start = next(i for i, line in enumerate(lines) if line.startswith("HTTP/"))
        except StopIteration:
            continue
        status = int(lines[start].split()[1])
        headers: dict[str, str] = {}
        end = start + 1
        while end < len(lines) and lines[end]:
            key, _, value = lines[end].partition(":")
            headers[key.strip().lower()] = value.strip()
            end += 1
        parts.append({"status": status, "headers": headers, "body": "\n".join(lines[end + 1:]).strip()})
    return parts


def _error_fields(body: str) -> tuple[str, str]:
    """(code, message) of an OData error body; both empty when the body is not one."""
    try:
        error = json.loads(body).get("odata.error") or {}
    except (ValueError, AttributeError):
        return "", ""
    message = error.get("message")
    return str(error.get("code") or ""), str(message.get("value") if isinstance(message, dict) else message or "")


def _error(response, status: int | None, body: str) -> HttpResponseError:
    """A refused transaction, raised as the SDK raises it: a 4xx as TableTransactionError, whose `index` comes
    from the "<index>:" that starts the service's message; anything else (5xx, an answer we cannot read) as
    HttpResponseError, which the storage layer turns into StorageUnavailable."""
    code, message = _error_fields(body)
    error_type = TableTransactionError if status and 400 <= status < 500 else HttpResponseError
    error = error_type(message=message or f"The transaction failed ({status or 'unreadable answer'}).",
                       response=response)
    error.status_code = status
    error.error_code = code or None
    return error
