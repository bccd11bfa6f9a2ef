"""The Khaos simulator's wire: SOAP 1.1 envelopes, XML text values and UK wall-clock time.

Written from ``shared/contracts/khaos-control.md`` alone, never from the integration's
client (``connectors/khaos``): were the two sides to share this code, a format mistake
on one would cancel out on the other and every test would pass against a wire no real
Khaos speaks.

- Envelope: ``soap:Envelope/soap:Body/ns:{Operation}`` in the ``urn:KosWebIntf-IKosWeb``
  namespace; parameters are the operation's children, XML documents among them passed
  as escaped strings. A reply is ``ns:{Operation}Response/return`` holding the result
  document as an escaped string; a failure is ``soap:Fault`` (``faultcode``,
  ``faultstring``).
- XML is read with DTDs, entity declarations and external references refused.
- Booleans are ``-1`` (true) and ``0`` (false); money is plain decimal text; quantities
  are whole numbers (an install may write them as decimals, ``10.0000``).
- Datetimes are UK wall-clock time without an offset, ``YYYY-MM-DDTHH:MM:SS``. Khaos
  stores and compares wall-clock times: in October's repeated hour 01:10 (the second,
  GMT one) sorts before 01:45 (the first, BST one) although it happened later.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _safe_fromstring

ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SERVICE_NS = "urn:KosWebIntf-IKosWeb"
ACTION_PREFIX = SERVICE_NS + "#"
UK = ZoneInfo("Europe/London")
WALL_CLOCK = "%Y-%m-%dT%H:%M:%S"

Value = str | int | Decimal | bool | None


class BadRequestXml(ValueError):
    """A request (or a document inside it) that is not safe, well-formed XML."""


def read_xml(data: bytes | str) -> ET.Element:
    try:
        return _safe_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadRequestXml(f"refused XML: {type(exc).__name__}") from None
    except ET.ParseError as exc:
        raise BadRequestXml(f"malformed XML: {exc}") from None


def tag_name(tag: str) -> str:
    """The tag without its namespace."""
    return tag.rpartition("}")[2]


def operation_of(raw: bytes) -> ET.Element:
    """The operation element of a SOAP request envelope."""
    envelope = read_xml(raw)
    if tag_name(envelope.tag) != "Envelope":
        raise BadRequestXml("not a SOAP envelope")
    body = envelope.find(f"{{{ENVELOPE_NS}}}Body")
    if body is None or len(body) == 0:
        raise BadRequestXml("the SOAP body is empty")
    return body[0]


def _envelope() -> tuple[ET.Element, ET.Element]:
    envelope = ET.Element(f"{{{ENVELOPE_NS}}}Envelope")
    return envelope, ET.SubElement(envelope, f"{{{ENVELOPE_NS}}}Body")


def reply_envelope(operation: str, document: ET.Element) -> bytes:
    envelope, body = _envelope()
    response = ET.SubElement(body, f"{{{SERVICE_NS}}}{operation}Response")
    ET.SubElement(response, "return").text = ET.tostring(document, encoding="unicode")
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def fault_envelope(code: str, message: str) -> bytes:
    envelope, body = _envelope()
    fault = ET.SubElement(body, f"{{{ENVELOPE_NS}}}Fault")
    ET.SubElement(fault, "faultcode").text = f"soap:{code}"
    ET.SubElement(fault, "faultstring").text = message
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


# --- values --------------------------------------------------------------------------


def text(value: Value) -> str:
    if isinstance(value, bool):
        return "-1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    return "" if value is None else str(value)


def put(parent: ET.Element, tag: str, value: Value) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = text(value)
    return child


def put_all(parent: ET.Element, fields: Mapping[str, Value]) -> ET.Element:
    """One child per field; ``None`` is left out (Khaos never sends a null)."""
    for tag, value in fields.items():
        if value is not None:
            put(parent, tag, value)
    return parent


def child_text(element: ET.Element | None, tag: str) -> str | None:
    """The text of ``element``'s child ``tag``; None when there is no such child."""
    child = None if element is None else element.find(tag)
    return None if child is None else (child.text or "")


def each(element: ET.Element | None, tag: str) -> list[ET.Element]:
    return [] if element is None else element.findall(tag)


def khaos_boolean(value: str) -> bool:
    """``-1`` or ``0``, nothing else: ``ValueError`` for ``1``, ``true``…"""
    text = value.strip()
    if text not in ("-1", "0"):
        raise ValueError(f"{value!r} is not a Khaos boolean (-1 or 0)")
    return text == "-1"


def whole_number(value: str) -> int:
    """A quantity or id: ``10`` or ``10.0000``; ``ValueError`` for anything else."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if number != number.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def decimal_quantity(quantity: int) -> str:
    """How an install that stores quantities as decimals writes them."""
    return f"{quantity}.0000"


# --- UK wall-clock time ----------------------------------------------------------------


def wall_clock(instant: datetime) -> datetime:
    """The naive UK wall-clock time an instant shows."""
    return instant.astimezone(UK).replace(tzinfo=None)


def wall_text(instant: datetime) -> str:
    return wall_clock(instant).strftime(WALL_CLOCK)


def read_wall_clock(value: str) -> datetime:
    """A wire datetime as the naive wall-clock time it names (a bare date is midnight)."""
    value = value.strip()
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time())
    wall = datetime.fromisoformat(value.replace(" ", "T", 1))
    if wall.tzinfo is not None:
        raise ValueError("Khaos datetimes carry no offset")
    return wall


def instant_of(wall: datetime) -> datetime:
    """The instant a wall-clock time names: its first occurrence in October's repeated
    hour, the hour after in March's missing one (how a wall clock reads a gap)."""
    return wall.replace(tzinfo=UK, fold=0).astimezone(UTC)


def names(elements: Iterable[ET.Element]) -> list[str]:
    return [tag_name(e.tag) for e in elements]
