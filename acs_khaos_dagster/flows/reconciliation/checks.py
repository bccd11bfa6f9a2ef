"""The reconciliation checks' rules, one verdict per day: each reads its day's stored table
(Parquet, ``storage``) as the flow kept it, the one the month-end pack reads too, so
re-running a check for a past day from the UI judges that day's data, not the newest.
No Dagster here: the checks in ``defs/reconciliation.py`` call the ``*_on`` ones.
"""

from collections.abc import Callable

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain.reconciliation import CashStatus, StockClass
from acs_khaos_dagster.flows.figures import Markdown, Verdict, table
from acs_khaos_dagster.flows.reconciliation.orders import NOT_INVOICED_AFTER_HOURS
from acs_khaos_dagster.flows.reconciliation.storage import read_day


def judge_day(
    conf: Settings, name: str, day: str, rule: Callable[[pd.DataFrame], Verdict], warn: bool
) -> Verdict:
    """``rule``'s verdict on the day's ``name`` table; a failure if there is none."""
    frame = read_day(conf, name, day)
    if frame is None:
        return Verdict(False, {"missing": f"no {name} table for {day}"}, warn=warn)
    return rule(frame)


def _sample(frame: pd.DataFrame, columns: list[str]) -> Markdown:
    return table(frame[[c for c in columns if c in frame.columns]])


# --- the rules, on a day's table -------------------------------------------------------------


def unexplained_stock_drift(conf: Settings, frame: pd.DataFrame) -> Verdict:
    """A warning: no StockID × site is classified unexplained (beyond the tolerance)."""
    bad = frame.loc[frame["classification"] == str(StockClass.UNEXPLAINED)]
    stock = conf.stock
    figures = {
        "unexplained_rows": len(bad),
        "unexplained_units_gross": int(bad["unexplained"].abs().sum()),
        "unexplained_value_gross": round(float(bad["unexplained_value"].abs().sum()), 2),
        # Settings, not measurements: text, so the UI does not plot them.
        "tolerance": f"{stock.variance_tolerance_units} units and "
        f"£{stock.variance_tolerance_value:,.2f} (stock.variance_tolerance_*)",
        "rows": _sample(
            bad, ["stock_code", "site_name", "acs_units", "khaos_level", "unexplained"]
        ),
    }
    return Verdict(bad.empty, figures, warn=True)


def shipments_not_invoiced_too_long(frame: pd.DataFrame) -> Verdict:
    """No shipment despatched more than ``NOT_INVOICED_AFTER_HOURS`` ago is not invoiced."""
    late = frame.loc[
        (frame["status"] != str(CashStatus.INVOICED))
        & (frame["age_hours"] > NOT_INVOICED_AFTER_HOURS)
    ]
    figures = {
        "late_shipments": len(late),
        "late_value": round(float(late["value_waiting"].fillna(0).sum()), 2),
        "limit": f"{NOT_INVOICED_AFTER_HOURS:g} hours",
        "shipments": _sample(late, ["shipment_id", "order_number", "status", "age_hours"]),
    }
    return Verdict(late.empty, figures)


def ber_units_without_write_off(frame: pd.DataFrame) -> Verdict:
    """Every unit graded BER or disposed is written off in Khaos."""
    bad = frame.loc[frame["write_off_status"].isin(["missing", "missing_reason"])]
    figures = {
        "units_without_write_off": len(bad),
        "units": _sample(bad, ["return_ref", "unique_sku", "grade", "write_off_status"]),
    }
    return Verdict(bad.empty, figures)


def exceptions_over_owner_target(frame: pd.DataFrame) -> Verdict:
    """A warning: no open exception is older than its owner team's target age."""
    over = frame.loc[frame["over_target"] > 0]
    figures = {
        "over_target": int(over["over_target"].sum()),
        "types": _sample(over, ["owner", "type", "over_target", "oldest_age_hours"]),
    }
    return Verdict(over.empty, figures, warn=True)


# --- the checks, on a day ------------------------------------------------------------------


def stock_drift_on(conf: Settings, day: str) -> Verdict:
    def rule(frame: pd.DataFrame) -> Verdict:
        return unexplained_stock_drift(conf, frame)

    return judge_day(conf, "stock", day, rule, warn=True)


def late_shipments_on(conf: Settings, day: str) -> Verdict:
    return judge_day(conf, "order_to_cash", day, shipments_not_invoiced_too_long, warn=False)


def ber_write_offs_on(conf: Settings, day: str) -> Verdict:
    return judge_day(conf, "returns", day, ber_units_without_write_off, warn=False)


def exception_ages_on(conf: Settings, day: str) -> Verdict:
    return judge_day(conf, "exceptions", day, exceptions_over_owner_target, warn=True)
