"""Bad-input catalogue, wire: what the clients do with bad answers and awkward data.

Against the simulators on loopback, or, for answers no simulator gives (malformed
JSON or XML, a fault echoing a secret), a tiny server on loopback that sends exactly
those bytes. Each test is one catalogue entry of ``RELIABILITY.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.acs.drop import LocalDrop, UnsafeDropPath
from acs_khaos_dagster.connectors.errors import (
    AmbiguousError,
    AuthenticationError,
    ConnectorError,
    PermanentError,
)
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.connectors.khaos.xml import (
    UnsafeXmlError,
    build_fault,
    build_request,
    build_response,
    parse_reply,
)
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    Contact,
    DespatchEvent,
    OrderLine,
    Parcel,
    SalesOrder,
    ShipmentLine,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.domain.shipments import CarrierMap, PostingProblem, to_despatch_posting
from acs_khaos_dagster.sandbox.http import serve_in_thread
from acs_khaos_dagster_tests import khaos_fixtures
from acs_khaos_dagster_tests.acs_fixtures import (  # noqa: F401 (fixtures)
    KEY,
    AcsHarness,
    acs_fixture,
    acs_server_fixture,
    make_order,
)
from acs_khaos_dagster_tests.khaos_fixtures import (
    ORDER_NAMES,
    PASSWORD,
    SELLING,
    TOTE,
    USER,
    KhaosHarness,
)

khaos_server = khaos_fixtures.khaos_server
khaos = khaos_fixtures.khaos

AWKWARD = "Zoë & Groß <VIP> 'quoted' \"double\" 🧥"

# --- a loopback server that answers with whatever bytes a test sets ---------------------


class _Canned:
    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.content_type = "application/json"

    def set(self, status: int, body: bytes | str, content_type: str) -> None:
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", self.content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture(scope="module")
def canned_server() -> Iterator[tuple[str, _Canned]]:
    app = _Canned()
    base_url, stop = serve_in_thread(app)
    try:
        yield base_url, app
    finally:
        stop()


@pytest.fixture
def canned(canned_server: tuple[str, _Canned]) -> _Canned:
    canned_server[1].set(200, b"", "application/json")
    return canned_server[1]


@pytest.fixture
def canned_url(canned_server: tuple[str, _Canned]) -> str:
    return canned_server[0]


def acs_client(base_url: str, key: str = KEY) -> AcsClient:
    return AcsClient(base_url, key, "BRAND01", read_retries=0, sleep=lambda _: None)


def khaos_client(base_url: str, password: str = PASSWORD) -> KhaosClient:
    return KhaosClient(
        f"{base_url}/K.exe/soap/IKosWeb",
        USER,
        password,
        timeout=2.0,
        read_retries=0,
        sleep=lambda _: None,
    )


def no_secret(error: BaseException, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error) and secret not in repr(error)
        for detail in getattr(error, "details", []):
            assert secret not in str(detail)


# --- ACS JSON ---------------------------------------------------------------------------


def test_acs_order_for_a_sku_it_does_not_know_is_permanent_with_the_field_errors(
    acs: AcsHarness,
) -> None:
    with acs.client() as client, pytest.raises(PermanentError) as caught:
        client.put_order(make_order("SO-1", [("1", "NOT-A-SKU", 1)]))
    error = caught.value
    assert (type(error), error.status_code, error.code) == (PermanentError, 422, "UNKNOWN_SKU")
    assert error.details[0]["code"] == "UNKNOWN_SKU" and "NOT-A-SKU" in str(error.details)


def test_acs_order_names_with_xml_specials_accents_and_emoji_round_trip(acs: AcsHarness) -> None:
    order = make_order("SO-ÉTÉ&1", comments=AWKWARD).model_copy(
        update={
            "contact": Contact(
                first_name="Zoë 🧥", last_name="O'Brien & <Groß>", email="zoe@example.test"
            )
        }
    )
    with acs.client() as client:
        client.put_order(order)
        assert client.get_order("SO-ÉTÉ&1").order_number == "SO-ÉTÉ&1"
    body = acs.order_truth("SO-ÉTÉ&1")["body"]
    assert (body["FirstName"], body["LastName"]) == ("Zoë 🧥", "O'Brien & <Groß>")
    assert body["Comments"] == AWKWARD


def test_acs_malformed_json_is_a_permanent_unexpected_response(
    canned: _Canned, canned_url: str
) -> None:
    canned.set(200, b'{"events": [ {"event_id": ', "application/json")
    with acs_client(canned_url) as client, pytest.raises(PermanentError) as caught:
        client.read_despatch_page(None)
    assert caught.value.code == "UNEXPECTED_RESPONSE" and "not JSON" in str(caught.value)


@pytest.mark.parametrize("quantity", ["abc", -1, 0])
def test_acs_despatch_with_a_bad_quantity_is_a_permanent_unexpected_response(
    canned: _Canned, canned_url: str, quantity: object
) -> None:
    event = {
        "event_id": "E1",
        "order_number": "SO1",
        "shipment_id": "S1",
        "despatched_at": "2026-03-01T10:00:00Z",
        "lines": [{"line_item_id": "7", "sku": "DRS-1", "quantity": quantity}],
    }
    canned.set(200, json.dumps({"events": [event], "next_cursor": None}), "application/json")
    with acs_client(canned_url) as client, pytest.raises(PermanentError) as caught:
        client.read_despatch_page(None)
    assert caught.value.code == "UNEXPECTED_RESPONSE"
    assert "list_despatches" in str(caught.value)


def test_acs_wrong_key_is_an_authentication_error_without_either_key(acs: AcsHarness) -> None:
    wrong = "wrong-secret-key-9f8e"
    with acs.client(key=wrong) as client, pytest.raises(AuthenticationError) as caught:
        client.put_order(make_order("SO-1"))
    assert caught.value.status_code == 401
    no_secret(caught.value, wrong, KEY)


def test_acs_error_echoing_the_key_does_not_carry_it_on(canned: _Canned, canned_url: str) -> None:
    canned.set(
        422,
        json.dumps({"errors": [{"field": "key", "code": "BAD", "message": f"key {KEY} bad"}]}),
        "application/json",
    )
    with acs_client(canned_url) as client, pytest.raises(PermanentError) as caught:
        client.put_order(make_order("SO-1"))
    assert caught.value.code == "BAD" and "**********" in str(caught.value)
    no_secret(caught.value, KEY)


# --- Khaos SOAP/XML ---------------------------------------------------------------------


def test_khaos_names_with_xml_specials_and_accents_come_back_intact(khaos: KhaosHarness) -> None:
    (order,) = [o for o in khaos.client().export_orders([9], SELLING) if o.order_id == ORDER_NAMES]
    assert order.contact.last_name == "O'Brien & Sons <VIP>"
    assert order.delivery_address.line2 == "Rue d'Été & <Co>"


def test_khaos_write_with_eszett_emoji_and_xml_specials_reads_back_the_same(
    khaos: KhaosHarness,
) -> None:
    client = khaos.client()
    client.import_stock_adjustments(
        StockAdjustmentGroup(
            site_id=SELLING,
            group_ref=AWKWARD,
            lines=(AdjustmentLine(stock_id=TOTE, adjust_by=1, reason_code="VARIANCE"),),
        )
    )
    assert [g.group_ref for g in client.export_stock_adjustments(group_ref=AWKWARD)] == [AWKWARD]


def test_khaos_malformed_xml_is_permanent_on_a_read_and_ambiguous_on_a_write(
    canned: _Canned, canned_url: str
) -> None:
    canned.set(200, b"<soap:Envelope><soap:Body><broken", "text/xml")
    with khaos_client(canned_url) as client:
        with pytest.raises(PermanentError, match="unusable reply: malformed XML"):
            client.get_sites()
        with pytest.raises(AmbiguousError, match="unusable reply"):
            client.move_invoices([1], 12)  # it may have been applied: read back first


def test_khaos_fault_surfaces_its_code_and_message(khaos: KhaosHarness) -> None:
    group = StockAdjustmentGroup(
        site_id=SELLING,
        group_ref="G1",
        lines=(AdjustmentLine(stock_id=TOTE, adjust_by=1, reason_code="NOT-A-REASON"),),
    )
    with pytest.raises(PermanentError) as caught:
        khaos.client().import_stock_adjustments(group)
    assert caught.value.code is not None and caught.value.code.startswith("Client.")
    assert "NOT-A-REASON" in str(caught.value)
    no_secret(caught.value, PASSWORD)


def test_khaos_fault_echoing_the_password_does_not_carry_it_on(
    canned: _Canned, canned_url: str
) -> None:
    canned.set(500, build_fault("Client.Validation", f"login {USER}/{PASSWORD} bad"), "text/xml")
    with khaos_client(canned_url) as client, pytest.raises(PermanentError) as caught:
        client.get_sites()
    assert caught.value.code == "Client.Validation" and "**********" in str(caught.value)
    no_secret(caught.value, PASSWORD)


def test_khaos_wrong_password_is_an_authentication_error_without_either_password(
    khaos: KhaosHarness,
) -> None:
    wrong = "not-the-password-41c2"
    with pytest.raises(AuthenticationError) as caught:
        khaos.client(password=wrong).get_sites()
    assert caught.value.code == "Client.Authentication"
    no_secret(caught.value, wrong, PASSWORD)


_EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<SITES><SITE><SiteID>1</SiteID><SiteName>&x;</SiteName></SITE></SITES>"
)
_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    "<SITES><SITE><SiteID>1</SiteID><SiteName>&c;</SiteName></SITE></SITES>"
)


@pytest.mark.parametrize("document", [_EXTERNAL, _BOMB], ids=["external-entity", "bomb"])
def test_khaos_reply_with_an_entity_is_refused_by_the_client(
    canned: _Canned, canned_url: str, document: str
) -> None:
    with pytest.raises(UnsafeXmlError, match="refused XML"):
        parse_reply(build_response("GetSiteList", document))
    canned.set(200, build_response("GetSiteList", document), "text/xml")
    with khaos_client(canned_url) as client, pytest.raises(PermanentError) as caught:
        client.get_sites()
    assert "refused XML" in str(caught.value) and "root:" not in str(caught.value)


@pytest.mark.parametrize("document", [_EXTERNAL, _BOMB], ids=["external-entity", "bomb"])
def test_khaos_simulator_refuses_a_request_carrying_an_entity(
    khaos: KhaosHarness, document: str
) -> None:
    body = build_request("GetSiteList", USER, PASSWORD, {}).decode()
    doctype = document[document.index("<!DOCTYPE") : document.index("]>") + 2]
    envelope = body.replace(
        "?>",
        "?>" + doctype.replace("<!DOCTYPE r", "<!DOCTYPE x").replace("<!DOCTYPE b", "<!DOCTYPE x"),
        1,
    )
    response = khaos.post_raw(envelope.encode())
    assert response.status_code == 500
    reply = parse_reply(response.content)
    assert reply.fault is not None and reply.fault.code == "Client.Validation"
    assert "refused XML" in reply.fault.message


# --- despatches the domain cannot place -------------------------------------------------


def _event(order: str, quantity: int, line: str = "7") -> DespatchEvent:
    return DespatchEvent(
        event_id="E1",
        order_number=order,
        shipment_id="S1",
        despatched_at=datetime(2026, 3, 1, 10, tzinfo=UTC),
        carrier="DPD",
        service="ND",
        parcels=(Parcel(parcel_no=1, tracking_number="T1"),),
        lines=(ShipmentLine(line_item_id=line, sku="DRS-1", quantity=quantity),),
    )


def _khaos_order(quantity: int = 2) -> SalesOrder:
    return SalesOrder(
        order_id=1,
        order_code="SO1",
        order_date=datetime(2026, 3, 1, tzinfo=UTC) - timedelta(1),
        site_id=SELLING,
        lines=(
            OrderLine(
                order_item_id=7,
                stock_id=1,
                stock_code="DRS-1",
                quantity=quantity,
                unit_net=Decimal("10"),
            ),
        ),
    )


def test_a_despatch_for_an_unknown_order_is_a_problem_not_a_posting() -> None:
    result = to_despatch_posting(_event("SO-NOPE", 1), None, CarrierMap())
    assert isinstance(result, PostingProblem) and result.kind == "unknown_order"
    assert "no Khaos order SO-NOPE" in result.message


def test_a_despatch_of_more_units_than_ordered_is_a_problem_naming_the_line() -> None:
    result = to_despatch_posting(_event("SO1", 3), _khaos_order(2), CarrierMap())
    assert isinstance(result, PostingProblem) and result.kind == "over_shipment"
    assert result.line_item_ids == ("7",) and "line 7: ships 3, ordered 2" in result.message


def test_a_despatch_for_a_line_the_order_does_not_have_is_a_problem() -> None:
    result = to_despatch_posting(_event("SO1", 1, line="99"), _khaos_order(), CarrierMap())
    assert isinstance(result, PostingProblem) and result.kind == "unknown_line"
    assert "has no line 99" in result.message


# --- the drop folder ----------------------------------------------------------------------


@pytest.fixture
def drop(tmp_path: Path) -> LocalDrop:
    folder = tmp_path / "drop"
    folder.mkdir()
    (tmp_path / "outside.csv").write_text("secret\n")
    (folder / "stock_units_BRAND01_20260302070000.csv").write_text("ok\n")
    os.symlink(tmp_path / "outside.csv", folder / "stock_units_BRAND01_20260303070000.csv")
    return LocalDrop(folder)


def test_a_symlinked_file_in_the_drop_is_not_listed(drop: LocalDrop) -> None:
    assert [e.name for e in drop.list("stock_units_*.csv")] == [
        "stock_units_BRAND01_20260302070000.csv"
    ]


def test_a_symlinked_file_in_the_drop_is_refused_on_fetch(drop: LocalDrop) -> None:
    with pytest.raises(UnsafeDropPath) as caught:
        drop.fetch("stock_units_BRAND01_20260303070000.csv")
    assert isinstance(caught.value, ConnectorError) and "link" in str(caught.value)


@pytest.mark.parametrize("name", ["../outside.csv", "../../etc/passwd", "..", "a\\..\\b"])
def test_a_path_traversal_name_is_refused_on_fetch(drop: LocalDrop, name: str) -> None:
    with pytest.raises(UnsafeDropPath, match="not a plain file name"):
        drop.fetch(name)


def test_a_khaos_reply_missing_a_stock_id_names_the_field_and_the_operation(
    canned: _Canned, canned_url: str
) -> None:
    document = "<STOCKS><STOCK><SiteID>1</SiteID><Available>4</Available></STOCK></STOCKS>"
    canned.set(200, build_response("ExportStockStatus", document), "text/xml")
    with khaos_client(canned_url) as client, pytest.raises(PermanentError) as caught:
        client.export_stock_status(["TOTE-1"], None)
    assert caught.value.operation == "ExportStockStatus"
    assert "StockID missing in the reply" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "why"),
    [("X" * 51, "longer than 50"), ("TOTE#1", "#")],
    ids=["over-50-characters", "hash"],
)
def test_a_code_khaos_sends_that_breaks_the_code_rules_is_refused_with_the_reason(
    canned: _Canned, canned_url: str, code: str, why: str
) -> None:
    # Khaos's own data can hold codes we could never send back (imported before the
    # rules, or edited in the database): they are reported, not silently used.
    canned.set(
        200,
        build_response("GetStockList", f"<STOCKCODES><StockCode>{code}</StockCode></STOCKCODES>"),
        "text/xml",
    )
    with khaos_client(canned_url) as client:
        codes, refused = client.requestable_codes(
            client.get_stock_list(datetime(2026, 1, 1, tzinfo=UTC))
        )
    assert codes == [] and why in refused[code]
