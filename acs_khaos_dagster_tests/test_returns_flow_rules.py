"""The returns group's rules without Dagster: the refund clock's check and figures
(``flows.refund_clock``) and what the returns-file sensor does
(``flows.returns_intake.files_sensor_answer``) given the drop's news and the runs so far."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from acs_khaos_dagster.flows.refund_clock import CLOCK_COLUMNS, clock_figures, no_refund_breached
from acs_khaos_dagster.flows.returns_intake import (
    UNFINISHED_RETRIES,
    UNFINISHED_TAG,
    FilesNews,
    files_key,
    files_sensor_answer,
)


def _part(ref: str, status: str, due: bool = False, breached: bool = False) -> dict:
    row = dict.fromkeys(CLOCK_COLUMNS)
    row.update(associated_ref=ref, credit_status=status, due=due, breached=breached)
    return row


def test_a_sale_return_past_its_refund_deadline_fails_the_check_as_a_warning() -> None:
    clock = pd.DataFrame([_part("return:R1", "none", due=True, breached=True)])

    verdict = no_refund_breached(clock)

    assert (verdict.passed, verdict.warn, verdict.figures["breached"]) == (False, True, 1)


def test_a_refund_due_but_not_breached_passes_the_check() -> None:
    assert no_refund_breached(pd.DataFrame([_part("return:R1", "review", due=True)])).passed


def test_the_refund_clock_figures_count_credits_and_refunds_due() -> None:
    clock = pd.DataFrame(
        [
            _part("return:R1", "raised"),
            _part("return:R2", "review", due=True),
            _part("return:R3", "none", due=True, breached=True),
        ]
    )

    figures = clock_figures(clock)

    assert (figures["sale_return_parts"], figures["credits_raised"]) == (3, 1)
    assert (figures["credits_pending_review"], figures["refunds_due"]) == (1, 2)
    assert figures["refunds_breached"] == 1


@dataclass
class _Runs:
    """The returns runs as the sensor's decision asks about them, and what it asked."""

    ended: bool = False
    in_progress: bool = False
    retries: dict[str, int] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def one_has_ended(self) -> bool:
        self.asked.append("ended")
        return self.ended

    def one_in_progress(self) -> bool:
        self.asked.append("in_progress")
        return self.in_progress

    def tagged(self, tags: Mapping[str, str]) -> int:
        self.asked.append("tagged")
        return self.retries.get(tags.get(UNFINISHED_TAG, ""), 0)


def _news(new=(), stuck=(), never_recorded=()) -> FilesNews:
    return FilesNews(["f"], list(new), list(stuck), list(never_recorded))


def test_new_files_start_a_run_keyed_by_the_files_without_asking_about_runs() -> None:
    runs = _Runs()

    answer = files_sensor_answer(_news(new=["a.csv|1|t"]), runs)

    assert answer.run_key == files_key(["a.csv|1|t"])
    assert answer.tags == {"acs_returns_files": "1"}
    assert runs.asked == []


def test_nothing_new_or_stuck_skips() -> None:
    answer = files_sensor_answer(_news(), _Runs())

    assert answer.run_key is None and "not taken in" in answer.skip


def test_an_unfinished_file_is_retried_with_its_key_and_attempt() -> None:
    answer = files_sensor_answer(_news(stuck=["a.csv"]), _Runs())

    key = files_key(["a.csv"])
    assert answer.run_key == f"unfinished:{key}:0"
    assert answer.tags == {UNFINISHED_TAG: key}


def test_an_unfinished_file_waits_while_a_returns_run_is_on_its_way() -> None:
    answer = files_sensor_answer(_news(stuck=["a.csv"]), _Runs(in_progress=True))

    assert answer.run_key is None and answer.skip == "a run is taking in a.csv"


def test_an_unfinished_file_is_given_up_after_its_retries() -> None:
    runs = _Runs(retries={files_key(["a.csv"]): UNFINISHED_RETRIES})

    answer = files_sensor_answer(_news(stuck=["a.csv"]), runs)

    assert answer.run_key is None and "still unfinished after 3 runs" in answer.skip


def test_a_file_seen_but_never_recorded_is_retried_only_once_a_run_has_ended() -> None:
    news = _news(never_recorded=["b.csv"])

    assert files_sensor_answer(news, _Runs(ended=False)).run_key is None
    answer = files_sensor_answer(news, _Runs(ended=True))
    assert answer.run_key == f"unfinished:{files_key(['b.csv'])}:0"
