"""Alert texts carry no customer data (``alerts/privacy.py``): email addresses, phone
numbers and UK postcodes are blanked wherever they appear, and a failed call to ACS or
Khaos is described from the integration's own record, never with the other system's
message (which echoes the customer's values it refused)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.alerts.privacy import (
    REDACTED,
    connector_failure_text,
    is_connector_failure,
    redact_personal_data,
)

# --- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    ["jane@example.com", "jane.doe+orders@mail.example.co.uk", "o'brien@shop-mail.ie"],
)
def test_an_email_address_is_blanked(email: str) -> None:
    assert redact_personal_data(f"contact {email} today") == f"contact {REDACTED} today"


@pytest.mark.parametrize(
    "phone",
    ["07700 900123", "07700900123", "+44 20 7946 0958", "020-7946-0958", "+353 1 234 5678"],
)
def test_a_phone_number_is_blanked(phone: str) -> None:
    assert redact_personal_data(f"call {phone} now") == f"call {REDACTED} now"


@pytest.mark.parametrize("postcode", ["SW1A 1AA", "LS1 4AB", "m1 1ae", "EC1A1BB", "GIR 0AA"])
def test_a_uk_postcode_is_blanked_in_any_case_with_or_without_its_space(postcode: str) -> None:
    assert redact_personal_data(f"ship to {postcode}.") == f"ship to {REDACTED}."


@pytest.mark.parametrize(
    "text",
    [
        "SO-1042 held: courier DPD",
        "ACS SKU WIDGET-RED-L, StockID 40213, 3 units",
        "invoice INV-000123 at stage 12",
        "variance of 1234 units on 2026-06-10",
        "return R-77:U-0001 unmatched",
    ],
)
def test_order_numbers_skus_codes_and_dates_are_left_as_they_are(text: str) -> None:
    assert redact_personal_data(text) == text


def test_every_kind_is_blanked_in_one_text() -> None:
    text = "Jane <jane@example.com>, 07700 900123, 12 Acacia Avenue, Leeds LS1 4AB; SO-1042"
    assert redact_personal_data(text) == (
        f"Jane <{REDACTED}>, {REDACTED}, 12 Acacia Avenue, Leeds {REDACTED}; SO-1042"
    )


_local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+", min_size=1, max_size=20)
_domain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_words = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ -:;,", max_size=30)


@given(before=_words, local=_local, host=_domain, tld=_domain, after=_words)
def test_no_email_address_survives_redaction(
    before: str, local: str, host: str, tld: str, after: str
) -> None:
    email = f"{local}@{host}.{tld}"
    redacted = redact_personal_data(f"{before} {email} {after}")
    assert email not in redacted
    assert "@" not in redacted


@given(digits=st.text(alphabet="0123456789", min_size=10, max_size=10), prefix=_words)
def test_no_uk_mobile_number_survives_redaction(digits: str, prefix: str) -> None:
    number = "07" + digits[:3] + " " + digits[3:9]
    redacted = redact_personal_data(f"{prefix} {number}")
    assert number not in redacted
    assert REDACTED in redacted


@given(text=st.text(max_size=80))
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    once = redact_personal_data(text)
    assert redact_personal_data(once) == once


# --- failures of calls to another system ---------------------------------------------------------


def test_a_record_naming_an_error_class_is_a_connector_failure() -> None:
    assert is_connector_failure({"error_class": "AcsRejected"})


@pytest.mark.parametrize("details", [None, {}, {"kind": "acs_order_put", "message": "x"}])
def test_a_record_without_an_error_class_is_not_a_connector_failure(details: dict | None) -> None:
    assert not is_connector_failure(details)


def test_a_rejected_call_says_what_was_sent_where_and_the_error_class() -> None:
    text = connector_failure_text(
        {
            "kind": "acs_order_put",
            "target": "acs",
            "business_key": "SO-1042",
            "permanent": True,
            "error_class": "AcsRejected",
            "error_code": "422",
            "message": "ship_to.postcode 'LS1 4AB' is not valid for Jane Smith",
        },
        exception_id=17,
    )
    assert text == (
        "acs_order_put to acs for SO-1042 was rejected: AcsRejected [422]. "
        "ACS's own message is not repeated here (it can hold customer data): "
        "see acs-khaos exceptions show 17."
    )


def test_the_other_systems_message_is_never_repeated() -> None:
    text = connector_failure_text(
        {"error_class": "KhaosError", "message": "Jane Smith", "error_text": "Acacia Avenue"}
    )
    assert "Jane" not in text
    assert "Acacia" not in text


def test_a_retried_failure_says_how_many_times_it_failed() -> None:
    text = connector_failure_text(
        {"kind": "khaos_move_invoices", "target": "khaos", "attempts": 5, "error_class": "Timeout"}
    )
    assert text.startswith("khaos_move_invoices to khaos failed 5 times: Timeout. ")


def test_a_failure_with_nothing_known_names_the_effect_and_the_other_system_generically() -> None:
    assert connector_failure_text({"error_class": "ConnectError"}) == (
        "effect to the other system failed: ConnectError. THE OTHER SYSTEM's own message is "
        "not repeated here (it can hold customer data): see the exception queue."
    )


def test_the_fields_the_other_system_objected_to_are_named_sorted_once_each() -> None:
    text = connector_failure_text(
        {
            "target": "acs",
            "error_class": "AcsRejected",
            "error_details": [
                {"field": "ship_to.postcode", "message": "LS1 4AB invalid"},
                {"field": "email", "message": "jane@example.com invalid"},
                {"field": "ship_to.postcode", "message": "again"},
            ],
        }
    )
    assert "AcsRejected on email, ship_to.postcode. " in text
    assert "jane@" not in text
    assert "LS1" not in text


def test_a_field_name_that_is_not_a_plain_name_is_left_out() -> None:
    text = connector_failure_text(
        {
            "error_class": "AcsRejected",
            "error_details": [
                {"field": "Jane Smith, 12 Acacia Avenue"},
                {"field": "x" * 65},
                "not a mapping",
                {"message": "no field at all"},
                {"field": "lines[0].sku"},
            ],
        }
    )
    assert "AcsRejected on lines[0].sku. " in text
    assert "Jane" not in text
    assert "x" * 65 not in text
