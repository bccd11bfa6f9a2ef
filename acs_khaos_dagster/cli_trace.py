"""``acs-khaos trace order|sku|return ID``: one thing's journey on one screen.

The lead mounts ``trace_app`` in the main CLI (``app.add_typer(trace_app, name="trace")``).
The gathering is in ``acs_khaos_dagster.trace``; this module only renders it with rich.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from acs_khaos_dagster.trace import Section, Trace

trace_app = typer.Typer(
    help="The journey of one order, SKU or return across Khaos, ACS and the integration.",
    no_args_is_help=True,
)
console = Console()

OfflineOption = Annotated[
    bool, typer.Option("--offline", help="Do not ask Khaos for the live invoice stages.")
]


def render_section(section: Section) -> Group | Table | Text:
    note = Text(section.note, style="dim italic") if section.note else None
    if not section.rows:
        return Text.assemble((f"{section.title}: ", "bold"), (section.note or "—", "dim italic"))
    table = Table(title=section.title, title_justify="left", title_style="bold", expand=False)
    for column in section.columns:
        table.add_column(column, overflow="fold")
    for row in section.rows:
        table.add_row(*row)
    return Group(table, note) if note is not None else table


def render_trace(trace: Trace) -> Panel:
    header = f"{trace.kind} {trace.ref}"
    if not trace.found:
        header += " — not known to the integration"
    return Panel(
        Group(*(render_section(s) for s in trace.sections)),
        title=header,
        title_align="left",
        border_style="cyan" if trace.found else "yellow",
    )


@contextlib.contextmanager
def _store() -> Iterator[Any]:
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.store import Store

    with Store.from_settings(load_settings()) as store:
        yield store


@contextlib.contextmanager
def _khaos(offline: bool) -> Iterator[Any]:
    """A Khaos client, or None when offline; connecting lazily, so an unreachable Khaos is
    reported in the invoice section rather than failing the command."""
    if offline:
        yield None
        return
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.connectors.khaos.client import KhaosClient

    try:
        client = KhaosClient.from_settings(load_settings())
    except Exception as exc:  # shown on screen; the trace still runs from the store
        console.print(f"[yellow]Khaos not reachable: {exc}[/yellow]")
        yield None
        return
    with client:
        yield client


def _show(gather: Callable[..., Trace], ref: str, *args: Any) -> None:
    with _store() as store:
        trace = gather(store, ref, *args)
    console.print(render_trace(trace))
    if not trace.found:
        raise typer.Exit(1)


@trace_app.command("order")
def trace_order_command(
    order_number: Annotated[str, typer.Argument(help="Khaos order number, e.g. SO0050003")],
    offline: OfflineOption = False,
) -> None:
    """Released, sent, acknowledged, shipments, postings, invoice stage, returns, exceptions."""
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.trace import trace_order

    stages = load_settings().khaos.stages
    with _khaos(offline) as khaos, _store() as store:
        trace = trace_order(store, order_number, khaos, stages=stages)
    console.print(render_trace(trace))
    if not trace.found:
        raise typer.Exit(1)


@trace_app.command("sku")
def trace_sku_command(
    ref: Annotated[str, typer.Argument(help="Khaos StockID, ACS SKU or stock code")],
) -> None:
    """Identity, pushes, mapping exceptions, the newest snapshot's units, adjustments."""
    from acs_khaos_dagster.trace import trace_sku

    _show(trace_sku, ref)


@trace_app.command("return")
def trace_return_command(
    return_ref: Annotated[str, typer.Argument(help="ACS return reference")],
) -> None:
    """Units and grades, Khaos return parts and credits, write-offs, exceptions."""
    from acs_khaos_dagster.trace import trace_return

    _show(trace_return, return_ref)
