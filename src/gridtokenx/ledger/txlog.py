"""The embedded ledger's append-only log, signature index and snapshot store (one SQLite file).

Every raw signed transaction that reached the SVM is appended with its outcome, and so is every
admin event (airdrop, set_clock, add_program). The signature column is our signature index: it
outlives LiteSVM's 32-entry history, so an identical resend is recognised however old it is.
Snapshots are tagged with the log position they include; restart loads the newest one and
replays the entries after it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from solders.signature import Signature

from gridtokenx.ledger.errors import LedgerUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    pos INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    payload BLOB NOT NULL,
    signature BLOB UNIQUE,
    ok INTEGER,
    err TEXT
);
CREATE TABLE IF NOT EXISTS snapshots (
    pos INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    body BLOB NOT NULL
);
"""

SNAPSHOTS_KEPT = 2
_REPLAY_FETCH = 2048


class EntryKind(StrEnum):
    TX = "tx"
    AIRDROP = "airdrop"
    SET_CLOCK = "set_clock"
    ADD_PROGRAM = "add_program"


@dataclass(frozen=True, slots=True)
class Entry:
    pos: int
    kind: EntryKind
    payload: bytes
    ok: bool | None


@dataclass(frozen=True, slots=True)
class IndexedTx:
    """A transaction as the signature index knows it."""

    pos: int
    ok: bool
    err: object | None


class TxLog:
    """Appends join the open SQLite transaction; the owner commits once per batch (group commit)."""

    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        self._conn = conn
        self._read_only = read_only
        conn.executescript(SCHEMA)
        row = conn.execute("SELECT COALESCE(MAX(pos), 0) FROM log").fetchone()
        self.last_pos: int = row[0]

    def begin(self) -> None:
        if self._read_only:
            raise LedgerUnavailable("the ledger was opened read-only")
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def append(
        self,
        kind: EntryKind,
        payload: bytes,
        *,
        signature: Signature | None = None,
        ok: bool | None = None,
        err: object | None = None,
    ) -> int:
        self.begin()
        cursor = self._conn.execute(
            "INSERT INTO log (kind, at, payload, signature, ok, err) VALUES (?, ?, ?, ?, ?, ?)",
            (
                kind.value,
                time.time(),
                payload,
                bytes(signature) if signature is not None else None,
                ok,
                json.dumps(err) if err is not None else None,
            ),
        )
        assert cursor.lastrowid is not None
        self.last_pos = cursor.lastrowid
        return self.last_pos

    def lookup(self, signature: Signature) -> IndexedTx | None:
        row = self._conn.execute(
            "SELECT pos, ok, err FROM log WHERE signature = ?", (bytes(signature),)
        ).fetchone()
        if row is None:
            return None
        return IndexedTx(pos=row[0], ok=bool(row[1]), err=json.loads(row[2]) if row[2] else None)

    def knows(self, signature: Signature) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM log WHERE signature = ?", (bytes(signature),)).fetchone()
            is not None
        )

    def entries(
        self, after: int, kinds: tuple[EntryKind, ...] | None = None, until: int | None = None
    ) -> Iterator[Entry]:
        """Entries in log order, fetched in pages so a long tail never sits in memory at once."""
        wanted = {kind.value for kind in kinds} if kinds else None
        last = after
        while True:
            rows = self._conn.execute(
                "SELECT pos, kind, payload, ok FROM log WHERE pos > ? AND pos <= ? ORDER BY pos LIMIT ?",
                (last, until if until is not None else self.last_pos, _REPLAY_FETCH),
            ).fetchall()
            if not rows:
                return
            for pos, kind, payload, ok in rows:
                if wanted is None or kind in wanted:
                    yield Entry(pos, EntryKind(kind), bytes(payload), None if ok is None else bool(ok))
            last = rows[-1][0]

    def save_snapshot(self, pos: int, body: bytes) -> None:
        if self._read_only:
            raise LedgerUnavailable("the ledger was opened read-only")
        self.commit()
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute(
            "INSERT OR REPLACE INTO snapshots (pos, at, body) VALUES (?, ?, ?)", (pos, time.time(), body)
        )
        self._conn.execute(
            "DELETE FROM snapshots WHERE pos NOT IN (SELECT pos FROM snapshots ORDER BY pos DESC LIMIT ?)",
            (SNAPSHOTS_KEPT,),
        )
        self._conn.execute("COMMIT")

    def latest_snapshot(self) -> tuple[int, bytes] | None:
        row = self._conn.execute("SELECT pos, body FROM snapshots ORDER BY pos DESC LIMIT 1").fetchone()
        return (row[0], bytes(row[1])) if row else None
