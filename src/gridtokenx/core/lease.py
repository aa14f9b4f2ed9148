"""Database leases: one holder per background duty across every process of a deployment.

The same row lease works on SQLite and PostgreSQL (one conditional UPDATE, an INSERT for the
first claim), so the embedded and distributed set-ups share one mechanism. A holder that dies
simply stops renewing; its duty moves to another process once the lease has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from gridtokenx.core.db import Database
from gridtokenx.core.metrics import LEASES_HELD
from gridtokenx.core.models import Lease
from gridtokenx.core.types import utcnow

log = structlog.get_logger(__name__)


def process_holder_id() -> str:
    """A holder name that tells an operator which process holds a duty."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaseState:
    name: str
    holder: str
    token: int
    expires_at: datetime


async def try_acquire(db: Database, name: str, holder: str, ttl: timedelta) -> int | None:
    """Take or renew `name` for `holder`; the fencing token while held, None if another holds it."""
    now = utcnow()
    async with db.writing(), db.session() as session:
        result = await session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
            .values(
                token=case((Lease.holder == holder, Lease.token), else_=Lease.token + 1),
                holder=holder,
                expires_at=now + ttl,
                renewed_at=now,
            )
            .returning(Lease.token)
        )
        token = result.scalar_one_or_none()
        if token is not None:
            return int(token)
    try:
        async with db.writing(), db.session() as session:
            session.add(Lease(name=name, holder=holder, token=1, expires_at=now + ttl, renewed_at=now))
        return 1
    except IntegrityError:  # another process claimed it first
        return None


async def release(db: Database, name: str, holder: str) -> None:
    """Give the duty up at once (a clean stop), so the next holder need not wait for the TTL."""
    async with db.writing(), db.session() as session:
        await session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=utcnow())
        )


async def holders(db: Database) -> list[LeaseState]:
    async with db.session() as session:
        rows = (await session.execute(select(Lease).order_by(Lease.name))).scalars()
        return [LeaseState(r.name, r.holder, r.token, r.expires_at) for r in rows]


Work = Callable[[int], Awaitable[float]]
"""One round of a duty, given the fencing token; returns the seconds to wait before the next."""


class LeasedDuty:
    """Runs `work` in rounds while this process holds lease `name` (a `BackgroundService`).

    Between rounds it renews the lease; when it cannot, it stops working and keeps trying to take
    the lease back, so a second process waits and takes over within one TTL of the holder's death.
    """

    def __init__(
        self,
        db: Database,
        name: str,
        work: Work,
        *,
        ttl: timedelta = timedelta(seconds=15),
        holder: str | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self.work = work
        self.ttl = ttl
        self.holder = holder or process_holder_id()
        self.token: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def held(self) -> bool:
        return self.token is not None

    def wake(self) -> None:
        """Run the next round now (an event said there is work)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"duty:{self.name}")

    async def stop(self) -> None:
        """Finish the round under way, then release the lease.

        The task is cancelled only if its round outlives the TTL: a cancel in the middle of a
        statement can strand a SQLite connection with its write transaction open, which then
        locks the file for every other writer (the release below included)."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            _, pending = await asyncio.wait({self._task}, timeout=self.ttl.total_seconds())
            for task in pending:
                task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            self._stopping = False
        if self.token is not None:
            self.token = None
            LEASES_HELD.labels(self.name).set(0)
            await release(self.db, self.name, self.holder)

    async def _run(self) -> None:
        retry = self.ttl.total_seconds() / 3
        while not self._stopping:
            pause = retry
            try:
                token = await try_acquire(self.db, self.name, self.holder, self.ttl)
                if token != self.token:
                    log.info("lease_changed", duty=self.name, holder=self.holder, token=token)
                self.token = token
                LEASES_HELD.labels(self.name).set(0 if token is None else 1)
                if token is not None:
                    pause = min(await self.work(token), retry)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed round is logged and retried; the duty never dies silently
                log.exception("duty_round_failed", duty=self.name)
            self._wake.clear()
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(pause, 0.0))
