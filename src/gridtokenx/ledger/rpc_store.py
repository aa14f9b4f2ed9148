"""Durable records of transactions the RPC backend signed: written before the first send.

A record keeps the raw signed bytes and the last block height its blockhash is valid for, so
after a crash or a timeout the same bytes are re-sent (never re-signed) until they land or are
proven expired. States: pending -> landed | failed (landed with an error) | expired.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from solders.signature import Signature

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    signature BLOB PRIMARY KEY,
    key TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    raw BLOB NOT NULL,
    last_valid_height INTEGER NOT NULL,
    state TEXT NOT NULL,
    err TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_by_key ON sent (key, chunk, state);
"""

PENDING, LANDED, FAILED, EXPIRED = "pending", "landed", "failed", "expired"


@dataclass(frozen=True, slots=True)
class SentTx:
    signature: Signature
    key: str
    chunk: int
    raw: bytes
    last_valid_height: int


class SentStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(SCHEMA)

    def record(self, sent: SentTx) -> None:
        now = time.time()
        self._conn.execute(
            "INSERT INTO sent (signature, key, chunk, raw, last_valid_height, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                bytes(sent.signature),
                sent.key,
                sent.chunk,
                sent.raw,
                sent.last_valid_height,
                PENDING,
                now,
                now,
            ),
        )

    def pending(self, key: str, chunk: int) -> SentTx | None:
        row = self._conn.execute(
            "SELECT signature, raw, last_valid_height FROM sent WHERE key = ? AND chunk = ? AND state = ? "
            "ORDER BY created_at DESC LIMIT 1",
            (key, chunk, PENDING),
        ).fetchone()
        if row is None:
            return None
        return SentTx(Signature.from_bytes(row[0]), key, chunk, bytes(row[1]), row[2])

    def mark(self, signature: Signature, state: str, err: object | None = None) -> None:
        self._conn.execute(
            "UPDATE sent SET state = ?, err = ?, updated_at = ? WHERE signature = ?",
            (state, json.dumps(err) if err is not None else None, time.time(), bytes(signature)),
        )

    def state(self, signature: Signature) -> str | None:
        row = self._conn.execute("SELECT state FROM sent WHERE signature = ?", (bytes(signature),)).fetchone()
        return None if row is None else str(row[0])

    def count(self, state: str) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM sent WHERE state = ?", (state,)).fetchone()
        return int(row[0])
