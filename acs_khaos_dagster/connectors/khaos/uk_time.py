"""UTC <-> UK local time (Europe/London), the only place the integration converts.

Khaos Control sends and accepts datetimes as UK wall-clock time without an offset.
Inside the integration every datetime is timezone-aware UTC.

Rules at the clock changes (documented, and tested):
- **October (ambiguous hour)**: a wall time between 01:00 and 02:00 on the last
  Sunday of October happens twice. Without more information we take the
  **first occurrence** (``fold=0``, still BST, UTC+1). Callers that know better
  pass ``fold=1``.
- **March (non-existent hour)**: a wall time between 01:00 and 02:00 on the last
  Sunday of March never happens. We read it with the offset in force *before*
  the change (GMT), which is the same as **shifting it forward** by the gap:
  01:30 is read as 02:30 BST, i.e. 01:30 UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")

# Khaos formats: ISO without offset; seconds always, no fractions on the wire.
WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def to_uk_local(moment: datetime) -> datetime:
    """The naive UK wall-clock time of an aware instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("to_uk_local needs a timezone-aware datetime")
    return moment.astimezone(UK).replace(tzinfo=None, fold=0)


def from_uk_local(wall: datetime, fold: int = 0) -> datetime:
    """The UTC instant of a naive UK wall-clock time (see the module rules)."""
    if wall.tzinfo is not None and wall.utcoffset() is not None:
        return wall.astimezone(UTC)
    # zoneinfo applies exactly the documented rules: fold=0 picks the first
    # occurrence of an ambiguous time and the pre-transition offset for a gap.
    return wall.replace(tzinfo=UK, fold=fold).astimezone(UTC)


def is_ambiguous(wall: datetime) -> bool:
    """True for a wall time that happens twice (October's repeated hour)."""
    first = wall.replace(tzinfo=UK, fold=0).utcoffset()
    second = wall.replace(tzinfo=UK, fold=1).utcoffset()
    return first != second and _round_trips(wall)


def is_nonexistent(wall: datetime) -> bool:
    """True for a wall time that never happens (March's skipped hour)."""
    return not _round_trips(wall)


def _round_trips(wall: datetime) -> bool:
    naive = wall.replace(tzinfo=None)
    back = naive.replace(tzinfo=UK).astimezone(UTC).astimezone(UK).replace(tzinfo=None)
    return back == naive


def format_uk(moment: datetime) -> str:
    """Wire text of an aware instant: UK local, no offset, whole seconds."""
    return to_uk_local(moment).strftime(WIRE_FORMAT)


def parse_uk(text: str, fold: int = 0) -> datetime:
    """The UTC instant of a wire datetime.

    Accepts ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` (a space instead of ``T`` too) or a
    bare date (midnight UK). A value that does carry an offset is honoured as is.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty datetime")
    if len(value) == 10:
        return from_uk_local(datetime.combine(date.fromisoformat(value), time()), fold)
    parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
    return from_uk_local(parsed, fold)


# Khaos stores UK wall-clock times and compares them as such: in October's repeated hour
# a change at 01:10 (the second, GMT, occurrence) sorts before 01:45 (the first, BST)
# although it happened later. A "changed since" or "from" bound sent as the wall time of
# an instant inside that hour would miss such a change, so bounds are widened to the
# whole repeated hour; reading a little more than asked is safe, missing a change is not.


def format_uk_from(moment: datetime) -> str:
    """Wire text of a lower bound (``DateValue``, ``DateFrom``): every instant from
    ``moment`` on has a wall-clock time at or after it."""
    wall = to_uk_local(moment)
    if is_ambiguous(wall):
        wall = wall.replace(minute=0, second=0, microsecond=0)
    return wall.strftime(WIRE_FORMAT)


def format_uk_to(moment: datetime) -> str:
    """Wire text of an upper bound (``DateTo``): every instant up to ``moment`` has a
    wall-clock time at or before it."""
    wall = to_uk_local(moment)
    if is_ambiguous(wall):
        wall = wall.replace(minute=59, second=59, microsecond=0)
    return wall.strftime(WIRE_FORMAT)
