"""The bare ingest path that `gridtokenx bench ingest` measures beside the pipeline.

HTTP → the same msgspec batch decoder → PyNaCl verification of each reading (every meter's key
loaded once at start-up) → one idempotent `unnest` insert per batch into a plain table → a reply
with counts. Nothing else: no VEE, ingest state, same-slot history, versioning, rollups, per-item
results or events. This is the shape of the prototype the ingest target was set from (70% of the
verify ceiling), so measuring it in the same run shows where that target sits on this machine and
what the pipeline's required work costs beside it. Not a product route: only the benchmark runs
it, in server processes of its own, against its scratch PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg
import orjson
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy.engine import make_url

from gridtokenx.core.types import utc_from_epoch
from gridtokenx.readings.errors import ReadingError
from gridtokenx.readings.native import NativeReading, decode_batch, signing_message

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BARE_TABLE = "bare_readings"
CREATE_BARE_TABLE = (
    f"CREATE TABLE {BARE_TABLE} (meter_serial text NOT NULL, interval_start timestamptz NOT NULL, "
    "import_wh bigint NOT NULL, export_wh bigint NOT NULL, generation_wh bigint, consumption_wh bigint, "
    "signature bytea NOT NULL, PRIMARY KEY (meter_serial, interval_start))"
)
_INSERT = (
    f"INSERT INTO {BARE_TABLE} SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], "
    "$4::bigint[], $5::bigint[], $6::bigint[], $7::bytea[]) ON CONFLICT DO NOTHING"
)
_ACTIVE_KEYS = (
    "SELECT m.serial, k.public_key FROM meters AS m JOIN device_keys AS k ON k.meter_id = m.id "
    "WHERE k.status = 'active'"
)
VERIFY_SLICE = 64  # as the pipeline: yield to the event loop between slices of verifications


def asyncpg_dsn(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (`postgresql+asyncpg://...`) as asyncpg takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class BareIngest:
    """The ASGI app: `POST` any path with a JSON array of signed native readings."""

    def __init__(self, database_url: str, network_id: str) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.network_id = network_id
        self.keys: dict[str, VerifyKey] = {}
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"] == "/health":
            await _reply(send, 200, {"status": "ok"})
        elif scope["method"] != "POST":
            await _reply(send, 405, {"error": "POST a batch"})
        else:
            try:
                await _reply(send, 200, await self.ingest(await _body(receive)))
            except ReadingError as error:  # not a JSON array of readings at all
                await _reply(send, 400, {"error": {"code": error.code.value, "message": error.message}})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        """Open the pool and load every meter's active key (the pipeline looks them up per batch)."""
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_ACTIVE_KEYS)
        self.keys = {row["serial"]: VerifyKey(bytes.fromhex(row["public_key"])) for row in rows}

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def ingest(self, body: bytes) -> dict[str, Any]:
        """Verify every reading, insert the verified ones; counts, and the refused items' codes."""
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        refused: list[dict[str, Any]] = []
        for index, item in enumerate(decode_batch(body)):
            if index and not index % VERIFY_SLICE:
                await asyncio.sleep(0)
            code, signature = (item.code.value, b"") if isinstance(item, ReadingError) else self._check(item)
            if code is not None:
                refused.append({"index": index, "status": "rejected", "code": code})
                continue
            assert isinstance(item, NativeReading)
            values = (
                item.device_id,
                utc_from_epoch(item.interval_start),
                item.import_wh,
                item.export_wh,
                item.generation_wh,
                item.consumption_wh,
                signature,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(_INSERT, *columns)
        inserted = int(status.rsplit(" ", 1)[1])
        stored = len(columns[0])
        return {
            "accepted": inserted,
            "duplicates": stored - inserted,
            "rejected": len(refused),
            "results": refused,
        }

    def _check(self, reading: NativeReading) -> tuple[str | None, bytes]:
        """(why the reading is refused, or None; its signature)."""
        key = self.keys.get(reading.device_id)
        if key is None:
            return "DEVICE_KEY_UNKNOWN", b""
        if not isinstance(reading.sig, str):
            return "SIGNATURE_MISSING", b""
        signature = bytes.fromhex(reading.sig)
        try:
            key.verify(signing_message(reading, self.network_id), signature)
        except BadSignatureError:
            return "SIGNATURE_INVALID", signature
        return None, signature


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Send, status: int, document: dict[str, Any]) -> None:
    body = orjson.dumps(document)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> BareIngest:
    """uvicorn factory; the benchmark passes the database and network in the environment."""
    return BareIngest(os.environ["GRIDTOKENX_DATABASE_URL"], os.environ["GRIDTOKENX_NETWORK_ID"])
