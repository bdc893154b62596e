"""Where a secret would be found in storage: every row of every table, read back from the store.

`stored_text(connection_string)` yields (table, PartitionKey, RowKey, column, text) for every property of every
entity in every table (bytes decoded as latin-1, other values as `str()`); `findings(secrets, ...)` names each
(secret, spelling, where) found in the clear — as given, base64-encoded, or URL-quoted.
"""
from __future__ import annotations

import base64
from typing import Iterator, Mapping
from urllib.parse import quote


def stored_text(connection_string: str) -> Iterator[tuple[str, str, str, str, str]]:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(connection_string)
    for table in service.list_tables():
        for entity in service.get_table_client(table.name).list_entities():
            for column, value in entity.items():
                text = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
                yield table.name, entity.get("PartitionKey", ""), entity.get("RowKey", ""), column, text


def spellings(secret: str) -> dict[str, str]:
    """A secret as it might be written down without being hashed or encrypted."""
    raw = secret.encode()
    return {"as given": secret, "base64": base64.b64encode(raw).decode(),
            "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="), "url-quoted": quote(secret, safe="")}


def findings(secrets: Mapping[str, str], connection_string: str) -> list[str]:
    """'<what> (<spelling>) in <table>/<PartitionKey>/<RowKey>.<column>' for every secret found in the clear."""
    found, rows = [], 0
    needles = [(what, how, text) for what, secret in secrets.items() for how, text in spellings(secret).items()]
    for table, partition, row, column, text in stored_text(connection_string):
        rows += 1
        for what, how, needle in needles:
            if needle in text:
                found.append(f"{what} ({how}) in {table}/{partition}/{row}.{column}")
    assert rows, "no rows read: the store these settings name is not the one the app wrote to"
    return found
