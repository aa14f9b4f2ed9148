"""Shared fixtures: real services, both database backends, an app wired to a fresh database.

Pure tests (rules, clearing, codecs, signing) need no service. A test needs the local PostgreSQL
when it runs on the `postgres` backend (or asks for `pg_url`); a test marked `postgres`, `redis`
or `mqtt`, or in a module that imports that service's address from here, needs that service.
When the tests about to run need a service that is not reachable, the run stops before the first
test with the command that starts it: nothing is skipped silently.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext
from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.settings import Settings
from gridtokenx.models_registry import metadata

PG_HOST = os.environ.get("GRIDTOKENX_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GRIDTOKENX_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GRIDTOKENX_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("GRIDTOKENX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MQTT_HOST, MQTT_PORT = "127.0.0.1", int(os.environ.get("GRIDTOKENX_TEST_MQTT_PORT", "1883"))

_REDIS = urlsplit(REDIS_URL)
# marker -> (service, host, port, the command that starts it)
SERVICES = {
    "postgres": (
        "PostgreSQL",
        PG_HOST,
        PG_PORT,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "redis": (
        "Redis",
        _REDIS.hostname or "127.0.0.1",
        _REDIS.port or 6379,
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    ),
    "mqtt": ("Mosquitto", MQTT_HOST, MQTT_PORT, "mosquitto -d -c /etc/mosquitto/mosquitto.conf"),
}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# a test module that imports a service's address from here talks to that service
_ADDRESSES = {"postgres": ("PG_HOST", "PG_PORT"), "redis": ("REDIS_URL",), "mqtt": ("MQTT_HOST", "MQTT_PORT")}


def services_needed(item: pytest.Item) -> set[str]:
    """The services (keys of SERVICES) one collected test needs."""
    needed = {marker for marker in SERVICES if item.get_closest_marker(marker) is not None}
    module = getattr(getattr(item, "module", None), "__dict__", {})
    needed |= {service for service, names in _ADDRESSES.items() if any(n in module for n in names)}
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("backend") == "postgres"
    if on_postgres or "pg_url" in getattr(item, "fixturenames", ()):
        needed.add("postgres")
    return needed


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only the tests that will run count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needed = set().union(*map(services_needed, items))
    missing = [
        f"{name} is not reachable on {host}:{port}; start it with: {cmd}"
        for marker, (name, host, port, cmd) in SERVICES.items()
        if marker in needed and not _reachable(host, port)
    ]
    if missing:
        pytest.exit("required test services are missing:\n  " + "\n  ".join(missing), returncode=3)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once, dropped at the end."""
    name = f"gtx_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    async def migrate() -> None:
        db = Database(url)
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    yield url
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def truncate_all(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database on the parametrized backend."""
    db = Database(db_url)
    if db.is_sqlite:
        await upgrade(db)
    else:
        await truncate_all(db)
    yield db
    await db.dispose()


def make_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": db_url,
        "data_dir": tmp_path / "var",
        "jwt_secret": "test-secret-" + "x" * 40,
        "log_json": False,
        "log_level": "info",
        "require_email_verification": True,
        "rate_limit_default": "100000/minute",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the app's settings."""
    return {}


@pytest.fixture
async def ctx(
    database: Database, db_url: str, tmp_path: Path, settings_overrides: dict[str, Any]
) -> AsyncIterator[AppContext]:
    settings = make_settings(tmp_path, db_url, **settings_overrides)
    context = AppContext.from_settings(settings)
    await context.db.dispose()
    context.db = database
    yield context


@pytest.fixture
async def client(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(context=ctx)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
