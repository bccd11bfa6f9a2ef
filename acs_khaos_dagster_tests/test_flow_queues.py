"""``flows.queues``: how a flow opens and closes its problems, reads its effects' states and
records in batches, on a real SQLite store (no system, no Dagster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows import queues
from acs_khaos_dagster.flows.queues import (
    ExceptionSpec,
    effect_states,
    sync_exceptions,
    transaction_batches,
)
from acs_khaos_dagster.store import Store

TYPE = "return_unmatched"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'flow.sqlite'}") as opened:
        yield opened


def _problem(ref: str) -> ExceptionSpec:
    return ExceptionSpec(type=TYPE, entity_ref=ref, message=f"{ref} is not matched")


def _open_refs(store: Store) -> set[str]:
    return {item.row.entity_ref for item in store.exceptions.list(type=TYPE)}


def test_a_problem_seen_is_opened_and_counted_per_type(store: Store) -> None:
    counts = sync_exceptions(store, [_problem("return:A"), _problem("return:B")], [TYPE])

    assert counts == {TYPE: 2}
    assert _open_refs(store) == {"return:A", "return:B"}


def test_a_problem_no_longer_seen_closes_itself(store: Store) -> None:
    sync_exceptions(store, [_problem("return:A"), _problem("return:B")], [TYPE])

    counts = sync_exceptions(store, [_problem("return:B")], [TYPE])

    assert counts == {TYPE: 1} and _open_refs(store) == {"return:B"}


def test_a_problem_another_flow_owns_is_never_closed_here(store: Store) -> None:
    sync_exceptions(store, [_problem("recon:X")], [TYPE])

    sync_exceptions(store, [], [TYPE], owns=lambda ref: ref.startswith("return:"))

    assert _open_refs(store) == {"recon:X"}


def test_effect_states_follow_the_keys_order_with_missing_for_unknown_or_no_key(
    store: Store,
) -> None:
    kind = EffectKind.KHAOS_MOVE_INVOICES
    store.outbox.enqueue(kind, TARGET_OF[kind], "SO1", "ack:SO1:1", {"order_ids": [1]})

    states = effect_states(store, ["nope", "ack:SO1:1", None], missing="missing")

    assert states[0] == "missing" and states[2] == "missing"
    assert states[1] not in ("", "missing")


def test_records_are_committed_a_batch_per_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queues, "POSTING_BATCH", 2)

    batches = [list(batch) for _, batch in transaction_batches(store, [1, 2, 3, 4, 5])]

    assert batches == [[1, 2], [3, 4], [5]]
