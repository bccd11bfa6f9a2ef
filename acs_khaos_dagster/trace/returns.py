"""A return's journey: units, grades, the Khaos return parts and their credit, write-offs."""

from __future__ import annotations

from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.returns import ReturnsRepository
from acs_khaos_dagster.trace.model import Section, Trace, _text
from acs_khaos_dagster.trace.orders import _credits
from acs_khaos_dagster.trace.shared import _effects, _effects_where, _tail


def trace_return(store: Store, return_ref: str) -> Trace:
    """Units, grades, the Khaos return parts with their credit, write-offs and ex-hire
    moves, exceptions and audit entries of one ACS return."""
    repo = ReturnsRepository(store.db)
    units = repo.units()
    mine = units.loc[units["return_ref"].astype(str) == return_ref]
    unit_rows = [
        (
            _text(u.unique_sku),
            _text(u.sku),
            _text(u.order_number),
            _text(u.grade),
            _text(u.action_taken),
            _text(u.received_at),
            "hire" if u.is_hire is True else ("sale" if u.is_hire is False else "not matched"),
            _text(u.associated_ref),
            _text(u.settled_by_hand_at),
        )
        for u in mine.itertuples(index=False)
    ]
    sections = [
        Section(
            "Units",
            (
                "unit",
                "sku",
                "order",
                "grade",
                "action",
                "received",
                "type",
                "Khaos part",
                "settled by hand",
            ),
            unit_rows,
            "" if unit_rows else "no unit of this return was received",
        )
    ]
    postings = repo.postings()
    parts = set(postings.loc[postings["return_ref"].astype(str) == return_ref, "associated_ref"])
    parts |= set(mine["associated_ref"].dropna().astype(str))
    sections.append(_credits(postings, parts))
    moves = repo.moves()
    moves = moves.loc[moves["return_ref"].astype(str) == return_ref]
    move_rows = [
        (
            _text(m.group_ref),
            _text(m.kind),
            _text(m.unique_sku),
            str(m.site_id),
            str(m.adjust_by),
            _text(m.reason_code),
            _text(m.value),
        )
        for m in moves.itertuples(index=False)
    ]
    sections.append(
        Section(
            "Write-offs and stock moves",
            ("group", "kind", "unit", "site", "adjust by", "reason", "value £"),
            move_rows,
            "" if move_rows else "no write-off or stock move",
        )
    )
    keys = set(postings.loc[postings["associated_ref"].isin(parts), "idempotency_key"])
    groups = set(moves["group_ref"].astype(str))
    effects = _effects_where(
        store, lambda e: e.idempotency_key in keys or e.idempotency_key in groups
        or e.business_key in parts | groups | {return_ref},
    )  # fmt: skip
    sections.append(_effects(store, effects))
    sections.extend(_tail(store, [return_ref, *sorted(parts)], effects))
    return Trace("return", return_ref, bool(unit_rows) or bool(parts), sections)
