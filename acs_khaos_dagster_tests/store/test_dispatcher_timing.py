"""The dispatcher's timing rules (``store/dispatcher/records.py``), without a database:
how long a refused effect waits, since when it has been rate-limited, and whether a
claim's owner is a dead process on this host.

Backoff bounds are written from the documented rule (capped exponential, full jitter,
``Retry-After`` wins); the live/dead processes are real ones started by the test.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.store.dispatcher.records import (
    Claim,
    DispatchReport,
    Talked,
    backoff_delay,
    owner_is_dead,
    rate_limit_delay,
    rate_limited_since,
)

OUTBOX = OutboxSettings()  # backoff 2 s doubling to 600 s; rate-limit waits up to 900 s
seeds = st.integers(min_value=0, max_value=2**32 - 1)

# --- backoff -------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=40), seeds)
def test_a_retry_waits_at_most_the_doubling_cap_and_never_past_the_maximum(attempts, seed) -> None:
    delay = backoff_delay(attempts, OUTBOX, rng=random.Random(seed))
    cap = min(600.0, 2.0 * 2 ** (attempts - 1))
    assert 0 <= delay <= cap


def test_retries_back_off_two_four_eight_seconds_then_level_out_at_ten_minutes() -> None:
    # The upper bound of the jitter over many draws approaches each cap.
    for attempts, cap in ((1, 2.0), (2, 4.0), (3, 8.0), (9, 512.0), (10, 600.0), (30, 600.0)):
        draws = [backoff_delay(attempts, OUTBOX, rng=random.Random(n)) for n in range(400)]
        assert max(draws) <= cap
        assert max(draws) > cap * 0.95


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=5000, allow_nan=False), seeds)
def test_the_first_refusal_naming_a_wait_is_retried_after_exactly_that_wait(wait, seed) -> None:
    assert backoff_delay(1, OUTBOX, retry_after=wait, rng=random.Random(seed)) == wait


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=2, max_value=20),
    st.floats(min_value=0, max_value=5000, allow_nan=False),
    seeds,
)
def test_a_later_refusal_never_comes_back_before_the_servers_wait(attempts, wait, seed) -> None:
    delay = backoff_delay(attempts, OUTBOX, retry_after=wait, rng=random.Random(seed))
    assert delay >= wait
    assert delay <= max(wait, min(600.0, 2.0 * 2 ** (attempts - 1)))


# --- rate limits ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=10_000, allow_nan=False), st.floats(0, 10_000), seeds)
def test_a_rate_limit_wait_is_the_targets_own_cut_to_fifteen_minutes(wait, refused, seed) -> None:
    delay = rate_limit_delay(wait, refused, OUTBOX, rng=random.Random(seed))
    assert delay == min(wait, 900.0)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=10_000, allow_nan=False), seeds)
def test_without_a_named_wait_a_rate_limited_effect_waits_about_as_long_as_refused_so_far(
    refused, seed
) -> None:
    delay = rate_limit_delay(None, refused, OUTBOX, rng=random.Random(seed))
    wait = min(max(2.0, refused), 900.0)
    assert wait / 2 <= delay <= wait


def test_rate_limit_waits_are_jittered_so_refused_effects_do_not_return_together() -> None:
    delays = {rate_limit_delay(None, 60, OUTBOX, rng=random.Random(n)) for n in range(20)}
    assert len(delays) == 20


T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def history(*outcomes: str) -> list[tuple[str, datetime]]:
    return [(outcome, T0 + timedelta(minutes=i)) for i, outcome in enumerate(outcomes)]


def test_an_effect_refused_without_a_break_is_rate_limited_since_its_first_refusal() -> None:
    since = rate_limited_since(history("rate_limited", "read_back_rate_limited", "rate_limited"))
    assert since == T0


def test_a_claim_lost_or_deferred_does_not_break_a_run_of_refusals() -> None:
    assert rate_limited_since(history("rate_limited", "claim_lost", "deferred", "interrupted",
                                      "rate_limited")) == T0  # fmt: skip


def test_an_attempt_that_reached_the_target_ends_the_run_of_refusals() -> None:
    assert rate_limited_since(history("rate_limited", "transient_error", "rate_limited")) == (
        T0 + timedelta(minutes=2)
    )
    assert rate_limited_since(history("rate_limited", "sent")) is None
    assert rate_limited_since([]) is None


# --- claim owners -------------------------------------------------------------------------------


def test_a_claim_without_an_owner_is_taken_as_dead() -> None:
    assert owner_is_dead(None)
    assert owner_is_dead("")


def exited_pid() -> int:
    """The process number of a process that has run and exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def test_a_dispatcher_on_another_machine_is_never_judged_dead_here() -> None:
    # Its process number means nothing on this host, even one no process here has now.
    assert not owner_is_dead(f"some-other-host.invalid:{exited_pid()}:dispatcher")


def test_a_running_dispatcher_on_this_host_is_alive() -> None:
    assert not owner_is_dead(f"{socket.gethostname()}:{os.getpid()}:dispatcher")


def test_a_dispatcher_process_that_has_exited_on_this_host_is_dead() -> None:
    assert owner_is_dead(f"{socket.gethostname()}:{exited_pid()}:dispatcher")


def test_an_owner_without_a_process_number_is_left_to_the_lease() -> None:
    assert not owner_is_dead(f"{socket.gethostname()}:abc:dispatcher")


# --- reports and talks ----------------------------------------------------------------------------


def test_dispatch_reports_of_several_passes_add_up() -> None:
    first = DispatchReport(claimed=3)
    first.outcomes.update({"sent": 2, "transient_error": 1})
    second = DispatchReport(claimed=2)
    second.outcomes.update({"sent": 1, "rejected": 1})
    first.add(second)
    assert first.claimed == 5
    assert first.outcomes == {"sent": 3, "transient_error": 1, "rejected": 1}


CLAIM = Claim(1, "tok", "acs.put_order", "acs", "SO1", "order:SO1:abc", {}, 1, False)


@pytest.mark.parametrize(
    ("talk", "done"),
    [
        (Talked(CLAIM, "sent", 12, result={"ok": True}), True),
        (Talked(CLAIM, "transient_error", 12, error=TimeoutError("slow")), False),
        (Talked(CLAIM, "superseded", 0, settled_by_guard=True), False),
    ],
    ids=["sent", "to_retry", "settled_by_guard"],
)
def test_a_talk_is_done_only_when_it_ended_without_error_or_guard(talk: Talked, done: bool) -> None:
    assert talk.done is done
