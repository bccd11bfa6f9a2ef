"""The audit log is append-only against the integration's own database user (issue 20, point 4).

On PostgreSQL, in a database of its own: a migration role owns the schema, the
application role (what ``ACS_KHAOS_DATABASE_URL`` names in production) is granted by
``acs-khaos db upgrade --app-role``. From the application role the audit log can be
read and appended to, and nothing else: no UPDATE, DELETE, TRUNCATE, no disabling its
triggers, no dropping it. The owner meets the triggers too (TRUNCATE included). The
integration's work still runs as the application role.

SQLite has one user and no roles: its limits are in RELIABILITY.md ("Security").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from acs_khaos_dagster.cli import app
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.roles import RoleError, grant_application_role

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Roles:
    owner_url: str
    app_url: str
    app_role: str


def _url(admin_url: str, user: str, database: str) -> str:
    base = sa.make_url(admin_url)
    return base.set(username=user, password=None, database=database).render_as_string(
        hide_password=False
    )


@pytest.fixture
def roles(postgres_admin_url: str) -> Iterator[Roles]:
    """Two login roles and a database owned by the migration one; all removed afterwards."""
    suffix = uuid.uuid4().hex[:10]
    owner, application, database = f"akd_mig_{suffix}", f"akd_app_{suffix}", f"akd_roles_{suffix}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{owner}" LOGIN'))
        conn.execute(sa.text(f'CREATE ROLE "{application}" LOGIN'))
        conn.execute(sa.text(f'CREATE DATABASE "{database}" OWNER "{owner}"'))
    try:
        yield Roles(
            _url(postgres_admin_url, owner, database),
            _url(postgres_admin_url, application, database),
            application,
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{application}"'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{owner}"'))
        admin.dispose()


@pytest.fixture
def granted(roles: Roles, monkeypatch: pytest.MonkeyPatch) -> Roles:
    """The release step, as an operator runs it: ``acs-khaos db upgrade --app-role``."""
    monkeypatch.setenv("ACS_KHAOS_MIGRATION_DATABASE_URL", roles.owner_url)
    result = CliRunner().invoke(app, ["db", "upgrade", "--app-role", roles.app_role])
    assert result.exit_code == 0, result.output
    return roles


def _refused(url: str, statement: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn, pytest.raises(DBAPIError) as error:
            conn.execute(sa.text(statement))
        return str(error.value.orig)
    finally:
        engine.dispose()


def _audit_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one())
    finally:
        engine.dispose()


def test_the_application_role_can_append_to_and_read_the_audit_log(granted: Roles) -> None:
    with Store.open(granted.app_url) as store:
        store.audit.record_action(actor="ops", action="resolve", subject="exception:1")
        assert [e.actor for e in store.audit.list()] == ["ops"]


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("UPDATE audit_log SET actor = 'someone else'", "permission denied"),
        ("DELETE FROM audit_log", "permission denied"),
        ("TRUNCATE audit_log", "permission denied"),
        ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner"),
        ("DROP TRIGGER audit_log_no_change ON audit_log", "must be owner"),
        ("DROP TABLE audit_log", "must be owner"),
        ("CREATE TABLE audit_log_copy (id int)", "permission denied"),
    ],
)
def test_the_application_role_cannot_rewrite_empty_or_unguard_the_audit_log(
    granted: Roles, statement: str, why: str
) -> None:
    with Store.open(granted.app_url) as store:
        store.audit.record_action(actor="ops", action="resolve", subject="exception:1")

    assert why in _refused(granted.app_url, statement)
    assert _audit_rows(granted.app_url) == 1


@pytest.mark.parametrize(
    "statement", ["TRUNCATE audit_log", "UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"]
)
def test_even_the_owner_meets_the_append_only_triggers(granted: Roles, statement: str) -> None:
    with Store.open(granted.app_url) as store:
        store.audit.record_action(actor="ops", action="resolve", subject="exception:1")

    assert "audit_log is append-only" in _refused(granted.owner_url, statement)
    assert _audit_rows(granted.owner_url) == 1


def test_the_integrations_work_runs_as_the_application_role(granted: Roles, tmp_path: Path) -> None:
    """Outbox, dispatch, exceptions, ledger, cursors and retention: all within the grants."""

    class Accepts:
        idempotent = True

        def send(self, payload: dict) -> dict:
            return {"ok": True}

        def read_back(self, payload: dict) -> dict | None:
            return None

    csv = tmp_path / "returns_BRAND01_20260302070000.csv"
    csv.write_text("x\n")
    with Store.open(granted.app_url) as store:
        store.outbox.enqueue("acs.put_product", "acs", "SKU-1", "product:SKU-1:r1", {"sku": "1"})
        store.dispatcher({"acs.put_product": Accepts()}).drain()
        assert store.outbox.by_key("product:SKU-1:r1").state == "done"
        row = store.exceptions.raise_exception("order_held", "SO-1", "order SO-1 held")
        store.exceptions.resolve(row.id, "ops", note="fixed")
        file_row, fresh = store.ledger.record_file(csv, kind="returns")
        store.ledger.mark_processed(file_row.id, rows_accepted=1)
        with store.transaction() as session:
            store.cursors.set("test", {"at": 1}, session=session)
        store.purge_personal_data(90)
        assert fresh and store.audit.list(action="resolve")


def test_a_superuser_or_the_owner_is_refused_as_the_application_role(roles: Roles) -> None:
    owner = sa.make_url(roles.owner_url).username
    with Store.open(roles.owner_url) as store, store.engine.begin() as conn:
        with pytest.raises(RoleError, match="must not be"):
            grant_application_role(conn, str(owner))
        with pytest.raises(RoleError, match="must not be a superuser"):
            grant_application_role(conn, "postgres")


def test_a_release_not_yet_migrated_stops_the_application_role_with_what_to_do(
    roles: Roles,
) -> None:
    """Before the release step the schema is empty; the services may not create it."""
    with pytest.raises(PermissionError, match="acs-khaos db upgrade"):
        Store.open(roles.app_url)
