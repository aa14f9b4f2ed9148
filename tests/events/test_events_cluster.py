"""The distributed topology as real processes (`gridtokenx cluster up`) on the local PostgreSQL,
Redis and Mosquitto: a reading posted to gateway A reaches a WebSocket client on gateway B; a
gateway killed with SIGKILL in the middle of a batch loses nothing and stores nothing twice when
the client retries on the other gateway; the worker holding the mint lease killed with SIGKILL
mid-minting hands the duty to the other worker within the lease's time, nothing is minted twice
and `gridtokenx audit` is clean."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from gridtokenx.cluster import Process, Topology, load, shared_environment, stop
from gridtokenx.core.context import AppContext
from tests.conftest import PG_HOST, PG_PORT, PG_USER, make_settings
from tests.events.test_events_hub import next_event, receive
from tests.helpers import bearer
from tests.readings.ingest_helpers import aligned_now, make_device
from tests.tokenization.mint_helpers import ingest, states, wait_for

pytestmark = pytest.mark.cluster


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _base_port() -> int:
    while True:
        base = random.randrange(20_000, 40_000)
        if all(_free(p) for p in (base, base + 1, base + 100)):
            return base


LEASE_TTL = 6.0  # seconds; the standby retries every TTL / 3
MINT_TUNING = {  # small transactions, so a worker is killed with mints in flight and still queued
    "GRIDTOKENX_TOKENIZATION_LEASE_TTL_SECS": str(LEASE_TTL),
    "GRIDTOKENX_TOKENIZATION_BATCH_SIZE": "4",
    "GRIDTOKENX_TOKENIZATION_MAX_IN_FLIGHT": "2",
    "GRIDTOKENX_TOKENIZATION_POLLING_INTERVAL_SECS": "0.2",
}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class Cluster:
    directory: Path
    url: str
    processes: list[Process]
    env: dict[str, str]  # what `cluster up` gave every gateway and worker


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """`cluster up` with 2 gateways and `request.param` workers (1 unless parametrized)."""
    workers = getattr(request, "param", 1)
    name = f"gtx_cluster_{uuid.uuid4().hex[:10]}"
    url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    directory = tmp_path / "cluster"
    tag = uuid.uuid4().hex[:8]
    topology = Topology(
        2, workers, _base_port(), url, "redis://127.0.0.1:6379/15", "127.0.0.1", 1883,
        f"test-{tag}", f"test:{tag}:events", directory,
    )  # fmt: skip
    started = _cli(
        "cluster", "up",
        "--gateways", str(topology.gateways),
        "--workers", str(topology.workers),
        "--base-port", str(topology.base_port),
        "--database-url", url,
        "--redis-url", topology.redis_url,
        "--mqtt-prefix", topology.mqtt_prefix,
        "--events-prefix", topology.events_prefix,
        "--directory", str(directory),
        env=MINT_TUNING,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "gateway-2" in started.stdout and f"worker-{workers}" in started.stdout
        processes = load(directory)
        env = shared_environment(
            topology,
            ledger_url=next(p.url for p in processes if p.name == "ledger"),
            jwt_secret=(directory / "jwt_secret").read_text().strip(),
            wallet_key=(directory / "wallet_key").read_text().strip(),
            authority_path=str(directory / "authority.json"),
        )
        yield Cluster(directory, url, processes, {**MINT_TUNING, **env})
    finally:
        launched = load(directory)
        stopped = _cli("cluster", "down", "--directory", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert all(b"gridtokenx" not in _cmdline(p.pid) for p in launched)

        async def drop() -> None:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()

        asyncio.run(drop())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def test_an_event_crosses_gateways_and_a_killed_gateway_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    directory, url = cluster.directory, cluster.url
    by_name = {p.name: p for p in cluster.processes}
    a, b = by_name["gateway-1"], by_name["gateway-2"]
    secret = (directory / "jwt_secret").read_text().strip()
    ctx = AppContext.from_settings(make_settings(tmp_path, url, jwt_secret=secret))
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=60) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=60) as on_b,
        ):
            device = await make_device(on_a, ctx)
            ws_url = b.url.replace("http://", "ws://") + f"/ws?token={device.owner}&channels=user"
            async with connect(ws_url) as ws:
                await receive(ws, 10)
                posted = await on_a.post(
                    "/api/meters/readings", content=device.signed(aligned_now()), headers=bearer(device.owner)
                )
                assert posted.status_code == 201, posted.text
                heard = await next_event(ws, 15)
                assert heard["type"] == "MeterReadingReceived"
                assert heard["data"]["reading_id"] == posted.json()["reading_id"]
                assert heard["id"] > 0

            starts = [aligned_now(k) for k in range(1, 1001)]
            body = device.signed_batch(starts)
            sending = asyncio.create_task(
                on_a.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
            )
            await asyncio.sleep(0.15)
            stop(a, sig=9)  # SIGKILL, mid-batch
            with pytest.raises(httpx.TransportError):
                await sending
            retried = await on_b.post(
                "/api/meters/readings/batch", content=body, headers=bearer(device.owner)
            )
            assert retried.status_code == 200, retried.text
            statuses = {r["status"] for r in orjson.loads(retried.content)["results"]}
            assert statuses <= {"accepted", "duplicate"}

        conn = await asyncpg.connect(url)
        try:
            stored = await conn.fetch(
                "SELECT interval_start, count(*) AS n FROM meter_readings WHERE meter_id = $1 "
                "AND trust <> 'estimated' GROUP BY interval_start",
                uuid.UUID(device.meter_id),
            )
        finally:
            await conn.close()
        assert len(stored) == 1001 and all(row["n"] == 1 for row in stored)  # each reading once
    finally:
        await ctx.db.dispose()


async def _mint_lease(client: httpx.AsyncClient, admin: str) -> tuple[int, datetime]:
    """The pid of the mint lease's holder (holder ids are host:pid:nonce) and when it expires."""
    listed = await client.get("/api/admin/leases", headers=bearer(admin))
    assert listed.status_code == 200, listed.text
    lease = next(row for row in listed.json() if row["name"] == "mint")
    return int(lease["holder"].split(":")[1]), datetime.fromisoformat(lease["expires_at"])


async def _tx_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM mint_txs GROUP BY state")
    finally:
        await conn.close()
    return {row["state"]: int(row["n"]) for row in rows}


@pytest.mark.parametrize("cluster", [2], indirect=True)
async def test_killed_mint_lease_holder_hands_over_and_nothing_is_minted_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    by_name = {p.name: p for p in cluster.processes}
    workers = {by_name[name].pid: by_name[name] for name in ("worker-1", "worker-2")}
    gateway = by_name["gateway-1"]
    secret = (cluster.directory / "jwt_secret").read_text().strip()
    ctx = AppContext.from_settings(make_settings(tmp_path, cluster.url, jwt_secret=secret))
    first = [300 + 7 * i for i in range(40)]  # distinct values: a repeated one is flagged frozen
    second = [301 + 7 * i for i in range(40)]
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
            device = await make_device(client, ctx)
            await ingest(client, device, first, offset=len(second))

            async def minting() -> bool:
                return (await _tx_counts(cluster.url)).get("confirmed", 0) >= 2

            await wait_for(minting, timeout=60)
            holder, expires_at = await _mint_lease(client, device.admin)
            assert holder in workers
            assert (await states(ctx)).get("pending", 0) > 0  # the kill lands mid-minting
            killed_at = time.monotonic()
            stop(workers[holder], sig=9)
            assert not Path(f"/proc/{holder}/cmdline").exists() or b"gridtokenx" not in _cmdline(holder)
            await ingest(client, device, second)  # readings keep arriving while nobody mints

            async def taken_over() -> bool:
                return (await _mint_lease(client, device.admin))[0] != holder

            await wait_for(taken_over, timeout=LEASE_TTL * 3)
            handed_over = time.monotonic() - killed_at
            successor, new_expiry = await _mint_lease(client, device.admin)
            assert successor in workers and successor != holder
            # the dead holder's lease runs out (at most one TTL after the kill), then the standby,
            # retrying every TTL / 3, takes it: never before expiry, never much after
            assert new_expiry > expires_at
            assert handed_over <= LEASE_TTL + LEASE_TTL / 3 + 2.0, handed_over

            total = len(first) + len(second)

            async def all_minted() -> bool:
                return (await states(ctx)) == {"confirmed": total}

            await wait_for(all_minted, timeout=90)

        conn = await asyncpg.connect(cluster.url)
        try:
            per_reading = await conn.fetch(
                "SELECT e.reading_id, count(*) AS n, sum(e.ledger_units) AS units FROM mint_outbox e "
                "JOIN mint_txs t ON t.id = e.tx_id WHERE t.state = 'confirmed' GROUP BY e.reading_id"
            )
            minted = await conn.fetchval(
                "SELECT sum(amount_units) FROM mint_txs WHERE state = 'confirmed' AND kind = 'mint'"
            )
        finally:
            await conn.close()
        assert len(per_reading) == total and all(row["n"] == 1 for row in per_reading)
        units_per_wh = 10**6  # 1 kWh = 1 token of 9 decimals
        assert int(minted) == sum(first + second) * units_per_wh  # each reading's energy once

        audited = _cli("audit", env={**cluster.env, "GRIDTOKENX_DATA_DIR": str(tmp_path / "audit")})
        assert audited.returncode == 0, audited.stdout + audited.stderr
        assert "audit clean" in audited.stdout
    finally:
        await ctx.db.dispose()
