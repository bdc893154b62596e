"""Outbound HTTP under one SSRF policy (DESIGN.md item 1).

STOP-GAP on branch i15 only: the lead's `shared_code/outbound.py` lands on main by ~19:00 and replaces this file
on merge (take main's version). It implements just the agreed interface, over the checks the SAML metadata fetch
already has, so the Entra key fetch can be written and tested against the real signature today.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from shared_code.settings import get_settings


class OutboundError(Exception):
    """The fetch failed or was refused; `message` is safe to show and never names an internal address."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Answer:
    status: int
    headers: dict = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    url: str = ""


def check_url(url: str, *, what: str) -> str:
    from shared_code.saml import MetadataError
    from shared_code.saml.metadata import _check_url

    try:
        return _check_url(url, get_settings().allow_private_metadata_urls)
    except MetadataError as error:
        raise OutboundError(f"The {what} URL cannot be used: {error.message}") from None


def request(method: str, url: str, *, what: str, timeout: float, body: bytes | None = None,
            headers: dict | None = None, max_bytes: int = 1 << 20, max_redirects: int = 0) -> Answer:
    import requests

    from shared_code.saml.metadata import _checked_adapter, _RefusedPeer

    allow_private = get_settings().allow_private_metadata_urls
    host = check_url(url, what=what)
    deadline = time.monotonic() + timeout
    session = requests.Session()
    session.trust_env = False
    adapter = _checked_adapter(allow_private)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    try:
        response = session.request(method, url, data=body, headers=headers or {}, allow_redirects=False,
                                   stream=True, timeout=(timeout, timeout))
        with response:
            data = bytearray()
            for chunk in response.iter_content(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise OutboundError(f"The {what} at {host} is larger than {max_bytes} bytes.")
                if time.monotonic() > deadline:
                    raise OutboundError(f"Could not reach {host} for the {what}: no answer within {timeout:g} s.")
            return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, bytes(data), url)
    except _RefusedPeer as error:
        raise OutboundError(str(error)) from None
    except requests.exceptions.RequestException:
        raise OutboundError(f"Could not reach {host} for the {what}.") from None
    finally:
        session.close()
