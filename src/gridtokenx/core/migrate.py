"""Apply the Alembic migrations programmatically (CLI `db upgrade` and embedded start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from gridtokenx.core.db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(connection: Connection, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` in one transaction, on both backends: a start killed halfway
    leaves the schema as it was, and the next start does the whole upgrade again.

    SQLite's Python driver opens a transaction only before INSERT/UPDATE/DELETE, so DDL would
    commit statement by statement (a kill left tables without a recorded version, and no start
    after it could create them again). An explicit `BEGIN IMMEDIATE` puts the DDL inside the
    transaction and also makes a second process starting at the same moment wait, then find the
    schema current."""
    async with database.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        await connection.run_sync(_upgrade, database.url, revision)


def head_revision() -> str:
    """The newest migration this code ships (what `upgrade()` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(database: Database) -> str | None:
    async with database.engine.connect() as connection:
        return await connection.run_sync(_current)
