"""Durable idempotency keys and the mint registry, in the backend's own SQLite file.

An idempotency key names a plan (one or more transactions). The first call records the plan's
fingerprint; every chunk that lands is recorded with its signature, so a retry returns the same
signatures instead of executing again, and a key reused for a different plan is refused.
Callers own the transaction boundaries (the embedded log commits once per batch).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from solders.pubkey import Pubkey
from solders.signature import Signature

from gridtokenx.ledger.errors import IdempotencyConflict
from gridtokenx.ledger.records import MintRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    key TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    chunks INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS intent_txs (
    key TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (key, chunk)
);
CREATE TABLE IF NOT EXISTS mints (
    label TEXT PRIMARY KEY,
    address BLOB NOT NULL,
    token_program BLOB NOT NULL,
    decimals INTEGER NOT NULL
);
"""


def open_database(path: Path) -> sqlite3.Connection:
    """WAL with synchronous=FULL: a commit survives power loss, which exactly-once minting needs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


class Registry:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def claim(self, key: str, fingerprint: bytes, chunks: int) -> None:
        """Record the plan behind `key`, or check that a retry describes the same plan."""
        row = self._conn.execute("SELECT fingerprint FROM intents WHERE key = ?", (key,)).fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO intents (key, fingerprint, chunks, created_at) VALUES (?, ?, ?, ?)",
                (key, fingerprint, chunks, time.time()),
            )
        elif bytes(row[0]) != fingerprint:
            raise IdempotencyConflict(f"idempotency key {key!r} was used for a different request")

    def completed(self, key: str, chunk: int) -> Signature | None:
        row = self._conn.execute(
            "SELECT signature FROM intent_txs WHERE key = ? AND chunk = ?", (key, chunk)
        ).fetchone()
        return Signature.from_bytes(row[0]) if row else None

    def complete(self, key: str, chunk: int, signature: Signature) -> None:
        self._conn.execute(
            "INSERT INTO intent_txs (key, chunk, signature) VALUES (?, ?, ?)", (key, chunk, bytes(signature))
        )

    def register_mint(self, record: MintRecord) -> None:
        known = self.mint(record.label)
        if known is not None and known != record:
            raise IdempotencyConflict(f"mint label {record.label!r} already names {known.address}")
        self._conn.execute(
            "INSERT OR IGNORE INTO mints (label, address, token_program, decimals) VALUES (?, ?, ?, ?)",
            (record.label, bytes(record.address), bytes(record.token_program), record.decimals),
        )

    def mint(self, label: str) -> MintRecord | None:
        row = self._conn.execute(
            "SELECT label, address, token_program, decimals FROM mints WHERE label = ?", (label,)
        ).fetchone()
        return _mint_record(row) if row else None

    def mints(self) -> list[MintRecord]:
        rows = self._conn.execute("SELECT label, address, token_program, decimals FROM mints ORDER BY label")
        return [_mint_record(row) for row in rows]


def _mint_record(row: tuple[str, bytes, bytes, int]) -> MintRecord:
    return MintRecord(
        label=row[0],
        address=Pubkey.from_bytes(row[1]),
        token_program=Pubkey.from_bytes(row[2]),
        decimals=row[3],
    )
