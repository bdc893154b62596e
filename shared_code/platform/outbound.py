"""Calls out to URLs that someone else chose: one SSRF policy and one real deadline for all of them.

IdP metadata (the tenant admin's URL), Entra's signing keys, webhook deliveries and back-channel logout (the
product's URLs) all go through `request`. The URL is input from outside and the server fetches it, so:

- `https://` only, no user name or password in the URL; plain `http://` and private addresses only with
  ALLOW_PRIVATE_METADATA_URLS=true (local development);
- every address the host resolves to must be public (`is_public_address`: not private, loopback, link-local,
  shared, reserved, multicast, nor Azure's platform address 168.63.129.16, nor an IPv6 form that carries an
  IPv4 address inside: mapped, 6to4, Teredo, NAT64). The connection is made to the addresses we checked, not to
  a second DNS answer (no DNS rebinding window), and the peer is checked once more after connecting;
- every redirect hop is checked the same way, and only `max_redirects` are followed;
- the body is capped; proxies and ~/.netrc from the environment are ignored;
- messages say what went wrong in words a person can act on, and never name an internal address a host
  resolved to (that would turn the check into a scanner of our network).

The deadline is real: `timeout` bounds DNS, connect, TLS, headers and body together. DNS runs on a worker
with the time left; a watchdog shuts the call's sockets down when the deadline passes, so a server that sends
a byte every second is cut off at the deadline (a per-read timeout alone never fires on such a server).
`requests` is imported on the first call, so a cold start that makes no call out does not pay for it.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from shared_code.platform.settings import get_settings

MAX_BODY_BYTES = 1 << 20
_AZURE_PLATFORM = ipaddress.ip_address("168.63.129.16")  # WireServer: the host's own agent on every Azure VM
_EMBEDS_IPV4 = (ipaddress.ip_network("2002::/16"),       # 6to4
                ipaddress.ip_network("2001::/32"),       # Teredo
                ipaddress.ip_network("64:ff9b::/96"),    # NAT64, well-known prefix
                ipaddress.ip_network("64:ff9b:1::/48"))  # NAT64, local-use prefix
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbound-dns")


class OutboundError(Exception):
    """A call out failed or was refused. `message` is safe to show to the person who gave the URL."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""
    url: str = ""
    reason: str = ""


def _private_ok() -> bool:
    return get_settings().allow_private_metadata_urls


def is_public_address(address: str) -> bool:
    """True only for a globally routable unicast address that is not Azure's platform address; an IPv6
    address that carries an IPv4 one (mapped, 6to4, Teredo, NAT64) is refused outright."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif any(ip in network for network in _EMBEDS_IPV4):
            return False
    if ip == _AZURE_PLATFORM:
        return False
    return bool(ip.is_global) and not (ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
                                      or ip.is_reserved or ip.is_unspecified)


def check_url(url: object, *, what: str = "The URL", allow_private: bool | None = None) -> str:
    """Refuse a URL we must never call (scheme, credentials, no host); returns its host. No DNS: use it when a
    URL is registered; `request` checks the addresses on every call."""
    if not isinstance(url, str) or not url.strip():
        raise OutboundError(f"{what} must be a URL.")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise OutboundError(f"{what} is not a valid URL.") from None
    private_ok = _private_ok() if allow_private is None else allow_private
    allowed = ("https", "http") if private_ok else ("https",)
    if parts.scheme not in allowed:
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise OutboundError(f"{what} must use {' or '.join(s + '://' for s in allowed)} (got {got}).")
    if not parts.hostname:
        raise OutboundError(f"{what} has no host name.")
    if parts.username or parts.password:
        raise OutboundError(f"{what} must not contain a user name or password.")
    return parts.hostname


class _Call:
    """One call's deadline, the addresses it may connect to, and the sockets the watchdog cuts."""

    def __init__(self, timeout: float, private_ok: bool):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.private_ok = private_ok
        self.addresses: dict[str, list[tuple]] = {}
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.lock = threading.Lock()

    def remaining(self, host: str = "") -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.late(host)
        return left

    def late(self, host: str = "") -> OutboundError:
        where = f"Could not reach {host}: " if host else ""
        return OutboundError(f"{where}no answer within {self.timeout:g} seconds.")

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def resolve(self, host: str, port: int) -> None:
        """Resolve `host` within the deadline and keep the addresses we may connect to."""
        if host in self.addresses:
            return
        future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=self.remaining(host))
        except FutureTimeout:
            raise OutboundError(f"Could not reach {host}: the host name did not resolve within "
                                f"{self.timeout:g} seconds.") from None
        except (socket.gaierror, UnicodeError):
            raise OutboundError(f"Could not reach {host}: the host name does not resolve.") from None
        if not self.private_ok and not all(is_public_address(info[4][0]) for info in infos):
            raise OutboundError(f"Refused to call {host}: it resolves to an address that is not public "
                                "(private, loopback, link-local or reserved).")
        self.addresses[host] = [info for info in infos]

    def connect(self, host: str, port: int, source_address=None, socket_options=None) -> socket.socket:
        """Connect to one of the addresses `resolve` checked, under the deadline; the watchdog can cut it."""
        last: OSError | None = None
        for family, kind, proto, _name, address in self.addresses.get(host.rstrip("."), []):
            sock = socket.socket(family, kind, proto)
            with self.lock:
                if self.expired:
                    sock.close()
                    raise self.late(host)
                self.sockets.append(sock)
            try:
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(self.remaining(host))
                if source_address:
                    sock.bind(source_address)
                sock.connect((address[0], port, *address[2:]))
            except OSError as error:
                sock.close()
                last = error
                continue
            if not self.private_ok and not is_public_address(sock.getpeername()[0]):
                sock.close()
                raise _Refused(f"Refused to call {host}: its address is not public.")
            return sock
        raise last or OSError(f"no address of {host} to connect to")


class _Refused(Exception):
    """Not an OSError on purpose: urllib3 would retry or wrap those; this must reach `request` as it is."""


def _session(call: _Call):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class PinnedHTTPConnection(HTTPConnection):
        def _new_conn(self):
            return call.connect(self._dns_host, self.port, self.source_address, self.socket_options)

    class PinnedHTTPSConnection(HTTPSConnection):
        def _new_conn(self):
            return call.connect(self._dns_host, self.port, self.source_address, self.socket_options)

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPSConnection

    class PinnedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": PinnedHTTPPool, "https": PinnedHTTPSPool}

    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment: we check the peer we talk to
    adapter = PinnedAdapter(max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def request(method: str, url: str, *, what: str = "The URL", timeout: float = 10.0, body: bytes | None = None,
            headers: dict[str, str] | None = None, max_bytes: int = MAX_BODY_BYTES,
            max_redirects: int = 0, allow_private: bool | None = None) -> Answer:
    """Call `url` under the policy above. Any HTTP status comes back as an `Answer` (a redirect too, when
    `max_redirects` is spent); `allow_private` overrides the setting (tests, local checks). A refused URL or address, a network failure, a body over `max_bytes` or the
    deadline raise `OutboundError`."""
    import requests

    call = _Call(timeout, _private_ok() if allow_private is None else allow_private)
    watchdog = threading.Timer(timeout, call.expire)
    watchdog.daemon = True
    watchdog.start()
    session = _session(call)
    current = url.strip() if isinstance(url, str) else ""
    try:
        for hop in range(max_redirects + 1):
            host = check_url(current, what=what if hop == 0 else "A redirect", allow_private=call.private_ok)
            parts = urlsplit(current)
            call.resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
            left = call.remaining(host)
            try:
                response = session.request(method, current, data=body, headers=headers, allow_redirects=False,
                                           stream=True, timeout=(left, left))
            except _Refused as refused:
                raise OutboundError(str(refused)) from None
            except requests.exceptions.SSLError:
                raise OutboundError(f"Could not reach {host}: its TLS certificate could not be verified.") from None
            except requests.exceptions.RequestException as error:
                if call.expired or isinstance(error, requests.exceptions.Timeout):
                    raise call.late(host) from None
                raise OutboundError(f"Could not reach {host}: {_connection_reason(error)}.") from None
            with response:
                if response.is_redirect and hop < max_redirects:
                    location = response.headers.get("Location", "")
                    if not location:
                        raise OutboundError(f"The server at {host} answered {response.status_code} without a "
                                            "Location.")
                    current = urljoin(current, location)
                    continue
                if response.is_redirect and max_redirects:
                    raise OutboundError(f"Too many redirects (more than {max_redirects}) from {display(url)}.")
                return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                              _read_capped(response, call, host, max_bytes), current, response.reason or "")
        raise OutboundError(f"Too many redirects (more than {max_redirects}) from {display(url)}.")
    finally:
        watchdog.cancel()
        session.close()


def _read_capped(response, call: _Call, host: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise OutboundError(f"The answer from {host} is larger than {_size(max_bytes)}.")
    body = bytearray()
    try:
        for chunk in response.iter_content(16 * 1024):
            body += chunk
            if len(body) > max_bytes:
                raise OutboundError(f"The answer from {host} is larger than {_size(max_bytes)}.")
            if time.monotonic() > call.deadline:
                raise OutboundError(f"Could not reach {host}: the download took longer than {call.timeout:g} "
                                    "seconds.")
    except OutboundError:
        raise
    except Exception as error:  # requests wraps socket errors in several ways while streaming
        if call.expired:
            raise OutboundError(f"Could not reach {host}: the download took longer than {call.timeout:g} "
                                "seconds.") from None
        raise OutboundError(f"Could not reach {host}: the download failed ({_short(error)}).") from None
    if call.expired:
        raise OutboundError(f"Could not reach {host}: the download took longer than {call.timeout:g} seconds.")
    return bytes(body)


def display(url: str) -> str:
    """A URL as we may show it: scheme, host and path, no query (it can carry tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"[:200]


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n // 1024} KiB"


def _short(error: Exception) -> str:
    return (str(error).splitlines() or [error.__class__.__name__])[0][:160]


def _connection_reason(error: Exception) -> str:
    text = str(error)
    if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
        return "the host name does not resolve"
    if "Connection refused" in text:
        return "the connection was refused"
    return "the connection failed"
