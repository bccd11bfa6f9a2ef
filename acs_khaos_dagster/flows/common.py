"""Small pieces every flow uses: exception sync, atomic Parquet, outbox states, dispatch.

Moved verbatim from ``defs/common.py`` (which re-exports them), so flows run without Dagster.
"""

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.effects import EffectKind, effect_handlers
from acs_khaos_dagster.private_files import private_partial
from acs_khaos_dagster.store import DispatchReport, Store


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


def write_parquet_atomically(frame: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write then rename, so a reader never sees half a file; private (``0600``) throughout."""
    if not isinstance(frame, pa.Table):
        frame = pa.Table.from_pandas(frame, preserve_index=False)
    with private_partial(path) as partial:
        pq.write_table(frame, partial)


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
