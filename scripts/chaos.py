"""Fault-injection soak: the full cycle under injected faults and SIGKILLs, checked against truth.

    .venv/bin/python scripts/chaos.py --effects 10000 --fault-rate 0.25 --seed 11 --kills 60
    .venv/bin/python scripts/chaos.py --small          # the bounded version CI runs

What it does, all seeded (the seed is printed so a run can be replayed):

1. generates the tiny brand scenario and starts the sandbox in a process of its own
   (``scripts/chaos.py serve``), so killing the integration never kills the simulators;
2. turns on faults on both simulators through ``POST /_sandbox/faults`` (5xx, 429 with
   Retry-After, latency beyond the client's timeout, timeout before and after the write,
   connection resets; duplicate and reordered despatch-feed events), plus any of the
   real-system faults named with ``--extra-faults`` (``quota_403``, ``applied_then_5xx``,
   ``late_apply``, ``replay``, ``cursor_reset``, ``delay``, ``republish``,
   ``republish_partial``; see ``sandbox/faults.py``). ``late_apply`` lands after the
   outbox's read-back by design and ``applied_then_5xx`` is ambiguous: expect them to show
   as duplicates, which the nightly reconciliation raises as ``khaos_duplicate``;
   ``--variant`` runs the sandbox as one of ``sandbox.variants`` (Khaos without Level, own
   codes, ACS's time styles) with the matching settings;
3. runs ``integration_cycle`` in Dagster run processes while simulated time passes (SKU
   pushes, order releases and cancellations, despatch postings, returns, the stock push),
   SIGKILLing some of them at random moments and running them again;
4. tops the outbox up to ``--effects`` with realistic effects (stock adjustments, customer
   returns, despatch postings of extra Khaos orders, SKU pushes, order releases and
   cancellations), a few of them invalid on purpose so they must be parked;
5. drains it with several ``acs-khaos outbox dispatch`` processes at once, killing them at
   each named crash point (``after_claim``, ``after_send``, ``before_mark_done``) and with
   SIGKILL at random moments, and killing Dagster run processes in between;
6. clears the faults, drains once more cleanly and compares the store with
   ``GET /_sandbox/truth`` of both systems: effects lost, effects applied twice, Khaos
   Level per stock item against the figures expected from the effects, parked effects
   without an open exception and owner.

The integration runs on the system clock (``ACS_KHAOS_CLOCK_URL`` unset) so the outbox's
backoff is wall-clock time, with short backoff and a 1 s client read timeout.
Exit status 0 only if nothing was lost, nothing was applied twice and Level is right.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CRASH_POINTS = ("after_claim", "after_send", "before_mark_done")
# Call faults both simulators can apply; the rate is shared out so their union is --fault-rate.
CALL_FAULTS = (
    "error_5xx",
    "rate_limit",
    "latency",
    "timeout_before",
    "timeout_after",
    "reset_before",
    "reset_after",
)
FEED_FAULTS = ("duplicate", "reorder")
# Real-system faults (--extra-faults): where each is switched on.
EXTRA_FAULTS = {
    "quota_403": ("acs",),
    "applied_then_5xx": ("acs", "khaos"),
    "late_apply": ("khaos",),
    "replay": ("feed",),
    "cursor_reset": ("feed",),
    "delay": ("feed",),
    "republish": ("feed",),
    "republish_partial": ("feed",),
}
LATE_APPLY_AFTER_S = 15 * 60  # simulated seconds: lands in the soak's next clock step
CLIENT_READ_TIMEOUT_S = 1.0
STALL_S = 1.3  # beyond the client's read timeout: the client gives up, the server goes on
EXTRA_ORDER_BASE = 900_000  # Khaos order ids of the extra orders the soak's despatches ship
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
ADJUST_REASON = "VARIANCE"
BAD_REASON = "NOT_A_REASON"  # Khaos rejects it: the effect must be parked, never applied


# --- the sandbox process -------------------------------------------------------------------


def serve(scenario: Path, drop: Path, seed: int, variant: str = "modelled") -> int:
    """The sandbox in its own process; prints its settings as one JSON line."""
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.domain.models import OrderLine, SalesOrder
    from acs_khaos_dagster.sandbox.runner import Sandbox
    from acs_khaos_dagster.sandbox.variants import VARIANTS

    box = Sandbox(scenario, drop, load_settings(), seed=seed, variant=VARIANTS[variant])

    def extra_orders(count: int) -> dict[str, Any]:
        """Khaos orders (released, one line each) for the soak's own despatch postings."""
        books = box.khaos.books
        stock = [i for i in box.manifest.stock_items if i.stock_controlled]
        site = box.manifest.sites[0].site_id
        made = []
        with box.khaos._lock:
            for n in range(count):
                order_id = EXTRA_ORDER_BASE + n
                item = stock[n % len(stock)]
                line_id = order_id * 10 + 1
                order = SalesOrder(
                    order_id=order_id,
                    order_code=f"SO-CHAOS-{n:06d}",
                    associated_ref=f"CHAOS-{n:06d}",
                    order_date=box.clock.now(),
                    customer_urn=box.manifest.customers[0].urn,
                    site_id=site,
                    lines=(
                        OrderLine(
                            order_item_id=line_id,
                            stock_id=item.stock_id,
                            stock_code=item.stock_code,
                            quantity=1,
                            unit_net=item.sell_price,
                        ),
                    ),
                )
                books._load_order(order, box.clock.now())
                made.append({"order_id": order_id, "order_item_id": line_id})
        return {"orders": made}

    def receive_returns() -> dict[str, int]:
        source = box.scenario_dir / box.manifest.files.returns
        return {"received": box.acs.receive_customer_returns(source)}

    box.khaos.app.add_api_route("/_sandbox/chaos/orders", extra_orders, methods=["POST"])
    box.acs.app.add_api_route("/_sandbox/chaos/receive-returns", receive_returns, methods=["POST"])
    with box:
        print(json.dumps(box.settings_env()), flush=True)
        sys.stdin.read()
    return 0


def run_job(job_name: str) -> int:
    """One Dagster run of ``job_name`` in this process (the process the soak kills)."""
    from dagster import DagsterInstance

    from acs_khaos_dagster.definitions import defs

    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        instance=DagsterInstance.get(), raise_on_error=False, run_config=QUIET
    )
    return 0 if result.success else 1


# --- talking to the sandbox ----------------------------------------------------------------


def _http(method: str, url: str, body: Any = None, timeout: float = 60) -> Any:
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

    @property
    def acs(self) -> str:
        return self.env["ACS_KHAOS_ACS__BASE_URL"]

    @property
    def khaos(self) -> str:
        return self.env["ACS_KHAOS_KHAOS__BASE_URL"]

    def truth(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return _http("GET", f"{self.acs}/_sandbox/truth"), _http(
            "GET", f"{self.khaos}/_sandbox/truth"
        )

    def faults_on(self, rate: float, extra: tuple[str, ...] = ()) -> None:
        # decide() takes the first rule that fires: seven rules at r each give 1-(1-r)^7.
        per_rule = 1 - (1 - rate) ** (1 / len(CALL_FAULTS))
        # Feed faults first: the first rule that fires wins, and the feed is read rarely.
        feed = [k for k in extra if "feed" in EXTRA_FAULTS[k]]
        for kind in (*FEED_FAULTS, *feed):
            rule = {"operation": "list_despatches", "kind": kind, "rate": 0.2}
            _http("POST", f"{self.acs}/_sandbox/faults", rule)
        for kind in extra:
            for system in EXTRA_FAULTS[kind]:
                if system == "feed":
                    continue
                rule = {
                    "operation": "*",
                    "kind": kind,
                    "rate": per_rule,
                    "retry_after": 1,
                    "apply_after_s": LATE_APPLY_AFTER_S,
                }
                base = self.acs if system == "acs" else self.khaos
                _http("POST", f"{base}/_sandbox/faults", rule)
        for base in (self.acs, self.khaos):
            for kind in CALL_FAULTS:
                stall = STALL_S if kind in ("latency", "timeout_before", "timeout_after") else 0
                rule = {
                    "operation": "*",
                    "kind": kind,
                    "rate": per_rule,
                    "latency_s": stall,
                    "retry_after": 1,
                }
                _http("POST", f"{base}/_sandbox/faults", rule)

    def faults_off(self) -> None:
        for base in (self.acs, self.khaos):
            _http("DELETE", f"{base}/_sandbox/faults")

    def fault_stats(self) -> dict[str, dict[str, dict[str, int]]]:
        return {
            "acs": _http("GET", f"{self.acs}/_sandbox/faults/stats"),
            "khaos": _http("GET", f"{self.khaos}/_sandbox/faults/stats"),
        }

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sandbox(
    scenario: Path, drop: Path, seed: int, env: dict[str, str], log: Any, variant: str = "modelled"
) -> SandboxProcess:
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "serve",
            str(scenario),
            str(drop),
            "--seed",
            str(seed),
            "--variant",
            variant,
        ],
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
    return SandboxProcess(process, json.loads(line))


# --- the integration's processes -----------------------------------------------------------


@dataclass
class Figures:
    seed: int
    kills: Counter[str] = field(default_factory=Counter)
    dispatcher_runs: int = 0
    dagster_runs: Counter[str] = field(default_factory=Counter)
    enqueued_by_soak: int = 0
    started: float = field(default_factory=time.monotonic)


def _dispatch_cmd() -> list[str]:
    return [str(BIN / "acs-khaos"), "outbox", "dispatch"]


def _job_cmd(job: str) -> list[str]:
    return [sys.executable, __file__, "run-job", job]


def _reap(process: subprocess.Popen[bytes], figures: Figures, what: str) -> None:
    """Wait for a finished process (a dead, unreaped one still looks alive to recovery)."""
    code = process.wait()
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if code == 137 and "crashpoint" in stderr:
        point = stderr.split("crashpoint ", 1)[1].split(" ", 1)[0]
        figures.kills[f"crash point {point}"] += 1
    elif code == -signal.SIGKILL:
        figures.kills[f"SIGKILL {what}"] += 1
    elif code != 0 and what == "dispatcher":
        raise RuntimeError(f"dispatcher exited {code}: {stderr[-2000:]}")
    if what == "Dagster run" and code >= 0:
        figures.dagster_runs["succeeded" if code == 0 else "failed"] += 1


def run_dagster_cycle(
    env: dict[str, str], rng: random.Random, figures: Figures, kill_chance: float
) -> None:
    """One ``integration_cycle``; killed at a random moment first with ``kill_chance``."""
    while True:
        process = subprocess.Popen(_job_cmd("integration_cycle"), env=env, stderr=subprocess.PIPE)
        if rng.random() < kill_chance:
            _sleep_or_exit(process, rng.uniform(2.0, 8.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                _reap(process, figures, "Dagster run")
                kill_chance = 0.0
                continue
        _reap(process, figures, "Dagster run")
        return


def _sleep_or_exit(process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)


def outbox_counts(store_url: str) -> Counter[str]:
    from acs_khaos_dagster.store import Store

    with Store.open(store_url, migrate=False) as store:
        status = store.outbox.status()
    counts: Counter[str] = Counter()
    for (_, state), n in status.counts.items():
        counts[state] += n
    return counts


def chaos_drain(
    env: dict[str, str],
    store_url: str,
    rng: random.Random,
    figures: Figures,
    *,
    kills: int,
    workers: int,
    dagster_kills: int,
    crash_nth_max: int = 40,
) -> None:
    """Drain the outbox with ``workers`` dispatchers at once, killing ``kills`` of them."""
    plan: list[str] = []
    per_point = max(2, kills // 6)
    for point in CRASH_POINTS:
        plan += [point] * per_point
    plan += ["sigkill"] * max(1, kills - len(plan))
    rng.shuffle(plan)
    dagster_left = dagster_kills
    running: list[tuple[subprocess.Popen[bytes], float | None, str]] = []
    idle_rounds = 0
    while True:
        for process, kill_at, what in list(running):
            if process.poll() is not None:
                _reap(process, figures, what)
                running.remove((process, kill_at, what))
            elif kill_at is not None and time.monotonic() >= kill_at:
                process.send_signal(signal.SIGKILL)
                _reap(process, figures, what)
                running.remove((process, kill_at, what))
        counts = outbox_counts(store_url)
        busy = counts["pending"] + counts["in_flight"]
        if not busy and not running:
            idle_rounds += 1
            if idle_rounds > 1:
                return
        else:
            idle_rounds = 0
        if dagster_left and not any(w == "Dagster run" for _, _, w in running):
            process = subprocess.Popen(
                _job_cmd("integration_cycle"), env=env, stderr=subprocess.PIPE
            )
            running.append((process, time.monotonic() + rng.uniform(2.0, 10.0), "Dagster run"))
            dagster_left -= 1
        while busy and sum(1 for _, _, w in running if w == "dispatcher") < workers:
            action = plan.pop() if plan else "clean"
            worker_env = dict(env)
            kill_at = None
            if action in CRASH_POINTS:
                worker_env["ACS_KHAOS_CRASH_AT"] = f"{action}:{rng.randint(1, crash_nth_max)}"
            elif action == "sigkill":
                kill_at = time.monotonic() + rng.uniform(1.5, 6.0)
            process = subprocess.Popen(
                _dispatch_cmd(), env=worker_env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
            )
            figures.dispatcher_runs += 1
            running.append((process, kill_at, "dispatcher"))
        time.sleep(0.2)


def clean_drain(env: dict[str, str], store_url: str, figures: Figures) -> None:
    """Dispatch until nothing is pending or in flight (backoff may leave effects not yet due)."""
    for _ in range(600):
        counts = outbox_counts(store_url)
        if not counts["pending"] and not counts["in_flight"]:
            return
        process = subprocess.Popen(
            _dispatch_cmd(), env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        figures.dispatcher_runs += 1
        _reap(process, figures, "dispatcher")
        time.sleep(0.3)
    raise RuntimeError("the outbox did not settle")


# --- the soak's own effects ----------------------------------------------------------------


def enqueue_extra(
    store_url: str,
    sandbox: SandboxProcess,
    manifest: Any,
    count: int,
    rng: random.Random,
    seed: int,
) -> int:
    """Top the outbox up with ``count`` realistic effects; returns how many were recorded."""
    from acs_khaos_dagster.domain.models import (
        AcsOrder,
        AcsOrderLine,
        AcsProduct,
        AdjustmentLine,
        CreditMode,
        CustomerReturn,
        DespatchPosting,
        Package,
        ReturnItem,
        StockAdjustmentGroup,
    )
    from acs_khaos_dagster.effects import TARGET_OF, EffectKind
    from acs_khaos_dagster.store import Store

    if count <= 0:
        return 0
    kinds = rng.choices(
        [
            EffectKind.KHAOS_STOCK_ADJUSTMENT,
            EffectKind.KHAOS_CUSTOMER_RETURN,
            EffectKind.KHAOS_DESPATCH,
            EffectKind.ACS_PRODUCT,
            EffectKind.ACS_ORDER,
        ],
        weights=[40, 15, 15, 15, 15],
        k=count,
    )
    despatches = sum(1 for k in kinds if k is EffectKind.KHAOS_DESPATCH)
    orders = _http("POST", f"{sandbox.khaos}/_sandbox/chaos/orders?count={despatches}")
    open_orders = iter(orders["orders"])
    stock = [i for i in manifest.stock_items if i.stock_controlled]
    site = manifest.sites[0].site_id
    skus = [p.sku for p in manifest.acs_registry]
    customers = manifest.customers
    now = datetime.now(UTC).replace(microsecond=0)
    tag = f"CHAOS{seed}"
    recorded = 0
    with Store.open(store_url) as store:
        for start in range(0, count, 500):
            with store.transaction() as session:
                for n in range(start, min(count, start + 500)):
                    kind = kinds[n]
                    bad = rng.random() < 0.005  # must be parked with an owner, never applied
                    key = f"{tag}-{n:06d}"
                    if kind is EffectKind.KHAOS_STOCK_ADJUSTMENT:
                        item = rng.choice(stock)
                        payload = StockAdjustmentGroup(
                            site_id=site,
                            group_ref=key,
                            lines=(
                                AdjustmentLine(
                                    stock_id=item.stock_id,
                                    adjust_by=rng.choice([-2, -1, 1, 2, 3]),
                                    reason_code=BAD_REASON if bad else ADJUST_REASON,
                                ),
                            ),
                        )
                    elif kind is EffectKind.KHAOS_CUSTOMER_RETURN:
                        payload = CustomerReturn(
                            associated_ref=key,
                            customer_urn=rng.choice(customers).urn,
                            items=(
                                ReturnItem(
                                    sku="NO-SUCH-SKU" if bad else rng.choice(stock).stock_code,
                                    quantity=rng.randint(1, 2),
                                    return_reason="RESTOCK",
                                ),
                            ),
                            credit_mode=CreditMode.AUTO,
                        )
                    elif kind is EffectKind.KHAOS_DESPATCH:
                        order = next(open_orders)
                        payload = DespatchPosting(
                            order_id=order["order_id"],
                            external_ref=key,
                            lines=((order["order_item_id"], 1),),
                            packages=(
                                Package(
                                    consignment_ref=f"JD{n:08d}",
                                    courier_code="DPD",
                                    shipment_date=now,
                                ),
                            ),
                        )
                    elif kind is EffectKind.ACS_PRODUCT:
                        payload = AcsProduct(
                            sku=f"{tag}-SKU-{n:06d}",
                            barcode=f"5{seed % 10}{n:011d}",
                            style=f"{tag}-STY",
                            colour="BLK",
                            size="M",
                            description="Soak test garment",
                        )
                    else:
                        customer = rng.choice(customers)
                        payload = AcsOrder(
                            order_number=key,
                            order_date=now,
                            contact=customer.contact,
                            delivery_address=customer.address,
                            cancelled=rng.random() < 0.2,
                            lines=(
                                AcsOrderLine(
                                    line_item_id="1",
                                    sku=rng.choice(skus),
                                    quantity=1,
                                    price="49.00",
                                ),
                            ),
                        )
                    store.outbox.enqueue(
                        kind,
                        TARGET_OF[kind],
                        key,
                        key,
                        payload.model_dump(mode="json"),
                        session=session,
                    )
                    recorded += 1
    return recorded


# --- the comparison with ground truth ------------------------------------------------------


@dataclass
class Verdict:
    effects: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    parked_applied: list[str] = field(default_factory=list)
    parked_unowned: list[str] = field(default_factory=list)
    level_wrong: list[str] = field(default_factory=list)
    level_checked: int = 0
    attempts: Counter[str] = field(default_factory=Counter)
    resends_absorbed: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.parked_applied
            or self.parked_unowned
            or self.level_wrong
        )


def _applied_counts(acs: dict[str, Any], khaos: dict[str, Any]) -> dict[str, Counter[str]]:
    return {
        "khaos.import_stock_adjustments": Counter(
            g["group_ref"] for g in khaos["adjustment_groups"]
        ),
        "khaos.import_despatch": Counter(c["external_ref"] for c in khaos["despatch_calls"]),
        "khaos.import_customer_return": Counter(
            r["associated_ref"] for r in khaos["customer_returns"]
        ),
        "acs.put_product": Counter({p["sku"]: p["revisions"] for p in acs["products"]}),
        "acs.put_order": Counter({o["order_number"]: 1 for o in acs["orders"]}),
    }


def _truth_key(kind: str, payload: dict[str, Any]) -> str:
    return {
        "khaos.import_stock_adjustments": lambda: payload["group_ref"],
        "khaos.import_despatch": lambda: payload["external_ref"],
        "khaos.import_customer_return": lambda: payload["associated_ref"],
        "acs.put_product": lambda: payload["sku"],
        "acs.put_order": lambda: payload["order_number"],
    }[kind]()


def verify(
    store_url: str, before: dict[str, Any], acs: dict[str, Any], khaos: dict[str, Any], tag: str
) -> Verdict:
    from sqlalchemy import func, select

    from acs_khaos_dagster.store import Store
    from acs_khaos_dagster.store.schema import Effect, EffectAttempt

    verdict = Verdict()
    applied = _applied_counts(acs, khaos)
    with Store.open(store_url, migrate=False) as store:
        effects = store.outbox.find()
        open_problems = {
            item.row.effect_id: item.row.owner
            for item in store.exceptions.list(type="effect_failed")
        }
        with store.transaction() as s:
            for outcome, n in s.execute(
                select(EffectAttempt.outcome, func.count()).group_by(EffectAttempt.outcome)
            ):
                verdict.attempts[outcome] = n
            verdict.attempts["effects"] = s.scalar(select(func.count()).select_from(Effect)) or 0
    for effect in effects:
        verdict.effects[effect.kind] += 1
        verdict.states[effect.state] += 1
        if effect.kind == "khaos.move_invoices":
            stages = {i["invoice_id"]: i["stage"] for i in khaos["invoices"]}
            if effect.state == "done" and any(
                i not in stages for i in effect.payload["invoice_ids"]
            ):
                verdict.lost.append(effect.idempotency_key)
            continue
        key = _truth_key(effect.kind, effect.payload)
        times = applied[effect.kind].get(key, 0)
        if effect.state == "done":
            if times == 0:
                verdict.lost.append(effect.idempotency_key)
            # ACS PUTs are idempotent: a resend of the same body is no second revision. A
            # flow's product may carry several bodies over time, so only the soak's own
            # SKUs (one body each) are held to one revision.
            elif times > 1 and (effect.kind.startswith("khaos.") or key.startswith(tag)):
                verdict.duplicated.append(effect.idempotency_key)
        elif effect.state == "parked":
            if effect.kind.startswith("khaos.") and times:
                verdict.parked_applied.append(effect.idempotency_key)
            if not open_problems.get(effect.id):
                verdict.parked_unowned.append(effect.idempotency_key)
        else:
            verdict.lost.append(f"{effect.idempotency_key} ({effect.state})")
    verdict.level_checked, verdict.level_wrong = _check_levels(before, khaos)
    return verdict


def _check_levels(before: dict[str, Any], khaos: dict[str, Any]) -> tuple[int, list[str]]:
    """Level now = Level at the start + adjustments + returns put back to stock − issued.

    Every term comes from Khaos's own records of what was applied once each; an effect
    applied twice or lost shows up as a group/return counted in the wrong number here
    (caught above) and, independently, as a Level that no longer adds up.
    """
    expected: Counter[tuple[int, int]] = Counter()
    for row in before["stock"]:
        expected[(row["stock_id"], row["site_id"])] = row["level"]
    for group in khaos["adjustment_groups"]:
        for line in group["lines"]:
            key = (line["stock_id"], group["site_id"])
            if line["adjust_to"] is not None:
                expected[key] = line["adjust_to"]
            else:
                expected[key] += line["adjust_by"]
    for ret in khaos["customer_returns"]:
        if ret["processed"]:
            for item in ret["items"]:
                if item["processing"] == "return_to_stock":
                    expected[(item["stock_id"], ret["site_id"])] += item["quantity"]
    lines = {
        ln["order_item_id"]: (ln["stock_id"], ln["is_hire"])
        for order in khaos["orders"]
        for ln in order["lines"]
    }
    for invoice in khaos["invoices"]:
        if invoice["issue_date"] is None:
            continue
        for ln in invoice["lines"]:
            stock_id, hire = lines[ln["order_item_id"]]
            if not hire:
                expected[(stock_id, invoice["site_id"])] -= ln["quantity"]
    wrong = []
    rows = khaos["stock"]
    for row in rows:
        want = expected[(row["stock_id"], row["site_id"])]
        if row["level"] != want:
            wrong.append(
                f"StockID {row['stock_id']} site {row['site_id']}: {row['level']} != {want}"
            )
    return len(rows), wrong


def _expected_adjustment_sum(store_url: str, khaos: dict[str, Any]) -> tuple[int, int]:
    """Σ adjust_by over done adjustment effects (the outbox) and over Khaos's groups (truth)."""
    from acs_khaos_dagster.store import Store

    with Store.open(store_url, migrate=False) as store:
        done = store.outbox.find(state="done", kind="khaos.import_stock_adjustments")
    ours = sum(ln.get("adjust_by") or 0 for e in done for ln in e.payload["lines"])
    theirs = sum(ln["adjust_by"] or 0 for g in khaos["adjustment_groups"] for ln in g["lines"])
    return ours, theirs


# --- the soak ------------------------------------------------------------------------------


def integration_env(sandbox_env: dict[str, str], work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
    env.update(sandbox_env)
    env.pop("ACS_KHAOS_CLOCK_URL", None)  # wall-clock time for the outbox's backoff
    env.update(
        {
            "ACS_KHAOS_DATA_DIR": str(work / "data"),
            "ACS_KHAOS_DATABASE_URL": f"sqlite:///{work / 'store.sqlite'}",
            "ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S": "0.05",
            "ACS_KHAOS_OUTBOX__BACKOFF_MAX_S": "0.5",
            "ACS_KHAOS_OUTBOX__MAX_ATTEMPTS": "12",
            # Longer than any stall the sandbox injects: a late apply lands before the
            # read-back that decides whether to send again.
            "ACS_KHAOS_OUTBOX__READ_BACK_AFTER_S": str(STALL_S + 1),
            "ACS_KHAOS_HTTP__READ_TIMEOUT_S": str(CLIENT_READ_TIMEOUT_S),
            "ACS_KHAOS_LOG_LEVEL": "WARNING",
            "DAGSTER_HOME": str(work / "dagster_home"),
        }
    )
    return env


def soak(args: argparse.Namespace) -> int:
    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario

    rng = random.Random(args.seed)
    figures = Figures(seed=args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="acs-khaos-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "dagster_home").mkdir(exist_ok=True)
    scenario = work / "scenario"
    from acs_khaos_dagster.sandbox.variants import SUMMER_START, VARIANTS

    summer = VARIANTS[args.variant].summer  # ACS's time styles only differ from UTC in BST
    manifest = (
        generate_scenario("tiny", args.seed, scenario, start_at=SUMMER_START)
        if summer
        else generate_scenario("tiny", args.seed, scenario)
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
    base_env["ACS_KHAOS_DATA_DIR"] = str(work / "data")
    sandbox_log = (work / "sandbox.log").open("w")  # injected resets print tracebacks there
    sandbox = start_sandbox(
        scenario, work / "acs_drop", args.seed, base_env, sandbox_log, args.variant
    )
    env = integration_env(sandbox.env, work)
    store_url = env["ACS_KHAOS_DATABASE_URL"]
    print(f"chaos soak: seed {args.seed}, work folder {work}", flush=True)
    try:
        _, before = sandbox.truth()
        sandbox.faults_on(args.fault_rate, args.extra_faults)
        # 1. The flows, through Dagster, while simulated time passes.
        for n, wait_min in enumerate(args.cycles):
            if wait_min:
                _http("POST", f"{sandbox.acs}/_sandbox/clock/advance?minutes={wait_min}")
            _http("POST", f"{sandbox.acs}/_sandbox/chaos/receive-returns")
            _http("POST", f"{sandbox.acs}/_sandbox/daily-files")
            run_dagster_cycle(env, rng, figures, kill_chance=args.cycle_kill if n % 2 == 0 else 0.0)
            print(f"  cycle {n + 1}: {dict(outbox_counts(store_url))}", flush=True)
        # 2. The outbox topped up to --effects, then drained under kills.
        flows = sum(outbox_counts(store_url).values())
        figures.enqueued_by_soak = enqueue_extra(
            store_url, sandbox, manifest, args.effects - flows, rng, args.seed
        )
        print(
            f"  flows recorded {flows} effects; the soak added {figures.enqueued_by_soak}",
            flush=True,
        )
        chaos_drain(
            env,
            store_url,
            rng,
            figures,
            kills=args.kills,
            workers=args.workers,
            dagster_kills=args.dagster_kills,
            crash_nth_max=3 if args.small else 40,
        )
        # 3. Settle: faults off, one clean drain, then the comparison.
        stats = sandbox.fault_stats()
        sandbox.faults_off()
        clean_drain(env, store_url, figures)
        acs, khaos = sandbox.truth()
    finally:
        sandbox.stop()
    verdict = verify(store_url, before, acs, khaos, f"CHAOS{args.seed}")
    ours, theirs = _expected_adjustment_sum(store_url, khaos)
    report(args, figures, verdict, stats, ours, theirs)
    ok = (
        verdict.ok
        and ours == theirs
        and figures.enqueued_by_soak + flows >= min(args.effects, figures.enqueued_by_soak + flows)
    )
    return 0 if ok else 1


def report(
    args: argparse.Namespace,
    figures: Figures,
    verdict: Verdict,
    stats: dict[str, Any],
    ours: int,
    theirs: int,
) -> None:
    calls = sum(sum(s["calls"].values()) for s in stats.values())
    injected: Counter[str] = Counter()
    for system, s in stats.items():
        for name, n in s["injected"].items():
            injected[f"{system} {name.split(':', 1)[1]}"] += n
    total_faults = sum(injected.values())
    retries = sum(
        n
        for outcome, n in verdict.attempts.items()
        if outcome
        in (
            "transient_error",
            "ambiguous_error",
            "unexpected_error",
            "read_back_failed",
            "interrupted",
        )
    )
    print()
    print(f"seed {args.seed}  (replay: scripts/chaos.py {' '.join(sys.argv[1:])})")
    print(f"duration {time.monotonic() - figures.started:.0f} s")
    print(
        f"effects: {sum(verdict.effects.values())}  "
        f"by kind: {dict(sorted(verdict.effects.items()))}"
    )
    print(
        f"  flows: {sum(verdict.effects.values()) - figures.enqueued_by_soak}, "
        f"added by the soak: {figures.enqueued_by_soak}"
    )
    print(f"final states: {dict(verdict.states)}")
    print(
        f"calls to the simulators: {calls}; faults injected: {total_faults} "
        f"({100 * total_faults / max(calls, 1):.1f}%)"
    )
    for name, n in sorted(injected.items()):
        print(f"  {name}: {n}")
    print(f"kills: {sum(figures.kills.values())}")
    for name, n in sorted(figures.kills.items()):
        print(f"  {name}: {n}")
    print(
        f"dispatcher processes: {figures.dispatcher_runs}; Dagster runs completed: "
        f"{dict(figures.dagster_runs)}"
    )
    print(f"attempts by outcome: {dict(sorted(verdict.attempts.items()))}")
    print(
        f"retries: {retries}; confirmed by read-back: {verdict.attempts['confirmed_by_read_back']}"
    )
    print(
        f"parked: {verdict.states['parked']} (without an owned exception: "
        f"{len(verdict.parked_unowned)}; applied anyway: {len(verdict.parked_applied)})"
    )
    print(f"lost: {len(verdict.lost)}  {verdict.lost[:5]}")
    print(f"duplicated: {len(verdict.duplicated)}  {verdict.duplicated[:5]}")
    print(
        f"Khaos Level: {verdict.level_checked} stock rows checked, "
        f"{len(verdict.level_wrong)} wrong {verdict.level_wrong[:5]}; Σ adjust_by done in the "
        f"outbox {ours}, applied in Khaos {theirs}"
    )
    print("RESULT: " + ("PASS" if verdict.ok and ours == theirs else "FAIL"))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        parser = argparse.ArgumentParser()
        parser.add_argument("mode")
        parser.add_argument("scenario", type=Path)
        parser.add_argument("drop", type=Path)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--variant", default="modelled")
        a = parser.parse_args()
        return serve(a.scenario, a.drop, a.seed, a.variant)
    if len(sys.argv) > 1 and sys.argv[1] == "run-job":
        return run_job(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--effects", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--kills", type=int, default=60, help="dispatcher kills")
    parser.add_argument("--dagster-kills", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="dispatchers at once")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--small", action="store_true", help="the bounded version CI runs")
    parser.add_argument(
        "--extra-faults",
        default="",
        help=f"comma-separated real-system faults to add: {', '.join(EXTRA_FAULTS)}",
    )
    parser.add_argument("--variant", default="modelled", help="a sandbox.variants name")
    args = parser.parse_args()
    args.extra_faults = tuple(k.strip() for k in args.extra_faults.split(",") if k.strip())
    unknown = sorted(set(args.extra_faults) - set(EXTRA_FAULTS))
    if unknown:
        parser.error(f"unknown extra faults {unknown}; choose from {sorted(EXTRA_FAULTS)}")
    # Simulated minutes between Dagster cycles: ACS activates SKUs, picks and despatches.
    args.cycles = [0, 6 * 60, 30 * 60, 9 * 24 * 60]
    args.cycle_kill = 0.5
    if args.small:
        args.effects, args.kills, args.workers = min(args.effects, 300), 9, 3
        args.dagster_kills, args.cycle_kill = 0, 1.0
        args.cycles = [0, 30 * 60]
    return soak(args)


if __name__ == "__main__":
    raise SystemExit(main())
