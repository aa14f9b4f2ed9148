"""The fleet driver: a reusable async object that runs a simulated fleet against a gateway URL.

    driver = FleetDriver(FleetConfig(gateway="http://127.0.0.1:8000", ...))
    await driver.start()      # provisions what the fleet file lacks, starts the loop
    ...                       # driver.stats is live
    report = await driver.stop()

Each round: every meter whose interval has ended (on the simulated clock) is stepped, and its
reading signed and spooled together with the meter's new state in one fleet-file transaction;
then the spool is drained through the transport. During a gateway outage readings wait in the
spool (bounded: the oldest are dropped and counted lost when it is full) and go out when the
gateway answers again; a native reading whose signature validity window ran out meanwhile is re-signed
with the same interval and values (the gateway sees an identical resend, never a new reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gridtokenx.readings.signing import DeviceSigner
from gridtokenx.simulator import attacks
from gridtokenx.simulator.clock import SimClock, aligned
from gridtokenx.simulator.fleet import DEFAULT_METERS, build_fleet
from gridtokenx.simulator.fleetfile import FleetFile, MeterRecord, Spooled
from gridtokenx.simulator.physics import Site, step
from gridtokenx.simulator.provision import ADMIN, plan, provision
from gridtokenx.simulator.stats import FleetStats
from gridtokenx.simulator.transport import Answer, HttpTransport, MqttTransport, RetryPolicy, Transport
from gridtokenx.simulator.wire import Route, Shape, body_for, resign

NO_EXPIRY = 2**53 - 1
RESIGN_MARGIN_S = 30


@dataclass
class FleetConfig:
    gateway: str
    more_gateways: tuple[str, ...] = ()  # further gateway processes to spread HTTP requests over
    fleet_file: Path = Path("var/simulator/fleet.db")
    meters: int = DEFAULT_METERS
    interval_s: int = 15
    transport: str = "http"  # http | batch | mqtt
    compat: str | None = None  # a1 | a2
    scenarios: tuple[str, ...] = ()
    speed: float = 1.0
    duration_s: float | None = None
    seed: int = 42
    prefix: str = "SIM"
    site: Site = field(default_factory=Site)
    admin_email: str = field(default_factory=lambda: os.environ.get("GRIDTOKENX_SIM_ADMIN_EMAIL", ""))
    admin_password: str = field(default_factory=lambda: os.environ.get("GRIDTOKENX_SIM_ADMIN_PASSWORD", ""))
    network_id: str = field(
        default_factory=lambda: os.environ.get("GRIDTOKENX_NETWORK_ID", "gridtokenx-localnet")
    )
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_prefix: str = "gridtokenx"
    spool_limit: int = 100_000
    round_size: int = 2_000  # readings per send round
    max_catchup: int = 40  # intervals a meter backfills after a pause; older ones are skipped
    drain_timeout_s: float = 20.0  # how long `stop` keeps sending what is spooled
    flood_requests: int = 700
    claim: bool = True  # owners claim their meters; off: unowned meters for head-end-only benches
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.transport not in ("http", "batch", "mqtt"):
            raise ValueError("transport must be http, batch or mqtt")
        if self.compat is not None and self.transport == "mqtt":
            raise ValueError("the compatibility shapes go over HTTP (http or batch)")
        if not self.claim and (self.transport == "http" or self.scenarios):
            raise ValueError("HTTP single and the attack scenarios need owners: keep claim on")
        if self.scenarios and self.compat is not None:
            raise ValueError("attack scenarios use the native signed reading; drop --compat")
        unknown = set(self.scenarios) - set(attacks.SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    @property
    def shape(self) -> Shape:
        return Shape(self.compat) if self.compat else Shape.NATIVE


@dataclass
class Report:
    stats: FleetStats
    spooled: int

    @property
    def lost(self) -> int:
        return self.stats.lost

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.spooled == 0 and all(a.ok for a in self.stats.attacks)


class FleetDriver:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.stats = FleetStats()
        self.clock = SimClock(config.speed, config.duration_s)
        self.file: FleetFile | None = None
        self.records: dict[str, MeterRecord] = {}
        self.keys: dict[str, DeviceSigner] = {}
        self.transport: Transport | None = None
        self.http: httpx.AsyncClient | None = None
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.started_wall = 0.0
        self.stored: dict[str, list[bytes]] = {}  # the last two stored native bodies per meter
        self.first_interval: dict[str, int] = {}
        self.rng = random.Random(config.seed)

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        self.file = FleetFile(config.fleet_file, config.spool_limit)
        self.http = httpx.AsyncClient(base_url=config.gateway, timeout=30)
        plan(
            self.file,
            build_fleet(config.meters, config.seed, config.prefix),
            config.prefix,
            config.interval_s,
        )
        await provision(
            self.file, self.http, config.admin_email, config.admin_password, config.site, claim=config.claim
        )
        self.records = {r.spec.serial: r for r in self.file.meters()}
        self.keys = {serial: DeviceSigner.from_seed(r.key_seed) for serial, r in self.records.items()}
        interval = int(self.file.get("interval_s") or config.interval_s)
        if interval != config.interval_s:
            raise ValueError(f"this fleet file was provisioned with {interval} s intervals")
        self.transport = self._transport()
        await self.transport.start()
        self.stats.note_depth(self.file.depth())
        resumed = [r.next_interval for r in self.records.values() if r.next_interval is not None]
        # provisioning is not run time; a resumed fleet goes on from where it stopped
        self.clock = SimClock(config.speed, config.duration_s, not_before=min(resumed, default=None))
        self.started_wall = time.monotonic()
        self.task = asyncio.create_task(self._run())

    def _transport(self) -> Transport:
        config = self.config
        assert self.file is not None
        owners = self.file.owners()
        keys = {
            serial: owners[r.owner].api_key or "" if r.owner in owners else ""
            for serial, r in self.records.items()
        }
        if config.transport == "mqtt":
            return MqttTransport(config.mqtt_host, config.mqtt_port, config.mqtt_prefix)
        return HttpTransport(
            (config.gateway, *config.more_gateways),
            Route(config.shape),
            keys.__getitem__,
            batch=config.transport == "batch",
            batch_credential=self.file.get("admin_api_key") if config.transport == "batch" else None,
            policy=config.retry,
        )

    @property
    def task_done(self) -> bool:
        return self.task is None or self.task.done()

    async def stop(self) -> Report:
        """Stop generating, send what is spooled (for at most `drain_timeout_s`), close."""
        self.stopping.set()
        if self.task is not None:
            await self.task
        return await self._close()

    async def wait(self) -> Report:
        """Run until the configured duration has passed (or `stop` is called elsewhere)."""
        assert self.task is not None
        await self.task
        return await self._close()

    async def _close(self) -> Report:
        assert self.file is not None
        if self.transport is not None:
            await self.transport.stop()
        if self.http is not None:
            await self.http.aclose()
        spooled = self.file.depth()
        self.stats.spool_depth = spooled
        self.file.close()
        return Report(self.stats, spooled)

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        config = self.config
        outage_s = 0.0
        attacked = not config.scenarios
        try:
            while not self._done():
                self._generate()
                delivered = await self._drain()
                outage_s = 0.0 if delivered else min(max(outage_s * 2, 0.5), 15.0)
                if not attacked and self._ready_to_attack():
                    self.stats.attacks = await attacks.run(self, config.scenarios)
                    attacked = True
                wait = min(self._next_due_in(), outage_s * self.rng.uniform(0.5, 1.0) if outage_s else 1e9)
                if delivered and self._depth():
                    wait = 0.0  # a backlog (after an outage): keep sending
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), max(wait, 0.01))
            self._generate()
            deadline = time.monotonic() + config.drain_timeout_s
            while self._depth() and time.monotonic() < deadline:
                if not await self._drain():
                    await asyncio.sleep(0.5)
        finally:
            self.stats.spool_depth = self._depth()

    def _done(self) -> bool:
        if self.stopping.is_set():
            return True
        duration = self.config.duration_s
        return duration is not None and time.monotonic() - self.started_wall >= duration

    def _depth(self) -> int:
        assert self.file is not None
        return self.file.depth()

    def _next_due_in(self) -> float:
        interval = self.config.interval_s
        soonest = min(
            (r.next_interval if r.next_interval is not None else aligned(self.clock.now(), interval))
            + interval
            for r in self.records.values()
        )
        left = (
            None
            if self.config.duration_s is None
            else self.config.duration_s - (time.monotonic() - self.started_wall)
        )
        wait = self.clock.wall_seconds_until(soonest)
        return wait if left is None else min(wait, max(left, 0.0))

    def _ready_to_attack(self) -> bool:
        return sum(len(v) >= 2 for v in self.stored.values()) >= 2 or (
            self.config.shape is not Shape.NATIVE and self.stats.total.stored > 0
        )

    def _generate(self) -> None:
        """Step every meter through each interval that has ended (earliest first, one transaction
        per interval across the fleet): sign, spool and save the meter's state together."""
        assert self.file is not None
        interval = self.config.interval_s
        current = aligned(self.clock.now(), interval)  # still running: not measured yet
        floor = current - self.config.max_catchup * interval
        wall = int(time.time())
        for record in self.records.values():
            if record.next_interval is None:
                record.next_interval = current
        while True:
            due = [
                r for r in self.records.values() if r.next_interval is not None and r.next_interval < current
            ]
            if not due:
                return
            earliest = min(max(r.next_interval or 0, floor) for r in due)
            with self.file.transaction() as db:
                for record in due:
                    start = max(record.next_interval or 0, floor)
                    if start == earliest:
                        self._step(db, record, start, wall)
                self.stats.dropped += self.file.trim(db)
            self.stats.intervals += 1
            self.stats.note_depth(self.file.depth())

    def _step(self, db: sqlite3.Connection, record: MeterRecord, start: int, wall: int) -> None:
        assert self.file is not None
        config, spec = self.config, record.spec
        reading, state = step(spec, record.state, config.site, config.seed, start, config.interval_s)
        shape = config.shape
        if shape is Shape.NATIVE:
            record.seq += 1
        body = body_for(shape, reading, self.keys[spec.serial], record.seq, wall, config.network_id)
        expires = wall + 240 if shape is Shape.NATIVE else NO_EXPIRY
        self.file.spool(db, spec.serial, start, body, expires)
        record.state = state
        record.next_interval = start + config.interval_s
        self.file.save_progress(db, record)
        self.stats.classes[spec.meter_class].generated += 1
        self.first_interval.setdefault(spec.serial, start)

    def next_seq(self, serial: str) -> int:
        """A fresh sequence number for a message signed outside the loop (re-sign, attacks), saved."""
        assert self.file is not None
        record = self.records[serial]
        record.seq += 1
        with self.file.transaction() as db:
            self.file.save_progress(db, record)
        return record.seq

    async def _drain(self) -> bool:
        """Send one round of spooled readings; False when the gateway could not be reached."""
        assert self.file is not None and self.transport is not None
        items = self.file.pending(self.config.round_size)
        if not items:
            return True
        items = self._refresh(items)
        for item in items:
            self.stats.classes[self.records[item.serial].spec.meter_class].sent += 1
        answers = await self.transport.send(items)
        final = [i for i in items if answers[i.id].final]
        self.file.mark_sent(i.id for i in items if not answers[i.id].final)
        self.file.done(i.id for i in final)
        for item in items:
            self._count(item, answers[item.id])
        self.stats.note_depth(self.file.depth())
        return bool(final) or not items

    def _refresh(self, items: Sequence[Spooled]) -> list[Spooled]:
        """Re-sign native readings whose validity window ends before they could arrive."""
        assert self.file is not None
        if self.config.shape is not Shape.NATIVE:
            return list(items)
        limit = time.time() + RESIGN_MARGIN_S
        out = []
        for item in items:
            if item.expires < limit:
                wall = int(time.time())
                body = resign(
                    item.body,
                    self.keys[item.serial],
                    self.config.network_id,
                    self.next_seq(item.serial),
                    wall,
                )
                self.file.replace_body(item.id, body, wall + 240)
                item = Spooled(
                    item.id, item.serial, item.interval_start, body, wall + 240, item.attempts, item.sent_at
                )
            out.append(item)
        return out

    def _count(self, item: Spooled, answer: Answer) -> None:
        stats = self.stats.classes[self.records[item.serial].spec.meter_class]
        stats.retries += answer.retries
        if answer.seconds is not None:
            stats.answer_seconds.append(answer.seconds)
        if answer.status == "accepted":
            stats.accepted += 1
        elif answer.status == "duplicate":
            stats.duplicate += 1
        elif answer.status == "rejected":
            stats.rejected[answer.code or "?"] += 1
        if answer.status in ("accepted", "duplicate") and self.config.shape is Shape.NATIVE:
            kept = self.stored.setdefault(item.serial, [])
            kept.append(item.body)
            del kept[:-2]

    @property
    def admin_key(self) -> str:
        assert self.file is not None
        return self.file.get("admin_api_key") or ""

    def owner_key(self, owner: str) -> str:
        assert self.file is not None
        return self.file.owners()[owner].api_key or ""


__all__ = ["ADMIN", "FleetConfig", "FleetDriver", "Report"]
