"""The brand's finance team working the held-variance queue, through the product's own path.

Two people (``finance-a``, ``finance-b``) approve held stock variances with the store
method ``acs-khaos exceptions approve`` calls, under the settings' two-person limits
(``stock.second_approval_units/value``): a hold above them waits for the second person.

Finance does not look at a new hold at once: half of them the same day (6 simulated
hours later), half only after the next stock count (36 hours later), by which time the
next snapshot's push has usually replaced the hold with one of its own. Then, like the
person in ``test_stock_invariant.py``, they click approve on every hold they have seen for
that StockID × site, the replaced one included: the product must refuse the old one
(``NotApprovable`` or "was resolved", counted as ``refused``) and book the newer one once.
At quiescence finance decides every hold still open (``everything=True``).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

PEOPLE = ("finance-a", "finance-b")
DELAYS = (timedelta(hours=6), timedelta(hours=36))


class Finance:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"finance:{seed}")
        self.due: dict[int, datetime] = {}  # exception id -> when finance gets to it
        self.done: set[int] = set()
        self.figures: Counter[str] = Counter()

    def visit(self, now: datetime, everything: bool = False) -> Counter[str]:
        """One look at the queue at simulated ``now``; what it did this time."""
        from acs_khaos_dagster.config import load_settings
        from acs_khaos_dagster.domain.approvals import ApprovalLimits
        from acs_khaos_dagster.store import open_store
        from acs_khaos_dagster.store.exceptions import SecondApprovalNeeded

        settings = load_settings()
        limits = ApprovalLimits(
            settings.stock.second_approval_units, settings.stock.second_approval_value
        )
        did: Counter[str] = Counter()
        with open_store(settings, migrate=False) as store:
            held = store.exceptions.list(type="stock_variance_held", status=None)
            by_place: dict[str, list[int]] = defaultdict(list)
            for item in held:
                row = item.row
                details = row.details or {}
                place = f"{details.get('stock_id')}:S{details.get('site_id')}"
                by_place[place].append(row.id)
                if row.id not in self.due and row.status == "open":
                    self.due[row.id] = now + self.rng.choice(DELAYS)
                    did["seen"] += 1
            for ids in by_place.values():
                ready = [
                    i
                    for i in ids
                    if i in self.due and i not in self.done and (everything or self.due[i] <= now)
                ]
                if not ready:
                    continue
                # Approve on every hold of this StockID × site seen so far, oldest first.
                for exception_id in sorted(i for i in ids if i not in self.done):
                    did[self._approve(store, exception_id, limits, SecondApprovalNeeded)] += 1
                    self.done.add(exception_id)
        self.figures.update(did)
        return did

    def _approve(self, store: Any, exception_id: int, limits: Any, second: type[Exception]) -> str:
        try:
            released = store.approve(actor=PEOPLE[0], exception_id=exception_id, limits=limits)
        except second:
            try:
                released = store.approve(actor=PEOPLE[1], exception_id=exception_id, limits=limits)
            except ValueError:
                return "refused"
            return "approved by two" if released else "nothing held"
        except ValueError:  # replaced by a newer snapshot's hold: the message names it
            return "refused"
        return "approved" if released else "nothing held"
