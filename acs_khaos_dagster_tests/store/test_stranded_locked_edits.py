"""An edit ACS refused as picked (``ORDER_LOCKED``) after its order left the release stage
(ACS shipped it meanwhile) becomes an ``order_locked`` exception for operations, once.

Found by the scale soak: the refused send sat parked under a technical ``effect_failed``
for the integration team, and no release run read the order again to say what it meant.
"""

from __future__ import annotations

from typing import Any

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import ConflictError
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.order_edits import settle_stranded_locked_edits
from acs_khaos_dagster.store import Store

from .conftest import FakeClock

SETTINGS = OutboxSettings().model_copy(update={"max_attempts": 1})


class PickingStarted:
    idempotent = True

    def send(self, payload: dict[str, Any]) -> None:
        raise ConflictError(
            "acs put_order: order SO7 is DESPATCHED: picking has started (HTTP 409) [ORDER_LOCKED]",
            system="acs",
            operation="put_order",
        )

    def read_back(self, payload: dict[str, Any]) -> None:
        return None


def _refused_edit(store: Store, clock: FakeClock) -> str:
    effect = store.outbox.enqueue(
        EffectKind.ACS_ORDER, "acs", "SO7", "order:SO7:rev2", {"OrderNumber": "SO7"}
    )
    store.dispatcher(
        {EffectKind.ACS_ORDER: PickingStarted()},
        SETTINGS,
        name="d",
        monotonic=lambda: 0.0,
        owner_gone=lambda owner: False,
    ).drain()
    assert store.outbox.get(effect.id).state == "parked"
    return effect.idempotency_key


def _open(store: Store, type_: str) -> list[str]:
    return [i.row.entity_ref for i in store.exceptions.list(type=type_) if i.row.status == "open"]


def test_a_refused_edit_of_an_order_gone_from_the_release_stage_is_raised_for_operations(
    store: Store, clock: FakeClock
) -> None:
    key = _refused_edit(store, clock)
    assert _open(store, "effect_failed") == [key]

    assert settle_stranded_locked_edits(store, sending=set()) == 1

    assert _open(store, "order_locked") == ["order:SO7"]
    assert _open(store, "effect_failed") == []
    assert settle_stranded_locked_edits(store, sending=set()) == 0  # raised once


def test_a_refused_edit_of_an_order_this_run_is_sending_is_left_to_the_release(
    store: Store, clock: FakeClock
) -> None:
    key = _refused_edit(store, clock)
    assert settle_stranded_locked_edits(store, sending={"SO7"}) == 0
    assert _open(store, "effect_failed") == [key]
    assert _open(store, "order_locked") == []
