"""The simulators' wire code is their own (issue 18, point 1).

Were the simulators to parse and build the wire with the client's modules, a format
mistake in those modules would be made on both sides and cancel out: every test would
pass against a wire no real system speaks. So ``sandbox/`` imports nothing from
``connectors/``, and a mistake made on the client's side alone now shows.
"""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

import acs_khaos_dagster.sandbox as sandbox_package
from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.connectors.khaos import xml as client_xml
from acs_khaos_dagster.domain.models import CreditMode, CustomerReturn, ReturnItem
from acs_khaos_dagster.sandbox.khaos import IssuePolicy, KhaosInstall
from acs_khaos_dagster_tests import khaos_fixtures
from acs_khaos_dagster_tests.khaos_fixtures import (
    A_DRESS_S,
    DRESS_S,
    ORDER_A,
    SELLING,
    KhaosHarness,
    make_harness,
)

khaos_server = khaos_fixtures.khaos_server
khaos = khaos_fixtures.khaos
SANDBOX = Path(sandbox_package.__file__).parent


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                package = path.parent.relative_to(SANDBOX.parent.parent).parts
                base = ".".join(package[: len(package) - node.level + 1])
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module or "")
    return names


def test_no_module_of_the_sandbox_imports_the_connectors() -> None:
    offenders = {
        str(path.relative_to(SANDBOX)): name
        for path in SANDBOX.rglob("*.py")
        for name in _imports(path)
        if name == "acs_khaos_dagster.connectors"
        or name.startswith("acs_khaos_dagster.connectors.")
    }
    assert offenders == {}


def test_the_import_check_sees_an_import_of_the_connectors(tmp_path: Path) -> None:
    # The walk above must catch both spellings, or the test above proves nothing.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import acs_khaos_dagster.connectors.acs.files\n"
        "from acs_khaos_dagster.connectors.khaos.xml import parse_xml\n"
    )
    assert _imports(probe) == [
        "acs_khaos_dagster.connectors.acs.files",
        "acs_khaos_dagster.connectors.khaos.xml",
    ]


def test_a_boolean_the_client_writes_wrongly_is_refused_not_cancelled_out(
    khaos: KhaosHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client-side mistake: booleans as 1/0 instead of Khaos's -1/0. When the simulator
    # read requests with the client's own parser, it accepted them and nothing failed.
    monkeypatch.setattr(client_xml, "bool_text", lambda value: "1" if value else "0")
    ret = CustomerReturn(
        associated_ref="RET-BOOL",
        customer_urn="C500001",
        credit_mode=CreditMode.NONE,
        items=(ReturnItem(sku="DRESS-RED-S", quantity=1, return_reason="RESTOCK"),),
    )

    with pytest.raises(PermanentError, match="ProcessReturn must be -1 or 0"):
        khaos.client().import_customer_return(ret)
    assert khaos.truth()["customer_returns"] == []


def test_quantities_an_install_writes_as_decimals_are_read_as_whole_units(
    khaos_server: object,
) -> None:
    # The modelled install writes 10; another writes 10.0000 (read with int() it failed).
    h = make_harness(khaos_server, IssuePolicy(), install=KhaosInstall(decimal_quantities=True))
    client = h.client()

    (level,) = client.export_stock_status(["DRESS-RED-S"], SELLING)
    (order,) = client.export_order_status([ORDER_A])

    assert (level.stock_id, level.level, level.available) == (DRESS_S, 10, 6)
    line = next(li for li in order.lines if li.order_item_id == A_DRESS_S)
    assert line.quantity == 3 and line.unit_net == Decimal("66.67")


def test_a_fractional_quantity_is_refused_with_the_field_named() -> None:
    from acs_khaos_dagster.connectors.khaos.wire import whole_number

    assert whole_number("10.0000", "Quantity") == 10
    with pytest.raises(ValueError, match=r"Quantity '2\.5' is not a whole number"):
        whole_number("2.5", "Quantity")
