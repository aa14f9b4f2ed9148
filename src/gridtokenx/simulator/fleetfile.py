"""The fleet file: one local SQLite file holding the simulated fleet's identities, state and spool.

Why one file: a reading is signed, its meter's sequence number and registers advanced, and the
reading queued in the spool in ONE transaction, before anything goes on the wire. A crash or a
gateway outage can then never reuse a sequence number, move a register backwards, or send a
different reading for an interval already sent: a restart continues the same fleet and resends
the spooled bytes. The file holds device private keys and API keys: keep it like a key store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from gridtokenx.simulator.fleet import Battery, BuildingType, MeterClass, MeterSpec
from gridtokenx.simulator.physics import MeterState

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS owners (
    name TEXT PRIMARY KEY, email TEXT NOT NULL, password TEXT NOT NULL, api_key TEXT
);
CREATE TABLE IF NOT EXISTS meters (
    serial TEXT PRIMARY KEY, spec TEXT NOT NULL, owner TEXT NOT NULL, key_seed TEXT NOT NULL,
    meter_key TEXT NOT NULL, meter_id TEXT, provisioned INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, next_interval INTEGER
);
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT, serial TEXT NOT NULL, interval_start INTEGER NOT NULL,
    body BLOB NOT NULL, expires INTEGER NOT NULL, queued_at REAL NOT NULL, sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, UNIQUE (serial, interval_start)
);
"""


@dataclass
class Owner:
    name: str
    email: str
    password: str
    api_key: str | None = None


@dataclass
class MeterRecord:
    spec: MeterSpec
    owner: str
    key_seed: bytes
    meter_key: str
    meter_id: str | None
    provisioned: bool
    seq: int
    state: MeterState
    next_interval: int | None


@dataclass(frozen=True)
class Spooled:
    """A reading waiting for a definitive answer; `body` is the exact wire bytes to resend."""

    id: int
    serial: str
    interval_start: int
    body: bytes
    expires: int
    attempts: int
    sent_at: float | None


def spec_to_json(spec: MeterSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_json(text: str) -> MeterSpec:
    data = json.loads(text)
    battery = Battery(**data.pop("battery")) if data.get("battery") else None
    data.pop("battery", None)
    return MeterSpec(
        **{
            **data,
            "meter_class": MeterClass(data["meter_class"]),
            "building_type": BuildingType(data["building_type"]),
        },
        battery=battery,
    )


class FleetFile:
    """Synchronous SQLite access (microseconds per call; the driver calls it between sends)."""

    def __init__(self, path: Path | str, spool_limit: int = 100_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.spool_limit = spool_limit
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- settings and identities -------------------------------------------------------------

    def get(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value))

    def owners(self) -> dict[str, Owner]:
        rows = self.db.execute("SELECT name, email, password, api_key FROM owners").fetchall()
        return {row[0]: Owner(*row) for row in rows}

    def save_owner(self, owner: Owner) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO owners (name, email, password, api_key) VALUES (?, ?, ?, ?)",
            (owner.name, owner.email, owner.password, owner.api_key),
        )

    def add_meters(self, records: Iterable[MeterRecord]) -> None:
        with self.transaction() as db:
            for r in records:
                db.execute(
                    "INSERT OR IGNORE INTO meters (serial, spec, owner, key_seed, meter_key, meter_id,"
                    " provisioned, seq, state, next_interval) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.spec.serial,
                        spec_to_json(r.spec),
                        r.owner,
                        r.key_seed.hex(),
                        r.meter_key,
                        r.meter_id,
                        int(r.provisioned),
                        r.seq,
                        json.dumps(asdict(r.state)),
                        r.next_interval,
                    ),
                )

    def meters(self) -> list[MeterRecord]:
        rows = self.db.execute(
            "SELECT spec, owner, key_seed, meter_key, meter_id, provisioned, seq, state, next_interval"
            " FROM meters ORDER BY serial"
        ).fetchall()
        return [
            MeterRecord(
                spec=spec_from_json(spec),
                owner=owner,
                key_seed=bytes.fromhex(seed),
                meter_key=meter_key,
                meter_id=meter_id,
                provisioned=bool(provisioned),
                seq=seq,
                state=MeterState(**json.loads(state)),
                next_interval=next_interval,
            )
            for spec, owner, seed, meter_key, meter_id, provisioned, seq, state, next_interval in rows
        ]

    def mark_provisioned(self, serial: str, meter_id: str) -> None:
        self.db.execute(
            "UPDATE meters SET meter_id = ?, provisioned = 1 WHERE serial = ?", (meter_id, serial)
        )

    def save_progress(self, db: sqlite3.Connection, record: MeterRecord) -> None:
        """Inside a `transaction`: the meter's seq, state and next interval."""
        db.execute(
            "UPDATE meters SET seq = ?, state = ?, next_interval = ? WHERE serial = ?",
            (record.seq, json.dumps(asdict(record.state)), record.next_interval, record.spec.serial),
        )

    # --- spool -------------------------------------------------------------------------------

    def spool(
        self, db: sqlite3.Connection, serial: str, interval_start: int, body: bytes, expires: int
    ) -> bool:
        """Inside a `transaction`: queue a reading. False if that interval is already queued."""
        cursor = db.execute(
            "INSERT OR IGNORE INTO spool (serial, interval_start, body, expires, queued_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (serial, interval_start, body, expires, time.time()),
        )
        return cursor.rowcount == 1

    def trim(self, db: sqlite3.Connection) -> int:
        """Inside a `transaction`: drop the oldest readings beyond the spool limit; how many."""
        excess = self.depth() - self.spool_limit
        if excess <= 0:
            return 0
        db.execute("DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)", (excess,))
        return excess

    def depth(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def pending(self, limit: int, resend_before: float | None = None) -> list[Spooled]:
        """The oldest queued readings; with `resend_before`, only those never sent or sent before it."""
        if resend_before is None:
            rows = self.db.execute(
                "SELECT id, serial, interval_start, body, expires, attempts, sent_at FROM spool"
                " ORDER BY interval_start, id LIMIT ?",
                (limit,),
            ).fetchall()
        else:
            rows = self.db.execute(
                "SELECT id, serial, interval_start, body, expires, attempts, sent_at FROM spool"
                " WHERE sent_at IS NULL OR sent_at < ? ORDER BY interval_start, id LIMIT ?",
                (resend_before, limit),
            ).fetchall()
        return [Spooled(*row) for row in rows]

    def mark_sent(self, ids: Iterable[int]) -> None:
        now = time.time()
        self.db.executemany(
            "UPDATE spool SET sent_at = ?, attempts = attempts + 1 WHERE id = ?", [(now, i) for i in ids]
        )

    def replace_body(self, item_id: int, body: bytes, expires: int) -> None:
        self.db.execute("UPDATE spool SET body = ?, expires = ? WHERE id = ?", (body, expires, item_id))

    def done(self, ids: Iterable[int]) -> None:
        self.db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
