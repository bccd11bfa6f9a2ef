"""The sandbox in a process of its own, for the benchmarks (its CPU is read from /proc).

    python scripts/bench_sandbox_server.py SCENARIO_DIR DROP_FOLDER [VARIANT]

Prints one JSON line (the ``ACS_KHAOS_*`` environment pointing at it, with the settings
of ``VARIANT``, a ``sandbox.variants`` name), then serves until its stdin closes. Besides
the usual control routes it offers ``POST /_sandbox/bench/daily`` (ACS writes its daily
files) and ``POST /_sandbox/bench/faults`` (add a ``FaultRule`` from query parameters:
any ``FaultKind``, on ``system=acs`` or ``khaos``, with ``apply_after_s`` and
``later_by`` for the late-apply and file faults). ``POST /_sandbox/bench/watch`` starts
the despatch benchmark's ``Watcher`` in this process (``GET /_sandbox/bench/watched``: when
each event entered ACS's feed and reached Khaos, monotonic seconds, and every
ImportDespatch Khaos recorded), for the daemon mode of ``bench_despatch_latency.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench_despatch_latency import Watcher

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.runner import Sandbox
from acs_khaos_dagster.sandbox.variants import VARIANTS


def main() -> int:
    folder, drop = Path(sys.argv[1]), Path(sys.argv[2])
    variant = VARIANTS[sys.argv[3] if len(sys.argv) > 3 else "modelled"]
    settings = load_settings()
    box = Sandbox(folder, drop, settings, seed=7, variant=variant)

    def daily() -> dict[str, list[str]]:
        return {"files": [p.name for p in box.acs.write_daily_files()]}

    def faults(
        operation: str,
        kind: str,
        rate: float,
        retry_after: int = 1,
        system: str = "acs",
        apply_after_s: float = 0.0,
        later_by: int = 1,
    ) -> dict:
        injector = box.khaos_faults if system == "khaos" else box.acs_faults
        injector.add(
            FaultRule(
                operation=operation,
                kind=FaultKind(kind),
                rate=rate,
                retry_after=retry_after,
                apply_after_s=apply_after_s,
                later_by=later_by,
            )
        )
        return {"ok": True}

    def clear() -> dict:
        box.acs_faults.clear()
        box.khaos_faults.clear()
        return {"ok": True}

    watchers: list[Watcher] = []

    def watch() -> dict:
        if not watchers:
            watchers.append(Watcher(box))
            watchers[0].start()
        return {"ok": True}

    def watched() -> dict:
        seen = watchers[0] if watchers else None
        calls = list(box.khaos.books.despatch_calls)  # every ImportDespatch applied
        return {
            "appeared": dict(seen.appeared) if seen else {},
            "posted": dict(seen.posted) if seen else {},
            "despatch_refs": [c.external_ref for c in calls],
        }

    box.acs.app.add_api_route("/_sandbox/bench/watch", watch, methods=["POST"])
    box.acs.app.add_api_route("/_sandbox/bench/watched", watched, methods=["GET"])
    box.acs.app.add_api_route("/_sandbox/bench/daily", daily, methods=["POST"])
    box.acs.app.add_api_route("/_sandbox/bench/faults", faults, methods=["POST"])
    box.acs.app.add_api_route("/_sandbox/bench/faults/clear", clear, methods=["POST"])
    with box:
        print(json.dumps(box.settings_env()), flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
