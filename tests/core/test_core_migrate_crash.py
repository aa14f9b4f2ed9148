"""A first start killed (SIGKILL) at any moment of its migration never leaves a database that
cannot start: the next start completes the schema."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gridtokenx.core.migrate import head_revision


def _head() -> str:
    return head_revision()


def _upgrade_process(db: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GRIDTOKENX_DATABASE_URL": f"sqlite:///{db}",
        "GRIDTOKENX_DATA_DIR": str(db.parent / "var"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gridtokenx.cli", "db", "upgrade"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _state(db: Path) -> tuple[str | None, set[str]]:
    """(recorded revision, tables) of a database file, read with the stdlib driver."""
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = None
        if "alembic_version" in tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            version = row[0] if row else None
    return version, tables - {"alembic_version"}


def test_first_start_killed_during_migration_always_recovers(tmp_path: Path) -> None:
    head = _head()
    killed_midway = 0
    for attempt in range(6):
        db = tmp_path / f"first-{attempt}.db"
        process = _upgrade_process(db)
        deadline = time.monotonic() + 60
        while not db.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(attempt * 0.06)  # spread the kills over the migration
        if process.poll() is None:
            killed_midway += 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        version, tables = _state(db) if db.exists() else (None, set())
        # all or nothing: no tables without a version, and a version only with its whole schema
        assert (version is None and not tables) or version == head, (version, sorted(tables))
        again = _upgrade_process(db)
        _out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err.decode()[-2000:]
        assert _state(db)[0] == head
    assert killed_midway >= 3, "the kills should land while the migration runs"
