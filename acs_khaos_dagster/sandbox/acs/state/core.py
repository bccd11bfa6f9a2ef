"""``AcsState``: the parts put together, and the truth the tests and the demo compare with."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from acs_khaos_dagster.sandbox.acs.state.hire import HireCycle
from acs_khaos_dagster.sandbox.acs.state.orders import OrderDesk
from acs_khaos_dagster.sandbox.acs.state.products import ProductRegistry
from acs_khaos_dagster.sandbox.acs.state.records import iso
from acs_khaos_dagster.sandbox.acs.state.returns import CustomerReturns
from acs_khaos_dagster.sandbox.acs.state.units import StockUnits


class AcsState(OrderDesk, HireCycle, CustomerReturns, StockUnits, ProductRegistry):
    def truth(self, now: datetime) -> dict[str, Any]:
        with self.lock:
            self.advance(now)
            by_status = Counter(u.status for u in self.units.values())
            return {
                "now": iso(now),
                "account_code": self.account_code,
                "products": [
                    {
                        "sku": p.sku,
                        "status": p.status,
                        "attributes": dict(p.attributes),
                        "registered_at": iso(p.registered_at),
                        "active_at": iso(p.active_at) if p.active_at else None,
                        "puts": p.puts,
                        "revisions": p.revisions,
                    }
                    for p in sorted(self.products.values(), key=lambda p: p.sku)
                ],
                "orders": [
                    {
                        "order_number": o.number,
                        "body": dict(o.body),
                        "status": o.status,
                        "shipments": [dict(e) for e in o.shipments],
                        "cancelled": o.cancelled,
                        "locked": o.locked,
                        "revisions": o.revisions,
                        "puts": o.puts,
                        "received_at": iso(o.received_at),
                        "shipment_times": [iso(t) for t in o.shipment_times],
                        "closed_short": [dict(c) for c in o.closed_short],
                        "units": list(o.units),
                        "history": [list(h) for h in o.history],
                    }
                    for o in self.orders.values()
                ],
                "despatch_events": [dict(e) for e in self.feed],
                "feed": {
                    "suppressed": sorted(self.suppressed),
                    "faults": [dict(f) for f in self.feed_faults],
                    "delayed": [e["event_id"] for e in self.delayed_events],
                },
                "units": {
                    "total": len(self.units),
                    "by_status": dict(by_status),
                    "despatched": len(self.despatched_units),
                },
                "returns": {"pending": len(self.pending_returns), "written": self.returns_written},
            }
