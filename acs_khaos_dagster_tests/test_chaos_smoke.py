"""The bounded fault-injection soak CI runs on every commit (``scripts/chaos.py --small``).

300 effects, about a quarter of all calls to the simulators meeting an injected fault,
dispatchers killed at every named crash point and with SIGKILL, a Dagster run process
SIGKILLed mid-run; afterwards the store must agree with the sandbox's ground truth.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chaos.py"


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("chaos")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--small", "--seed", "5", "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def _figure(output: str, pattern: str) -> int:
    match = re.search(pattern, output)
    assert match, f"{pattern!r} not in the soak's report:\n{output}"
    return int(match.group(1))


def test_the_small_soak_loses_nothing_and_applies_nothing_twice(soak: str) -> None:
    assert _figure(soak, r"(?m)^effects: (\d+)") >= 300
    assert _figure(soak, r"(?m)^lost: (\d+)") == 0
    assert _figure(soak, r"(?m)^duplicated: (\d+)") == 0
    assert "RESULT: PASS" in soak


def test_the_small_soak_meets_faults_on_at_least_a_fifth_of_calls(soak: str) -> None:
    share = float(re.search(r"faults injected: \d+ \(([\d.]+)%\)", soak).group(1))
    assert share >= 20.0


def test_the_small_soak_kills_at_every_crash_point_and_kills_a_dagster_run(soak: str) -> None:
    for point in ("after_claim", "after_send", "before_mark_done"):
        assert _figure(soak, rf"crash point {point}: (\d+)") >= 1
    assert _figure(soak, r"SIGKILL Dagster run: (\d+)") >= 1


def test_the_small_soak_leaves_khaos_level_right_and_every_failure_owned(soak: str) -> None:
    assert _figure(soak, r"stock rows checked, (\d+) wrong") == 0
    assert _figure(soak, r"without an owned exception: (\d+)") == 0
