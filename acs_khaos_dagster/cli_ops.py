"""Operator commands on the store: ``acs-khaos exceptions ...`` and ``acs-khaos outbox ...``.

The lead mounts ``exceptions_app`` and ``outbox_app`` in the main CLI. Every command opens
the store named by the settings (``ACS_KHAOS_DATABASE_URL`` or the SQLite file under the data
folder); every human action is audited with ``--actor`` (default: the OS user).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import typer
from rich.console import Console
from rich.table import Table

from acs_khaos_dagster.store import Store, default_actor
from acs_khaos_dagster.store.exceptions import ExceptionNotFound, ListedException

exceptions_app = typer.Typer(help="Problems waiting for a person.", no_args_is_help=True)
outbox_app = typer.Typer(help="Effects waiting to be sent to ACS or Khaos.", no_args_is_help=True)

console = Console()
err_console = Console(stderr=True)

ActorOption = typer.Option(None, "--actor", help="Who is acting (default: the OS user).")


def open_store(*, reading: bool = False) -> Store:
    """The configured store; for ``reading`` (listing, showing), on the clock its records
    were written on.

    A store the demo filled lives on the sandbox's simulated clock: its exceptions were
    opened in that world's time, so their ages and targets are measured as at that
    world's last moment, not against today's date. Commands that act (dispatch, approve)
    always run on the integration's own clock."""
    from acs_khaos_dagster.clock import SIMULATED_CLOCK_CURSOR
    from acs_khaos_dagster.config import get_settings

    settings = get_settings()
    store = Store.from_settings(settings)
    if not reading or settings.clock_url:
        return store
    simulated = store.cursors.get(SIMULATED_CLOCK_CURSOR)
    if simulated is None:
        return store
    store.close()
    as_at = datetime.fromisoformat(simulated)
    err_console.print(f"[dim]on the demo's simulated clock: as at {as_at:%Y-%m-%d %H:%M} UTC[/dim]")
    return Store.from_settings(settings, clock=lambda: as_at)


def _actor(actor: str | None) -> str:
    return actor or default_actor()


def _age(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"


def _not_found(kind: str, ident: int) -> typer.Exit:
    console.print(f"[red]no {kind} with id {ident}[/red]")
    return typer.Exit(1)


@exceptions_app.command("list")
def list_exceptions(
    type_: str | None = typer.Option(None, "--type", help="Only this exception type."),
    owner: str | None = typer.Option(None, "--owner", help="operations|finance|ecommerce|..."),
    status: str = typer.Option("open", "--status", help="open|resolved|ignored|all"),
    older_than_hours: float | None = typer.Option(None, "--older-than-hours"),
) -> None:
    """List exceptions, oldest first, with their age against the owner's target."""
    with open_store(reading=True) as store:
        items = store.exceptions.list(
            type=type_,
            owner=owner,
            status=None if status == "all" else status,
            older_than=None if older_than_hours is None else timedelta(hours=older_than_hours),
        )
    # Narrow terminals (and CI logs) get the same facts, stacked rather than squeezed away.
    table = Table(title=f"Exceptions ({len(items)})", show_lines=True)
    table.add_column("ID", justify="right", no_wrap=True)
    table.add_column("Type / owner", no_wrap=True)
    table.add_column("Age / target", no_wrap=True)
    table.add_column("About", overflow="fold", ratio=1)
    table.add_column("Seen", justify="right", no_wrap=True)
    for item in items:
        row = item.row
        over = "[red]OVER[/red]" if item.over_target else "ok"
        table.add_row(
            str(row.id),
            f"{row.type}\n{row.owner} · {row.severity}",
            f"{_age(item.age)}\n{item.target_hours:g}h {over}",
            f"[bold]{row.entity_ref}[/bold]\n{row.message}"
            + ("" if row.status == "open" else f"\n[{row.status}]"),
            str(row.count),
        )
    console.print(table)


def _show(item: ListedException, store: Store) -> None:
    row = item.row
    table = Table(title=f"Exception {row.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    fields = {
        "type": row.type,
        "entity": row.entity_ref,
        "status": row.status,
        "owner": row.owner,
        "severity": row.severity,
        "message": row.message,
        "count": str(row.count),
        "first seen": row.first_seen.isoformat(),
        "last seen": row.last_seen.isoformat(),
        "opened": row.opened_at.isoformat(),
        "age": f"{_age(item.age)} (target {item.target_hours:g}h"
        + (", OVER)" if item.over_target else ")"),
        "details": json.dumps(row.details, indent=2, sort_keys=True) if row.details else "-",
        "resolution": row.resolution_note or "-",
        "acted by": f"{row.acted_by} at {row.acted_at.isoformat()}" if row.acted_at else "-",
    }
    if row.effect_id is not None:
        effect = store.outbox.get(row.effect_id)
        fields["effect"] = (
            f"{effect.id} {effect.kind} → {effect.target} [{effect.state}] "
            f"attempts {effect.attempts}; last error: {effect.last_error or '-'}"
        )
    for name, value in fields.items():
        table.add_row(name, value)
    console.print(table)


@exceptions_app.command("show")
def show_exception(exception_id: int = typer.Argument(..., help="Exception id.")) -> None:
    """Everything about one exception (and its effect, if it is about one)."""
    with open_store(reading=True) as store:
        try:
            item = store.exceptions.describe(store.exceptions.get(exception_id))
        except ExceptionNotFound:
            raise _not_found("exception", exception_id) from None
        _show(item, store)


@exceptions_app.command("retry")
def retry_exception(exception_id: int, actor: str | None = ActorOption) -> None:
    """Send a parked effect again (effect_failed only): back to pending, attempts reset."""
    with open_store() as store:
        try:
            row = store.exceptions.retry(exception_id, _actor(actor))
        except ExceptionNotFound:
            raise _not_found("exception", exception_id) from None
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(f"exception {row.id}: {row.resolution_note}; effect {row.effect_id} queued")


def _close(exception_id: int, note: str, actor: str | None, verb: str) -> None:
    with open_store() as store:
        act = store.exceptions.resolve if verb == "resolved" else store.exceptions.ignore
        try:
            row = act(exception_id, _actor(actor), note)
        except ExceptionNotFound:
            raise _not_found("exception", exception_id) from None
    console.print(f"exception {row.id} {verb} by {row.acted_by}")


@exceptions_app.command("resolve")
def resolve_exception(
    exception_id: int,
    note: str = typer.Option(..., "--note", help="What was done."),
    actor: str | None = ActorOption,
) -> None:
    """Mark a problem fixed (it reopens if seen again)."""
    _close(exception_id, note, actor, "resolved")


@exceptions_app.command("ignore")
def ignore_exception(
    exception_id: int,
    note: str = typer.Option(..., "--note", help="Why it can be ignored."),
    actor: str | None = ActorOption,
) -> None:
    """Stop listing a problem (it stays ignored if seen again)."""
    _close(exception_id, note, actor, "ignored")


@exceptions_app.command("approve")
def approve_exception(exception_id: int, actor: str | None = ActorOption) -> None:
    """Release the effect held for approval behind this exception."""
    from acs_khaos_dagster.config import get_settings
    from acs_khaos_dagster.domain.approvals import ApprovalLimits

    stock = get_settings().stock
    limits = ApprovalLimits(stock.second_approval_units, stock.second_approval_value)
    with open_store() as store:
        try:
            released = store.approve(exception_id=exception_id, actor=_actor(actor), limits=limits)
        except ExceptionNotFound:
            raise _not_found("exception", exception_id) from None
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    if released:
        console.print(f"exception {exception_id}: effect released for sending")
    else:
        console.print(f"exception {exception_id}: nothing held (already approved?); no change")


@outbox_app.command("status")
def outbox_status() -> None:
    """Effects per kind and state, oldest pending age, parked count."""
    with open_store() as store:
        status = store.outbox.status()
    states = ("held", "pending", "in_flight", "done", "parked", "failed", "superseded")
    table = Table(title="Outbox")
    table.add_column("Kind")
    for state in states:
        table.add_column(state, justify="right")
    for kind in sorted({kind for kind, _ in status.counts}):
        table.add_row(kind, *(str(status.counts.get((kind, s), 0)) for s in states))
    console.print(table)
    parked = status.parked
    colour = "red" if parked else "green"
    console.print(
        f"oldest pending: {_age(status.oldest_pending_age)}   "
        f"[{colour}]parked: {parked}[/{colour}]   held: {status.held}"
    )


@outbox_app.command("dispatch")
def outbox_dispatch(
    once: bool = typer.Option(False, "--once", help="One round only (default: until idle)."),
    systems: str = typer.Option("acs,khaos", help="Which systems' effects to send."),
) -> None:
    """Send due effects to ACS and Khaos: retry, read back and park by the outbox rules."""
    from contextlib import ExitStack

    from acs_khaos_dagster.config import get_settings
    from acs_khaos_dagster.connectors.acs.client import AcsClient
    from acs_khaos_dagster.connectors.khaos.client import KhaosClient
    from acs_khaos_dagster.effects import effect_handlers

    settings = get_settings()
    wanted = {s.strip() for s in systems.split(",") if s.strip()}
    with ExitStack() as stack:
        acs = stack.enter_context(AcsClient.from_settings(settings)) if "acs" in wanted else None
        khaos = (
            stack.enter_context(KhaosClient.from_settings(settings)) if "khaos" in wanted else None
        )
        store = stack.enter_context(open_store())
        dispatcher = store.dispatcher(
            effect_handlers(acs, khaos), settings.outbox, http=settings.http
        )
        report = dispatcher.drain(until_idle=not once)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "nothing due"
    console.print(f"claimed {report.claimed}: {outcomes}")
