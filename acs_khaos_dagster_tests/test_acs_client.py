"""The ACS client against the simulator over real HTTP: conversions, errors, retries."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import httpx
import pytest

from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.acs.wire import normalise_postcode, split_address_lines
from acs_khaos_dagster.connectors.errors import (
    AmbiguousError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from acs_khaos_dagster.domain.models import (
    AcsOrderState,
    AcsProduct,
    AcsProductStatus,
    Address,
)
from acs_khaos_dagster_tests.acs_fixtures import (  # noqa: F401 (fixtures)
    ACCOUNT,
    KEY,
    LAG,
    MULTI_ORDER,
    AcsHarness,
    acs_fixture,
    acs_server_fixture,
    make_order,
)

# --- address and postcode rules (pure) -----------------------------------------------------------


def test_short_address_lines_are_kept_as_they_are() -> None:
    assert split_address_lines(["Flat 2", "1 High Street", "", ""]) == [
        "Flat 2",
        "1 High Street",
        "",
        "",
    ]


def test_long_address_line_continues_on_the_next_line_at_a_word_boundary() -> None:
    long_line = "Flat 12, The Old Woollen Mill Buildings, Riverside Walk"
    assert split_address_lines([long_line, "Partick", "", ""]) == [
        "Flat 12, The Old Woollen Mill",
        "Buildings, Riverside Walk",
        "Partick",
        "",
    ]


def test_address_that_cannot_fit_four_lines_has_its_last_line_shortened() -> None:
    lines = split_address_lines(["A" * 10 + " " + "B" * 30] * 4)
    assert len(lines) == 4
    assert all(len(line) <= 35 for line in lines)
    assert lines[:3] == ["A" * 10, "B" * 30, "A" * 10]


def test_a_word_longer_than_a_line_is_cut() -> None:
    assert split_address_lines(["X" * 40]) == ["X" * 35, "X" * 5, "", ""]


def test_postcode_is_upper_cased_with_one_space() -> None:
    assert normalise_postcode(" sw1a1aa ") == "SW1A 1AA"
    assert normalise_postcode("G1  1AA") == "G1 1AA"


def test_postcode_longer_than_10_is_an_error() -> None:
    with pytest.raises(ValueError, match="longer than 10"):
        normalise_postcode("1234567890123", country="US")


# --- products ------------------------------------------------------------------------------------


def test_registered_product_is_pending_then_active_after_the_lag(acs: AcsHarness) -> None:
    with acs.client() as client:
        client.put_product(
            AcsProduct(
                sku="NEW-1",
                barcode="5012345678900",
                style="NEW",
                colour="RED",
                size="10",
                description="New dress",
            )
        )
        assert client.get_product("NEW-1").status is AcsProductStatus.PENDING
        acs.advance(LAG)
        product = client.get_product("NEW-1")
    assert product.status is AcsProductStatus.ACTIVE
    assert product.description == "New dress"


def test_iter_products_follows_the_cursors_to_the_end(acs: AcsHarness) -> None:
    with acs.client() as client:
        products = list(client.iter_products(page_size=1))
    assert [p.sku for p in products] == ["DRESS-RED-10", "SKIRT-PNK-8", "TEE-BLK-L", "TEE-BLK-M"]
    assert acs.stats()["calls"]["list_products"] == 4
    assert {p.sku: p.status for p in products}["SKIRT-PNK-8"] is AcsProductStatus.INACTIVE


# --- orders --------------------------------------------------------------------------------------


def test_putting_the_same_order_twice_makes_one_revision(acs: AcsHarness) -> None:
    with acs.client() as client:
        client.put_order(make_order("SO-1"))
        client.put_order(make_order("SO-1"))
    truth = acs.order_truth("SO-1")
    assert (truth["revisions"], truth["puts"]) == (1, 2)
    assert truth["body"]["AccountCode"] == ACCOUNT
    assert truth["body"]["OrderDate"] == "2024-01-08T09:00:00Z"


def test_long_address_is_split_by_the_client_and_accepted(acs: AcsHarness) -> None:
    address = Address(
        line1="Flat 12, The Old Woollen Mill Buildings, Riverside Walk",
        line2="Partick",
        city="Glasgow",
        postcode="g117ab",
    )
    with acs.client() as client:
        client.put_order(make_order("SO-1", address=address))
    body = acs.order_truth("SO-1")["body"]
    assert [body[f"Delivery_Address{n}"] for n in range(1, 5)] == [
        "Flat 12, The Old Woollen Mill",
        "Buildings, Riverside Walk",
        "Partick",
        "",
    ]
    assert body["Delivery_Postcode"] == "G11 7AB"


def test_over_long_postcode_is_refused_before_sending(acs: AcsHarness) -> None:
    address = Address(line1="1 Main Road", postcode="SW1A 1AA EXTRA", country="GB")
    with acs.client() as client, pytest.raises(PermanentError) as caught:
        client.put_order(make_order("SO-1", address=address))
    assert caught.value.code == "FIELD_TOO_LONG"
    assert "put_order" not in acs.stats()["calls"]


def test_unknown_sku_raises_permanent_error_with_the_errors(acs: AcsHarness) -> None:
    with acs.client() as client, pytest.raises(PermanentError) as caught:
        client.put_order(make_order("SO-1", [("1", "NOPE-1", 1), ("2", "SKIRT-PNK-8", 1)]))
    error = caught.value
    assert type(error) is PermanentError
    assert (error.status_code, error.code) == (422, "UNKNOWN_SKU")
    assert [d["code"] for d in error.details] == ["UNKNOWN_SKU", "INACTIVE_SKU"]


def test_get_order_reads_status_and_shipments(acs: AcsHarness) -> None:
    with acs.client() as client:
        client.put_order(
            make_order(MULTI_ORDER, [("101", "TEE-BLK-M", 2), ("102", "TEE-BLK-L", 2)])
        )
        assert client.get_order(MULTI_ORDER).status is AcsOrderState.RECEIVED
        acs.advance(timedelta(hours=8))
        status = client.get_order(MULTI_ORDER)
    assert status.status is AcsOrderState.DESPATCHED
    assert [s.shipment_id for s in status.shipments] == [f"{MULTI_ORDER}-1", f"{MULTI_ORDER}-2"]
    assert status.shipments[1].closed_short[0].reason == "DAMAGED_AT_PICK"
    assert status.shipments[0].despatched_at.tzinfo is not None


def test_cancel_before_picking_works(acs: AcsHarness) -> None:
    with acs.client() as client:
        client.put_order(make_order("SO-1"))
        client.put_order(make_order("SO-1", cancelled=True))
        assert client.get_order("SO-1").status is AcsOrderState.CANCELLED


def test_cancel_after_picking_raises_conflict_order_locked(acs: AcsHarness) -> None:
    with acs.client() as client:
        client.put_order(make_order("SO-1"))
        acs.advance(timedelta(hours=1))
        with pytest.raises(ConflictError) as caught:
            client.put_order(make_order("SO-1", cancelled=True))
    assert (caught.value.status_code, caught.value.code) == (409, "ORDER_LOCKED")


def test_unknown_order_raises_not_found(acs: AcsHarness) -> None:
    with acs.client() as client, pytest.raises(NotFoundError):
        client.get_order("NOPE")


# --- despatch feed -------------------------------------------------------------------------------


def test_read_despatches_keeps_the_last_pages_cursor_so_later_events_are_read(
    acs: AcsHarness,
) -> None:
    with acs.client() as client:
        for n in range(3):
            client.put_order(make_order(f"SO-{n}"))
        acs.advance(timedelta(hours=4))
        first, cursor = client.read_despatches(None, limit=2)
        last_page = cursor
        second, cursor = client.read_despatches(cursor, limit=2)
        client.put_order(make_order("SO-LATER"))
        acs.advance(timedelta(hours=4))
        again, _ = client.read_despatches(cursor, limit=2)
    assert [e.order_number for e in first + second] == ["SO-0", "SO-1", "SO-2"]
    # Only next_cursor is in the contract: caught up, the last page is read again.
    assert cursor == last_page
    assert [e.order_number for e in again] == ["SO-2", "SO-LATER"]


def test_read_despatches_passes_duplicates_through_for_the_caller_to_drop(
    acs: AcsHarness,
) -> None:
    with acs.client() as client:
        client.put_order(make_order("SO-1"))
        acs.advance(timedelta(hours=4))
        acs.fault(operation="list_despatches", kind="duplicate", count=1)
        events, _ = client.read_despatches(None, limit=10)
    assert [e.event_id for e in events] == [events[0].event_id] * 2


# --- error mapping and retries -------------------------------------------------------------------


def test_wrong_key_raises_authentication_error_without_the_key(acs: AcsHarness) -> None:
    secret = "wrong-but-secret-key-123"
    with acs.client(key=secret) as client, pytest.raises(AuthenticationError) as caught:
        client.get_order("SO-1")
    assert caught.value.status_code == 401
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert KEY not in repr(acs.client())


def test_read_retries_a_429_after_the_retry_after_delay(acs: AcsHarness) -> None:
    acs.fault(operation="list_products", kind="rate_limit", count=1, retry_after=1)
    started = time.monotonic()
    with acs.client() as client:
        products = list(client.iter_products())
    assert time.monotonic() - started >= 1.0
    assert len(products) == 4
    assert acs.stats()["calls"]["list_products"] == 2


def test_read_retries_5xx_and_a_reset(acs: AcsHarness) -> None:
    acs.fault(operation="get_order", kind="error_5xx", count=1)
    acs.fault(operation="get_order", kind="reset_before", count=1)
    with acs.client() as client:
        client.put_order(make_order("SO-1"))
        assert client.get_order("SO-1").status is AcsOrderState.RECEIVED
    assert acs.stats()["calls"]["get_order"] == 3


def test_read_gives_up_with_transient_error_after_its_retries(acs: AcsHarness) -> None:
    acs.fault(operation="get_order", kind="error_5xx", rate=1.0)
    with acs.client(read_retries=2) as client, pytest.raises(TransientError) as caught:
        client.get_order("SO-1")
    assert caught.value.status_code == 503
    assert acs.stats()["calls"]["get_order"] == 3


def test_write_answered_by_a_5xx_is_ambiguous_and_not_retried(acs: AcsHarness) -> None:
    # ACS's own 5xx and a gateway's after ACS applied the PUT look alike: read back first.
    acs.fault(operation="put_order", kind="error_5xx", count=1)
    with acs.client() as client, pytest.raises(AmbiguousError):
        client.put_order(make_order("SO-1"))
    assert acs.stats()["calls"]["put_order"] == 1
    assert acs.truth()["orders"] == []


def test_write_rate_limited_carries_retry_after_and_is_not_retried(acs: AcsHarness) -> None:
    acs.fault(operation="put_product", kind="rate_limit", count=1, retry_after=30)
    with acs.client() as client, pytest.raises(TransientError) as caught:
        client.put_product(AcsProduct(sku="NEW-1"))
    assert caught.value.retry_after == 30
    assert acs.stats()["calls"]["put_product"] == 1


def test_write_timing_out_after_applying_is_ambiguous(acs: AcsHarness) -> None:
    acs.fault(operation="put_order", kind="timeout_after", count=1, latency_s=0.6)
    with acs.client(timeout=httpx.Timeout(0.3)) as client, pytest.raises(AmbiguousError):
        client.put_order(make_order("SO-1"))
    assert acs.order_truth("SO-1")["status"] == "RECEIVED"
    assert acs.stats()["calls"]["put_order"] == 1


def test_write_timing_out_before_applying_is_also_ambiguous(acs: AcsHarness) -> None:
    acs.fault(operation="put_order", kind="timeout_before", count=1, latency_s=0.6)
    with acs.client(timeout=httpx.Timeout(0.3)) as client, pytest.raises(AmbiguousError):
        client.put_order(make_order("SO-1"))
    time.sleep(0.4)
    assert acs.truth()["orders"] == []  # the client cannot tell; the outbox reads back


def test_write_cut_by_a_reset_is_ambiguous(acs: AcsHarness) -> None:
    acs.fault(operation="put_order", kind="reset_after", count=1)
    with acs.client() as client, pytest.raises(AmbiguousError):
        client.put_order(make_order("SO-1"))
    assert acs.order_truth("SO-1")["puts"] == 1


def test_refused_connection_is_transient(acs: AcsHarness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AcsClient(f"http://127.0.0.1:{port}", KEY, ACCOUNT, read_retries=0)
    with client, pytest.raises(TransientError) as caught:
        client.put_order(make_order("SO-1"))
    assert type(caught.value) is TransientError
