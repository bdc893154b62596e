"""A real HTTP server in the test process that plays Microsoft Entra's web side for one `TestIdp`:

- it publishes documents at paths of our choosing (the App Federation Metadata URL, and deliberately broken
  answers: 404, a web page, a redirect loop, a huge body) for the app's metadata check to fetch;
- its `/saml2` endpoint is the IdP's single sign-on URL: it reads the AuthnRequest of the HTTP-Redirect
  binding, signs in the user set with `sign_in_as`, and renders Entra's auto-posting form that carries a
  genuine signed SAMLResponse (InResponseTo = the request's ID) and the RelayState back to the ACS;
- like Entra it keeps a session per browser (cookie `ESTSAUTH`): a request within a session answers with the
  session's AuthnInstant (when the person really authenticated), `ForceAuthn` authenticates again (AuthnInstant
  now, or `sign_in_as(..., authn_instant=…)`), and `IsPassive` never authenticates: within a session it signs
  in silently, without one it answers Entra's NoPassive status (AADSTS50058). `start_session` makes a session
  for a test that walks the redirects by hand, with the AuthnInstant it chooses;
- the same URL is its SingleLogoutService (as Entra's is): a LogoutRequest is recorded and answered with a
  signed LogoutResponse (HTTP-Redirect binding) to the SP's SLO URL; `logout_request_url` makes the signed
  LogoutRequest Entra sends when the employee signs out elsewhere.

`host` names the server in its URLs: the browser test uses "localhost" while the app is on 127.0.0.1, so the
ACS POST is cross-site exactly as it is from login.microsoftonline.com.
"""
from __future__ import annotations

import base64
import datetime as dt
import threading
import zlib
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from tests.support.idp import NS_SAML, NS_SAMLP, STATUS_NO_PASSIVE, STATUS_REQUESTER, STATUS_SUCCESS, TestIdp, new_id

METADATA_PATH = "/federationmetadata/2007-06/federationmetadata.xml"


@dataclass
class Published:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedRequest:
    request_id: str
    acs_url: str
    issuer: str
    relay_state: str | None
    force_authn: bool = False
    is_passive: bool = False


SESSION_COOKIE = "ESTSAUTH"


class IdpServer:
    """One TestIdp on a real port; use as a context manager (the server stops on exit)."""

    def __init__(self, idp: TestIdp, host: str = "127.0.0.1"):
        self.idp = idp
        self.documents: dict[str, Published] = {}
        self.received: list[ReceivedRequest] = []
        self.logout_requests: list[etree._Element] = []  # LogoutRequests SPs sent to /saml2
        self.fetched: list[str] = []  # the path of every GET of a published document (or a 404)
        self.user: dict = {"name_id": "alice@contoso.example"}
        self.sessions: dict[str, dict] = {}  # ESTSAUTH cookie → {"user": the sign_in_as dict, "authn_instant": …}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        idp.sso_url = f"{self.url}/saml2"  # the metadata this server publishes points sign-ins here
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "IdpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what it serves

    def publish(self, path: str, body: bytes | str, status: int = 200,
                content_type: str = "application/samlmetadata+xml", headers: dict[str, str] | None = None) -> str:
        """Serve `body` at `path`; returns its URL."""
        data = body.encode() if isinstance(body, str) else body
        self.documents[path] = Published(status, data, {"Content-Type": content_type, **(headers or {})})
        return self.url + path

    def publish_metadata(self, **options) -> str:
        """The IdP's current federation metadata at Entra's path; returns the App Federation Metadata URL."""
        return self.publish(METADATA_PATH, self.idp.metadata_xml(**options))

    def sign_in_as(self, name_id: str, object_id: str | None = None, email: str | None = None, **options) -> None:
        """Who the IdP signs in when a browser arrives at /saml2 (options go to TestIdp.response; `authn_instant`
        is the AuthnInstant of the next interactive authentication instead of now)."""
        self.user = {"name_id": name_id, "object_id": object_id, "email": email, **options}

    def start_session(self, authn_instant: dt.datetime | None = None) -> str:
        """An IdP session of the current `sign_in_as` user, authenticated at `authn_instant` (default now);
        returns the ESTSAUTH cookie value a browser would hold."""
        cookie = new_id()
        self.sessions[cookie] = {"user": self.user,
                                 "authn_instant": authn_instant or dt.datetime.now(dt.timezone.utc)}
        return cookie

    # -- the HTTP side

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/saml2":
                    query = parse_qs(parts.query)
                    request = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15))
                    if request.tag == f"{{{NS_SAMLP}}}LogoutRequest":
                        return self._send(302, b"", {"Location": server._logout_answer(request, query)})
                    cookie = _cookie(self.headers.get("Cookie"), SESSION_COOKIE)
                    page, cookie = server._sso_page(query, cookie)
                    headers = {"Content-Type": "text/html"}
                    if cookie:
                        headers["Set-Cookie"] = f"{SESSION_COOKIE}={cookie}; Path=/; HttpOnly"
                    return self._send(200, page, headers)
                server.fetched.append(parts.path)
                document = server.documents.get(parts.path)
                if document is None:
                    return self._send(404, b"not found", {"Content-Type": "text/plain"})
                self._send(document.status, document.body, document.headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _sso_page(self, query: dict[str, list[str]], cookie: str | None = None) -> tuple[bytes, str | None]:
        xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
        request = etree.fromstring(xml)
        relay_state = query.get("RelayState", [None])[0]
        received = ReceivedRequest(request.get("ID"), request.get("AssertionConsumerServiceURL"),
                                   request.findtext(f"{{{NS_SAML}}}Issuer"), relay_state,
                                   force_authn=request.get("ForceAuthn") in ("true", "1"),
                                   is_passive=request.get("IsPassive") in ("true", "1"))
        self.received.append(received)
        session, created = self.sessions.get(cookie or ""), None  # created: a new session's cookie to set
        if received.is_passive:
            if session is None or received.force_authn:  # nothing to sign in with, and no page may be shown
                saml_response = self.idp.response(
                    received.issuer, received.acs_url, in_response_to=received.request_id, status=STATUS_REQUESTER,
                    sub_status=STATUS_NO_PASSIVE, status_message="AADSTS50058: A silent sign-in request was sent "
                    "but no user is signed in.")
                return self._auto_post(received, saml_response, relay_state), None
        elif session is None or received.force_authn or session["user"] is not self.user:
            # The person authenticates (again): a new session, AuthnInstant now unless the test chose one.
            chosen = self.user.get("authn_instant")
            created = new_id()
            session = self.sessions[created] = {"user": self.user,
                                                "authn_instant": chosen or dt.datetime.now(dt.timezone.utc)}
        user = dict(session["user"])
        user.pop("authn_instant", None)
        saml_response = self.idp.response(received.issuer, received.acs_url, user.pop("name_id"),
                                          user.pop("object_id", None), user.pop("email", None),
                                          in_response_to=received.request_id,
                                          authn_instant=session["authn_instant"], **user)
        return self._auto_post(received, saml_response, relay_state), created

    @staticmethod
    def _auto_post(received: ReceivedRequest, saml_response: str, relay_state: str | None) -> bytes:
        relay = (f'<input type="hidden" name="RelayState" value="{escape(relay_state)}">'
                 if relay_state is not None else "")
        # Entra's own answer page: a form that posts itself to the ACS.
        return (f'<!doctype html><html><head><title>Working...</title></head><body>'
                f'<form method="POST" name="hiddenform" action="{escape(received.acs_url)}">'
                f'<input type="hidden" name="SAMLResponse" value="{saml_response}">{relay}'
                f'<noscript><input type="submit" value="Continue"></noscript></form>'
                f'<script>document.forms[0].submit();</script></body></html>').encode()

    # -- single logout

    @staticmethod
    def sp_slo_url(sp_entity_id: str) -> str:
        """Where the admin would put Gatehouse's SLO URL in Entra ("Logout Url"): next to its metadata URL."""
        return sp_entity_id.removesuffix("/metadata") + "/slo"

    def signed_redirect(self, destination: str, parameter: str, xml: bytes, relay_state: str | None = None) -> str:
        """A URL of the HTTP-Redirect binding, signed over the query as Entra signs it (RSA-SHA256)."""
        return self.idp.signed_redirect(destination, parameter, xml, relay_state)

    def _logout_answer(self, request: etree._Element, query: dict, *, status: str = STATUS_SUCCESS,
                       sign: bool = True) -> str:
        """Entra's LogoutResponse to an SP's LogoutRequest (`status` a SAML status code; unsigned with sign=False)."""
        self.logout_requests.append(request)
        name_id = request.findtext(f"{{{NS_SAML}}}NameID")
        for cookie in [c for c, session in self.sessions.items() if session["user"].get("name_id") == name_id]:
            del self.sessions[cookie]  # as Entra does: the person's session here ends too
        destination = self.sp_slo_url(request.findtext(f"{{{NS_SAML}}}Issuer"))
        relay_state = query.get("RelayState", [None])[0]
        url = self.signed_redirect(destination, "SAMLResponse",
                                   self.idp.logout_response_xml(destination, request.get("ID"), status), relay_state)
        return url if sign else url.split("&SigAlg=")[0]

    def logout_request_url(self, sp_entity_id: str, name_id: str, session_index: str | None = None, *,
                           sign: bool = True, issue_instant: dt.datetime | None = None,
                           destination: str | None = None, not_on_or_after: dt.datetime | None = None,
                           request_id: str | None = None) -> str:
        """The LogoutRequest Entra sends to the SP when the employee signs out elsewhere (the options make the
        stale, misaddressed or replayed ones an attacker would send)."""
        url = self.signed_redirect(self.sp_slo_url(sp_entity_id), "SAMLRequest", self.idp.logout_request_xml(
            destination or self.sp_slo_url(sp_entity_id), name_id, session_index, issue_instant=issue_instant,
            not_on_or_after=not_on_or_after, request_id=request_id))
        return url if sign else url.split("&SigAlg=")[0]


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
