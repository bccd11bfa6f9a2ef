"""Alert texts carry no customer data and do not repeat what another system said.

Alerts leave the integration for Slack, Teams and mailboxes, where they are kept and
forwarded beyond anyone's control. Two rules:

- a failure of a call to ACS or Khaos (an ``effect_failed`` exception, or any exception
  whose details name the error class) is described by what the integration knows: the
  effect, the error class, the error code and the names of the fields the other system
  objected to. The other system's message is not repeated: ACS echoes the values it
  refuses, and an order's values are a customer's name, address, email and phone. The
  full text stays in the store (``acs-khaos exceptions show ID``), behind its access
  control;
- every text, title and fact is passed through ``redact_personal_data``, which blanks
  email addresses, phone numbers and UK postcodes wherever they come from (a message
  of our own built from data, a person's resolution note).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
# UK numbers (07700 900123, +44 20 7946 0958, 020-7946-0958) and other international ones.
_PHONE = re.compile(r"(?<![\w-])(?:\+\d{1,3}[\s-]?|0)\d(?:[\s-]?\d){8,10}(?![\w-])")
_UK_POSTCODE = re.compile(r"\b(?:GIR ?0AA|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})\b", re.IGNORECASE)
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\[\]]{0,63}")


def redact_personal_data(text: str) -> str:
    """``text`` with email addresses, phone numbers and UK postcodes blanked.

    >>> redact_personal_data("Jane <jane@example.com>, 07700 900123, SW1A 1AA; SO-1042")
    'Jane <[redacted]>, [redacted], [redacted]; SO-1042'
    """
    for pattern in (_EMAIL, _PHONE, _UK_POSTCODE):
        text = pattern.sub(REDACTED, text)
    return text


def is_connector_failure(details: Mapping[str, Any] | None) -> bool:
    """True for an exception recorded from a failed call to another system."""
    return bool(details) and "error_class" in details  # type: ignore[operator]


def connector_failure_text(details: Mapping[str, Any], exception_id: int | None = None) -> str:
    """What failed, from the integration's own record; never the other system's message."""
    kind = str(details.get("kind") or "effect")
    target = str(details.get("target") or "the other system")
    key = str(details.get("business_key") or "")
    attempts = details.get("attempts")
    if details.get("permanent"):
        outcome = "was rejected"
    elif attempts:
        outcome = f"failed {attempts} times"
    else:
        outcome = "failed"
    text = f"{kind} to {target}{f' for {key}' if key else ''} {outcome}: {details['error_class']}"
    if details.get("error_code"):
        text += f" [{details['error_code']}]"
    fields = sorted(
        {
            str(item["field"])
            for item in details.get("error_details") or []
            if isinstance(item, Mapping) and _FIELD_NAME.fullmatch(str(item.get("field", "")))
        }
    )
    if fields:
        text += f" on {', '.join(fields)}"
    where = f"acs-khaos exceptions show {exception_id}" if exception_id else "the exception queue"
    return (
        f"{text}. {target.upper()}'s own message is not repeated here (it can hold customer "
        f"data): see {where}."
    )
