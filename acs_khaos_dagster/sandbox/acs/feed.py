"""ACS's despatch feed: ``GET /despatches?cursor=&limit=``, with the faults a real feed has.

A reply is exactly what the contract names: ``{"events": [...], "next_cursor": ...}``,
``next_cursor`` null on the last page. The cursor is opaque (here an encoded position).
Events are delivered at least once and not necessarily in order, and the fault menu
makes that concrete:

- ``duplicate`` (an event twice on a page), ``reorder`` (a later shipment of an order
  before an earlier one), ``suppress`` (an event never delivered);
- ``replay``: the page re-delivers the page before it, events the caller's cursor has
  moved past; ``cursor_reset``: the cursor is forgotten, the feed starts again;
- ``delay``: an event (one with short closures if the page has one) is held back and
  published at the end of the feed on the next read, so it arrives in a later run;
- ``republish`` / ``republish_partial``: a delivered shipment is published again on the
  next read under a new ``event_id``, whole or with its first line only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from acs_khaos_dagster.sandbox.faults import FaultKind

if TYPE_CHECKING:
    from acs_khaos_dagster.sandbox.acs.state import AcsState


def page(
    state: AcsState, cursor: str | None, limit: int, now: datetime, fault: FaultKind | None
) -> dict[str, Any]:
    from acs_khaos_dagster.sandbox.acs.state import ApiError, decode_cursor, encode_cursor

    offset = int(decode_cursor("d", cursor) or 0) if cursor else 0
    with state.lock:
        state.advance(now)
        if state.delayed_events:  # held back or re-published on an earlier read
            state.feed.extend(state.delayed_events)
            state.delayed_events.clear()
        if offset < 0 or offset > len(state.feed):
            raise ApiError(422, "INVALID_CURSOR", "the cursor is not valid", "cursor")
        if fault == FaultKind.CURSOR_RESET and offset:
            state.feed_faults.append({"kind": str(fault), "event_id": "", "from": offset})
            offset = 0
        events: list[dict[str, Any]] = []
        position = offset
        while position < len(state.feed) and len(events) < limit:
            event = state.feed[position]
            position += 1
            if event["event_id"] not in state.suppressed:
                events.append(event)
        events = [dict(e) for e in events]
        if fault == FaultKind.REPLAY and offset:
            earlier = [dict(e) for e in state.feed[max(0, offset - limit) : offset]]
            events = earlier + events
            state.feed_faults.append({"kind": str(fault), "event_id": earlier[0]["event_id"]})
        elif fault is not None:
            _apply(state, fault, events)
        more = position < len(state.feed)
        return {
            "events": events,
            "next_cursor": encode_cursor("d", str(position)) if more else None,
        }


def _apply(state: AcsState, kind: FaultKind, events: list[dict[str, Any]]) -> None:
    if not events:
        return
    record = state.feed_faults.append
    if kind == FaultKind.SUPPRESS:
        victim = events.pop(0)
        state.suppressed.add(victim["event_id"])
        record({"kind": str(kind), "event_id": victim["event_id"]})
    elif kind == FaultKind.DUPLICATE:
        events.append(dict(events[0]))
        record({"kind": str(kind), "event_id": events[0]["event_id"]})
    elif kind == FaultKind.REORDER and len(events) > 1:
        # Prefer moving a later shipment of the same order in front of an earlier one.
        pair = next(
            (
                (i, j)
                for i in range(len(events))
                for j in range(i + 1, len(events))
                if events[i]["order_number"] == events[j]["order_number"]
            ),
            (0, 1),
        )
        later = events.pop(pair[1])
        events.insert(pair[0], later)
        record({"kind": str(kind), "event_id": later["event_id"]})
    elif kind == FaultKind.DELAY:
        victim = next((e for e in events if e.get("closed_short")), events[0])
        events.remove(victim)
        original = next(e for e in state.feed if e["event_id"] == victim["event_id"])
        state.feed.remove(original)
        state.delayed_events.append(original)
        record({"kind": str(kind), "event_id": victim["event_id"]})
    elif kind in (FaultKind.REPUBLISH, FaultKind.REPUBLISH_PARTIAL):
        source = next((e for e in events if e.get("lines")), None)
        if source is None:
            return
        copy = dict(source)
        copy["event_id"] = f"{source['event_id']}-R{len(state.feed_faults) + 1}"
        if kind == FaultKind.REPUBLISH_PARTIAL:
            copy["lines"] = [dict(source["lines"][0])]
            copy["parcels"] = [dict(p) for p in source.get("parcels", [])[:1]]
            copy.pop("closed_short", None)
        state.delayed_events.append(copy)
        record({"kind": str(kind), "event_id": source["event_id"], "copy": copy["event_id"]})
