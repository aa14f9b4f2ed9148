"""The jobs duty applies a job exactly once, whoever runs it and however often it is started."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gridtokenx.core.context import AppContext
from gridtokenx.readings.jobs import JobRunner
from gridtokenx.readings.models import IngestJob, MeterReading
from tests.helpers import bearer
from tests.readings.ingest_helpers import INTERVAL, aligned_now, make_device


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_duties": False}  # the test drives the runner itself


async def test_a_job_started_twice_is_applied_once(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(10)
    body = device.signed_batch([start + i * INTERVAL for i in range(6)])
    queued = await client.post(
        "/api/meters/readings/batch",
        content=body,
        headers={**bearer(device.owner), "Prefer": "respond-async"},
    )
    assert queued.status_code == 202
    async with ctx.db.session() as session:
        saved = (
            await session.execute(
                select(IngestJob.status, IngestJob.body).where(
                    IngestJob.id == uuid.UUID(queued.json()["job_id"])
                )
            )
        ).one()
    assert tuple(saved) == ("queued", body)  # on disk, body and all, before the 202
    runner = ctx.services.get(JobRunner)
    # two holders claim it (a lease that changed hands mid-run): both run it, one applies it
    first, second = await runner._claim(), await runner._claim()
    assert first is not None and second is not None and first.id == second.id
    await runner._run(first)
    await runner._run(second)  # rolls back: the job is already done
    assert await runner.round(1) == runner.poll_s  # nothing left to run
    async with ctx.db.session() as session:
        job = await session.get(IngestJob, first.id)
        body_left = await session.scalar(select(IngestJob.body).where(IngestJob.id == first.id))
        stored = await session.scalar(select(func.count()).select_from(MeterReading))
    assert job is not None and job.status == "done" and job.attempts == 2
    assert (job.accepted, job.duplicates, job.rejected) == (6, 0, 0)  # the first run's verdicts
    assert body_left is None and stored == 6
    shown = await client.get(f"/api/meters/jobs/{first.id}", headers=bearer(device.owner))
    assert shown.json()["status"] == "done" and len(shown.json()["results"]) == 6


async def test_a_worker_runs_the_jobs_a_gateway_queued(client: httpx.AsyncClient, ctx: AppContext) -> None:
    """The gateway here runs no duties: `gridtokenx worker` (its `run_worker`) picks the job up."""
    from gridtokenx.worker import run_worker

    device = await make_device(client, ctx)
    body = device.signed_batch([aligned_now(5) + i * INTERVAL for i in range(3)])
    queued = await client.post(
        "/api/meters/readings/batch?async=true", content=body, headers=bearer(device.owner)
    )
    assert queued.status_code == 202
    url = f"/api/meters/jobs/{queued.json()['job_id']}"
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(ctx.settings, stop=stop))
    try:
        for _ in range(300):
            job = (await client.get(url, headers=bearer(device.owner))).json()
            if job["status"] == "done":
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
    assert job["status"] == "done" and job["accepted"] == 3
