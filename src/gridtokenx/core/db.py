"""Async database engine and sessions for SQLite (embedded) and PostgreSQL (distributed).

One `Database` object per process; domain services take an `AsyncSession` from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import orjson
from sqlalchemy import MetaData, Select, Table, event, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every domain's tables (one metadata for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL with `synchronous=FULL`: every acknowledged commit is on disk before the answer. NORMAL
    would fsync only at checkpoints, and a power cut could take back commits already answered
    (docs/decisions/2026-12-04-sqlite-synchronous-full.md measures the cost). Other processes'
    writers are waited for (busy timeout) rather than failed."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns through orjson: the stdlib encoder showed up in ingest profiles (per-meter state)
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Engine with the right options per backend (WAL + busy timeout on SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # A request holds one connection at a time, and writes queue on `Database.write_lock`
        # before they take one, so the pool only needs to cover the concurrent reads; a request
        # that waits for a connection waits as long as a writer may (no 30 s pool timeout 500).
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=120,
            **_JSON,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **_JSON)


class Database:
    """Owns the engine and hands out sessions; `session()` commits on success, rolls back on error.

    `write_lock` is SQLite's writer queue in this process: SQLite has one writer, so the heavy
    writers (ingest batches, job completion) take turns here instead of holding a connection
    each while they wait on the file lock. On PostgreSQL it is None (row locks do the job)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Queue on `write_lock` where there is one (SQLite), before taking a connection."""
        if self.write_lock is None:
            yield
            return
        async with self.write_lock:
            yield

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """A `Database` for the length of one command, disposed however the command ends."""
    db = Database(url)
    try:
        yield db
    finally:
        await db.dispose()


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def asyncpg_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction, for statements SQLAlchemy would
    otherwise expand row by row.

    SQLAlchemy's asyncpg adapter sends BEGIN only with its own first statement: a statement sent
    straight to the driver before that would run in autocommit, and a `FOR UPDATE` lock taken by
    it would end with the statement (concurrent batches of one meter then interleaved, and an
    estimate could take the place of a measured reading). So the transaction is begun first."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        await connection.exec_driver_sql("SELECT 1")
    return driver


def columns_of(table: Table, fields: type[NamedTuple]) -> Select[Any]:
    """SELECT exactly the named tuple's fields, in its order, so rows fill it positionally."""
    return select(*(table.c[name] for name in fields._fields))


def pg_rows_in_array(table: Table, fields: type[NamedTuple], by: str, array_type: str, tail: str = "") -> str:
    """PostgreSQL: the rows of `table` whose `by` is in the array `$1`, as the tuple's fields.

    One array joined with `unnest` instead of SQLAlchemy's expanding `IN` (a bind per id and a new
    prepared statement per list length) or `= ANY($1)` (which the planner may turn into comparing
    every row with every id)."""
    columns = ", ".join(f"t.{name}" for name in fields._fields)
    return (
        f"SELECT {columns} FROM {table.name} AS t JOIN unnest($1::{array_type}) AS w({by}) USING ({by})"
        + tail
    )


_encode = msgspec.json.Encoder().encode


def json_document(payload: Any) -> str:
    """`payload` as the JSON text of a `$1::json` parameter (`json_to_recordset` statements)."""
    return _encode(payload).decode()


def pg_insert_from_json(table: Table, columns: Sequence[str], tail: str = "") -> str:
    """PostgreSQL: insert the rows of the JSON array `$1` (objects keyed by column name) in one
    statement. The gateway encodes a batch in one call and PostgreSQL parses it off the gateway's
    GIL, where SQLAlchemy's multi-row VALUES would process every bind of every row in Python
    (docs/decisions/2026-12-04-ingest-hot-path-figures.md)."""
    pg = postgresql.dialect()
    record = ", ".join(f"{name} {table.c[name].type.compile(dialect=pg)}" for name in columns)
    names = ", ".join(columns)
    return (
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_to_recordset($1::json) AS r({record}) {tail}"
    )


async def rows_in(
    session: AsyncSession, pg_query: str, query: Select[Any], column: Any, ids: list[Any]
) -> Iterable[Any]:
    """The rows whose `column` is in `ids`: `pg_query` (from `pg_rows_in_array`) on PostgreSQL,
    `query` with an `IN` on SQLite (built only there)."""
    if is_postgres(session):
        return await (await asyncpg_connection(session)).fetch(pg_query, ids)
    return await session.execute(query.where(column.in_(ids)))
