"""The operator commands, run as a person would (typer's CliRunner)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from acs_khaos_dagster.cli_ops import exceptions_app, outbox_app
from acs_khaos_dagster.config import get_settings
from acs_khaos_dagster.store import Store

runner = CliRunner()
app = typer.Typer()
app.add_typer(exceptions_app, name="exceptions")
app.add_typer(outbox_app, name="outbox")


@pytest.fixture
def cli_store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("ACS_KHAOS_DATABASE_URL", db_url)
    get_settings.cache_clear()
    with Store.open(db_url) as store:
        yield store
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_list_shows_open_exceptions_with_owner_and_target(cli_store: Store) -> None:
    cli_store.exceptions.raise_exception("order_held", "SO1001", "order on hold in ACS")
    output = run("exceptions", "list")
    assert "SO1001" in output and "ecommerce" in output and "order_held" in output


def test_list_filters_by_owner(cli_store: Store) -> None:
    cli_store.exceptions.raise_exception("order_held", "SO1001", "held")
    cli_store.exceptions.raise_exception("refund_due", "RET7", "refund")
    output = run("exceptions", "list", "--owner", "finance")
    assert "RET7" in output and "SO1001" not in output


def test_show_prints_details(cli_store: Store) -> None:
    row = cli_store.exceptions.raise_exception("drift", "SKU1", "drift", details={"units": 3})
    output = run("exceptions", "show", str(row.id))
    assert '"units": 3' in output


def test_show_of_an_unknown_id_fails_cleanly(cli_store: Store) -> None:
    result = runner.invoke(app, ["exceptions", "show", "999"])
    assert result.exit_code == 1
    assert "no exception with id 999" in result.output


def test_resolve_records_the_actor_and_note(cli_store: Store) -> None:
    row = cli_store.exceptions.raise_exception("order_held", "SO1", "held")
    run("exceptions", "resolve", str(row.id), "--note", "released", "--actor", "ops.anna")
    closed = cli_store.exceptions.get(row.id)
    assert (closed.status, closed.acted_by, closed.resolution_note) == (
        "resolved",
        "ops.anna",
        "released",
    )


def test_ignore_defaults_the_actor_to_the_os_user(cli_store: Store) -> None:
    row = cli_store.exceptions.raise_exception("courier_unmapped", "X", "x")
    run("exceptions", "ignore", str(row.id), "--note", "old courier")
    assert cli_store.exceptions.get(row.id).acted_by


def test_retry_and_approve_and_outbox_status(cli_store: Store) -> None:
    effect = cli_store.outbox.enqueue("adjust", "khaos", "S1", "adjust:S1", {"r": 1}, hold=True)
    held = cli_store.exceptions.raise_exception(
        "stock_variance_held",
        "S1",
        "small variance",
        {"held_units": 3, "value": "30.00"},  # below the approval limits: one approver
        effect_id=effect.id,
    )
    output = run("outbox", "status")
    assert "adjust" in output and "held: 1" in output
    run("exceptions", "approve", str(held.id), "--actor", "fin.carl")
    assert "nothing held" in run("exceptions", "approve", str(held.id))
    assert cli_store.outbox.get(effect.id).state == "pending"
    other = cli_store.exceptions.raise_exception("order_held", "SO1", "held")
    result = runner.invoke(app, ["exceptions", "retry", str(other.id)])
    assert result.exit_code == 2


def test_a_large_held_variance_needs_a_second_person_at_the_command_line(cli_store: Store) -> None:
    effect = cli_store.outbox.enqueue("adjust", "khaos", "S2", "adjust:S2", {"r": 1}, hold=True)
    held = cli_store.exceptions.raise_exception(
        "stock_variance_held",
        "S2",
        "large variance",
        {"held_units": 40, "value": "800.00"},
        effect_id=effect.id,
    )
    first = runner.invoke(app, ["exceptions", "approve", str(held.id), "--actor", "fin.carl"])
    assert first.exit_code == 2 and "second, different person" in first.output
    assert cli_store.outbox.get(effect.id).state == "held"
    run("exceptions", "approve", str(held.id), "--actor", "fin.dana")
    assert cli_store.outbox.get(effect.id).state == "pending"
