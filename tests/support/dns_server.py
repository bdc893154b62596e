"""A real DNS server on loopback (UDP), built on dnspython's message API: what domain verification's lookups
reach in tests (DNS_NAMESERVERS points the app at it). Tests publish and withdraw TXT records while it runs.

Answers: the TXT records published for the name asked, or NXDOMAIN for a name with none. Every query is
recorded (`queries`), so a test can tell a lookup really happened.
"""
from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._records: dict[str, list[list[str]]] = {}
        self._lock = threading.Lock()
        self.queries: list[str] = []
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self._stopped = False

    def publish_txt(self, name: str, *values: str) -> None:
        """Publish TXT records at `name` (replacing any there), one record per value."""
        with self._lock:
            self._records[name.lower().rstrip(".")] = [[value] for value in values]

    def withdraw(self, name: str) -> None:
        with self._lock:
            self._records.pop(name.lower().rstrip("."), None)

    def __enter__(self) -> "DnsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped = True
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopped:
            try:
                data, peer = self._socket.recvfrom(4096)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - not DNS: a real server drops it too
                continue
            self._socket.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        with self._lock:
            self.queries.append(name)
            records = self._records.get(name)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            texts = [" ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in strings)
                     for strings in records]
            response.answer.append(dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN,
                                                             dns.rdatatype.TXT, texts))
        return response
