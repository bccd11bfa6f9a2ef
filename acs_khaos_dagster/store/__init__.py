"""The integration's own durable store: outbox, exception queue, audit log, file ledger,
cursors. Open it with ``Store.open(url)`` (migrates to head) or ``Store.from_settings()``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from acs_khaos_dagster.domain.approvals import ApprovalLimits
from acs_khaos_dagster.store.audit import AuditLog, default_actor
from acs_khaos_dagster.store.cursors import Cursors
from acs_khaos_dagster.store.db import Clock, Database, make_engine, upgrade_to_head, utc_now
from acs_khaos_dagster.store.dispatcher import Dispatcher, DispatchReport
from acs_khaos_dagster.store.exceptions import ExceptionQueue, ExceptionType, Owner, OwnerTargets
from acs_khaos_dagster.store.ledger import FileLedger, Quarantine
from acs_khaos_dagster.store.outbox import DueEffects, EffectHandler, Outbox, OutboxStatus
from acs_khaos_dagster.store.retention import PersonalDataRetention, PurgeReport

if TYPE_CHECKING:
    from acs_khaos_dagster.config import OutboxSettings, Settings

# An open unit of work (``Store.transaction()``): callers outside the store pass it on to
# the store's methods and never query through it.
Transaction = Session

__all__ = [
    "DispatchReport",
    "Dispatcher",
    "DueEffects",
    "EffectHandler",
    "ExceptionQueue",
    "ExceptionType",
    "FileLedger",
    "Outbox",
    "OutboxStatus",
    "Owner",
    "OwnerTargets",
    "Quarantine",
    "Store",
    "Transaction",
    "default_actor",
    "open_store",
]


class Store:
    """Facade over one database: ``outbox``, ``exceptions``, ``audit``, ``ledger``, ``cursors``."""

    def __init__(
        self,
        db: Database,
        *,
        owners: dict[str, str] | None = None,
        targets: OwnerTargets | None = None,
    ) -> None:
        self.db = db
        self.audit = AuditLog(db)
        self.outbox = Outbox(db, self.audit)
        self.exceptions = ExceptionQueue(
            db, self.audit, self.outbox, owners=owners, targets=targets
        )
        self.outbox.on_superseded = self.exceptions.close_for_superseded
        self.ledger = FileLedger(db)
        self.cursors = Cursors(db)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Clock = utc_now,
        migrate: bool = True,
        owners: dict[str, str] | None = None,
        targets: OwnerTargets | None = None,
    ) -> Store:
        engine = make_engine(url)
        if migrate:
            upgrade_to_head(engine)
        return cls(Database(engine, clock), owners=owners, targets=targets)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> Store:
        if settings is None:
            from acs_khaos_dagster.config import get_settings

            settings = get_settings()
        from acs_khaos_dagster.clock import clock_for

        kwargs.setdefault("targets", settings.owner_targets)
        # The store's timestamps follow the integration's clock (the sandbox's, in tests).
        kwargs.setdefault("clock", clock_for(settings))
        return cls.open(settings.resolved_database_url, **kwargs)

    @property
    def engine(self) -> Any:
        return self.db.engine

    def now(self) -> Any:
        return self.db.now()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work; pass its session to the components to write in it."""
        with self.db.transaction() as session:
            yield session

    def dispatcher(
        self,
        handlers: Mapping[str, EffectHandler],
        settings: OutboxSettings | None = None,
        **kwargs: Any,
    ) -> Dispatcher:
        return Dispatcher(self, handlers, settings, **kwargs)

    def approve(
        self,
        *,
        actor: str,
        effect_id: int | None = None,
        exception_id: int | None = None,
        limits: ApprovalLimits | None = None,
    ) -> bool:
        """Release a held effect, named directly or by its exception. True if it was released.
        ``limits``: finance's two-person approval limits for held stock variances."""
        if (effect_id is None) == (exception_id is None):
            raise ValueError("give exactly one of effect_id or exception_id")
        if exception_id is not None:
            return self.exceptions.approve(exception_id, actor, limits)
        assert effect_id is not None
        return self.outbox.approve(effect_id, actor)

    def purge_personal_data(self, days: int, now: datetime | None = None) -> PurgeReport:
        """Blank customers' personal data older than ``days`` in stored bodies.

        See ``store.retention``: effects already done, order releases finished at ACS.
        Called daily by the ``personal_data_retention`` job (``flows/personal_data.py``).
        """
        return PersonalDataRetention(self.db, self.cursors).purge(days, now)

    def close(self) -> None:
        self.db.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(settings: Settings | None = None, **kwargs: Any) -> Store:
    """Open (and migrate) the store named by ``settings`` (default: ``get_settings()``)."""
    return Store.from_settings(settings, **kwargs)
