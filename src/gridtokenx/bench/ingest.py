"""`gridtokenx bench ingest`: device-signed native readings over real HTTP into a real database.

Per scenario (backend x number of server processes) the benchmark makes a fresh database
(PostgreSQL: `CREATE DATABASE gtx_bench_<random>`, dropped afterwards; SQLite: a temporary file),
migrates and seeds it through the services (one owner, an API key with `readings:write`, a fleet
of meters with provisioned Ed25519 device keys), starts N single-worker uvicorn processes on their
own ports (`uvicorn --workers N` puts every keep-alive connection on one worker), pre-signs every
batch, and posts the bodies to `POST /api/meters/readings/batch` from a few keep-alive connections
per server. Afterwards it counts the rows in the database: every reading is distinct, so the count
must equal the readings sent.

Each figure is printed beside this machine's Ed25519 ceiling measured in the same run: a PyNaCl
verify loop on every core, with nothing else to do. The ratio is the figure that matters. Beside
the pipeline, the bare path (`ingest_bare`: decode, verify, one insert per batch, nothing else) is
timed the same way on PostgreSQL: the shape of the prototype the target was set from, so the run
shows how much of the ceiling is left on this machine for everything ingest must do. The
ceiling is measured right before and right after the timed part and the mean is used: on a shared
virtual machine the speed drifts between minutes (here by up to a quarter), and one sample taken
before would make the ratio swing with it.

Why the fleet looks the way it does:
- A batch carries `meters_per_batch` meters x consecutive intervals. Meters are split into groups
  and a group is in flight on one connection at a time, in interval order: seq stays monotonic
  per device and concurrent batches lock disjoint ingest-state rows, as separate head-ends would.
- Intervals end before now and reach back at most six days, so VEE neither refuses them as future
  nor flags them LATE (seven days); consecutive intervals leave no gaps, so no estimates are added.
- Each meter has `history_days` (default 7) of stored intervals before the timed part, written
  by the store directly (not timed, not signed), so the spike rule reads a full week for every
  reading as it does in steady state: a fresh fleet would leave out the largest lookup of the
  ingest path. The meter's ingest state knows where that history begins but remembers no latest
  reading, so each meter's first batch is looked up in full. Rows are counted for the timed part.
- Signing is the device's cost, so every batch is signed before the clock starts, with
  `created` = signing time and `expires` = created + 300 s (the longest validity window VEE accepts). The
  gateway accepts them until expires + clock skew (120 s): a scenario must finish within about
  seven minutes of signing, which 100k readings do by a wide margin here; late ones would show
  up as MESSAGE_EXPIRED rejections in the table, never silently.
- The client asks for `Accept-Encoding: identity`: the per-item result list of a 1,000-reading
  batch is about 200 KB, and gzip of it is the client's choice, not part of ingest.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
from nacl.signing import VerifyKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from gridtokenx.accounts import service as accounts
from gridtokenx.accounts.models import Role
from gridtokenx.accounts.schemas import RegisterRequest
from gridtokenx.bench.cpu import CpuMeter, CpuSplit
from gridtokenx.bench.ingest_bare import BARE_TABLE, CREATE_BARE_TABLE, asyncpg_dsn
from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.security import hash_password
from gridtokenx.core.settings import load_settings
from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.meters import service as meters
from gridtokenx.meters.models import Meter, MeterStatus, MeterType
from gridtokenx.readings.ingest_state import history_only_state
from gridtokenx.readings.models import MeterIngestState, MeterReading
from gridtokenx.readings.native import NativeReading, encode_batch, signing_message
from gridtokenx.readings.reading import Source, Trust
from gridtokenx.readings.signing import DeviceSigner, sign_reading
from gridtokenx.readings.slot_history import DAY_S
from gridtokenx.readings.store import NewReading, store_readings

BENCH_NETWORK = "gridtokenx-bench"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH_PATH = "/api/meters/readings/batch"
INTERVAL_S = 900
MAX_INTERVALS_PER_METER = 6 * 96  # six days: clear of the seven-day LATE flag
MESSAGE_LIFETIME_S = 300
CAPACITY_W = 20_000
TARGET_OF_BARE = 0.50  # the pipeline's readings/s against the bare path's, same run
ATTEMPTS = 5  # a batch refused with 5xx (e.g. SQLite busy) is resent; retries are idempotent
SERVER_START_TIMEOUT_S = 60.0
OWNER_EMAIL = "bench-owner@example.com"
PIPELINE_APP = "gridtokenx.app:create_server_app"
BARE_APP = "gridtokenx.bench.ingest_bare:create_app"


# --- the verify ceiling ------------------------------------------------------------------------


def _verify_worker(seconds: float, barrier: Any, results: Any) -> None:
    """One core's worth of PyNaCl verification of realistic signed readings, for `seconds`."""
    keys = [_device_key(i) for i in range(16)]
    created = int(time.time())
    prepared = []
    for i in range(1000):
        key = keys[i % len(keys)]
        native = _native(i % len(keys), i // len(keys), key, created, created - INTERVAL_S * (i + 1), 0, 0)
        signed = sign_reading(native, key, BENCH_NETWORK)
        message = signing_message(signed, BENCH_NETWORK)
        prepared.append((VerifyKey(key.public_key), message, bytes.fromhex(str(signed.sig))))
    barrier.wait()
    done = 0
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        for verify_key, message, signature in prepared:
            verify_key.verify(message, signature)
        done += len(prepared)
    results.put((done, time.perf_counter() - began))


def verify_ceiling(seconds: float = 2.0, workers: int | None = None) -> float:
    """Ed25519 verifications per second on all cores: one process per core, started together."""
    workers = workers or os.cpu_count() or 1
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(workers)
    results = spawn.Queue()
    processes = [
        spawn.Process(target=_verify_worker, args=(seconds, barrier, results), daemon=True)
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=seconds + 120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    return sum(done / elapsed for done, elapsed in outcomes)


# --- the fleet and its signed batches ----------------------------------------------------------


def _device_key(meter: int) -> DeviceSigner:
    return DeviceSigner.from_seed(hashlib.sha256(f"gridtokenx-bench-meter-{meter}".encode()).digest())


def _serial(meter: int) -> str:
    return f"BENCH-{meter:05d}"


def _native(
    meter: int, k: int, key: DeviceSigner, created: int, start: int, import_reg: int, export_reg: int
) -> NativeReading:
    """Interval `k` of `meter`, naming `key` (signed later); registers are the running sums."""
    generation, consumption, imported, export = _energy(meter, k)
    return NativeReading(
        consumption_wh=consumption,
        created=created,
        device_id=_serial(meter),
        duration=INTERVAL_S,
        expires=created + MESSAGE_LIFETIME_S,
        export_register_wh=export_reg + export,
        export_wh=export,
        firmware="1.0.0",
        generation_wh=generation,
        import_register_wh=import_reg + imported,
        import_wh=imported,
        interval_start=start,
        key_id=key.key_id,
        quality=0,
        seq=k + 1,
    )


def _energy(meter: int, k: int) -> tuple[int, int, int, int]:
    """(generation, consumption, import, export) of interval `k` of `meter`: varied, plausible."""
    generation = 800 + (meter * 37 + k * 101) % 1200
    consumption = 200 + (meter * 53 + k * 29) % 600
    return generation, consumption, max(0, consumption - generation), max(0, generation - consumption)


@dataclass(frozen=True)
class _Plan:
    """How `readings` are cut into batches: batch i goes to group i % groups, in window i // groups."""

    readings: int
    batch: int
    meters: int
    meters_per_batch: int
    history_days: int = 0

    def __post_init__(self) -> None:
        if self.history_days < 0:
            raise ValueError("history_days must not be negative")
        if self.readings <= 0 or self.batch <= 0 or self.readings % self.batch:
            raise ValueError("readings must be a positive multiple of batch")
        if self.batch % self.meters_per_batch or self.meters % self.meters_per_batch:
            raise ValueError("batch and meters must be multiples of meters_per_batch")
        if self.intervals_per_meter > MAX_INTERVALS_PER_METER:
            raise ValueError(
                f"{self.intervals_per_meter} intervals per meter reach back more than six days; "
                f"use more meters (at least {-(-self.readings // MAX_INTERVALS_PER_METER)})"
            )

    @property
    def groups(self) -> int:
        return self.meters // self.meters_per_batch

    @property
    def batches(self) -> int:
        return self.readings // self.batch

    @property
    def intervals_per_batch(self) -> int:
        return self.batch // self.meters_per_batch

    @property
    def intervals_per_meter(self) -> int:
        return -(-self.batches // self.groups) * self.intervals_per_batch

    def first_interval(self, now: int) -> int:
        """The start of every meter's first timed interval: the last one ends before `now`."""
        return now - now % INTERVAL_S - INTERVAL_S * (self.intervals_per_meter + 1)


def _sign_fleet(
    plan: _Plan, keys: list[DeviceSigner], first: int, on_batch: Callable[[], None]
) -> list[list[bytes]]:
    """Every batch body, signed now, per group in the order it must be sent."""
    created = int(time.time())
    registers = [(1_000_000, 2_000_000)] * plan.meters
    bodies: list[list[bytes]] = [[] for _ in range(plan.groups)]
    for index in range(plan.batches):
        group, window = index % plan.groups, index // plan.groups
        items = []
        for meter in range(group * plan.meters_per_batch, (group + 1) * plan.meters_per_batch):
            key = keys[meter]
            import_reg, export_reg = registers[meter]
            for j in range(plan.intervals_per_batch):
                k = window * plan.intervals_per_batch + j
                native = _native(meter, k, key, created, first + k * INTERVAL_S, import_reg, export_reg)
                assert isinstance(native.import_register_wh, int)
                assert isinstance(native.export_register_wh, int)
                import_reg, export_reg = native.import_register_wh, native.export_register_wh
                items.append(sign_reading(native, key, BENCH_NETWORK))
            registers[meter] = (import_reg, export_reg)
        bodies[group].append(encode_batch(items))
        on_batch()
    return bodies


# --- databases ---------------------------------------------------------------------------------


@dataclass
class _Target:
    """A fresh database for one scenario; `url` is what the servers get."""

    backend: str
    url: str
    drop: Callable[[], None]


async def _execute_sql(url: str, sql: str) -> Any:
    """One statement on its own connection to `url` (the admin database, or a bench database);
    its first value, if it returns rows."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@contextmanager
def _database(backend: str, pg_admin_url: str, workdir: Path) -> Iterator[_Target]:
    if backend == "sqlite":
        yield _Target(backend, f"sqlite+aiosqlite:///{workdir / 'bench.db'}", lambda: None)
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}: postgres or sqlite")
    name = f"gtx_bench_{secrets.token_hex(5)}"
    url = make_url(pg_admin_url).set(drivername="postgresql+asyncpg", database=name)
    asyncio.run(_execute_sql(pg_admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _Target(backend, url.render_as_string(hide_password=False), lambda: None)
    finally:
        asyncio.run(_execute_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _seed(url: str, keys: list[DeviceSigner], history: tuple[int, int] = (0, 0)) -> str:
    """Migrate, then an owner with an API key and every meter claimed by it with its device key.
    Meters are inserted directly rather than through `create_meter`, which would Argon2-hash a
    meter key per meter (minutes for a fleet); they end up as a claimed meter does.

    `history` = (days, first): each meter's stored intervals for `days` before `first`, written by
    the store (rollups included), and an ingest state that knows where they begin."""
    db = Database(url)
    try:
        await upgrade(db)
        settings = load_settings(require_email_verification=False)
        async with db.session() as session:
            request = RegisterRequest(
                email=OWNER_EMAIL, password="Bench-pass-" + secrets.token_hex(8), role=Role.PROSUMER
            )
            owner, _ = await accounts.register(session, settings, request)
            _, api_key = await accounts.create_api_key(session, owner, "bench ingest", ["readings:write"])
            now = utcnow()
            key_hash = hash_password("bench-meter-key-" + secrets.token_hex(8))
            fleet = [
                Meter(
                    serial=_serial(i),
                    meter_type=MeterType.PROSUMER.value,
                    capacity_w=CAPACITY_W,
                    interval_seconds=INTERVAL_S,
                    commissioned_at=now - timedelta(days=30),
                    status=MeterStatus.ACTIVE.value,
                    meter_key_hash=key_hash,
                    owner_id=owner.id,
                    claimed_at=now,
                )
                for i in range(len(keys))
            ]
            session.add_all(fleet)
            await session.flush()
            for meter, key in zip(fleet, keys, strict=True):
                await meters.add_device_key(session, meter, key.public_key_hex, key.key_id)
        days, first = history
        if days:
            await _seed_history(db, [meter.id for meter in fleet], days, first)
        return api_key
    finally:
        await db.dispose()


async def _seed_history(db: Database, meter_ids: list[uuid.UUID], days: int, first: int) -> None:
    """`days` of stored intervals before `first` per meter, a day of the fleet per transaction,
    in arrival order (interval by interval, the fleet's readings of each) as a live fleet lays
    its rows out: a meter's consecutive intervals are not neighbours on disk."""
    begin = first - days * DAY_S
    for day in range(days):
        rows = [
            _stored_interval(meter_id, m, k, first)
            for k in range((day - days) * DAY_S // INTERVAL_S, (day - days + 1) * DAY_S // INTERVAL_S)
            for m, meter_id in enumerate(meter_ids)
        ]
        async with db.session() as session:
            await store_readings(session, rows)
            await session.commit()
    async with db.session() as session:
        now = utcnow()
        session.add_all(
            MeterIngestState(meter_id=meter_id, recent=history_only_state(begin), updated_at=now)
            for meter_id in meter_ids
        )
        await session.commit()


def _stored_interval(meter_id: uuid.UUID, meter: int, k: int, first: int) -> NewReading:
    """Interval `k` (negative: before the timed part) of `meter`, as the store takes it."""
    start = first + k * INTERVAL_S
    generation, consumption, imported, export = _energy(meter, k)
    return NewReading(
        meter_id,
        0,
        utc_from_epoch(start),
        INTERVAL_S,
        Trust.DEVICE_SIGNED,
        Source.NATIVE,
        utc_from_epoch(start + INTERVAL_S),
        import_wh=imported,
        export_wh=export,
        generation_wh=generation,
        consumption_wh=consumption,
    )


async def _count_bare_rows(url: str) -> int:
    return int(await _execute_sql(url, f"SELECT count(*) FROM {BARE_TABLE}"))


async def _count_rows(url: str, since: int) -> tuple[int, int, int]:
    """Reading rows from `since` on (the timed part's), those of them stored as device-signed,
    and the rows before (the seeded history)."""
    db = Database(url)
    timed = MeterReading.interval_start >= utc_from_epoch(since)
    count = select(func.count()).select_from(MeterReading)
    try:
        async with db.session() as session:
            total = await session.scalar(count.where(timed))
            signed = await session.scalar(count.where(timed, MeterReading.trust == Trust.DEVICE_SIGNED))
            history = await session.scalar(count.where(~timed))
        return int(total or 0), int(signed or 0), int(history or 0)
    finally:
        await db.dispose()


# --- server processes --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Servers:
    """N single-worker uvicorn processes on their own ports, each with its own log file."""

    def __init__(self, count: int, database_url: str, workdir: Path, app: str = PIPELINE_APP) -> None:
        self.count = count
        self.app = app
        self.database_url = database_url
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    def _env(self, distributed: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDTOKENX_")}
        env.update(
            GRIDTOKENX_DATABASE_URL=self.database_url,
            GRIDTOKENX_DATA_DIR=str(self.workdir / "var"),
            GRIDTOKENX_ENVIRONMENT="distributed" if distributed else "embedded",
            GRIDTOKENX_JWT_SECRET=secrets.token_urlsafe(48),
            GRIDTOKENX_WALLET_ENCRYPTION_KEY=secrets.token_hex(32),
            GRIDTOKENX_NETWORK_ID=BENCH_NETWORK,
            GRIDTOKENX_RATE_LIMIT_DEFAULT="1000000000/minute",
            GRIDTOKENX_LOG_LEVEL="warning",
            GRIDTOKENX_AUTO_MIGRATE="false",
        )
        return env

    def start(self) -> None:
        env = self._env(distributed=not self.database_url.startswith("sqlite"))
        extra = ["--loop", "uvloop"] if find_spec("uvloop") else []
        extra += ["--http", "httptools"] if find_spec("httptools") else []
        for index in range(self.count):
            port = _free_port()
            log = open(self.workdir / f"server-{index}.log", "wb")  # noqa: SIM115 - handed to the child
            command = [
                sys.executable, "-m", "uvicorn", self.app, "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
                *extra,
            ]  # fmt: skip
            process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            self.processes.append(process)
            self.urls.append(f"http://127.0.0.1:{port}")
        asyncio.run(self._wait_healthy())

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            for index, url in enumerate(self.urls):
                while True:
                    if self.processes[index].poll() is not None:
                        raise RuntimeError(f"server {index} exited at start-up:\n{self.log_tail(index)}")
                    try:
                        if (await client.get(url + "/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"server {index} not healthy in time:\n{self.log_tail(index)}")
                    await asyncio.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def log_tail(self, index: int, lines: int = 30) -> str:
        path = self.workdir / f"server-{index}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()


# --- the load ----------------------------------------------------------------------------------


class _ItemReply(msgspec.Struct):
    status: str
    code: str | None = None


class _BatchReply(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    results: list[_ItemReply]


_reply = msgspec.json.Decoder(_BatchReply)


@dataclass
class _Load:
    """What the client saw: per-item verdicts, HTTP failures, per-batch latency of timed batches."""

    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    http_errors: Counter[str] = field(default_factory=Counter)
    lost_batches: int = 0
    latencies: list[float] = field(default_factory=list)
    timed_readings: int = 0
    seconds: float = 0.0
    cpu: CpuSplit | None = None

    def take(self, reply: _BatchReply) -> None:
        self.accepted += reply.accepted
        self.duplicates += reply.duplicates
        if reply.rejected:
            self.rejected.update(item.code or "?" for item in reply.results if item.status == "rejected")


async def _post(client: httpx.AsyncClient, body: bytes, load: _Load) -> bool:
    """Post one batch until it is answered 200 (ATTEMPTS at most); False when it never was."""
    for attempt in range(ATTEMPTS):
        try:
            response = await client.post(BATCH_PATH, content=body)
        except httpx.HTTPError as exc:
            load.http_errors[type(exc).__name__] += 1
        else:
            if response.status_code == 200:
                load.take(_reply.decode(response.content))
                return True
            load.http_errors[f"HTTP {response.status_code}"] += 1
        await asyncio.sleep(0.05 * (attempt + 1))
    load.lost_batches += 1
    return False


async def _drive(
    urls: list[str],
    api_key: str,
    bodies: list[list[bytes]],
    connections: int,
    batch: int,
    advance: Callable[[int], None],
    cpu: CpuMeter,
) -> _Load:
    """Warm every server with one batch (untimed), then keep `connections` batches in flight per
    server; a group is never in flight twice, so its batches arrive in order."""
    headers = {"x-api-key": api_key, "content-type": "application/json", "accept-encoding": "identity"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    clients = [httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120.0) for url in urls]
    load = _Load()
    pending = [list(reversed(group)) for group in bodies]  # pop() takes the next batch
    try:
        warm = [(clients[i], pending[i].pop()) for i in range(min(len(clients), len(pending)))]
        await asyncio.gather(*(_post(client, body, load) for client, body in warm))
        advance(len(warm) * batch)

        queue: asyncio.Queue[int | None] = asyncio.Queue()
        for group, remaining in enumerate(pending):
            if remaining:
                queue.put_nowait(group)
        open_groups = queue.qsize()
        workers = len(clients) * connections

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal open_groups
            while (group := await queue.get()) is not None:
                began = time.perf_counter()
                if await _post(client, pending[group].pop(), load):
                    load.latencies.append(time.perf_counter() - began)
                    load.timed_readings += batch
                advance(batch)
                if pending[group]:
                    queue.put_nowait(group)
                else:
                    open_groups -= 1
                    if open_groups == 0:
                        for _ in range(workers):
                            queue.put_nowait(None)

        if open_groups:
            cpu.start()
            began = time.perf_counter()
            await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(workers)))
            load.seconds = time.perf_counter() - began
            load.cpu = cpu.stop()
    finally:
        for client in clients:
            await client.aclose()
    return load


# --- one scenario, and the run -----------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    backend: str
    processes: int
    readings_sent: int
    readings_per_s: float
    ceiling_per_s: float
    p50_ms: float
    p95_ms: float
    rows_in_db: int  # of the timed part
    signed_rows: int
    history_rows: int  # seeded before the timed part
    accepted: int
    rejected: dict[str, int]
    http_errors: dict[str, int]
    lost_batches: int
    cpu: CpuSplit | None = None
    timed_readings: int = 0
    ceiling_drift: float = 0.0  # |after - before| / mean of the two ceiling measurements
    path: str = "pipeline"  # or "bare": decode, verify, insert only (see `ingest_bare`)

    @property
    def ratio(self) -> float:
        return self.readings_per_s / self.ceiling_per_s if self.ceiling_per_s else 0.0

    @property
    def complete(self) -> bool:
        """Every reading sent is stored exactly once, device-signed."""
        return self.rows_in_db == self.signed_rows == self.accepted == self.readings_sent


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _scenario(
    backend: str,
    processes: int,
    plan: _Plan,
    keys: list[DeviceSigner],
    *,
    pg_admin_url: str,
    connections: int,
    ceiling_seconds: float,
    progress: Progress,
    bare: bool = False,
) -> ScenarioResult:
    """One backend x processes run of the pipeline, or (`bare`) of the bare path on PostgreSQL."""
    label = f"{'bare path, ' if bare else ''}{backend}, {processes} process{'es' if processes > 1 else ''}"
    if bare:
        if backend != "postgres":
            raise ValueError("the bare path runs on PostgreSQL only")
        plan = replace(plan, history_days=0)  # the bare path looks nothing up
    with (
        tempfile.TemporaryDirectory(prefix="gtx-bench-") as tmp,
        _database(backend, pg_admin_url, Path(tmp)) as target,
    ):
        workdir = Path(tmp)
        first = plan.first_interval(int(time.time()))
        history = f" and {plan.history_days} days of history" if plan.history_days else ""
        step = progress.add_task(f"{label}: seeding {len(keys):,} meters{history}", total=None)
        api_key = asyncio.run(_seed(target.url, keys, (plan.history_days, first)))
        if bare:
            asyncio.run(_execute_sql(target.url, CREATE_BARE_TABLE))
        servers = _Servers(processes, target.url, workdir, BARE_APP if bare else PIPELINE_APP)
        try:
            progress.update(step, description=f"{label}: starting servers")
            servers.start()
            progress.update(step, description=f"{label}: signing", total=plan.batches, completed=0)
            bodies = _sign_fleet(plan, keys, first, lambda: progress.advance(step))
            progress.update(step, description=f"{label}: verify ceiling ({ceiling_seconds:g} s)")
            before = verify_ceiling(ceiling_seconds)
            progress.update(step, description=f"{label}: posting", total=plan.readings, completed=0)
            load = asyncio.run(
                _drive(
                    servers.urls,
                    api_key,
                    bodies,
                    connections,
                    plan.batch,
                    lambda n: progress.advance(step, n),
                    CpuMeter(servers.pids, "postgres" if backend == "postgres" else None),
                )
            )
            progress.update(step, description=f"{label}: verify ceiling again")
            after = verify_ceiling(ceiling_seconds)
        finally:
            servers.stop()
        if bare:  # the bare path stores verified readings only
            rows = signed = asyncio.run(_count_bare_rows(target.url))
            history_rows = 0
        else:
            rows, signed, history_rows = asyncio.run(_count_rows(target.url, first))
        progress.remove_task(step)
    return ScenarioResult(
        backend=backend,
        processes=processes,
        readings_sent=plan.readings,
        readings_per_s=load.timed_readings / load.seconds if load.seconds else 0.0,
        ceiling_per_s=(before + after) / 2,
        ceiling_drift=abs(after - before) / ((before + after) / 2),
        p50_ms=_percentile(load.latencies, 0.50) * 1000,
        p95_ms=_percentile(load.latencies, 0.95) * 1000,
        rows_in_db=rows,
        signed_rows=signed,
        history_rows=history_rows,
        accepted=load.accepted,
        rejected=dict(load.rejected),
        http_errors=dict(load.http_errors),
        lost_batches=load.lost_batches,
        cpu=load.cpu,
        timed_readings=load.timed_readings,
        path="bare" if bare else "pipeline",
    )


def run(
    *,
    readings: int = 100_000,
    batch: int = 1000,
    backends: tuple[str, ...] = ("postgres", "sqlite"),
    processes: tuple[int, ...] = (1, 2),
    pg_url: str | None = None,
    meters: int = 1000,
    meters_per_batch: int = 100,
    history_days: int = 7,
    connections: int = 4,
    ceiling_seconds: float = 2.0,
    bare: bool = True,
    console: Console | None = None,
) -> list[ScenarioResult]:
    """Run every backend x processes scenario and print the table; returns the figures.

    `pg_url` is an admin URL of the PostgreSQL server in which a scratch database is created
    (default: postgres@127.0.0.1:5432). `connections` is the number of batches in flight per server.
    `bare` adds the bare path (decode, verify, insert: `ingest_bare`) on PostgreSQL with the most
    processes asked for, the shape the target was set from, measured in the same run.
    """
    console = console or Console()
    plan = _Plan(readings, batch, meters, meters_per_batch, history_days)
    keys = [_device_key(i) for i in range(meters)]
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    scenarios = [(backend, count, False) for backend in backends for count in processes]
    if bare and "postgres" in backends and processes:
        scenarios.append(("postgres", max(processes), True))
    with Progress(*columns, console=console, transient=True) as progress:
        for backend, count, is_bare in scenarios:
            results.append(
                _scenario(
                    backend,
                    count,
                    plan,
                    keys,
                    pg_admin_url=pg_url or DEFAULT_PG_ADMIN_URL,
                    connections=connections,
                    ceiling_seconds=ceiling_seconds,
                    progress=progress,
                    bare=is_bare,
                )
            )
    console.print(_table(results, plan, connections))
    console.print(_cpu_table(results))
    for line in _verdicts(results):
        console.print(line)
    return results


def _verdicts(results: list[ScenarioResult]) -> list[str]:
    """The target's verdict: the pipeline against the bare path measured in the same run (the
    earlier 70%-of-the-ceiling target is withdrawn: the bare path alone sits there)."""
    bare = {r.processes: r for r in results if r.path == "bare"}
    lines = []
    for r in results:
        if r.backend == "postgres" and r.path == "pipeline" and r.processes in bare:
            share = r.readings_per_s / bare[r.processes].readings_per_s
            verdict = "met" if share >= TARGET_OF_BARE else "not met"
            lines.append(
                f"PostgreSQL, {r.processes} processes: the pipeline's {r.readings_per_s:,.0f} readings/s = "
                f"{share:.0%} of the bare path's {bare[r.processes].readings_per_s:,.0f}/s "
                f"(verify ceiling: {r.ratio:.0%} against {bare[r.processes].ratio:.0%}); "
                f"target ≥ {TARGET_OF_BARE:.0%}: [bold]{verdict}[/bold]"
            )
    return lines


def _problems(result: ScenarioResult) -> str:
    parts = [f"{code} x{n}" for code, n in sorted(result.rejected.items())]
    parts += [f"{kind} x{n} (resent)" for kind, n in sorted(result.http_errors.items())]
    if result.lost_batches:
        parts.append(f"{result.lost_batches} batches lost")
    return ", ".join(parts) or "none"


def _table(results: list[ScenarioResult], plan: _Plan, connections: int) -> Table:
    table = Table(
        title=(
            f"Signed native ingest over HTTP: {plan.readings:,} readings per scenario, batches of "
            f"{plan.batch:,}, {plan.meters:,} meters with {plan.history_days} days of stored history, "
            f"{connections} batches in flight per server"
        ),
        caption=(
            f"procs: server processes. ceiling/s: PyNaCl Ed25519 verify loop on all {os.cpu_count()} "
            "cores, the mean of a measurement right before and right after the timed part (± half their "
            "difference); ratio = readings/s / ceiling/s. p50/p95: latency of one "
            "batch. rows / sent: rows counted in the database afterwards (✓: each reading stored once, "
            "device-signed). The load generator (this process) shares the same cores. The first "
            f"batch per server is an untimed warm-up. Target: the pipeline on PostgreSQL at ≥ "
            f"{TARGET_OF_BARE:.0%} of the bare path's readings/s with as many processes. path: the "
            "ingest pipeline, or the bare path (decode, verify, one insert per batch; no VEE, state, "
            "history, versioning, rollups, mint outbox, events or per-item results; no stored history)."
        ),
    )
    for name in ("backend", "path", "procs", "readings/s", "ceiling/s", "ratio", "p50 ms", "p95 ms"):
        table.add_column(name, justify="left" if name in ("backend", "path") else "right")
    table.add_column("rows / sent", justify="right")
    table.add_column("rejected, HTTP errors")
    for r in results:
        stored = f"{r.rows_in_db:,} / {r.readings_sent:,}" + (" ✓" if r.complete else " ✗")
        table.add_row(
            r.backend, r.path, str(r.processes), f"{r.readings_per_s:,.0f}",
            f"{r.ceiling_per_s:,.0f} ±{r.ceiling_drift / 2:.0%}",
            f"{r.ratio:.0%}", f"{r.p50_ms:,.0f}", f"{r.p95_ms:,.0f}", stored, _problems(r),
        )  # fmt: skip
    return table


def _us(seconds: float | None, readings: int) -> str:
    return "–" if seconds is None or not readings else f"{seconds / readings * 1e6:,.0f}"


def _cpu_table(results: list[ScenarioResult]) -> Table:
    """Where the CPU of the timed part went, per reading, beside what one verification costs."""
    cores = os.cpu_count() or 1
    table = Table(
        title="CPU per reading (µs), timed part",
        caption=(
            f"gateway: the server processes, every thread. database: all PostgreSQL processes (SQLite "
            f"runs inside the gateway). verify: one PyNaCl verification = {cores} cores / ceiling. At "
            f"{TARGET_OF_BARE:.0%} of the bare path, a reading may cost {1 / TARGET_OF_BARE:.0f}x the "
            "bare path's total."
        ),
    )
    for name in ("backend", "path", "procs", "gateway", "database", "load generator", "total", "verify"):
        table.add_column(name, justify="left" if name in ("backend", "path") else "right")
    for r in results:
        cpu, n = r.cpu, r.timed_readings
        parts = (cpu.servers, cpu.database, cpu.client) if cpu else (None, None, None)
        total = sum(p for p in parts if p is not None) if cpu else None
        verify = f"{cores / r.ceiling_per_s * 1e6:,.0f}" if r.ceiling_per_s else "–"
        table.add_row(r.backend, r.path, str(r.processes), *(_us(p, n) for p in parts), _us(total, n), verify)
    return table
