"""`gridtokenx bench ingest`: device-signed native readings over real HTTP into a real database.

Per scenario (backend x number of server processes) the benchmark makes a fresh database
(PostgreSQL: `CREATE DATABASE gtx_bench_<random>`, dropped afterwards; SQLite: a temporary file),
migrates and seeds it through the services (one owner, an API key with `readings:write`, a fleet
of meters with provisioned Ed25519 device keys), starts N single-worker uvicorn processes on their
own ports (`uvicorn --workers N` puts every keep-alive connection on one worker), pre-signs every
batch, and posts the bodies to `POST /api/meters/readings/batch` from a few keep-alive connections
per server. Afterwards it counts the rows in the database: every reading is distinct, so the count
must equal the readings sent. The databases and servers are `ingest_servers`, the posting is
`ingest_load`, the printed figures and the verdict are `ingest_report`.

Each figure is printed beside this machine's Ed25519 ceiling measured in the same run: a PyNaCl
verify loop on every core, with nothing else to do. Beside the pipeline, the bare path
(`ingest_bare`: decode, verify, one insert per batch, nothing else) is timed the same way on
PostgreSQL. The target is the pipeline at ≥ 50% of the bare path's readings/s measured in the
same run, with as many processes: both share the machine of the moment. The ceiling is measured
right before and right after the timed part and the mean is used: on a shared virtual machine
the speed drifts between minutes (here by up to a quarter), and one sample taken before would
make the ratio swing with it.

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
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from nacl.signing import VerifyKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gridtokenx.accounts import service as accounts
from gridtokenx.accounts.models import Role
from gridtokenx.accounts.schemas import RegisterRequest
from gridtokenx.bench.cpu import CpuMeter
from gridtokenx.bench.ingest_bare import CREATE_BARE_TABLE
from gridtokenx.bench.ingest_load import drive
from gridtokenx.bench.ingest_report import ScenarioResult, cpu_table, results_table, verdicts
from gridtokenx.bench.ingest_servers import (
    BENCH_NETWORK,
    Servers,
    count_bare_rows,
    count_rows,
    execute_sql,
    scratch_database,
)
from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.security import hash_password
from gridtokenx.core.settings import load_settings
from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.meters import service as meters
from gridtokenx.meters.models import Meter, MeterStatus, MeterType
from gridtokenx.readings.ingest_state import history_only_state
from gridtokenx.readings.models import MeterIngestState
from gridtokenx.readings.native import NativeReading, encode_batch, signing_message
from gridtokenx.readings.reading import Source, Trust
from gridtokenx.readings.signing import DeviceSigner, sign_reading
from gridtokenx.readings.slot_history import DAY_S
from gridtokenx.readings.store import NewReading, store_readings

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
INTERVAL_S = 900
MAX_INTERVALS_PER_METER = 6 * 96  # six days: clear of the seven-day LATE flag
MESSAGE_LIFETIME_S = 300
CAPACITY_W = 20_000
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
class Plan:
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
    plan: Plan, keys: list[DeviceSigner], first: int, on_batch: Callable[[], None]
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


# --- the seeded database -----------------------------------------------------------------------


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


# --- one scenario, and the run -----------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _scenario(
    backend: str,
    processes: int,
    plan: Plan,
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
        scratch_database(backend, pg_admin_url, Path(tmp)) as target,
    ):
        workdir = Path(tmp)
        first = plan.first_interval(int(time.time()))
        history = f" and {plan.history_days} days of history" if plan.history_days else ""
        step = progress.add_task(f"{label}: seeding {len(keys):,} meters{history}", total=None)
        api_key = asyncio.run(_seed(target.url, keys, (plan.history_days, first)))
        if bare:
            asyncio.run(execute_sql(target.url, CREATE_BARE_TABLE))
        servers = Servers(processes, target.url, workdir, BARE_APP if bare else PIPELINE_APP)
        try:
            progress.update(step, description=f"{label}: starting servers")
            servers.start()
            progress.update(step, description=f"{label}: signing", total=plan.batches, completed=0)
            bodies = _sign_fleet(plan, keys, first, lambda: progress.advance(step))
            progress.update(step, description=f"{label}: verify ceiling ({ceiling_seconds:g} s)")
            before = verify_ceiling(ceiling_seconds)
            progress.update(step, description=f"{label}: posting", total=plan.readings, completed=0)
            load = asyncio.run(
                drive(
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
            rows = signed = asyncio.run(count_bare_rows(target.url))
            history_rows = 0
        else:
            rows, signed, history_rows = asyncio.run(count_rows(target.url, first))
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
    processes asked for: the yardstick of the target, measured in the same run.
    """
    console = console or Console()
    plan = Plan(readings, batch, meters, meters_per_batch, history_days)
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
    console.print(results_table(results, plan, connections))
    console.print(cpu_table(results))
    for line in verdicts(results):
        console.print(line)
    return results
