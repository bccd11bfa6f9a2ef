"""The month-end pack's HTML report. Part of ``reports.month_end`` (see its docstring);
code moved verbatim."""

from __future__ import annotations

from acs_khaos_dagster.reports._tables import (
    html_rows,
    template_environment,
)
from acs_khaos_dagster.reports.charts import Series, bar_chart, hbar_chart, line_chart
from acs_khaos_dagster.reports.month_end_inputs import (
    HTML_TOP_ROWS,
    SHEETS,
    MonthEndInputs,
    _header_rows,
    pack_names,
)
from acs_khaos_dagster.reports.pack_registry import SummaryFigure

# --- HTML -----------------------------------------------------------------------------------


def _charts(inputs: MonthEndInputs, summary: tuple[SummaryFigure, ...]) -> list[object]:
    t = inputs.prepared
    drift = t["drift_by_day"].sort_values("day")
    days = [d.strftime("%d %b") for d in drift["day"]]
    o2c = t["order_to_cash"]
    waiting = o2c[o2c["status"] != "invoiced"]
    # Buckets in age order, whatever their labels are.
    buckets = list(waiting.groupby("ageing_bucket")["age_days"].min().sort_values().index)
    per_status = [
        Series(
            label,
            [
                waiting.loc[
                    (waiting["ageing_bucket"] == b) & (waiting["status"] == status),
                    "value_waiting",
                ].sum()
                for b in buckets
            ],
        )
        for status, label in (
            ("despatched_not_posted", "Despatched, not posted"),
            ("posted_not_invoiced", "Posted, not invoiced"),
        )
    ]
    totals = {f.key: f.value for f in summary}
    sites = t["non_sellable_value"].sort_values("value_at_cost", ascending=False)
    return [
        line_chart(
            "chart-drift",
            "Unexplained drift by day (£ at cost)",
            days,
            [Series("Unexplained value", list(drift["unexplained_value"]))],
        ),
        bar_chart(
            "chart-drift-units",
            "Unexplained drift by day (units)",
            days,
            [Series("Unexplained units", list(drift["unexplained_units"]))],
            kind="int",
        ),
        bar_chart("chart-order-to-cash", "Value waiting by age (£)", buckets, per_status),
        bar_chart(
            "chart-credits",
            "Credits and write-offs (£)",
            ["Credits raised", "Pending review", "Written off (adjustments)", "BER sale returns"],
            [
                Series(
                    "Value",
                    [
                        totals["credits-raised-value"],
                        totals["credits-review-value"],
                        totals["written-off-adjustment-value"],
                        totals["written-off-ber-returns-value"],
                    ],
                )
            ],
        ),
        hbar_chart(
            "chart-non-sellable",
            "Stock in non-sellable sites (£ at cost)",
            list(sites["site_name"]),
            list(sites["value_at_cost"]),
        ),
    ]


def render_html(inputs: MonthEndInputs, summary: tuple[SummaryFigure, ...]) -> str:
    """The self-contained HTML report (inline CSS and SVG, no script, no URL)."""
    tables = []
    for sheet in SHEETS:
        if sheet.html is None:
            continue
        spec, (caption, order) = sheet.spec, sheet.html
        frame = inputs.prepared[spec.key]
        rows = html_rows(frame, spec, order, HTML_TOP_ROWS)
        tables.append(
            {
                "id": f"table-{spec.key.replace('_', '-')}",
                "caption": caption,
                "where": f"the sheet “{spec.title}”",
                "headers": [c.label for c in spec.columns],
                "kinds": [c.kind for c in spec.columns],
                "rows": rows,
                "shown": len(rows),
                "total": len(frame),
                "matching": len(order(frame)),
            }
        )
    template = template_environment().get_template("month_end.html.j2")
    return template.render(
        header=_header_rows(inputs),
        account=inputs.account_name,
        month=inputs.month,
        month_name=inputs.first_day.strftime("%B %Y"),
        summary=summary,
        charts=_charts(inputs, summary),
        tables=tables,
        workbook_name=pack_names(inputs.month, inputs.preview)["workbook"],
        status=inputs.status,
        preview=inputs.preview,
    )
