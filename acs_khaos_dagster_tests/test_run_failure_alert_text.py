"""The integration team's run-failure alert, built without Dagster (``alerts.run_failures``)."""

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import SimpleNamespace

from acs_khaos_dagster.alerts.notifier import AlertKind
from acs_khaos_dagster.alerts.run_failures import (
    error_class,
    failed_blocking_checks,
    run_failure_alert,
    send_run_failure_alert,
)
from acs_khaos_dagster.store import Store


def _error(cls_name: str, cause: object | None = None) -> SimpleNamespace:
    return SimpleNamespace(cls_name=cls_name, cause=cause, message="customer jane@example.com")


def test_the_error_class_named_is_the_users_inside_dagsters_wrappers() -> None:
    chain = _error("DagsterExecutionStepExecutionError", _error("KhaosRejected"))
    assert error_class(chain) == "KhaosRejected"
    assert error_class(_error("DagsterUserCodeExecutionError")) == "DagsterUserCodeExecutionError"
    assert error_class(None) is None


def test_a_failed_run_names_its_steps_and_their_error_classes_and_links_the_run() -> None:
    alert = run_failure_alert(
        job_name="orders_job",
        run_id="r-1",
        failed_steps=[("acs_order_release", "AcsUnavailable"), ("khaos_shipment_postings", None)],
        failed_checks=[],
        dagster_ui_url="https://dagster.example/",
    )
    assert alert.kind is AlertKind.RUN_FAILED
    assert alert.title == "orders_job run failed"
    assert "acs_order_release (AcsUnavailable)" in alert.text
    assert "khaos_shipment_postings (unknown error)" in alert.text
    assert alert.link == "https://dagster.example/runs/r-1"
    assert ("Failed steps", "2") in alert.facts


def test_a_failed_blocking_check_is_the_alerts_title_and_kind() -> None:
    alert = run_failure_alert(
        job_name="stock_snapshot_job",
        run_id="r-2",
        failed_steps=[],
        failed_checks=[("sellable_stock", "no_non_sellable_counted_as_sellable")],
    )
    assert alert.kind is AlertKind.CHECK_FAILED
    assert alert.title.endswith("no_non_sellable_counted_as_sellable")
    assert "downstream steps did not run" in alert.text
    assert alert.link is None


def test_a_run_that_failed_outside_any_step_names_the_class_only() -> None:
    alert = run_failure_alert(
        job_name="j", run_id="r-3", failed_steps=[], failed_checks=[], run_error_class="OSError"
    )
    assert "outside any step (OSError)" in alert.text
    assert "@" not in alert.text  # names and classes only: no message text


def test_a_run_failure_alert_goes_out_unrecorded_when_the_store_is_unavailable() -> None:
    sent: list[str] = []

    class Sender:
        def notify(self, owner: str, alert: object) -> list[SimpleNamespace]:
            sent.append(owner)
            return [SimpleNamespace(ok=True)]

    def store_down() -> AbstractContextManager[Store]:
        raise OSError("database is locked")

    alert = run_failure_alert(job_name="j", run_id="r-1", failed_steps=[], failed_checks=[])
    summary = send_run_failure_alert(
        Sender(),  # type: ignore[arg-type]
        alert,
        "r-1",
        store_down,
        lambda: datetime(2026, 3, 2, tzinfo=UTC),
    )
    assert sent == ["integration"] and (summary.sent, summary.failed) == (1, 0)


def test_only_failed_blocking_checks_are_named_as_having_failed_the_run() -> None:
    def evaluation(check: str, *, passed: bool, blocking: bool) -> SimpleNamespace:
        key = SimpleNamespace(to_user_string=lambda: "stock_snapshot")
        return SimpleNamespace(asset_key=key, check_name=check, passed=passed, blocking=blocking)

    evaluations = [
        evaluation("counts_add_up", passed=False, blocking=True),
        evaluation("late_warning", passed=False, blocking=False),
        evaluation("fresh", passed=True, blocking=True),
        None,
    ]
    assert failed_blocking_checks(evaluations) == [("stock_snapshot", "counts_add_up")]
