"""Ledger of inbound files and their quarantined rows.

``record_file`` is called before a file is processed. The same content (SHA-256) is
recognised whatever its name, so a re-delivered or renamed file is never processed twice;
the copy gets its own row in state ``duplicate`` pointing at the original.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import IngestedFile, QuarantinedRow

FILE_STATES = ("new", "processing", "processed", "failed", "duplicate")
# States in which a recorded file still has to be processed (never started, or a crash
# interrupted it: its rows were written in a transaction that never committed).
UNFINISHED = ("new", "processing")


@dataclass(frozen=True)
class Quarantine:
    line_number: int
    raw: str
    reason: str


def _as_quarantine(row: Any) -> Quarantine:
    if isinstance(row, Quarantine):
        return row
    if isinstance(row, tuple):
        return Quarantine(*row)
    raw = getattr(row, "raw", None)
    if raw is None:
        raw = row.raw_text
    return Quarantine(int(row.line_number), str(raw), str(row.reason))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_file(
        self,
        path: Path | str,
        kind: str,
        session: Session | None = None,
        sha256: str | None = None,
    ) -> tuple[IngestedFile, bool]:
        """Record ``path``; return its row and whether the caller should process it now.

        ``True`` for content never seen before, or seen but never finished (a crash between
        recording and processing). ``False`` for content already processed, failed, or
        delivered earlier under another name (then the returned row is the ``duplicate``).
        ``sha256``: the file's hash when the caller took it already (while copying it).
        """
        path = Path(path)
        stat = path.stat()
        sha = sha256 or file_sha256(path)
        now = self._db.now()
        with self._db.transaction(session) as s:
            # Two runs recording the same file at once: the second waits and then sees the
            # first's row.
            self._db.serialize(s, sha)
            existing = list(
                s.scalars(
                    select(IngestedFile).where(IngestedFile.sha256 == sha).order_by(IngestedFile.id)
                )
            )
            same_path = next((row for row in existing if row.path == str(path)), None)
            if same_path is not None:
                return same_path, same_path.state in UNFINISHED and same_path.duplicate_of is None
            original = next((row for row in existing if row.duplicate_of is None), None)
            row = IngestedFile(
                path=str(path),
                name=path.name,
                size=stat.st_size,
                mtime=datetime.fromtimestamp(stat.st_mtime, UTC),
                sha256=sha,
                kind=kind,
                state="new" if original is None else "duplicate",
                duplicate_of=None if original is None else original.id,
                rows_accepted=0,
                rows_quarantined=0,
                first_seen=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return row, original is None

    def get(self, file_id: int) -> IngestedFile | None:
        with self._db.transaction() as s:
            return s.get(IngestedFile, file_id)

    def taken_in(self, sha256: str, kind: str, session: Session | None = None) -> bool:
        """Whether a file of this content and kind was already processed (or is a copy)."""
        with self._db.transaction(session) as s:
            found = s.scalars(
                select(IngestedFile.id).where(
                    IngestedFile.sha256 == sha256,
                    IngestedFile.kind == kind,
                    IngestedFile.state.in_(("processed", "duplicate")),
                )
            ).first()
            return found is not None

    def find(self, *, state: str | None = None, kind: str | None = None) -> list[IngestedFile]:
        query = select(IngestedFile).order_by(IngestedFile.id)
        if state:
            query = query.where(IngestedFile.state == state)
        if kind:
            query = query.where(IngestedFile.kind == kind)
        with self._db.transaction() as s:
            return list(s.scalars(query))

    def _set(self, session: Session | None, file_id: int, **values: object) -> IngestedFile:
        with self._db.transaction(session) as s:
            s.execute(
                update(IngestedFile)
                .where(IngestedFile.id == file_id)
                .values(updated_at=self._db.now(), **values)
            )
            row = s.get(IngestedFile, file_id, populate_existing=True)
            if row is None:
                raise KeyError(f"no ingested file {file_id}")
            return row

    def mark_processing(self, file_id: int, session: Session | None = None) -> IngestedFile:
        return self._set(session, file_id, state="processing")

    def mark_processed(
        self,
        file_id: int,
        rows_accepted: int,
        rows_quarantined: int | None = None,
        session: Session | None = None,
    ) -> IngestedFile:
        """Close the file; call it in the transaction that wrote its rows."""
        with self._db.transaction(session) as s:
            if rows_quarantined is None:
                rows_quarantined = s.scalar(
                    select(func.count()).where(QuarantinedRow.file_id == file_id)
                )
            return self._set(
                s,
                file_id,
                state="processed",
                rows_accepted=rows_accepted,
                rows_quarantined=rows_quarantined or 0,
                error=None,
            )

    def mark_failed(self, file_id: int, error: str, session: Session | None = None) -> IngestedFile:
        return self._set(session, file_id, state="failed", error=error)

    def add_quarantined_rows(
        self,
        file_id: int,
        rows: Iterable[Quarantine | tuple[int, str, str] | Any],
        session: Session | None = None,
    ) -> int:
        """Keep the bad rows with their reasons. Accepts ``Quarantine``, ``(line, raw, reason)``
        tuples, or any object with ``line_number``, ``raw`` (or ``raw_text``) and ``reason``."""
        now = self._db.now()
        items = [_as_quarantine(row) for row in rows]
        with self._db.transaction(session) as s:
            s.add_all(
                QuarantinedRow(
                    file_id=file_id,
                    line_number=item.line_number,
                    raw=item.raw,
                    reason=item.reason,
                    created_at=now,
                )
                for item in items
            )
            s.flush()
        return len(items)

    def quarantined(self, file_id: int) -> list[QuarantinedRow]:
        query = (
            select(QuarantinedRow)
            .where(QuarantinedRow.file_id == file_id)
            .order_by(QuarantinedRow.line_number, QuarantinedRow.id)
        )
        with self._db.transaction() as s:
            return list(s.scalars(query))
