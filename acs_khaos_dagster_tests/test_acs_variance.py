"""ACS accounts as they really differ, simulated, and the integration's readers and client
against each (issue 18, points 6 and 7): times with an offset, with ``Z``, in UK wall-clock
time, day first; the API gateway's 403 quota; a gateway error after applying; feeds that
replay, reset, delay and re-publish; files late, twice and out of order; SKUs that stay
pending or go back to review.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.acs.files import read_returns, read_stock_units
from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.connectors.errors import AuthenticationError, TransientError
from acs_khaos_dagster.domain.models import AcsProduct, AcsProductStatus
from acs_khaos_dagster.sandbox.acs.install import AcsInstall
from acs_khaos_dagster_tests.acs_fixtures import (  # noqa: F401 (fixtures)
    ACCOUNT,
    KEY,
    LAG,
    MULTI_ORDER,
    AcsHarness,
    acs_fixture,
    acs_server_fixture,
    make_harness,
    make_order,
)

SUMMER = datetime(2024, 7, 8, 9, 0, tzinfo=UTC)  # a Monday; 10:00 in the UK (BST)
STYLES: dict[str, AcsTimeRules] = {
    "utc_z": AcsTimeRules(),
    "offset": AcsTimeRules(),
    "uk_local": AcsTimeRules(time_without_offset="uk_local"),
    "uk_local_day_first": AcsTimeRules(dates_day_first=True),
}


def summer(acs_server: Any, tmp_path: Path, timestamps: str) -> AcsHarness:
    install = AcsInstall(timestamps=timestamps)  # type: ignore[arg-type]
    return make_harness(acs_server, tmp_path / timestamps, install, start=SUMMER)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --- times (point 6) ----------------------------------------------------------------------------


@pytest.mark.parametrize("timestamps", list(STYLES))
def test_every_way_an_account_writes_times_reads_as_the_same_instants(
    acs_server: Any, tmp_path: Path, timestamps: str
) -> None:
    h = summer(acs_server, tmp_path, timestamps)
    h.client().put_order(make_order("SO-1"))
    h.advance(timedelta(hours=2))  # the units are allocated, picked, packed: new event times
    (path,) = h.sim.write_daily_files()

    read = read_stock_units(path, times=STYLES[timestamps])

    assert read.quarantined == []
    assert read.snapshot_at == SUMMER + timedelta(hours=2)
    packed = [
        t
        for t, o in zip(
            read.units["last_event_at"].to_pylist(),
            read.units["order_number"].to_pylist(),
            strict=True,
        )
        if o == "SO-1"
    ]
    assert packed == [SUMMER + timedelta(hours=2)]


def test_a_summer_time_without_an_offset_is_uk_time_not_utc(
    acs_server: Any, tmp_path: Path
) -> None:
    h = summer(acs_server, tmp_path, "uk_local")
    (path,) = h.sim.write_daily_files()
    assert _rows(path)[0]["snapshot_at"] == "2024-07-08T10:00:00"  # what ACS wrote

    assert read_stock_units(path).snapshot_at == SUMMER  # 09:00 UTC, not 10:00


def test_times_without_an_offset_can_be_declared_utc(acs_server: Any, tmp_path: Path) -> None:
    h = summer(acs_server, tmp_path, "uk_local")
    (path,) = h.sim.write_daily_files()
    rules = AcsTimeRules(time_without_offset="utc")
    assert read_stock_units(path, times=rules).snapshot_at == SUMMER + timedelta(hours=1)


def test_day_first_dates_are_quarantined_with_the_setting_named_unless_expected(
    acs_server: Any, tmp_path: Path
) -> None:
    h = summer(acs_server, tmp_path, "uk_local_day_first")
    (path,) = h.sim.write_daily_files()
    assert _rows(path)[0]["snapshot_at"] == "08/07/2024 10:00:00"

    refused = read_stock_units(path)

    assert refused.units.num_rows == 0 and refused.quarantined
    assert all("acs.dates_day_first" in q.reason for q in refused.quarantined)
    assert read_stock_units(path, times=AcsTimeRules(dates_day_first=True)).quarantined == []


def test_returns_received_at_follows_the_same_rules(acs_server: Any, tmp_path: Path) -> None:
    h = summer(acs_server, tmp_path, "uk_local_day_first")
    body = make_order("HIRE-1", [("1", "DRESS-RED-10", 1)], hire=True)
    h.client().put_order(body)
    h.advance(timedelta(days=6))
    returns = next(p for p in h.sim.write_daily_files() if p.name.startswith("returns_"))

    read = read_returns(returns, times=AcsTimeRules(dates_day_first=True))

    (received,) = read.returns["received_at"].to_pylist()
    assert read.quarantined == [] and received.minute == 0 and received.tzinfo is not None
    assert _rows(returns)[0]["received_at"].count("/") == 2


@pytest.mark.parametrize("timestamps", list(STYLES))
def test_the_despatch_feed_reads_as_the_same_instants_whatever_the_style(
    acs_server: Any, tmp_path: Path, timestamps: str
) -> None:
    h = summer(acs_server, tmp_path, timestamps)
    with h.client(times=STYLES[timestamps]) as client:
        client.put_order(make_order("SO-1"))
        h.advance(timedelta(hours=4))
        events, _ = client.read_despatches(None)
        status = client.get_order("SO-1")
    truth = h.truth()["despatch_events"][0]["despatched_at"]
    expected = datetime.fromisoformat(truth.replace("Z", "+00:00"))
    assert [e.despatched_at for e in events] == [expected]
    assert status.shipments[0].despatched_at == expected


# --- the API gateway (point 7) --------------------------------------------------------------


def test_a_quota_answer_is_403_with_retry_after(acs: AcsHarness) -> None:
    acs.fault(operation="list_products", kind="quota_403", count=1, retry_after=5)
    response = acs.api("GET", "/products")
    assert response.status_code == 403 and response.headers["retry-after"] == "5"


def test_a_read_waits_out_a_quota_and_succeeds(acs: AcsHarness) -> None:
    acs.fault(operation="list_products", kind="quota_403", count=1, retry_after=1)
    slept: list[float] = []
    with acs.client(sleep=slept.append) as client:
        products = list(client.iter_products())
    assert products and slept and slept[0] >= 1


def test_a_write_meeting_the_quota_is_rate_limited_not_an_authentication_failure(
    acs: AcsHarness,
) -> None:
    acs.fault(operation="put_product", kind="quota_403", count=1, retry_after=30)
    with acs.client() as client, pytest.raises(TransientError) as caught:
        client.put_product(AcsProduct(sku="NEW-1", status=AcsProductStatus.PENDING))
    assert caught.value.retry_after == 30 and caught.value.status_code == 403


def test_a_403_without_retry_after_is_still_an_authentication_failure() -> None:
    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"errors": [{"field": "", "code": "FORBIDDEN"}]})

    client = AcsClient("https://acs.test", KEY, ACCOUNT, transport=httpx.MockTransport(forbidden))
    with client, pytest.raises(AuthenticationError):
        client.get_order("SO-1")


def test_a_gateway_error_after_applying_answers_502_and_the_order_is_there(
    acs: AcsHarness,
) -> None:
    acs.fault(operation="put_order", kind="applied_then_5xx", count=1)
    response = acs.api("PUT", "/orders/SO-G.json", json=_order_body(acs, "SO-G"))
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert acs.order_truth("SO-G")["status"] == "RECEIVED"


def _order_body(acs: AcsHarness, number: str) -> dict[str, Any]:
    from acs_khaos_dagster.connectors.acs.wire import order_to_wire

    return order_to_wire(make_order(number), ACCOUNT)


# --- the despatch feed (point 7) ------------------------------------------------------------


def _ship(acs: AcsHarness, *numbers: str) -> None:
    with acs.client() as client:
        for number in numbers:
            client.put_order(make_order(number))
    acs.advance(timedelta(hours=4))


def _page(acs: AcsHarness, cursor: str | None = None, limit: int = 2) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    return acs.api("GET", "/despatches", params=params).json()


def _orders(page: dict[str, Any]) -> list[str]:
    return [e["order_number"] for e in page["events"]]


def test_a_replay_re_delivers_the_page_before_after_the_cursor_moved(acs: AcsHarness) -> None:
    _ship(acs, "SO-1", "SO-2", "SO-3")
    first = _page(acs)
    acs.fault(operation="list_despatches", kind="replay", count=1)
    second = _page(acs, first["next_cursor"])
    assert _orders(first) == ["SO-1", "SO-2"]
    assert _orders(second) == ["SO-1", "SO-2", "SO-3"]


def test_a_cursor_reset_serves_the_feed_again_from_its_start(acs: AcsHarness) -> None:
    _ship(acs, "SO-1", "SO-2", "SO-3")
    first = _page(acs)
    acs.fault(operation="list_despatches", kind="cursor_reset", count=1)
    assert _orders(_page(acs, first["next_cursor"])) == ["SO-1", "SO-2"]


def test_a_delayed_closure_arrives_on_a_later_read(acs: AcsHarness) -> None:
    with acs.client() as client:
        client.put_order(
            make_order(MULTI_ORDER, [("101", "TEE-BLK-M", 2), ("102", "TEE-BLK-L", 2)])
        )
    acs.advance(timedelta(hours=8))
    acs.fault(operation="list_despatches", kind="delay", count=1)
    now = _page(acs, limit=10)
    later = _page(acs, limit=10)
    assert [e["shipment_id"] for e in now["events"]] == [f"{MULTI_ORDER}-1"]
    assert [e["shipment_id"] for e in later["events"]] == [f"{MULTI_ORDER}-1", f"{MULTI_ORDER}-2"]
    assert later["events"][1]["closed_short"]


@pytest.mark.parametrize(("kind", "lines"), [("republish", 2), ("republish_partial", 1)])
def test_a_shipment_is_published_again_under_a_new_event_id(
    acs: AcsHarness, kind: str, lines: int
) -> None:
    with acs.client() as client:
        client.put_order(make_order("SO-2L", [("1", "TEE-BLK-M", 1), ("2", "TEE-BLK-L", 1)]))
    acs.advance(timedelta(hours=4))
    acs.fault(operation="list_despatches", kind=kind, count=1)
    (original,) = _page(acs, limit=10)["events"]
    again = _page(acs, limit=10)["events"]
    assert len(again) == 2 and again[1]["shipment_id"] == original["shipment_id"]
    assert again[1]["event_id"] != original["event_id"] and len(again[1]["lines"]) == lines


# --- daily files (point 7) -------------------------------------------------------------------


def test_a_late_snapshot_arrives_after_the_returns_file_and_a_newer_snapshot(
    acs: AcsHarness,
) -> None:
    with acs.client() as client:
        client.put_order(make_order("HIRE-1", [("1", "DRESS-RED-10", 1)], hire=True))
    acs.advance(timedelta(days=6))
    acs.fault(operation="stock_units", kind="file_late", count=1)
    today = acs.sim.write_daily_files()
    acs.advance(timedelta(days=1))
    tomorrow = acs.sim.write_daily_files()
    assert [p.name.split("_")[0] for p in today] == ["returns"]  # before its snapshot
    stamp = today[0].name.rsplit("_", 1)[1]
    held = [p for p in tomorrow if p.name == f"stock_units_{ACCOUNT}_{stamp}"]
    assert len(tomorrow) == 2 and len(held) == 1  # and after the next day's snapshot


def test_a_file_sent_twice_arrives_again_days_later_under_a_new_name(acs: AcsHarness) -> None:
    acs.fault(operation="stock_units", kind="file_twice", count=1, later_by=2)
    (first,) = acs.sim.write_daily_files()
    acs.advance(timedelta(days=1))
    acs.sim.write_daily_files()
    acs.advance(timedelta(days=1))
    third = acs.sim.write_daily_files()
    resent = [p for p in third if p.read_bytes() == first.read_bytes()]
    assert len(third) == 2 and len(resent) == 1 and resent[0].name != first.name


# --- SKUs that stay pending or go back to review (point 7) ---------------------------------------


def test_an_account_that_never_sets_a_sku_up_leaves_it_pending(
    acs_server: Any, tmp_path: Path
) -> None:
    h = make_harness(acs_server, tmp_path, AcsInstall(sets_up_skus=False))
    with h.client() as client:
        client.put_product(AcsProduct(sku="NEW-1", barcode="5000000000001"))
        h.advance(LAG * 10)
        assert client.get_product("NEW-1").status == AcsProductStatus.PENDING


def test_a_sku_sent_back_to_review_is_pending_until_set_active_again(acs: AcsHarness) -> None:
    acs.sim.send_back_to_review("TEE-BLK-M")
    acs.advance(LAG * 2)
    with acs.client() as client:
        assert client.get_product("TEE-BLK-M").status == AcsProductStatus.PENDING
        acs.sim.set_product_status("TEE-BLK-M", "active")
        assert client.get_product("TEE-BLK-M").status == AcsProductStatus.ACTIVE
