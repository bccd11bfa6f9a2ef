"""The products flow without Dagster: ``sync_sku_master`` and ``push_skus`` called as plain
functions over the simulators (real HTTP) and a SQLite store.

Oracles are what the simulators hold: Khaos's stock items and when each last changed, the
``PUT products`` ACS received per SKU, and the store's outbox, identities and exceptions.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from acs_khaos_dagster.domain.models import StockItem
from acs_khaos_dagster.domain.sku_mapping import acs_registry_frame
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.products import (
    SkuMasterSync,
    SkuPushResult,
    push_skus,
    sync_sku_master,
)
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster_tests.flow_ports import Ports, ports

__all__ = ["ports"]

# A change saved while a sync reads is caught by the next: it re-reads five minutes back.
OVERLAP = timedelta(minutes=5)


def _sync(p: Ports) -> SkuMasterSync:
    return sync_sku_master(p.store, p.khaos, p.settings, p.now())


def _push(p: Ports, master: SkuMasterSync) -> SkuPushResult:
    registry = acs_registry_frame(p.acs.iter_products())
    return push_skus(p.store, p.acs, p.settings, master.frame, registry)


def _puts(p: Ports) -> dict[str, int]:
    return {product["sku"]: product["puts"] for product in p.acs_truth()["products"]}


def _codes(master: SkuMasterSync) -> set[str]:
    return set(master.frame["stock_code"])


def _stock_ids(p: Ports) -> list[int]:
    return sorted(i["stock_id"] for i in p.khaos_truth()["stock_items"] if i["stock_controlled"])


# --- the SKU master ---------------------------------------------------------------------------


def test_the_first_sync_reads_every_stock_item_from_the_beginning(ports: Ports) -> None:
    first = _sync(ports)

    assert first.fetched == len(ports.khaos_truth()["stock_items"]) == len(first.frame)
    assert first.since.year == 2000


def test_a_second_sync_reads_only_items_changed_since_the_watermark_less_the_overlap(
    ports: Ports,
) -> None:
    watermark = ports.now()
    first = sync_sku_master(ports.store, ports.khaos, ports.settings, watermark)
    inside, before, edited = _stock_ids(ports)[:3]
    books = ports.sandbox.khaos.books
    for stock_id in books.changed_at:  # the scenario saved every item just before
        books.changed_at[stock_id] = watermark - timedelta(hours=1)
    # Saved while the first sync read (inside the overlap) and well before it.
    books.changed_at[inside] = watermark - OVERLAP + timedelta(minutes=1)
    books.changed_at[before] = watermark - OVERLAP - timedelta(minutes=1)
    ports.sandbox.advance(timedelta(minutes=30))
    ports.sandbox.khaos.update_stock_item(edited, description="Edited after the first sync")

    second = _sync(ports)

    assert second.since == watermark - OVERLAP
    assert second.fetched == 2
    assert len(second.frame) == len(first.frame)
    row = second.frame.set_index("stock_id").loc[edited]
    assert row["description"] == "Edited after the first sync"


def test_a_full_refresh_reads_everything_again(ports: Ports) -> None:
    first = _sync(ports)
    ports.sandbox.advance(timedelta(minutes=30))

    again = sync_sku_master(
        ports.store, ports.khaos, ports.settings, ports.now(), full_refresh=True
    )

    assert again.fetched == first.fetched and again.since.year == 2000


def test_an_unreadable_stock_code_opens_one_exception_and_a_readable_one_closes_it(
    ports: Ports,
) -> None:
    ports.sandbox.khaos.add_stock_item(
        StockItem(stock_id=99003, stock_code="HAT#01", style="HAT", colour="RED", size="OS"),
        levels={},
    )
    first = _sync(ports)

    assert first.refused == 1 and "HAT#01" not in _codes(first)
    [problem] = ports.open_exceptions("invalid_sku_code")
    assert problem.row.entity_ref == "code:HAT#01"

    ports.sandbox.advance(timedelta(minutes=30))
    ports.sandbox.khaos.rename_stock_code(99003, "HAT-01")
    second = _sync(ports)

    assert second.refused == 0 and "HAT-01" in _codes(second)
    assert ports.open_exceptions("invalid_sku_code") == []
    [closed] = ports.store.exceptions.list(type="invalid_sku_code", status="resolved")
    assert closed.row.entity_ref == "code:HAT#01"


def test_an_unreadable_stock_code_stays_open_while_khaos_still_holds_it_unchanged(
    ports: Ports,
) -> None:
    ports.sandbox.khaos.add_stock_item(
        StockItem(stock_id=99003, stock_code="HAT#01", style="HAT", colour="RED", size="OS"),
        levels={},
    )
    ports.sandbox.advance(timedelta(minutes=30))
    _sync(ports)
    ports.sandbox.advance(timedelta(minutes=30))
    _sync(ports)

    assert [p.row.entity_ref for p in ports.open_exceptions("invalid_sku_code")] == ["code:HAT#01"]


# --- the push to ACS --------------------------------------------------------------------------


def test_a_sku_whose_content_changed_is_pushed_once_and_not_again_when_unchanged(
    ports: Ports,
) -> None:
    master = _sync(ports)
    first = _push(ports, master)
    before = _puts(ports)
    # A SKU ACS already holds as Khaos has it: not in the first push.
    held = master.frame[master.frame["stock_controlled"] & ~master.frame["discontinued"]]
    row = held[held["stock_code"].isin(before) & ~held["stock_id"].isin(first.frame["stock_id"])]
    stock_id, sku = int(row.iloc[0]["stock_id"]), str(row.iloc[0]["stock_code"])
    ports.sandbox.advance(timedelta(minutes=30))
    ports.sandbox.khaos.update_stock_item(stock_id, description="A new description")

    changed_master = _sync(ports)
    # The registry as the run read it before pushing: ACS still holds the old description.
    registry = acs_registry_frame(ports.acs.iter_products())
    changed = push_skus(ports.store, ports.acs, ports.settings, changed_master.frame, registry)

    assert list(changed.frame["acs_sku"]) == [sku]
    assert changed.changed == 1 and changed.frame.iloc[0]["state"] == "done"
    assert _puts(ports)[sku] == before[sku] + 1

    # The same content again, even against a registry that has not caught up: not re-sent.
    again = push_skus(ports.store, ports.acs, ports.settings, changed_master.frame, registry)
    ports.sandbox.advance(timedelta(minutes=30))
    fresh = _push(ports, _sync(ports))

    assert again.queued == 0 and fresh.queued == 0
    assert _puts(ports)[sku] == before[sku] + 1


def test_pushes_and_their_identities_land_together(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = _sync(ports)

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("identities cannot be recorded")

    monkeypatch.setattr(SkuIdentities, "record", refuse)
    with pytest.raises(RuntimeError, match="identities cannot be recorded"):
        _push(ports, master)

    assert ports.store.outbox.find(kind=str(EffectKind.ACS_PRODUCT)) == []

    monkeypatch.undo()
    pushed = _push(ports, master)

    assert pushed.queued > 0
    enqueued = ports.store.outbox.find(kind=str(EffectKind.ACS_PRODUCT))
    assert len(enqueued) == pushed.queued
    assert set(SkuIdentities(ports.store.db).last_pushed_hashes()) >= set(pushed.frame["stock_id"])
