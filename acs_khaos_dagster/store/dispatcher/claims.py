"""The dispatcher's claims: claiming due effects, renewing them, recovering stale ones, and
the guard that renews a claim and settles versions right before each send.

``Claiming`` is mixed into ``Dispatcher`` (``store/dispatcher/running.py``), whose
``__init__`` sets the attributes it declares.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, exists, insert, or_, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.dispatcher.records import (
    _ATTEMPTS,
    _EFFECTS,
    _KEYS_PER_QUERY,
    DEFER_S,
    Claim,
)
from acs_khaos_dagster.store.dispatcher.sqlite_guard import SqliteStatement, SqliteWrites
from acs_khaos_dagster.store.outbox import HELD, IN_FLIGHT, PARKED, PENDING, EffectHandler

if TYPE_CHECKING:
    from acs_khaos_dagster.store import Store

log = logging.getLogger(__name__)

# The guard's renewal of one claim, built once (it runs before every send).
_RENEW_ONE = (
    update(_EFFECTS)
    .where(
        _EFFECTS.c.id == bindparam("id_"),
        _EFFECTS.c.claim_token == bindparam("token_"),
        _EFFECTS.c.state == IN_FLIGHT,
    )
    .values(renewed_at=bindparam("now_"))
)
_OTHER = _EFFECTS.alias("other_version")
# The same, only if no other version of the effect is there to settle first. (The states
# as ORs rather than IN: a fixed statement, which ``sqlite_guard`` compiles once.)
_RENEW_ONE_IF_ALONE = _RENEW_ONE.where(
    ~exists().where(
        _OTHER.c.supersede_key == bindparam("key_"),
        _OTHER.c.id != bindparam("id_"),
        or_(
            _OTHER.c.id > bindparam("id_"),
            *(_OTHER.c.state == state for state in (PENDING, IN_FLIGHT, HELD, PARKED)),
        ),
    )
)


class Claiming:
    """Claim, renew, recover and guard: every short transaction before a send."""

    # Set by ``Dispatcher.__init__``.
    store: Store
    handlers: dict[str, EffectHandler]
    owner: str
    lease: timedelta
    longest_request: timedelta
    late_apply: timedelta
    _owner_gone: Callable[[str | None], bool]
    _db: Database
    _sqlite_writes: threading.Lock | None
    # On SQLite (``_sqlite_guard_of``): where the guard's common case runs, and its two
    # statements (without, with a supersede key) compiled for it. None elsewhere.
    _sqlite_guard: tuple[SqliteWrites, dict[bool, SqliteStatement]] | None

    def _sqlite_guard_of(self) -> tuple[SqliteWrites, dict[bool, SqliteStatement]] | None:
        """On SQLite the guard's common case runs on the raw connection, the guards queued
        meanwhile in one commit (``sqlite_guard``); PostgreSQL locks rows, not the file."""
        if self._db.dialect != "sqlite":
            return None
        engine = self._db.engine
        statements = {
            False: SqliteStatement(_RENEW_ONE, engine),
            True: SqliteStatement(_RENEW_ONE_IF_ALONE, engine),
        }
        return SqliteWrites(engine, self._writing), statements

    def _writing(self) -> AbstractContextManager[object]:
        """Held around each of this dispatcher's write transactions on SQLite.

        SQLite takes one writer at a time. Without this, the workers' guards and the
        dispatcher's own claims and records collide on ``BEGIN IMMEDIATE``, and the loser
        sleeps in SQLite's busy handler (1, 2, 5, 10… ms) well past the moment the lock is
        free; a thread lock wakes the next writer as soon as it is. Other processes still
        queue on SQLite's own lock. PostgreSQL locks rows, so it needs none.
        """
        return self._sqlite_writes if self._sqlite_writes is not None else nullcontext()

    # -- claiming ------------------------------------------------------------------------

    def recover(self) -> int:
        """Back to pending, read back first: effects whose dispatcher died or lease ran out."""
        now = self._db.now()
        recovered = 0
        with self._writing(), self._db.transaction() as s:
            # Our own claims are alive for as long as we are: only the others can be stale.
            query = (
                select(
                    _EFFECTS.c.id,
                    _EFFECTS.c.idempotency_key,
                    _EFFECTS.c.attempts,
                    _EFFECTS.c.claimed_by,
                    _EFFECTS.c.claimed_at,
                    _EFFECTS.c.renewed_at,
                )
                .where(
                    _EFFECTS.c.state == IN_FLIGHT,
                    _EFFECTS.c.kind.in_(list(self.handlers)),
                    (_EFFECTS.c.claimed_by.is_(None)) | (_EFFECTS.c.claimed_by != self.owner),
                )
                .with_for_update(skip_locked=True)
            )
            for effect in s.execute(query).all():
                renewed: datetime | None = effect.renewed_at or effect.claimed_at
                expired = renewed is None or renewed <= now - self.lease
                gone = self._owner_gone(effect.claimed_by)
                if not expired and not gone:
                    continue
                log.warning(
                    "effect %s (%s) was in flight with %s, last renewed %s; it will be read "
                    "back before any resend",
                    effect.id,
                    effect.idempotency_key,
                    effect.claimed_by,
                    renewed,
                )
                s.execute(
                    insert(_ATTEMPTS).values(
                        effect_id=effect.id,
                        attempt_no=effect.attempts,
                        at=now,
                        outcome="interrupted",
                        message=f"claimed by {effect.claimed_by}, last renewed {renewed}",
                        duration_ms=0,
                        dispatcher=self.owner,
                    )
                )
                # A send made under the old claim may still land: read back after that. A
                # process that is gone writes nothing more, so its last request left by now.
                on_the_wire_until = (renewed or now) + self.longest_request
                if gone:
                    on_the_wire_until = min(on_the_wire_until, now)
                landed_by = on_the_wire_until + self.late_apply
                s.execute(
                    update(_EFFECTS)
                    .where(_EFFECTS.c.id == effect.id, _EFFECTS.c.state == IN_FLIGHT)
                    .values(
                        state=PENDING,
                        needs_read_back=True,
                        next_attempt_at=max(now, landed_by),
                        claim_token=None,
                        updated_at=now,
                    )
                )
                recovered += 1
        return recovered

    def claim(self, limit: int) -> list[Claim]:
        now = self._db.now()
        with self._writing(), self._db.transaction() as s:
            query = (
                select(
                    _EFFECTS.c.id,
                    _EFFECTS.c.kind,
                    _EFFECTS.c.target,
                    _EFFECTS.c.business_key,
                    _EFFECTS.c.idempotency_key,
                    _EFFECTS.c.payload,
                    _EFFECTS.c.attempts,
                    _EFFECTS.c.needs_read_back,
                    _EFFECTS.c.supersede_key,
                )
                .where(
                    _EFFECTS.c.state == PENDING,
                    _EFFECTS.c.next_attempt_at <= now,
                    _EFFECTS.c.kind.in_(list(self.handlers)),
                )
                .order_by(_EFFECTS.c.next_attempt_at, _EFFECTS.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            claims = [
                Claim(
                    effect_id=row.id,
                    token=uuid.uuid4().hex,
                    kind=row.kind,
                    target=row.target,
                    business_key=row.business_key,
                    idempotency_key=row.idempotency_key,
                    payload=dict(row.payload),
                    attempt_no=row.attempts + 1,
                    needs_read_back=bool(row.needs_read_back),
                    supersede_key=row.supersede_key,
                )
                for row in s.execute(query).all()
            ]
            if claims:
                s.execute(
                    update(_EFFECTS)
                    .where(_EFFECTS.c.id == bindparam("effect_id_"))
                    .values(
                        state=IN_FLIGHT,
                        claim_token=bindparam("token_"),
                        claimed_by=self.owner,
                        claimed_at=now,
                        renewed_at=now,
                        attempts=bindparam("attempts_"),
                        updated_at=now,
                    ),
                    [
                        {"effect_id_": c.effect_id, "token_": c.token, "attempts_": c.attempt_no}
                        for c in claims
                    ],
                )
        return claims

    def renew(self, claims: Iterable[Claim]) -> set[str]:
        """Renew every claim we still hold; the tokens of those we no longer hold."""
        tokens = sorted({claim.token for claim in claims})
        held: set[str] = set()
        if not tokens:
            return held
        now = self._db.now()
        with self._writing(), self._db.transaction() as s:
            for start in range(0, len(tokens), _KEYS_PER_QUERY):
                batch = tokens[start : start + _KEYS_PER_QUERY]
                ours = (_EFFECTS.c.claim_token.in_(batch), _EFFECTS.c.state == IN_FLIGHT)
                s.execute(update(_EFFECTS).where(*ours).values(renewed_at=now))
                held.update(s.scalars(select(_EFFECTS.c.claim_token).where(*ours)))
        return set(tokens) - held

    # -- the guard ---------------------------------------------------------------------------

    def guard(self, claim: Claim) -> str | None:
        """Right before a send: renew the claim if we still hold it, and settle versions.

        ``None`` means send now. Otherwise the outcome, with the effect's state already
        set: ``claim_lost`` (another dispatcher recovered it: it is theirs now),
        ``superseded`` (a newer version exists: this one is never sent) or ``deferred``
        (an older version is in flight or may still land: this one waits, the attempt not
        counted). One transaction, so no other dispatcher can act in between.
        """
        now = self._db.now()
        if self._guard_fast(claim, now):
            return None
        with self._writing(), self._db.transaction() as s:
            renewed = s.execute(
                update(_EFFECTS)
                .where(
                    _EFFECTS.c.id == claim.effect_id,
                    _EFFECTS.c.claim_token == claim.token,
                    _EFFECTS.c.state == IN_FLIGHT,
                )
                .values(renewed_at=now)
            )
            if renewed.rowcount != 1:
                return "claim_lost"
            if claim.supersede_key is None:
                return None
            same = _EFFECTS.c.supersede_key == claim.supersede_key
            newer = s.scalar(
                select(_EFFECTS.c.id)
                .where(same, _EFFECTS.c.id > claim.effect_id)
                .order_by(_EFFECTS.c.id.desc())
                .limit(1)
            )
            if newer is not None:
                self.store.outbox.supersede(s, [claim.effect_id], newer_id=newer)
                return "superseded"
            wait_until, settled = self._older_versions(s, claim, now)
            if settled:
                self.store.outbox.supersede(s, settled, newer_id=claim.effect_id)
            if wait_until is None:
                return None
            s.execute(
                update(_EFFECTS)
                .where(_EFFECTS.c.id == claim.effect_id)
                .values(
                    state=PENDING,
                    claim_token=None,
                    attempts=claim.attempt_no - 1,
                    next_attempt_at=wait_until,
                    updated_at=now,
                )
            )
            return "deferred"

    def _guard_fast(self, claim: Claim, now: datetime) -> bool:
        """The guard's common case in one statement: renew the claim if we still hold it and
        no other version of the effect could make it wait or be superseded (none newer, none
        older still pending, in flight, held or parked). True means send now; False, the
        full guard decides (its first statement renews again, which changes nothing).

        A Core connection rather than a session: this runs once per send, on the workers
        (on SQLite, the raw connection, with the other workers' guards: ``sqlite_guard``).
        """
        params: dict[str, object] = {"id_": claim.effect_id, "token_": claim.token, "now_": now}
        versioned = claim.supersede_key is not None
        if versioned:
            params["key_"] = claim.supersede_key
        if self._sqlite_guard is not None:
            writes, statements = self._sqlite_guard
            return writes.run(statements[versioned], params) == 1
        statement = _RENEW_ONE_IF_ALONE if versioned else _RENEW_ONE
        with self._writing(), self._db.engine.begin() as conn:
            return conn.execute(statement, params).rowcount == 1

    def _older_versions(
        self, s: Session, claim: Claim, now: datetime
    ) -> tuple[datetime | None, list[int]]:
        """Until when older versions may still land (None: they cannot), and the older
        versions that are settled and so superseded by this one."""
        rows = s.execute(
            select(
                _EFFECTS.c.id,
                _EFFECTS.c.state,
                _EFFECTS.c.needs_read_back,
                _EFFECTS.c.next_attempt_at,
                _EFFECTS.c.updated_at,
            ).where(
                _EFFECTS.c.supersede_key == claim.supersede_key,
                _EFFECTS.c.id < claim.effect_id,
                _EFFECTS.c.state.in_((PENDING, IN_FLIGHT, HELD, PARKED)),
            )
        ).all()
        soon = now + timedelta(seconds=DEFER_S)
        waits: list[datetime] = []
        settled: list[int] = []
        for row in rows:
            if row.state == IN_FLIGHT:
                waits.append(soon)  # on the wire, or about to be: let it finish first
            elif row.needs_read_back and row.state == PENDING:
                waits.append(max(soon, row.next_attempt_at))  # its read-back decides
            elif (
                row.needs_read_back
                and row.state == PARKED
                and row.updated_at + self.late_apply > now
            ):
                waits.append(row.updated_at + self.late_apply)  # gave up lately: may land
            else:
                settled.append(row.id)
        return (max(waits) if waits else None), settled
