"""The outbox and the exception queue as a flow uses them: open and close problems,
read effects' states, send the due effects of some kinds inside the run, and record
thousands of rows a batch per transaction.

Moved from ``dagster_kit/results.py`` (which re-exports them) so that flows need no Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.effects import EffectKind, effect_handlers
from acs_khaos_dagster.store import DispatchReport, Store, Transaction

T = TypeVar("T")
POSTING_BATCH = 500  # releases or shipments recorded per transaction


class ExceptionSpec(BaseModel):
    """One problem for the exception queue (``sync_exceptions`` reads these fields)."""

    type: str
    entity_ref: str
    message: str
    details: dict[str, Any] = {}


def sync_exceptions(
    store: Store,
    problems: Iterable[object],
    types: Iterable[str],
    *,
    owns: Callable[[str], bool] = lambda ref: True,
) -> dict[str, int]:
    """Open (or count again) each problem, and close those of ``types`` no longer seen.

    ``problems`` are objects with ``type``, ``entity_ref``, ``message`` and ``details``
    (or ``exception_type``/``exception_ref``). Returns how many are open per type.
    Only refs for which ``owns(ref)`` is true are closed here; the others of the same
    type belong to another asset.
    """
    seen: dict[str, list[str]] = {str(t): [] for t in types}
    for problem in problems:
        type_ = str(getattr(problem, "type", None) or problem.exception_type)  # type: ignore[attr-defined]
        ref = str(getattr(problem, "entity_ref", None) or problem.exception_ref)  # type: ignore[attr-defined]
        details = getattr(problem, "details", None)
        store.exceptions.raise_exception(
            type_,
            ref,
            problem.message,
            details if isinstance(details, dict) else None,  # type: ignore[attr-defined]
        )
        seen.setdefault(type_, []).append(ref)
    for type_, refs in seen.items():
        others = [
            item.row.entity_ref
            for item in store.exceptions.list(type=type_)
            if not owns(item.row.entity_ref)
        ]
        store.exceptions.auto_resolve(type_, [*refs, *others])
    return {type_: len(refs) for type_, refs in seen.items()}


def effect_states(db: Store, keys: Iterable[str | None], missing: str = "") -> list[str]:
    """The outbox state of each effect by key, in order (``missing`` for none or no key)."""
    keys = list(keys)
    known = db.outbox.states(k for k in keys if k)
    return [known.get(k, missing) if k else missing for k in keys]


def dispatch(
    store: Store,
    settings: Settings,
    kinds: Iterable[EffectKind],
    *,
    acs: AcsClient | None = None,
    khaos: KhaosClient | None = None,
) -> DispatchReport:
    """Send the due effects of ``kinds`` now, inside this run (retries wait for a later run)."""
    wanted = {str(kind) for kind in kinds}
    handlers = {k: h for k, h in effect_handlers(acs, khaos).items() if str(k) in wanted}
    return store.dispatcher(handlers, settings.outbox, http=settings.http).drain()


def transaction_batches(db: Store, items: Sequence[T]) -> Iterator[tuple[Transaction, Sequence[T]]]:
    """``items`` ``POSTING_BATCH`` at a time, each batch in a transaction of its own (a brand's
    first load or despatch day is thousands of records; one commit each is the cost)."""
    for first in range(0, len(items), POSTING_BATCH):
        with db.transaction() as session:
            yield session, items[first : first + POSTING_BATCH]
