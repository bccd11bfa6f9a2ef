"""The bounded soak CI runs (``scripts/chaos.py --small``): the same oracles as the full one.

Half a simulated day of a tiny brand trading (new orders, address corrections,
cancellations, returns, stock changes no order explains), every effect made by Dagster runs
that the integration's own sensors and schedules started (ticked by a daemon process the
soak SIGKILLs and restarts), a quarter of all calls faulted, run workers and standalone
dispatchers SIGKILLed, killed at crash points and frozen (SIGSTOP) holding claims past their
lease (every returns run's first attempt among them), the soak's own PostgreSQL restarted
once; at quiescence every oracle from the simulators' ground truth holds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chaos.py"


def _postgres_installed() -> bool:
    from glob import glob

    return bool(shutil.which("initdb") or glob("/usr/lib/postgresql/*/bin/initdb"))


pytestmark = [
    pytest.mark.skipif(not _postgres_installed(), reason="PostgreSQL not installed"),
    # The soak (in the module fixture) runs longer than the suite's 600 s per-test limit:
    # its own subprocess timeout below is the bound.
    pytest.mark.timeout(1900),
]


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("soak")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--small", "--seed", "5", "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert "RESULT:" in done.stdout, done.stdout[-6000:] + done.stderr[-3000:]
    return done.stdout


def _figure(output: str, pattern: str) -> int:
    match = re.search(pattern, output)
    assert match, f"{pattern!r} not in the soak's report:\n{output}"
    return int(match.group(1))


def test_every_oracle_holds_after_the_small_soak(soak: str) -> None:
    assert "BROKEN" not in soak, soak[soak.find("oracles (checked)") :]
    assert "RESULT: PASS" in soak


def test_the_small_soak_makes_every_effect_through_the_flows(soak: str) -> None:
    assert _figure(soak, r"(?m)^effects: (\d+)  \(all made by the flows\)") > 0
    assert _figure(soak, r"runs launched by sensors and schedules: (\d+)") > 0


def test_the_small_soak_faults_a_fifth_of_calls_kills_runs_and_restarts_postgresql(
    soak: str,
) -> None:
    share = float(re.search(r"faults injected: \d+ \(([\d.]+)%\)", soak).group(1))
    assert share >= 20.0
    assert _figure(soak, r"(?m)^kills: (\d+)") >= 1
    assert _figure(soak, r"PostgreSQL restarts: (\d+)") >= 1


def test_the_small_soak_kills_the_daemon_and_freezes_dispatchers_holding_claims(
    soak: str,
) -> None:
    assert _figure(soak, r"(?m)^  SIGKILL daemon: (\d+)") >= 1
    assert _figure(soak, r"(?m)^freezes: (\d+)") >= 1


def test_the_small_soak_freezes_a_returns_run_holding_customer_returns(soak: str) -> None:
    """Where the pre-send claim check shows: a customer return sent twice is two returns
    and two credits in Khaos, which the returns oracle counts."""
    assert re.search(r"(?m)^  SIGSTOP run worker \(returns_flow\) holding claims", soak), soak


def test_the_small_soak_edits_orders_and_checks_acs_holds_their_newest_address(
    soak: str,
) -> None:
    assert _figure(soak, r"(\d+) edited before ACS had them") >= 1
    assert "'orders edited in Khaos before ACS had them'" in soak
