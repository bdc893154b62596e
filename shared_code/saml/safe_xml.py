"""Parsing of XML that came from outside (an IdP, a browser, a metadata URL) without trusting it.

libxml2 is told not to load DTDs, not to resolve entities and not to touch the network; a document that even
declares a DOCTYPE is refused, because SAML never needs one and every XXE / entity-expansion attack starts there.
lxml is used (not ElementTree) because the xmlsec bindings verify signatures on lxml trees in place: the tree we
verify is then the very tree we read values from.
"""
from __future__ import annotations

from lxml import etree

NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XENC = "http://www.w3.org/2001/04/xmlenc#"
NS_XML = "http://www.w3.org/XML/1998/namespace"


class UntrustedXmlError(Exception):
    """The bytes are not a document we are willing to look at. `kind` is `not_xml` or `doctype_forbidden`."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _parser() -> etree.XMLParser:
    # A fresh parser per document: lxml parsers must not be shared between threads, and the
    # Functions worker may run several invocations at once. Creating one costs microseconds.
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=False,  # kept so that we can refuse them (comment injection), never silently dropped
        remove_pis=False,
        remove_blank_text=False,
        collect_ids=False,  # xml:id attributes must not become IDs that a Reference could resolve to
        strip_cdata=True,
    )


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse `data` and return the root element, or raise UntrustedXmlError."""
    # Cheap refusal before libxml2 sees a DTD at all (the docinfo check below catches other encodings).
    head = data[:4096]
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data or b"<\x00!\x00D\x00O\x00C" in head or b"\x00<\x00!\x00D\x00O" in head:
        raise UntrustedXmlError("doctype_forbidden", "the document declares a DOCTYPE")
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as exc:
        raise UntrustedXmlError("not_xml", f"not well-formed XML ({_first_line(exc)})") from None
    except (ValueError, TypeError) as exc:
        raise UntrustedXmlError("not_xml", f"not XML ({exc})") from None
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UntrustedXmlError("doctype_forbidden", "the document declares a DOCTYPE")
    root = tree.getroot()
    if root is None or not isinstance(root.tag, str):
        raise UntrustedXmlError("not_xml", "the document has no root element")
    return root


def first_comment_or_pi(root: etree._Element) -> etree._Element | None:
    """The first comment or processing instruction in the document (inside or around the root), if any."""
    for sibling in root.itersiblings(preceding=True):
        return sibling
    for sibling in root.itersiblings():
        return sibling
    for node in root.iter(etree.Comment, etree.ProcessingInstruction, etree.Entity):
        return node
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:200]
