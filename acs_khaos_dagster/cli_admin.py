"""``acs-khaos db``: release steps on the integration's own database, run by an operator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

db_app = typer.Typer(help="The integration's own database (release steps).", no_args_is_help=True)
console = Console()

MIGRATION_URL_VARIABLE = "ACS_KHAOS_MIGRATION_DATABASE_URL"


@db_app.command("upgrade")
def upgrade(
    app_role: Annotated[
        str | None,
        typer.Option(
            "--app-role",
            help="PostgreSQL role the services run as: granted what it needs, the audit "
            "log append-only (SELECT, INSERT)",
        ),
    ] = None,
) -> None:
    """Migrate the store to this release as the migration role, then grant the app role.

    The migration role's URL comes from ACS_KHAOS_MIGRATION_DATABASE_URL (never from the
    command line, where other users could read it); without it, the services' own
    database URL is used (SQLite, or a single-role PostgreSQL set-up).
    """
    from acs_khaos_dagster.config import get_settings
    from acs_khaos_dagster.store.db import make_engine, upgrade_to_head
    from acs_khaos_dagster.store.roles import RoleError, grant_application_role

    url = os.environ.get(MIGRATION_URL_VARIABLE) or get_settings().resolved_database_url
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        console.print("store schema: at this release's head")
        if app_role:
            try:
                with engine.begin() as conn:
                    grant_application_role(conn, app_role)
            except RoleError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None
            console.print(
                f"role {app_role}: working tables read/write, audit_log SELECT and INSERT only"
            )
    finally:
        engine.dispose()


def webserver(
    workspace: Annotated[
        Path, typer.Option("-w", "--workspace", help="Dagster workspace file", exists=True)
    ],
    uds: Annotated[
        Path | None,
        typer.Option(
            "--uds",
            help="serve on this Unix socket (production: only the proxy's group can reach it)",
        ),
    ] = None,
    host: Annotated[str, typer.Option("-h", "--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("-p", "--port")] = 3000,
    path_prefix: Annotated[str, typer.Option("--path-prefix")] = "",
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="no proxy in front (make dev): loopback only, UI actions recorded as the "
            "local user",
        ),
    ] = False,
) -> None:
    """Dagster's webserver behind the UI guard: UI actions recorded with the signed-in user.

    Serves the same app as ``dagster-webserver``; GraphQL must be POST application/json,
    and every mutation is written to the audit log with the user the proxy passes on
    (X-Forwarded-User) before it runs. The report folders are served read-only at
    ``/files/`` (the links on the finance assets). See acs_khaos_dagster/webserver.py.
    """
    from acs_khaos_dagster.webserver import serve

    serve(workspace, uds=uds, host=host, port=port, path_prefix=path_prefix, local=local)
