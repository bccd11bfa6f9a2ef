"""Sending what is due: a dispatch pass per target system, and the backlog it leaves.

``outbox_due_sensor`` starts a dispatch run whenever effects are due, so a retry never
waits for an unrelated event (the next despatch on the feed, the next returns file). Each
target is dispatched on its own (its own Dagster pool), and the age of the oldest due
effect is measured before the pass: how long the integration left an effect waiting after
it fell due. Past ``outbox.due_alert_after_s`` that is an ``outbox_backlog`` exception for
the integration owner; it closes itself once dispatching keeps up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.effects import TARGET_OF, effect_handlers
from acs_khaos_dagster.flows.figures import Figures, Verdict, dispatch_figures
from acs_khaos_dagster.store import DispatchReport, DueEffects, Store
from acs_khaos_dagster.store.exceptions import ExceptionType

TARGETS = ("acs", "khaos")


def kinds_of(target: str) -> list[str]:
    return [str(kind) for kind, system in TARGET_OF.items() if system == target]


def due_effects(store: Store, settings: Settings, target: str | None = None) -> DueEffects:
    """Effects a dispatcher could take now (of one target, or all)."""
    lease = timedelta(seconds=settings.outbox.lease_s)
    return store.outbox.due(lease=lease, kinds=kinds_of(target) if target else None)


@dataclass(frozen=True)
class DispatchPass:
    """One dispatch pass over a target's due effects."""

    target: str
    due_before: int
    oldest_due_age: timedelta | None  # before the pass: how late the pass came
    report: DispatchReport
    still_due: int  # after the pass (effects whose retry fell due meanwhile)
    backlog_over_limit: bool

    @property
    def oldest_due_age_s(self) -> float:
        return 0.0 if self.oldest_due_age is None else self.oldest_due_age.total_seconds()

    def figures(self) -> Figures:
        return {
            "due_before": self.due_before,
            "oldest_due_age_s": round(self.oldest_due_age_s, 1),
            "still_due": self.still_due,
            **dispatch_figures(self.report),
        }

    def verdict(self, limit_s: float) -> Verdict:
        """Warns when the oldest due effect waited past ``outbox.due_alert_after_s``."""
        late = {"oldest_due_age_s": round(self.oldest_due_age_s, 1)}
        lateness = self.lateness(limit_s)
        return Verdict(not self.backlog_over_limit, late, warn=True, description=lateness)

    def lateness(self, limit_s: float) -> str:
        return f"the oldest due effect waited {self.oldest_due_age_s:.0f} s (limit {limit_s:.0f} s)"


def dispatch_due(
    store: Store,
    settings: Settings,
    target: str,
    *,
    acs: AcsClient | None = None,
    khaos: KhaosClient | None = None,
) -> DispatchPass:
    """Send every due effect of ``target`` now; report how late the oldest one was."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    before = due_effects(store, settings, target)
    record_backlog(store, settings, target, before)
    wanted = set(kinds_of(target))
    handlers = {k: h for k, h in effect_handlers(acs, khaos).items() if str(k) in wanted}
    report = store.dispatcher(handlers, settings.outbox, http=settings.http).drain()
    after = due_effects(store, settings, target)
    return DispatchPass(
        target=target,
        due_before=before.total,
        oldest_due_age=before.oldest_due_age,
        report=report,
        still_due=after.total,
        backlog_over_limit=backlog_over_limit(settings, before),
    )


def due_targets(store: Store, settings: Settings) -> dict[str, int]:
    """The targets with due effects and how many each (what ``outbox_due_sensor`` starts a
    run for), keeping each target's ``outbox_backlog`` exception up to date on the way."""
    due = {}
    for target in TARGETS:
        due[target] = due_effects(store, settings, target)
        record_backlog(store, settings, target, due[target])
    return {target: due[target].total for target in TARGETS if due[target].total}


def backlog_over_limit(settings: Settings, due: DueEffects) -> bool:
    limit = timedelta(seconds=settings.outbox.due_alert_after_s)
    return due.oldest_due_age is not None and due.oldest_due_age > limit


def record_backlog(store: Store, settings: Settings, target: str, due: DueEffects) -> None:
    """Open (or close) the integration owner's ``outbox_backlog`` exception for ``target``."""
    ref = f"outbox:{target}"
    if backlog_over_limit(settings, due):
        assert due.oldest_due_age is not None
        minutes = due.oldest_due_age.total_seconds() / 60
        store.exceptions.raise_exception(
            ExceptionType.OUTBOX_BACKLOG,
            ref,
            f"{due.by_target.get(target, 0)} effect(s) to {target} are due and the oldest has "
            f"waited {minutes:.0f} min past its time (limit "
            f"{settings.outbox.due_alert_after_s / 60:.0f} min): is outbox_due_sensor running, "
            f"and the {target}_api pool free?",
            details={
                "target": target,
                "due": due.by_target.get(target, 0),
                "oldest_due_age_s": round(due.oldest_due_age.total_seconds()),
            },
        )
        return
    still = [
        item.row.entity_ref
        for item in store.exceptions.list(type=ExceptionType.OUTBOX_BACKLOG)
        if item.row.entity_ref != ref
    ]
    store.exceptions.auto_resolve(ExceptionType.OUTBOX_BACKLOG, still)
