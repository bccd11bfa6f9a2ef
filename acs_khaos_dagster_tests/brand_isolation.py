"""Oracles of brand isolation, read from what each brand's simulators recorded.

``isolation_problems`` holds one brand's completed outbox effects against its own
simulators' truth and the other brand's: each shows up in its own brand's systems and never
in the other's, every write a brand's systems took is one its own outbox asked for, and no
call was refused for its credentials (a call sent to the other brand's systems with this
brand's key or password leaves no other trace). The effects only say what to look for;
whether it happened is the simulators' word.

``secrets_in_files`` looks for secrets in every file under some folders, as bytes and,
for Parquet and zipped files (``.xlsx``), as what they decode to.
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acs_khaos_dagster.domain.models import StockAdjustmentGroup, StockMove, undo_of
from acs_khaos_dagster.effects import EffectKind

# Where each kind of effect lands: a list the simulator keeps of what it took.
ACS_PRODUCTS, ACS_ORDERS = "acs products PUT", "acs orders PUT"
INVOICE_MOVES, DESPATCHES = "khaos MoveInvoices calls", "khaos ImportDespatch calls"
ADJUSTMENTS, RETURNS = "khaos adjustment groups", "khaos customer returns"
POOL_OF = {
    EffectKind.ACS_PRODUCT: ACS_PRODUCTS,
    EffectKind.ACS_ORDER: ACS_ORDERS,
    EffectKind.KHAOS_MOVE_INVOICES: INVOICE_MOVES,
    EffectKind.KHAOS_DESPATCH: DESPATCHES,
    EffectKind.KHAOS_STOCK_ADJUSTMENT: ADJUSTMENTS,
    EffectKind.KHAOS_STOCK_MOVE: ADJUSTMENTS,
    EffectKind.KHAOS_CUSTOMER_RETURN: RETURNS,
}
# ACS PUTs are idempotent and may be sent again after an ambiguous failure: a record is
# there or not (how many PUTs is the sender's business); Khaos's writes land exactly once.
SETS = {ACS_PRODUCTS, ACS_ORDERS}


@dataclass(frozen=True)
class Effect:
    kind: str
    state: str
    payload: dict[str, Any]


def _group(group: StockAdjustmentGroup | dict[str, Any]) -> tuple:
    if isinstance(group, StockAdjustmentGroup):
        group = group.model_dump(mode="json")
    lines = sorted(
        (ln["stock_id"], ln["reason_code"], ln["adjust_to"], ln["adjust_by"])
        for ln in group["lines"]
    )
    return (group["group_ref"], group["site_id"], tuple(lines))


def recorded(truth: dict[str, Any]) -> dict[str, Counter]:
    """What one brand's simulators recorded taking, by where it landed."""
    acs, khaos = truth["acs"], truth["khaos"]
    return {
        ACS_PRODUCTS: Counter(p["sku"] for p in acs["products"] if p["puts"]),
        ACS_ORDERS: Counter(
            (o["order_number"], o["body"].get("AccountCode")) for o in acs["orders"] if o["puts"]
        ),
        INVOICE_MOVES: Counter(
            (tuple(sorted(m["invoice_ids"])), m["stage_id"]) for m in khaos["invoice_moves"]
        ),
        DESPATCHES: Counter(
            (
                c["external_ref"],
                c["order_id"],
                tuple(sorted(map(tuple, c["lines"]))),
                tuple(sorted(p["consignment_ref"] for p in c["packages"])),
            )
            for c in khaos["despatch_calls"]
        ),
        ADJUSTMENTS: Counter(_group(g) for g in khaos["adjustment_groups"]),
        RETURNS: Counter(
            (
                r["associated_ref"],
                r["customer_urn"],
                tuple(sorted((i["sku"], i["quantity"]) for i in r["items"])),
            )
            for r in khaos["customer_returns"]
        ),
    }


def landing(effect: Effect, account_code: str) -> list[tuple]:
    """What ``effect`` leaves in the records (``recorded``) of the systems it reached."""
    kind, p = EffectKind(effect.kind), effect.payload
    if kind == EffectKind.ACS_PRODUCT:
        return [p["sku"]]
    if kind == EffectKind.ACS_ORDER:  # the account is the sending brand's own setting
        return [(p["order_number"], account_code)]
    if kind == EffectKind.KHAOS_MOVE_INVOICES:
        return [(tuple(sorted(p["invoice_ids"])), p["stage_id"])]
    if kind == EffectKind.KHAOS_DESPATCH:
        refs = tuple(sorted(pkg["consignment_ref"] for pkg in p["packages"]))
        return [(p["external_ref"], p["order_id"], tuple(sorted(map(tuple, p["lines"]))), refs)]
    if kind == EffectKind.KHAOS_STOCK_ADJUSTMENT:
        return [_group(p)]
    if kind == EffectKind.KHAOS_STOCK_MOVE:
        return [_group(leg) for leg in StockMove.model_validate(p).legs]
    items = tuple(sorted((i["sku"], i["quantity"]) for i in p["items"]))
    return [(p["associated_ref"], p["customer_urn"], items)]


def _may_land(effect: Effect, account_code: str) -> list[tuple]:
    """Also what a refused status move leaves: its landed legs' reversals."""
    extra = []
    if effect.kind == EffectKind.KHAOS_STOCK_MOVE:
        extra = [_group(undo_of(leg)) for leg in StockMove.model_validate(effect.payload).legs]
    return landing(effect, account_code) + extra


def _landings(effects: Iterable[Effect], account: str, may: bool = False) -> dict[str, Counter]:
    found: dict[str, Counter] = {pool: Counter() for pool in set(POOL_OF.values())}
    for effect in effects:
        pool = POOL_OF[EffectKind(effect.kind)]
        found[pool].update((_may_land if may else landing)(effect, account))
    return found


def isolation_problems(
    code: str,
    truth: dict[str, Any],
    effects: list[Effect],
    other_truth: dict[str, Any],
    other_effects: list[Effect],
) -> list[str]:
    """What is wrong with brand ``code``'s effects and systems (nothing: ``[]``)."""
    own, other = recorded(truth), recorded(other_truth)
    account, other_account = truth["acs"]["account_code"], other_truth["acs"]["account_code"]
    done = _landings([e for e in effects if e.state == "done"], account)
    asked = _landings(effects, account, may=True)  # any state: a pending one may have landed
    others_asked = _landings(other_effects, other_account, may=True)
    problems = []
    for pool, landed in done.items():
        have = own[pool]
        missing = +(landed - have) if pool not in SETS else set(landed) - set(have)
        if missing:
            problems.append(f"{code}: done, not in its own {pool}: {sorted(missing)[:5]}")
        unasked = +(have - asked[pool]) if pool not in SETS else set(have) - set(asked[pool])
        if unasked:
            problems.append(f"{code}: its {pool} hold what it never sent: {sorted(unasked)[:5]}")
        # The other brand's systems hold none of it, unless the other brand sent the same.
        strayed = set(landed) & (set(other[pool]) - set(others_asked[pool]))
        if strayed:
            problems.append(f"{code}: done, found in the other brand's {pool}: {sorted(strayed)}")
    for system in ("acs", "khaos"):
        if truth[system].get("auth_refusals"):
            refused = truth[system]["auth_refusals"][:3]
            problems.append(f"{code}: its {system} refused calls for their credentials: {refused}")
    return problems


def done_kinds(effects: Iterable[Effect]) -> set[str]:
    return {e.kind for e in effects if e.state == "done"}


def _views(path: Path) -> Iterable[bytes]:
    """The file's bytes, and what Parquet and zip (``.xlsx``) files decode to: a compressed
    page or member need not hold a string as it is."""
    data = path.read_bytes()
    yield data
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        yield repr(table.schema.metadata).encode()
        yield table.to_pandas().to_csv().encode()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                yield archive.read(name)


def secrets_in_files(
    roots: Iterable[Path], secrets: Iterable[str], skip: Iterable[Path] = ()
) -> tuple[dict[str, list[str]], int]:
    """Each file under ``roots`` (but not under ``skip``) holding any of ``secrets``, with
    them; and how many files were read."""
    wanted = [s.encode() for s in secrets]
    skipped = [p.resolve() for p in skip]
    found: dict[str, list[str]] = {}
    read = 0
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            if any(path.resolve().is_relative_to(s) for s in skipped):
                continue
            read += 1
            hits = {s.decode() for view in _views(path) for s in wanted if s in view}
            if hits:
                found[str(path)] = sorted(hits)
    return found, read
