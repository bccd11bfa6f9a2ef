"""UK local time on the Khaos wire: no offset, both clock changes handled by a stated rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acs_khaos_dagster.connectors.khaos.uk_time import (
    format_uk,
    from_uk_local,
    is_ambiguous,
    is_nonexistent,
    parse_uk,
    to_uk_local,
)


def test_winter_time_is_utc_on_the_wire() -> None:
    assert format_uk(datetime(2024, 1, 15, 12, 30, tzinfo=UTC)) == "2024-01-15T12:30:00"


def test_summer_time_is_one_hour_ahead_on_the_wire() -> None:
    assert format_uk(datetime(2024, 7, 1, 12, 0, tzinfo=UTC)) == "2024-07-01T13:00:00"


def test_sending_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError):
        to_uk_local(datetime(2024, 7, 1, 12, 0))


def test_parsing_summer_local_time_gives_utc() -> None:
    assert parse_uk("2024-07-01T13:00:00") == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def test_october_repeated_hour_is_read_as_its_first_occurrence() -> None:
    # 27 Oct 2024: 01:00-02:00 happens twice (BST then GMT).
    wall = datetime(2024, 10, 27, 1, 30)
    assert is_ambiguous(wall)
    assert from_uk_local(wall) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert from_uk_local(wall, fold=1) == datetime(2024, 10, 27, 1, 30, tzinfo=UTC)


def test_both_utc_instants_of_the_repeated_hour_send_the_same_wall_time() -> None:
    first = datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    second = datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    assert format_uk(first) == format_uk(second) == "2024-10-27T01:30:00"


def test_march_skipped_hour_is_shifted_forward() -> None:
    # 31 Mar 2024: clocks jump from 01:00 GMT to 02:00 BST; 01:30 never happens.
    wall = datetime(2024, 3, 31, 1, 30)
    assert is_nonexistent(wall)
    instant = from_uk_local(wall)
    assert instant == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    assert to_uk_local(instant) == datetime(2024, 3, 31, 2, 30)


def test_round_trip_across_the_march_change() -> None:
    for hour in range(0, 4):
        instant = datetime(2024, 3, 31, hour, 15, tzinfo=UTC)
        assert parse_uk(format_uk(instant)) == instant


def test_round_trip_across_the_october_change_outside_the_repeated_hour() -> None:
    for hour in (23, 2, 3):
        day = 26 if hour == 23 else 27
        instant = datetime(2024, 10, day, hour, 15, tzinfo=UTC)
        assert parse_uk(format_uk(instant)) == instant


def test_a_value_with_an_offset_is_honoured() -> None:
    assert parse_uk("2024-07-01T13:00:00+01:00") == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def test_a_bare_date_is_uk_midnight() -> None:
    assert parse_uk("2024-07-01") == datetime(2024, 6, 30, 23, 0, tzinfo=UTC)


def test_ordinary_times_are_neither_ambiguous_nor_missing() -> None:
    wall = datetime(2024, 5, 1, 1, 30)
    assert not is_ambiguous(wall)
    assert not is_nonexistent(wall)
