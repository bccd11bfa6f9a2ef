"""PostgreSQL roles: a migration role owns the schema, the application role only uses it.

The audit log is evidence against the integration's own mistakes and misuse, so the
database user the integration runs as must not be able to rewrite it. On PostgreSQL:

- the **migration role** owns every table (it runs ``acs-khaos db upgrade`` at a release,
  with credentials the running services do not have);
- the **application role** (``ACS_KHAOS_DATABASE_URL``) may read and write the working
  tables, but on ``audit_log`` only ``SELECT`` and ``INSERT``, on ``alembic_version`` only
  ``SELECT``, and ``TRUNCATE`` nowhere. Not being the owner, it can neither disable the
  append-only triggers nor drop or alter the table.
- the triggers (0001 for rows, 0008_audit for ``TRUNCATE``) refuse changes by the owner too,
  short of the owner disabling them on purpose.

``grant_application_role`` is idempotent and runs after every upgrade, so tables added by
a later migration are covered.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

APPEND_ONLY_TABLES = ("audit_log",)
READ_ONLY_TABLES = ("alembic_version",)
WORKING_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


class RoleError(ValueError):
    """The application role is not one the integration may run as."""


@dataclass(frozen=True)
class RoleFacts:
    name: str
    superuser: bool
    bypasses_row_security: bool
    creates_roles: bool
    member_of_owner: bool


def role_facts(connection: Connection, role: str) -> RoleFacts:
    row = connection.execute(
        text(
            "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, "
            "pg_has_role(:role, current_user, 'MEMBER') "
            "FROM pg_roles WHERE rolname = :role"
        ),
        {"role": role},
    ).one_or_none()
    if row is None:
        raise RoleError(f"role {role} does not exist: create it first (deploy/README.md)")
    return RoleFacts(*row)


def grant_application_role(connection: Connection, role: str) -> list[str]:
    """Give ``role`` what the integration needs and nothing more; returns the statements.

    Run as the owner of the tables (the migration role), inside its transaction.
    """
    if connection.dialect.name != "postgresql":
        raise RoleError("database roles exist on PostgreSQL only")
    facts = role_facts(connection, role)
    owner = connection.execute(text("SELECT current_user")).scalar_one()
    if facts.superuser or facts.bypasses_row_security or facts.creates_roles:
        raise RoleError(
            f"the application role {role} must not be a superuser, bypass row security or "
            "create roles"
        )
    if role == owner or facts.member_of_owner:
        raise RoleError(
            f"the application role {role} must not be (or inherit) the migration role {owner}"
        )
    who = connection.dialect.identifier_preparer.quote(role)
    tables = ", ".join(APPEND_ONLY_TABLES + READ_ONLY_TABLES)
    statements = [
        # Nobody but the owner creates objects in the schema (PostgreSQL before 15 let
        # every user do so).
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {who}",
        f"GRANT {WORKING_PRIVILEGES} ON ALL TABLES IN SCHEMA public TO {who}",
        f"REVOKE ALL ON {tables} FROM {who}",
        *(f"GRANT SELECT, INSERT ON {table} TO {who}" for table in APPEND_ONLY_TABLES),
        *(f"GRANT SELECT ON {table} TO {who}" for table in READ_ONLY_TABLES),
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
    ]
    for statement in statements:
        connection.execute(text(statement))
    return statements
