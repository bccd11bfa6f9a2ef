"""Safe XML for the Khaos SOAP service: one parser, one builder, the envelope.

Parsing goes through defusedxml with DTDs, entity declarations and external
references all forbidden: a document carrying a DOCTYPE or an entity is refused
outright (``UnsafeXmlError``), never expanded. Building goes through
``xml.etree.ElementTree``, which escapes every text value; nothing is ever
assembled by string concatenation.

Wire shape (SOAP 1.1)::

    <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
      <soap:Body>
        <ns:Operation xmlns:ns="urn:KosWebIntf-IKosWeb">
          <Credentials><UserName>..</UserName><Password>..</Password></Credentials>
          <Param1>..</Param1>          <!-- scalars as text -->
          <Items>&lt;ITEMS&gt;..</Items>  <!-- XML documents as escaped strings -->
        </ns:Operation>
      </soap:Body>
    </soap:Envelope>

The reply is ``<ns:OperationResponse><return>escaped XML document</return>``; a
failure is a ``soap:Fault`` with ``faultcode`` (``soap:Server.Busy``,
``soap:Client.Authentication``, ``soap:Client.Validation``, ``soap:Client.NotFound``)
and ``faultstring``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
KOS_NS = "urn:KosWebIntf-IKosWeb"
SOAP_ACTION_PREFIX = f"{KOS_NS}#"

ET.register_namespace("soap", SOAP_ENV_NS)

# Scalars the builder accepts; ``None`` means "omit the element" (Khaos rejects nulls).
Scalar = str | int | Decimal | bool | None


class UnsafeXmlError(ValueError):
    """The document carries a DOCTYPE, an entity or external reference, or is not XML."""


def parse_xml(data: bytes | str) -> ET.Element:
    """Parse untrusted XML with DTDs, entities and external references refused."""
    try:
        return _defused_fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise UnsafeXmlError(f"refused XML: {type(exc).__name__}") from None
    except ET.ParseError as exc:
        raise UnsafeXmlError(f"malformed XML: {exc}") from None


def bool_text(value: bool) -> str:
    """Khaos booleans: ``-1`` true, ``0`` false."""
    return "-1" if value else "0"


def parse_bool(text: str | None) -> bool:
    value = (text or "").strip().lower()
    return value in {"-1", "1", "true", "yes"}


def scalar_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return bool_text(value)
    if value is None:
        return ""
    return str(value)


def sub(parent: ET.Element, tag: str, value: Scalar = None) -> ET.Element:
    """Append ``<tag>value</tag>`` (text escaped by ElementTree)."""
    child = ET.SubElement(parent, tag)
    if value is not None:
        child.text = scalar_text(value)
    return child


def add_fields(parent: ET.Element, fields: Mapping[str, Scalar]) -> ET.Element:
    """Append one child per field, omitting ``None`` values (never send a null)."""
    for tag, value in fields.items():
        if value is not None:
            sub(parent, tag, value)
    return parent


def to_text(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


def text_of(element: ET.Element, tag: str, default: str = "") -> str:
    child = element.find(tag)
    if child is None or child.text is None:
        return default
    return child.text


def int_of(element: ET.Element, tag: str, default: int | None = None) -> int | None:
    text = text_of(element, tag).strip()
    return int(text) if text else default


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(element: ET.Element | None, tag: str) -> Iterable[ET.Element]:
    return [] if element is None else element.findall(tag)


# --- envelope ---------------------------------------------------------------


def build_request(
    operation: str, username: str, password: str, params: Mapping[str, Scalar | ET.Element]
) -> bytes:
    """The SOAP request; an ``Element`` parameter is sent as an escaped XML document string."""
    envelope = ET.Element(f"{{{SOAP_ENV_NS}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body")
    op = ET.SubElement(body, f"{{{KOS_NS}}}{operation}")
    creds = ET.SubElement(op, "Credentials")
    sub(creds, "UserName", username)
    sub(creds, "Password", password)
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, ET.Element):
            sub(op, name, to_text(value))
        else:
            sub(op, name, value)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def build_response(operation: str, document: ET.Element | str) -> bytes:
    envelope = ET.Element(f"{{{SOAP_ENV_NS}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body")
    resp = ET.SubElement(body, f"{{{KOS_NS}}}{operation}Response")
    ret = ET.SubElement(resp, "return")
    ret.text = document if isinstance(document, str) else to_text(document)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def build_fault(code: str, message: str) -> bytes:
    envelope = ET.Element(f"{{{SOAP_ENV_NS}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body")
    fault = ET.SubElement(body, f"{{{SOAP_ENV_NS}}}Fault")
    sub(fault, "faultcode", f"soap:{code}")
    sub(fault, "faultstring", message)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


@dataclass(frozen=True)
class SoapFault:
    code: str  # without the envelope prefix, e.g. "Server.Busy"
    message: str


@dataclass(frozen=True)
class SoapReply:
    operation: str
    document: ET.Element | None  # the parsed ``return`` document, if any
    fault: SoapFault | None


def body_of(envelope: ET.Element) -> ET.Element:
    if local_name(envelope.tag) != "Envelope":
        raise UnsafeXmlError("not a SOAP envelope")
    body = envelope.find(f"{{{SOAP_ENV_NS}}}Body")
    if body is None or len(body) == 0:
        raise UnsafeXmlError("SOAP envelope without a body element")
    return body


def parse_reply(data: bytes) -> SoapReply:
    """Parse a response envelope (refusing unsafe XML in it and in its inner document)."""
    body = body_of(parse_xml(data))
    first = body[0]
    if local_name(first.tag) == "Fault":
        code = text_of(first, "faultcode").strip()
        code = code.split(":", 1)[1] if ":" in code else code
        return SoapReply("", None, SoapFault(code, text_of(first, "faultstring")))
    name = local_name(first.tag)
    operation = name.removesuffix("Response")
    ret = first.find("return")
    document = None
    if ret is not None and ret.text and ret.text.strip():
        document = parse_xml(ret.text)
    return SoapReply(operation, document, None)
