"""A pysaml2 CryptoBackend over the xmlsec bindings, for code that lets pysaml2's SecurityContext drive.

pysaml2 ships two backends: one runs the `xmlsec1` program per signature (temp files, a process, and a key it
may take from the document's KeyInfo), the other is the unmaintained pyXMLSecurity one, which verifies whatever
signature it finds first. This one verifies EXACTLY the element pysaml2 asks about (`node_name` with `node_id`)
through `signature.verify_enveloped`, and only with certificates we were constructed with (the tenant's IdP
metadata): a `cert_file` pysaml2 took from anywhere else (its KeyInfo fallback when metadata has no key) is
refused. Signing, encryption and decryption are not supported: Gatehouse never signs or decrypts SAML.

Importing this module imports saml2.sigver (and with it xmlschema, about a second): the ACS path does not use
it (see assertion_consumer.py); it is here for pysaml2 users, the tests and bench/acs.py.
"""
from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime, timezone
from typing import Sequence

from saml2.sigver import CryptoBackend

from .safe_xml import UntrustedXmlError, parse_untrusted
from .signature import CertificateLike, SignatureRejected, verify_enveloped

log = logging.getLogger(__name__)


class InProcessXmlsecBackend(CryptoBackend):
    """Plug into `saml2.sigver.SecurityContext(crypto=InProcessXmlsecBackend(idp.certificates), ...)`."""

    def __init__(self, certificates: Sequence[CertificateLike], now: datetime | None = None):
        super().__init__()
        self._certificates = {c.sha256: c for c in certificates}
        self._now = now

    @property
    def version(self) -> str:
        import xmlsec

        return ".".join(str(part) for part in xmlsec.get_libxmlsec_version())

    def validate_signature(self, signedtext, cert_file, cert_type, node_name, node_id) -> bool:
        """True if the element `node_name` with ID `node_id` carries a valid enveloped signature by `cert_file`."""
        if cert_type != "pem":
            return False
        certificate = self._trusted(cert_file)
        if certificate is None:
            log.warning("refused to verify with a certificate that is not in the IdP metadata")
            return False
        data = signedtext.encode("utf-8") if isinstance(signedtext, str) else signedtext
        try:
            root = parse_untrusted(data)
        except UntrustedXmlError:
            return False
        tag = _clark(node_name)
        matches = [e for e in root.iter(tag) if node_id and e.get("ID") == node_id]
        if len(matches) != 1:
            return False
        try:
            verify_enveloped(matches[0], [certificate], self._now or datetime.now(timezone.utc))
        except SignatureRejected as exc:
            log.info("signature refused: %s", exc.reason)
            return False
        return True

    def _trusted(self, cert_file) -> CertificateLike | None:
        try:
            if isinstance(cert_file, str) and "-----BEGIN" not in cert_file:
                with open(cert_file, "rb") as fh:
                    pem = fh.read().decode("ascii", "replace")
            else:
                pem = cert_file.decode() if isinstance(cert_file, bytes) else str(cert_file)
            body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
            der = base64.b64decode(body, validate=True)
        except (OSError, ValueError):
            return None
        return self._certificates.get(hashlib.sha256(der).hexdigest())

    def sign_statement(self, statement, node_name, key_file, node_id):
        raise NotImplementedError("Gatehouse never signs SAML documents")

    def encrypt(self, text, recv_key, template, key_type):
        raise NotImplementedError("Gatehouse does not encrypt SAML")

    def encrypt_assertion(self, statement, enc_key, template, key_type, node_xpath):
        raise NotImplementedError("Gatehouse does not encrypt SAML")

    def decrypt(self, enctext, key_file):
        raise NotImplementedError("Gatehouse holds no decryption key")


def _clark(node_name: str) -> str:
    """pysaml2 names elements "namespace:Tag"; lxml wants "{namespace}Tag"."""
    namespace, _, local = node_name.rpartition(":")
    return f"{{{namespace}}}{local}" if namespace else local
