"""The workflow audit report (the seed's systems audit): how long each step takes, where
exceptions come from, how drift moves, and which sources cause the most delay.

Pure rendering like the month-end pack: frames in, an HTML page (no server, no script,
no URL) and CSVs out. Only the declared columns are read, and only references (order
numbers, shipment ids) ever appear, never customer data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from acs_khaos_dagster.reports._tables import (
    UK,
    Column,
    TableSpec,
    html_rows,
    prepare,
    template_environment,
    write_table_csv,
    write_text,
)
from acs_khaos_dagster.reports.charts import Series, bar_chart, hbar_chart, line_chart
from acs_khaos_dagster.reports.pack_sheets import DRIFT_BY_DAY

TOP_DELAY_SOURCES = 5
HTML_TOP_ROWS = 20

LATENCIES = TableSpec(
    "latencies",
    "Latencies",
    (
        Column("ref", "text", "Reference", "Order number or shipment id."),
        Column("released_at", "datetime", "Released", "Released to ACS.", nullable=True),
        Column("despatched_at", "datetime", "Despatched", "Despatched by ACS.", nullable=True),
        Column("posted_at", "datetime", "Posted", "Despatch posted in Khaos.", nullable=True),
        Column("invoiced_at", "datetime", "Invoiced", "Invoice issued in Khaos.", nullable=True),
    ),
)
EXCEPTION_RATES = TableSpec(
    "exception_rates",
    "Exception rates",
    (
        Column("type", "text", "Exception type", "Exception type code."),
        Column("owner", "text", "Owner team", "The team that owns the type."),
        Column("opened", "int", "Opened", "Exceptions opened in the period."),
        Column("closed", "int", "Closed", "Exceptions closed in the period."),
        Column(
            "base_count",
            "int",
            "Items checked",
            "How many items the check looked at in the period (e.g. orders released).",
        ),
    ),
)
# The same daily drift figures as the month-end pack's, over the audited period.
DRIFT_TREND = TableSpec("drift_trend", "Drift trend", DRIFT_BY_DAY.columns)
DELAY_SOURCES = TableSpec(
    "delay_sources",
    "Delay sources",
    (
        Column("source", "text", "Source", "What caused the delay (a courier, a stage...)."),
        Column("stage", "text", "Step", "Which step it delayed (e.g. despatch_to_posting)."),
        Column("items", "int", "Items delayed", "How many items it delayed."),
        Column("delay_hours", "number", "Delay (hours)", "Total hours beyond target."),
    ),
)
LEGS: tuple[tuple[str, str, str, str], ...] = (
    ("release_to_despatch", "Release → despatch", "released_at", "despatched_at"),
    ("despatch_to_posting", "Despatch → posting", "despatched_at", "posted_at"),
    ("posting_to_invoice", "Posting → invoice", "posted_at", "invoiced_at"),
    ("release_to_invoice", "Release → invoice (end to end)", "released_at", "invoiced_at"),
)
LATENCY_SUMMARY = TableSpec(
    "latency_summary",
    "Latency by step",
    (
        Column("step", "text", "Step key", "Leg key."),
        Column("label", "text", "Step", "Leg label."),
        Column("completed", "int", "Completed", "Items that finished the step."),
        Column("pending", "int", "Still waiting", "Items that started but did not finish."),
        Column(
            "out_of_order",
            "int",
            "Out of order",
            "Items whose end is before their start (left out of the figures).",
        ),
        Column("p50_hours", "number", "p50 (hours)", "Median.", nullable=True),
        Column("p95_hours", "number", "p95 (hours)", "95th percentile.", nullable=True),
        Column("max_hours", "number", "Max (hours)", "Slowest.", nullable=True),
    ),
)
RATES = TableSpec(
    "exception_rates",
    "Exception rates",
    (
        *EXCEPTION_RATES.columns,
        Column("rate_per_1000", "number", "Per 1,000 items", "opened / base_count × 1000.", True),
    ),
)


@dataclass(frozen=True)
class AuditReportFiles:
    html: Path
    csvs: Mapping[str, Path]  # latency_summary, exception_rates, drift_trend, delay_sources
    latency_summary: pd.DataFrame
    largest_delays: tuple[str, ...]  # the named sources, largest first


def latency_summary(latencies: pd.DataFrame) -> pd.DataFrame:
    """p50/p95/max hours per step over a prepared latencies frame."""
    rows = []
    for key, label, start, end in LEGS:
        started = latencies[latencies[start].notna()]
        done = started[started[end].notna()]
        hours = (pd.to_datetime(done[end]) - pd.to_datetime(done[start])).dt.total_seconds() / 3600
        # Khaos dates an invoice by its despatch, so an end before its start is possible
        # in real data; such rows are counted and shown, never silently averaged in.
        valid = hours[hours >= 0]
        rows.append(
            {
                "step": key,
                "label": label,
                "completed": len(valid),
                "pending": len(started) - len(done),
                "out_of_order": int((hours < 0).sum()),
                "p50_hours": valid.quantile(0.5) if len(valid) else None,
                "p95_hours": valid.quantile(0.95) if len(valid) else None,
                "max_hours": valid.max() if len(valid) else None,
            }
        )
    return prepare(pd.DataFrame(rows, columns=LATENCY_SUMMARY.names), LATENCY_SUMMARY)


def _rates(frame: pd.DataFrame) -> pd.DataFrame:
    base = frame["base_count"].astype("float64")
    rate = (frame["opened"].astype("float64") / base * 1000).where(base > 0)
    out = frame.assign(rate_per_1000=rate.round(2))
    return out.sort_values(["rate_per_1000", "opened"], ascending=False, na_position="last")


def _delay_name(row: pd.Series) -> str:
    return (
        f"{row['source']} ({row['stage']}): {int(row['items']):,} items, "
        f"{float(row['delay_hours']):,.1f} hours of delay"
    )


def render_audit_report(
    latencies: pd.DataFrame,
    exception_rates: pd.DataFrame,
    drift_trend: pd.DataFrame,
    delay_sources: pd.DataFrame,
    out_dir: Path | str,
    *,
    period: str = "",
    account_name: str = "",
    generated_at: datetime | None = None,
) -> AuditReportFiles:
    """Write ``audit_report.html`` and one CSV per table into ``out_dir``.

    Inputs (extra columns are ignored; a missing one raises ``ReportInputError``):

    - ``latencies``, one row per order or shipment: ref (text), released_at,
      despatched_at, posted_at, invoiced_at (date-times, empty when not reached yet;
      tz-aware or naive UK time).
    - ``exception_rates``: type, owner (text), opened, closed, base_count (int); the
      rate per 1,000 items checked is computed here.
    - ``drift_trend``: day (date), unexplained_units (int), unexplained_value (money).
    - ``delay_sources``: source, stage (text), items (int), delay_hours (number); the
      largest by delay_hours are named at the top of the report.

    ``generated_at`` (the integration's clock) is shown when given; without it the
    output depends on the inputs only.
    """
    out = Path(out_dir)
    lat = prepare(latencies, LATENCIES)
    rates = _rates(prepare(exception_rates, EXCEPTION_RATES))
    drift = prepare(drift_trend, DRIFT_TREND).sort_values("day")
    delays = prepare(delay_sources, DELAY_SOURCES).sort_values("delay_hours", ascending=False)
    legs = latency_summary(lat)
    named = tuple(_delay_name(row) for _, row in delays.head(TOP_DELAY_SOURCES).iterrows())

    csvs = {
        "latency_summary": write_table_csv(
            out / "audit_latency_summary.csv", legs, LATENCY_SUMMARY
        ),
        "exception_rates": write_table_csv(out / "audit_exception_rates.csv", rates, RATES),
        "drift_trend": write_table_csv(out / "audit_drift_trend.csv", drift, DRIFT_TREND),
        "delay_sources": write_table_csv(out / "audit_delay_sources.csv", delays, DELAY_SOURCES),
    }

    timed = legs[legs["p95_hours"].notna() & (legs["step"] != "release_to_invoice")]
    slowest = (
        timed.sort_values("p95_hours", ascending=False).iloc[0]["label"] if len(timed) else None
    )
    by_owner = rates.groupby("owner", sort=True)[["opened", "closed"]].sum()
    days = [d.strftime("%d %b") for d in drift["day"]]
    charts = [
        bar_chart(
            "chart-latency",
            "Hours per step (p50 and p95)",
            list(legs["label"]),
            [Series("p50", list(legs["p50_hours"])), Series("p95", list(legs["p95_hours"]))],
            kind="number",
            stacked=False,
        ),
        bar_chart(
            "chart-exceptions-by-owner",
            "Exceptions opened and closed by owner team",
            list(by_owner.index),
            [
                Series("Opened", list(by_owner["opened"])),
                Series("Closed", list(by_owner["closed"])),
            ],
            kind="int",
            stacked=False,
        ),
        line_chart(
            "chart-drift-trend",
            "Unexplained drift by day (£ at cost)",
            days,
            [Series("Unexplained value", list(drift["unexplained_value"]))],
        ),
        hbar_chart(
            "chart-delay-sources",
            "Largest sources of delay (hours)",
            list(delays.head(10)["source"] + " · " + delays.head(10)["stage"]),
            list(delays.head(10)["delay_hours"]),
            kind="number",
        ),
    ]

    def table(spec: TableSpec, frame: pd.DataFrame, table_id: str, caption: str) -> dict:
        rows = html_rows(frame, spec, lambda f: f, HTML_TOP_ROWS)
        return {
            "id": table_id,
            "caption": caption,
            "where": f"audit_{spec.key}.csv",
            "headers": [c.label for c in spec.columns],
            "kinds": [c.kind for c in spec.columns],
            "rows": rows,
            "shown": len(rows),
            "matching": len(frame),
            "total": len(frame),
        }

    stamp = None
    if generated_at is not None:
        stamp = (generated_at.astimezone(UK) if generated_at.tzinfo else generated_at).strftime(
            "%Y-%m-%d %H:%M"
        )
    html = (
        template_environment()
        .get_template("audit_report.html.j2")
        .render(
            period=period,
            account=account_name,
            generated=stamp,
            named=named,
            slowest=slowest,
            legs=legs,
            charts=charts,
            tables=[
                table(LATENCY_SUMMARY, legs, "table-latency", "Latency by step"),
                table(RATES, rates, "table-exception-rates", "Exception rates by type and owner"),
                table(DELAY_SOURCES, delays, "table-delay-sources", "Sources of delay"),
                table(DRIFT_TREND, drift, "table-drift-trend", "Drift trend"),
            ],
        )
    )
    return AuditReportFiles(
        html=write_text(out / "audit_report.html", html),
        csvs=csvs,
        latency_summary=legs,
        largest_delays=named,
    )
