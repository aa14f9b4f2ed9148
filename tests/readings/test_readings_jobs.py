"""Async batch jobs survive a SIGKILL of the gateway: every job answered 202 completes after the
restart, and its readings are stored exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gridtokenx.core.context import AppContext
from gridtokenx.readings.models import IngestJob, MeterReading, ReadingRevision
from gridtokenx.readings.reading import Trust
from tests.helpers import bearer
from tests.readings.gateway_process import GatewayProcess
from tests.readings.ingest_helpers import INTERVAL, aligned_now, make_device

BATCHES_PER_LIFE = 5
LIVES = 4
PER_BATCH = 40


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_duties": False}  # only the gateway process runs the jobs duty


async def _job_states(ctx: AppContext) -> dict[str, str]:
    async with ctx.db.session() as session:
        return {str(i): s for i, s in (await session.execute(select(IngestJob.id, IngestJob.status))).all()}


async def test_acknowledged_jobs_complete_once_across_sigkills(
    client: httpx.AsyncClient, ctx: AppContext, tmp_path: Path
) -> None:
    device = await make_device(client, ctx)
    total = BATCHES_PER_LIFE * LIVES * PER_BATCH
    first = aligned_now(total + 1)
    bodies = [
        device.signed_batch([first + (b * PER_BATCH + i) * INTERVAL for i in range(PER_BATCH)])
        for b in range(BATCHES_PER_LIFE * LIVES)
    ]
    gateway = GatewayProcess(ctx.settings, tmp_path / "gateway")
    acknowledged: list[str] = []
    unfinished_at_kill = 0
    try:
        for life in range(LIVES):
            await gateway.start()
            async with httpx.AsyncClient(base_url=gateway.base, timeout=30) as http:
                for body in bodies[life * BATCHES_PER_LIFE : (life + 1) * BATCHES_PER_LIFE]:
                    response = await http.post(
                        "/api/meters/readings/batch",
                        content=body,
                        headers={**bearer(device.owner), "Prefer": "respond-async"},
                    )
                    assert response.status_code == 202, response.text
                    acknowledged.append(response.json()["job_id"])
            gateway.kill()  # right after the last 202: jobs queued, one perhaps half-way
            states = await _job_states(ctx)
            unfinished_at_kill += sum(states[j] != "done" for j in acknowledged)
        await gateway.start()
        async with httpx.AsyncClient(base_url=gateway.base, timeout=30) as http:
            for _ in range(600):
                jobs = [
                    (await http.get(f"/api/meters/jobs/{j}", headers=bearer(device.owner))).json()
                    for j in acknowledged
                ]
                if all(job["status"] == "done" for job in jobs):
                    break
                await asyncio.sleep(0.2)
    finally:
        gateway.stop()
    assert unfinished_at_kill > 0, "the kills should find jobs still to run"
    assert [job["status"] for job in jobs] == ["done"] * len(acknowledged), gateway.tail()
    assert sum(job["accepted"] for job in jobs) == total
    assert sum(job["duplicates"] + job["rejected"] for job in jobs) == 0
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(func.count(), func.max(MeterReading.version)).where(
                    MeterReading.trust != Trust.ESTIMATED
                )
            )
        ).one()
        revisions = await session.scalar(select(func.count()).select_from(ReadingRevision))
        bodies_left = await session.scalar(select(func.count()).where(IngestJob.body.is_not(None)))
    assert tuple(rows) == (total, 1)  # each reading once, never rewritten
    assert revisions == 0
    assert bodies_left == 0
