"""The soak's oracles: at quiescence, what ACS physically did against what Khaos holds.

Every figure comes from the two simulators' ground truth (``/_sandbox/truth`` and the
brand's ``/_sandbox/soak/units``), never from what the integration recorded it sent or from
Khaos's log of adjustments applied. The store is read only for the last oracle (every
effect finished, every failure owned). The status → site table is written here from the
documented default policy (ARCHITECTURE.md), not imported from the code under test.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from soak.trace import level_trace

# ACS status (normalised: lower case, no spaces) -> (site for sale units, site for hire units)
SITES = {
    "selling": 1,
    "hire_stock": 2,
    "on_hire": 3,
    "inspection": 4,
    "refurbishment": 5,
    "quarantine": 6,
}
_POLICY = {
    "inwarehouse-readyforcustomer": ("selling", "hire_stock"),
    "allocated": ("selling", "hire_stock"),
    "picking": ("selling", "hire_stock"),
    "packed": ("selling", "hire_stock"),
    "receipted-nolocation": ("inspection", "inspection"),
    "awaitinginspection": ("inspection", "inspection"),
    "post-rentalinspection": ("inspection", "inspection"),
    "inwarehouseprocessing": ("inspection", "inspection"),
    "cleaning": ("refurbishment", "refurbishment"),
    "inrefurbishment": ("refurbishment", "refurbishment"),
    "inrepair": ("refurbishment", "refurbishment"),
    "quarantine": ("quarantine", "quarantine"),
    "withcustomer": ("on_hire", "on_hire"),
    "ex-hired": (None, None),
}
# Credit each grade asks for under the default grade policy (auto: a credit note raised at
# the goods' value; review: a pre-credit left for finance).
CREDIT_BY_GRADE = {"A": "auto", "B": "auto", "C": "review", "BER": "review"}


def _status(raw: str) -> str:
    return "".join(raw.lower().replace("–", "-").replace("—", "-").split())


@dataclass
class Verdict:
    broken: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    checked: Counter[str] = field(default_factory=Counter)
    advisory: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)  # printed under the broken oracles

    def fail(self, oracle: str, entity: str) -> None:
        self.broken[oracle].append(entity)

    @property
    def ok(self) -> bool:
        return not any(self.broken.values())


def check(
    acs: dict[str, Any], khaos: dict[str, Any], units: dict[str, Any], store_url: str
) -> Verdict:
    verdict = Verdict()
    owned = _open_exception_refs(store_url)
    _despatches(acs, khaos, _cancelled_and_owned(khaos, store_url), verdict, owned)
    _releases(acs, khaos, units, store_url, verdict, owned)
    _returns(units, khaos, verdict, owned)
    _write_offs(units, khaos, verdict, owned)
    _level(acs, khaos, units, verdict)
    # Advisory until its false alarm is explained: on the unpatched --small --seed 5 run
    # it flagged StockID 10014 (+1 at the first snapshot, a unit set aside and a count keyed
    # 25 over in Khaos in the same hour) while Level held. Its findings are counted, not
    # failed on (RELIABILITY.md, "Can it fail?").
    advisory = Verdict()
    _corrections(khaos, units, store_url, advisory)
    verdict.checked.update(advisory.checked)
    for entities in advisory.broken.values():
        verdict.checked["push changes != physical changes (advisory)"] += len(entities)
        verdict.advisory.extend(entities)
    _effects(store_url, verdict)
    return verdict


def _khaos_orders(khaos: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["order_code"]: o for o in khaos["orders"]}


def _cancelled_and_owned(khaos: dict[str, Any], store_url: str) -> set[str]:
    """Orders cancelled in Khaos that an open exception names (cancelled after ACS began
    picking: ACS ships anyway and Khaos refuses the despatch; people act on it)."""
    stages = {i["invoice_id"]: i["stage"] for i in khaos["invoices"]}
    cancelled = {
        o["order_code"] for o in khaos["orders"] if any(stages[i] == 1 for i in o["invoice_ids"])
    }
    if not cancelled:
        return set()
    text = _open_exception_refs(store_url)
    return {code for code in cancelled if code in text}


def _despatches(
    acs: dict[str, Any],
    khaos: dict[str, Any],
    excused: set[str],
    verdict: Verdict,
    owned: str = "",
) -> None:
    """Every ACS shipment is exactly one Khaos despatch; invoices add up to what shipped.

    A shipment whose posting the outbox gave up on (parked after its attempts, under a
    quarter of all calls faulted) may be posted 0 times only while an open, owned exception
    names it (``owned``: the open exceptions' refs and messages): visible, not lost. Posted
    twice is never excused."""
    calls = Counter(c["external_ref"] for c in khaos["despatch_calls"])
    orders = _khaos_orders(khaos)
    shipped_items: dict[int, Counter[str]] = defaultdict(Counter)
    for order in acs["orders"]:
        if order["order_number"] not in orders:
            continue
        if order["order_number"] in excused:
            verdict.checked["shipments of orders cancelled while picked (owned)"] += 1
            if any(calls[e["shipment_id"]] > 1 for e in order["shipments"]):
                verdict.fail("shipment = one Khaos despatch", f"{order['order_number']}: twice")
            continue
        for event in order["shipments"]:
            if not sum(int(line["quantity"]) for line in event["lines"]):
                continue  # wholly closed short: nothing shipped, an owned exception instead
            verdict.checked["ACS shipments"] += 1
            n = calls[event["shipment_id"]]
            if n == 0 and f"despatch:{event['shipment_id']}" in owned:
                verdict.checked["shipments parked with an open owned exception"] += 1
                continue
            if n != 1:
                verdict.fail(
                    "shipment = one Khaos despatch", f"{event['shipment_id']}: posted {n} times"
                )
            oid = orders[order["order_number"]]["order_id"]
            for line in event["lines"]:
                shipped_items[oid][str(line["line_item_id"])] += int(line["quantity"])
    invoiced: dict[int, Counter[str]] = defaultdict(Counter)
    for inv in khaos["invoices"]:
        if inv["shipped"]:
            for ln in inv["lines"]:
                invoiced[inv["order_id"]][str(ln["order_item_id"])] += ln["quantity"]
    excused_ids = {orders[code]["order_id"] for code in excused if code in orders}
    for oid in (set(shipped_items) | set(invoiced)) - excused_ids:
        if +shipped_items[oid] != +invoiced[oid]:
            verdict.fail(
                "invoices = shipped quantities",
                f"order {oid}: shipped {dict(shipped_items[oid])}, invoiced {dict(invoiced[oid])}",
            )


def _open_exception_refs(store_url: str) -> str:
    from acs_khaos_dagster.store import Store

    with Store.open(store_url, migrate=False) as store:
        return "\n".join(
            f"{item.row.entity_ref} {item.row.message}"
            for item in store.exceptions.list()
            if item.row.owner
        )


def _releases(
    acs: dict[str, Any],
    khaos: dict[str, Any],
    units: dict[str, Any],
    store_url: str,
    verdict: Verdict,
    owned: str = "",
) -> None:
    """Every released Khaos order is at ACS at its newest lines, or cancelled there; an
    edited one at its newest body unless ACS refused the edit as picking had started and an
    open ``order_locked`` exception names it (``owned``: the open exceptions' refs)."""
    at_acs = {o["order_number"]: o for o in acs["orders"]}
    edited = units.get("edited_orders", {})
    stages = {i["invoice_id"]: i["stage"] for i in khaos["invoices"]}
    exceptions = None
    for order in khaos["orders"]:
        code = order["order_code"]
        states = [stages[i] for i in order["invoice_ids"]]
        cancelled = bool(states) and all(s == 1 for s in states)
        there = at_acs.get(code)
        verdict.checked["Khaos orders"] += 1
        if cancelled:
            if there is not None and not there["cancelled"]:
                exceptions = (
                    exceptions if exceptions is not None else _open_exception_refs(store_url)
                )
                if code not in exceptions:
                    verdict.fail(
                        "cancelled order cancelled at ACS (or owned)",
                        f"{code}: live at ACS ({there['status']}) with no open exception",
                    )
            continue
        if there is None:
            verdict.fail("released order at ACS", f"{code}: not at ACS")
            continue
        want = Counter({str(ln["order_item_id"]): ln["quantity"] for ln in order["lines"]})
        got = Counter(
            {
                str(i["LineItemId"]): int(i["ItemQuantity"])
                for i in there["body"].get("OrderItems", [])
            }
        )
        if want != got or there["cancelled"]:
            verdict.fail(
                "released order at ACS",
                f"{code}: ACS holds {dict(got)}"
                f"{' cancelled' if there['cancelled'] else ''}, Khaos {dict(want)}",
            )
        if code in edited:
            verdict.checked["orders edited in Khaos before ACS had them"] += 1
            held = _compact(there["body"].get("Delivery_Postcode"))
            if held != _compact(edited[code]):
                if f"order:{code} " in owned:
                    # ACS had started picking: refused, and operations own it (order_locked).
                    verdict.checked["edits too late for ACS, with an open owned exception"] += 1
                    continue
                verdict.fail(
                    "edited order at ACS at its newest body",
                    f"{code}: ACS holds postcode {held}, Khaos {edited[code]}",
                )


def _compact(postcode: str | None) -> str:
    """A postcode as a courier reads it: case and spaces do not matter."""
    return "".join((postcode or "").split()).upper()


def _returns(
    units: dict[str, Any], khaos: dict[str, Any], verdict: Verdict, owned: str = ""
) -> None:
    """Every graded return is one Khaos customer return with its grade's credit; none in
    Khaos only while an open, owned exception names it (``owned``: a return of an order
    cancelled in Khaos while ACS picked it cannot be matched, and operations own it)."""
    by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ret in khaos["customer_returns"]:
        by_ref[ret["associated_ref"].rsplit("-P", 1)[0]].append(ret)
    rows_by_ref: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in units["graded"]:
        rows_by_ref[row["return_ref"]].append(row)
    for ref, rows in rows_by_ref.items():
        verdict.checked["graded returns"] += 1
        found = by_ref.get(ref, [])
        quantity = sum(it["quantity"] for r in found for it in r["items"])
        if not quantity and f":{ref}:" in owned:
            verdict.checked["graded returns not posted, with an open owned exception"] += 1
            continue
        if quantity != len(rows):
            verdict.fail(
                "graded return = one Khaos return",
                f"{ref}: {len(rows)} unit(s) at ACS, {quantity} in Khaos "
                f"({[r['associated_ref'] for r in found]})",
            )
            continue
        want = {CREDIT_BY_GRADE[r["grade"]] for r in rows}
        got = {r["credit_mode"] for r in found}
        if want != got:
            verdict.fail("credit per grade policy", f"{ref}: grades ask {want}, Khaos has {got}")
        for r in found:
            goods = sum(Decimal(it["unit_net"]) * it["quantity"] for it in r["items"])
            if r["credit_mode"] == "auto" and Decimal(r["credit_value"]) != goods:
                verdict.fail(
                    "credit per grade policy",
                    f"{r['associated_ref']}: credit {r['credit_value']} != goods {goods}",
                )


def _disposed(row: dict[str, str]) -> bool:
    """ACS let the unit go for good: graded beyond economic repair, or disposed of."""
    return row.get("grade") == "BER" or row.get("action_taken") == "DISPOSE"


def _write_offs(
    units: dict[str, Any], khaos: dict[str, Any], verdict: Verdict, owned: str = ""
) -> None:
    """Every unit ACS disposed of is written off exactly once in Khaos, and nothing else is:
    a sale unit by its customer return processed as a write-off (the invoice already took
    it out of Level); a unit still in Level (hire) by its own ``WO-<unit>`` adjustment of
    one unit, valued at no more than its cost price (and above nothing if it cost anything)."""
    in_khaos: Counter[str] = Counter()
    for ret in khaos["customer_returns"]:
        for it in ret["items"]:
            if it["processing"] == "write_off":
                in_khaos[ret["associated_ref"].rsplit("-P", 1)[0]] += it["quantity"]
    gone = Counter(row["return_ref"] for row in units["graded"] if _disposed(row))
    for ref in sorted(set(gone) | set(in_khaos)):
        verdict.checked["returns with a unit disposed at ACS or written off in Khaos"] += 1
        if not in_khaos[ref] and f":{ref}:" in owned:
            verdict.checked["disposed units not posted, with an open owned exception"] += 1
            continue
        if in_khaos[ref] != gone[ref]:
            verdict.fail(
                "disposed unit = one write-off",
                f"{ref}: {gone[ref]} disposed at ACS, {in_khaos[ref]} written off in Khaos",
            )
    cost = {i["stock_id"]: Decimal(str(i.get("cost_price", "0"))) for i in khaos["stock_items"]}
    seen: Counter[str] = Counter()
    for group in khaos["adjustment_groups"]:
        if not group["group_ref"].startswith("WO-"):
            continue
        seen[group["group_ref"]] += 1
        verdict.checked["unit write-offs (WO-)"] += 1
        lines = group["lines"]
        value = Decimal(lines[0]["value"]) if len(lines) == 1 else Decimal(0)
        price = cost.get(lines[0]["stock_id"], Decimal(0)) if lines else Decimal(0)
        if len(lines) != 1 or lines[0]["adjust_by"] != -1:
            verdict.fail("unit write-off at cost", f"{group['group_ref']}: not one unit out")
        elif value > price or (value <= 0 and price > 0):
            verdict.fail(
                "unit write-off at cost",
                f"{group['group_ref']}: valued {value}, cost price "
                f"{cost.get(lines[0]['stock_id'])}",
            )
    for ref, times in seen.items():
        if times > 1:
            verdict.fail("disposed unit = one write-off", f"{ref}: written off {times} times")


def _level(
    acs: dict[str, Any], khaos: dict[str, Any], units: dict[str, Any], verdict: Verdict
) -> None:
    """Level per StockID × site = ACS's physical units there + sale units ACS despatched
    whose Khaos invoice is not issued yet (the only movement left in flight at quiescence)."""
    items = {i["stock_code"]: i for i in khaos["stock_items"]}
    expected: Counter[tuple[int, int]] = Counter()
    for row in units["units"]:
        item = items.get(row["sku"])
        if item is None:
            continue  # a SKU Khaos does not know: reported by the product check, not Level
        sale, hire = _POLICY.get(_status(row["status"]), (None, None))
        role = hire if item["is_hire"] else sale
        if role is not None:
            expected[(item["stock_id"], SITES[role])] += row["count"]
    line_stock = {
        ln["order_item_id"]: (ln["stock_id"], ln["is_hire"])
        for o in khaos["orders"]
        for ln in o["lines"]
    }
    khaos_ids = {o["order_code"]: o for o in khaos["orders"]}
    shipped: Counter[int] = Counter()
    for order in acs["orders"]:
        if order["order_number"] in khaos_ids:
            for event in order["shipments"]:
                for line in event["lines"]:
                    shipped[int(line["line_item_id"])] += int(line["quantity"])
    issued: Counter[int] = Counter()
    for inv in khaos["invoices"]:
        if inv["issue_date"] is not None:
            for ln in inv["lines"]:
                issued[ln["order_item_id"]] += ln["quantity"]
    # A unit of a shipment that will never be invoiced (its order cancelled in Khaos while
    # ACS picked it) that came back to ACS is no longer in flight: it is among ACS's
    # physical units again. A unit back before its invoice is issued (finance holds the
    # invoice) is still in flight: Khaos processed its return and will still take it out
    # of Level when the invoice is issued.
    stages = {i["invoice_id"]: i["stage"] for i in khaos["invoices"]}
    never_invoiced = {
        ln["order_item_id"]
        for o in khaos["orders"]
        if any(stages.get(i) == 1 for i in o["invoice_ids"])
        for ln in o["lines"]
    }
    back: Counter[int] = Counter()
    for row in units["graded"]:
        line = str(row.get("line_item_id") or "")
        if line.isdigit() and int(line) in never_invoiced:
            back[int(line)] += 1
    for item_id, qty in shipped.items():
        stock_id, hire = line_stock[item_id]
        if not hire:
            in_flight = qty - issued[item_id]
            expected[(stock_id, SITES["selling"])] += max(0, in_flight - back[item_id])
    for row in khaos["stock"]:
        key = (row["stock_id"], row["site_id"])
        verdict.checked["Level rows"] += 1
        if row["level"] != expected[key]:
            verdict.fail(
                "Level = ACS physical units",
                f"StockID {key[0]} site {key[1]}: Khaos {row['level']}, ACS says {expected[key]}",
            )
            if len(verdict.traces) < 200:
                verdict.traces.extend(level_trace(key[0], acs, khaos, units))


# A push's GroupRef (its groups, its moves' legs and their reversals, finance's approvals of
# its holds) names the snapshot: SNAP-<snapshot_at UTC>-F<file>-...
_SNAP_REF = re.compile(r"^SNAP-(\d{8}T\d{6})-F\d+-")
_ACS_SIDE = {"goods_in", "damaged", "counted_out"}
_PUSH_KINDS = {"khaos.import_stock_adjustments", "khaos.import_stock_move"}


def _snapshot_of(ref: str) -> datetime | None:
    found = _SNAP_REF.match(ref)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def _corrections(
    khaos: dict[str, Any], units: dict[str, Any], store_url: str, verdict: Verdict
) -> None:
    """Every change the pushes made to a StockID's Level has a physical cause.

    For each StockID the brand changed without an order (goods in, a unit counted out, a
    count keyed in Khaos; a unit set aside damaged moves sites, not the total), and each
    pushed snapshot T: what Khaos applied from the pushes of snapshots up to T (its own
    Level before/after of each line, all sites), plus what the store says T's push planned
    and never sent (superseded, parked, held: the next push plans it again), minus the
    brand's changes up to T (ACS's at the snapshot, Khaos's before the push), is the same
    at every T. It moves when a push applied more or less than the physical change: a
    retried line resetting Level over invoices booked since (absolute target), two holds of
    one difference both booked. Level itself is checked at quiescence only, where a later
    push has corrected such a change; this sees it in the history of what Khaos applied."""
    events: dict[int, list[tuple[datetime, str, int]]] = defaultdict(list)
    for e in units.get("stock_events", []):
        at = datetime.fromisoformat(e["at"])
        events[int(e["stock_id"])].append((at, e["kind"], int(e["correction"])))
    if not events:
        return
    applied: dict[int, Counter[datetime]] = defaultdict(Counter)
    first_sent: dict[datetime, datetime] = {}
    for group in khaos["adjustment_groups"]:
        moment = _snapshot_of(group["group_ref"])
        if moment is None:
            continue
        created = datetime.fromisoformat(group["created_at"])
        first_sent[moment] = min(first_sent.get(moment, created), created)
        for line in group["lines"]:
            if line["stock_id"] in events:
                applied[line["stock_id"]][moment] += line["level_after"] - line["level_before"]
    unsent: dict[int, Counter[datetime]] = defaultdict(Counter)
    for moment, stock_id, change in _planned_never_sent(store_url):
        first_sent.setdefault(moment, moment)
        if stock_id in events:
            unsent[stock_id][moment] += change
    moments = sorted(first_sent)
    for stock_id, happened in events.items():
        verdict.checked["StockIDs changed without an order"] += 1
        owed: list[tuple[datetime, int]] = []
        pushed = 0
        for moment in moments:
            pushed += applied[stock_id][moment]
            physical = sum(
                c
                for at, kind, c in happened
                if (at <= moment if kind in _ACS_SIDE else at <= first_sent[moment])
            )
            # A count keyed in Khaos between the snapshot and its push's first send may or
            # may not have been read by the plan: no verdict at that snapshot.
            if any(
                kind not in _ACS_SIDE and moment < at <= first_sent[moment]
                for at, kind, _ in happened
            ):
                continue
            # What this snapshot planned and never sent, a later plan plans again: it
            # counts at its own snapshot only.
            owed.append((moment, pushed + unsent[stock_id][moment] - physical))
        if len({d for _, d in owed}) > 1:
            verdict.fail(
                "push changes = physical changes",
                f"StockID {stock_id}: pushed minus physical per snapshot "
                + ", ".join(f"{m:%d %b %H:%M} {d:+d}" for m, d in owed)
                + " ("
                + ", ".join(f"{at:%d %b %H:%M} {kind} {c:+d}" for at, kind, c in happened)
                + ")",
            )


def _planned_never_sent(store_url: str) -> list[tuple[datetime, int, int]]:
    """(snapshot, StockID, change) of push lines the store holds as not applied."""
    from acs_khaos_dagster.store import Store

    out = []
    with Store.open(store_url, migrate=False) as store:
        effects = store.outbox.find()
    for effect in effects:
        if effect.kind not in _PUSH_KINDS or effect.state == "done":
            continue
        payload = effect.payload
        groups = payload.get("legs") or [payload]
        for group in groups:
            moment = _snapshot_of(str(group.get("group_ref", "")))
            if moment is None:
                continue
            for line in group.get("lines", []):
                out.append((moment, int(line["stock_id"]), int(line.get("adjust_by") or 0)))
    return out


def _effects(store_url: str, verdict: Verdict) -> None:
    """Every effect done, superseded or parked with an open, owned exception."""
    from acs_khaos_dagster.store import Store

    with Store.open(store_url, migrate=False) as store:
        effects = store.outbox.find()
        items = store.exceptions.list()
    owned_for = {i.row.effect_id for i in items if i.row.owner and i.row.effect_id}
    for effect in effects:
        verdict.checked["effects"] += 1
        verdict.checked[f"effects {effect.state}"] += 1
        if effect.state in ("done", "superseded"):
            continue
        # Parked after its last attempt, or held for finance's approval: either way an
        # open exception with an owner must name it.
        if effect.state in ("parked", "held") and effect.id in owned_for:
            continue
        # Failed: a parked release the flow turned into a business exception of its own
        # (an ACS rejection of the order or SKU); that exception must be open and owned.
        ref = str(effect.payload.get("order_number") or effect.payload.get("sku") or "?")
        if effect.state == "failed" and any(
            i.row.owner and ref in f"{i.row.entity_ref} {i.row.message}" for i in items
        ):
            continue
        verdict.fail("effect finished or owned", f"{effect.idempotency_key} ({effect.state})")
    for item in items:
        if not item.row.owner:
            verdict.fail("exception owned", f"{item.row.type} #{item.row.id}")
