"""The soak's plumbing: the sandbox process and its clock and faults, the figures, the
settings the integration runs with.

The parts: ``launcher`` (run workers, standalone dispatchers and the daemon, each a process
forked from a warm server, and what is done to them), ``daemon`` (the sensor and schedule
ticks, in a process the soak kills), ``pg`` (the soak's own PostgreSQL), ``run`` (the soak
end to end). The soak itself never writes into the outbox or the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "chaos.py"
CALL_FAULTS = (
    "error_5xx",
    "rate_limit",
    "latency",
    "timeout_before",
    "timeout_after",
    "reset_before",
    "reset_after",
    "applied_then_5xx",
)
KHAOS_ONLY = ("late_apply",)
ACS_ONLY = ("quota_403",)
FEED_FAULTS = ("duplicate", "reorder", "replay", "republish")


def http(method: str, url: str, body: Any = None, timeout: float = 120) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    env: dict[str, str]

    @classmethod
    def start(
        cls, scenario: Path, drop: Path, seed: int, env: dict[str, str], log: Any
    ) -> SandboxProcess:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "serve", str(scenario), str(drop), "--seed", str(seed)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process did not start")
        return cls(process, json.loads(line))

    @property
    def acs(self) -> str:
        return self.env["ACS_KHAOS_ACS__BASE_URL"]

    @property
    def khaos(self) -> str:
        return self.env["ACS_KHAOS_KHAOS__BASE_URL"]

    def truth(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return (
            http("GET", f"{self.acs}/_sandbox/truth"),
            http("GET", f"{self.khaos}/_sandbox/truth"),
            http("GET", f"{self.acs}/_sandbox/soak/units"),
        )

    def faults_on(self, rate: float, stall_s: float, late_apply_s: float) -> None:
        """Call faults on every operation of both systems; their union is ``rate``."""
        for kind in FEED_FAULTS:
            http(
                "POST",
                f"{self.acs}/_sandbox/faults",
                {"operation": "list_despatches", "kind": kind, "rate": 0.05},
            )
        per_rule = 1 - (1 - rate) ** (1 / (len(CALL_FAULTS) + 1))
        rules = [(b, k) for b in (self.acs, self.khaos) for k in CALL_FAULTS]
        rules += [(self.khaos, k) for k in KHAOS_ONLY] + [(self.acs, k) for k in ACS_ONLY]
        for base, kind in rules:
            stalls = kind in ("latency", "timeout_before", "timeout_after", "late_apply")
            http(
                "POST",
                f"{base}/_sandbox/faults",
                {
                    "operation": "*",
                    "kind": kind,
                    "rate": per_rule,
                    "latency_s": stall_s if stalls else 0,
                    "retry_after": 2,
                    "apply_after_s": late_apply_s,
                },
            )

    def faults_off(self) -> None:
        for base in (self.acs, self.khaos):
            http("DELETE", f"{base}/_sandbox/faults")

    def fault_stats(self) -> dict[str, Any]:
        return {
            "acs": http("GET", f"{self.acs}/_sandbox/faults/stats"),
            "khaos": http("GET", f"{self.khaos}/_sandbox/faults/stats"),
        }

    def now(self) -> datetime:
        return datetime.fromisoformat(http("GET", f"{self.acs}/_sandbox/clock")["now"])

    def advance(self, minutes: float) -> datetime:
        answer = http("POST", f"{self.acs}/_sandbox/clock/advance?minutes={minutes}")
        return datetime.fromisoformat(answer["now"])

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Figures:
    seed: int
    started: float = field(default_factory=time.monotonic)
    wall: Counter[str] = field(default_factory=Counter)  # seconds spent, by phase
    cpu: Counter[str] = field(default_factory=Counter)  # CPU seconds, by process kind
    runs: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    freezes: Counter[str] = field(default_factory=Counter)
    pg_restarts: int = 0
    ticks: Counter[str] = field(default_factory=Counter)
    tick_errors: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    cancelled: int = 0
    edited: int = 0
    returns: int = 0
    days: float = 0.0
    first_failure_s: float | None = None
    stock_events: Counter[str] = field(default_factory=Counter)  # brand side (soakbrand)


def outbox_counts(store_url: str) -> Counter[str]:
    from acs_khaos_dagster.store import Store

    with Store.open(store_url, migrate=False) as store:
        status = store.outbox.status()
    counts: Counter[str] = Counter()
    for (_, state), n in status.counts.items():
        counts[state] += n
    return counts


def dagster_yaml(home: Path, port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        # Each step's stdout/stderr captured to files is I/O the soak never reads: the run
        # workers log to their own files, and the oracles read the simulators.
        "compute_logs:\n  module: dagster._core.storage.noop_compute_log_manager\n"
        "  class: NoOpComputeLogManager\n"
        "storage:\n  postgres:\n    postgres_db:\n      scheme: postgresql+psycopg2\n"
        f"      hostname: 127.0.0.1\n      port: {port}\n      username: postgres\n"
        "      password: ''\n      db_name: dagster\n",
        encoding="utf-8",
    )


def integration_env(
    sandbox_env: dict[str, str], work: Path, store_url: str, read_timeout_s: float
) -> dict[str, str]:
    """Production settings (defaults) except the client's wall-clock read timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
    env.update(sandbox_env)
    env.update(
        {
            "ACS_KHAOS_DATA_DIR": str(work / "data"),
            "ACS_KHAOS_DATABASE_URL": store_url,
            "ACS_KHAOS_HTTP__READ_TIMEOUT_S": str(read_timeout_s),
            "ACS_KHAOS_LOG_LEVEL": "WARNING",
            "DAGSTER_HOME": str(work / "dagster_home"),
        }
    )
    return env
