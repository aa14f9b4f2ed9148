"""Durable async batches: a batch answered 202 is a row with its body, run by the `jobs` duty.

`submit` stores the job and its raw body in the request's transaction, so the 202 goes out only
once the job is on disk. Whichever process holds the `readings-jobs` lease (`gridtokenx worker`,
or the gateway itself when embedded) runs queued jobs oldest first; a job found `running` was
left by a holder that died, and is simply run again. Its readings and its `done` status commit in
one transaction, guarded by `status <> 'done'`, so a job is applied exactly once however often it
is started: a run that lost the race rolls back. The readings are judged as of the 202 (their
`expires` window), not as of the moment a restarted worker gets to them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import User
from gridtokenx.core.db import Database
from gridtokenx.core.lease import LeasedDuty
from gridtokenx.core.metrics import BATCH_JOBS_COMPLETED, BATCH_JOBS_SUBMITTED
from gridtokenx.core.types import utcnow
from gridtokenx.readings.errors import ReadingError
from gridtokenx.readings.ingest_results import ItemResult
from gridtokenx.readings.models import IngestJob
from gridtokenx.readings.native import decode_batch, to_reading
from gridtokenx.readings.pipeline import BeforeCommit, IngestPipeline, Submitter
from gridtokenx.readings.reading import Reading
from gridtokenx.readings.service import summarise

log = structlog.get_logger(__name__)

DUTY = "readings-jobs"
MAX_ATTEMPTS = 5  # a job that fails this often is marked failed rather than retried for ever
UNFINISHED = ("queued", "running")


async def submit(session: AsyncSession, user: User, body: bytes, total: int) -> IngestJob:
    """Queue a batch; the caller commits before answering 202."""
    job = IngestJob(user_id=user.id, total=total, body=body)
    session.add(job)
    await session.flush()
    BATCH_JOBS_SUBMITTED.inc()
    return job


class AlreadyDone(Exception):
    """Another run finished this job first; this run's transaction rolls back."""


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    user_id: uuid.UUID
    body: bytes | None
    received_at: int
    attempts: int


class JobRunner:
    """Runs queued jobs while its process holds the duty's lease; `wake()` after a submit."""

    def __init__(
        self, db: Database, pipeline: IngestPipeline, network_id: str, max_items: int, poll_s: float
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.network_id = network_id
        self.max_items = max_items
        self.poll_s = poll_s
        self.duty: LeasedDuty | None = None

    def leased_duty(self) -> LeasedDuty:
        self.duty = LeasedDuty(self.db, DUTY, self.round, ttl=timedelta(seconds=15))
        return self.duty

    def wake(self) -> None:
        """Start on a new job now if this process runs the duty (others find it by polling)."""
        if self.duty is not None:
            self.duty.wake()

    async def round(self, _token: int) -> float:
        """Run the oldest unfinished job; no pause while more may be waiting."""
        job = await self._claim()
        if job is None:
            return self.poll_s
        await self._run(job)
        return 0.0

    async def _claim(self) -> _Claimed | None:
        async with self.db.writing(), self.db.session() as session:
            row = (
                await session.execute(
                    select(IngestJob.id, IngestJob.user_id, IngestJob.created_at, IngestJob.attempts)
                    .where(IngestJob.status.in_(UNFINISHED))
                    .order_by(IngestJob.created_at)
                    .limit(1)
                )
            ).first()
            if row is None:
                return None
            job_id, user_id, created_at, attempts = row
            await session.execute(
                update(IngestJob)
                .where(IngestJob.id == job_id)
                .values(status="running", attempts=IngestJob.attempts + 1)
            )
            body = await session.scalar(select(IngestJob.body).where(IngestJob.id == job_id))
        return _Claimed(job_id, user_id, body, int(created_at.timestamp()), attempts + 1)

    async def _run(self, job: _Claimed) -> None:
        try:
            if job.attempts > MAX_ATTEMPTS:
                raise RuntimeError(f"gave up after {MAX_ATTEMPTS} attempts")
            async with self.db.session() as session:
                user = await session.get(User, job.user_id)
            if user is None or job.body is None:
                raise RuntimeError("the job's owner or body is gone")
            items = self._items(job.body)
            await self.pipeline.ingest(
                Submitter(user), items, before_commit=self._finisher(job.id), received_at=job.received_at
            )
            BATCH_JOBS_COMPLETED.labels("done").inc()
        except AlreadyDone:
            log.info("job_already_done", job_id=str(job.id))
        except Exception as exc:
            if job.attempts < MAX_ATTEMPTS and not isinstance(exc, RuntimeError):
                raise  # a round failure: the duty logs it and the job runs again next round
            await self._fail(job.id, f"{type(exc).__name__}: {exc}")

    def _items(self, body: bytes) -> list[Reading | ReadingError]:
        decoded = decode_batch(body, max_items=self.max_items)
        return [
            item if isinstance(item, ReadingError) else to_reading(item, self.network_id) for item in decoded
        ]

    @staticmethod
    def _finisher(job_id: uuid.UUID) -> BeforeCommit:
        async def finish(session: AsyncSession, results: list[ItemResult]) -> None:
            done = await session.execute(
                update(IngestJob)
                .where(IngestJob.id == job_id, IngestJob.status != "done")
                .values(
                    status="done",
                    **summarise(results),
                    results=[r.as_dict() for r in results],
                    body=None,
                    finished_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise AlreadyDone(str(job_id))

        return finish

    async def _fail(self, job_id: uuid.UUID, error: str) -> None:
        log.error("job_failed", job_id=str(job_id), error=error)
        BATCH_JOBS_COMPLETED.labels("failed").inc()
        async with self.db.writing(), self.db.session() as session:
            await session.execute(
                update(IngestJob)
                .where(IngestJob.id == job_id, IngestJob.status != "done")
                .values(status="failed", error=error[:500], finished_at=utcnow())
            )
