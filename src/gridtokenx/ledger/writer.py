"""One writer thread for the embedded ledger, with group commit.

Jobs queue up while the thread is busy; the thread runs everything queued, commits once, and only
then hands the results back to their event loops. Callers therefore never see an outcome that a
crash could undo, and concurrent callers share one fsync.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from gridtokenx.ledger.errors import LedgerUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_BATCH = 512
_STOP = object()


class _Job:
    __slots__ = ("error", "fn", "future", "result")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None


def _settle(job: _Job) -> None:
    if job.future.done():  # the caller was cancelled; the outcome is durable regardless
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)


class SerialWriter:
    def __init__(self, commit: Callable[[], None], abandon: Callable[[], None], name: str) -> None:
        self._commit = commit
        self._abandon = abandon
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._broken: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    async def call(self, fn: Callable[[], T]) -> T:
        if self._broken is not None:
            raise LedgerUnavailable(
                "the embedded ledger stopped after a storage failure; restart it"
            ) from self._broken
        if not self._thread.is_alive():
            raise LedgerUnavailable("the embedded ledger is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Job(fn, future))
        return await future

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Job] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        if self._broken is not None:
            for job in batch:
                job.error = LedgerUnavailable("the embedded ledger stopped after a storage failure")
        else:
            for job in batch:
                try:
                    job.result = job.fn()
                except BaseException as exc:  # handed to the caller, never lost on this thread
                    job.error = exc
            try:
                self._commit()
            except BaseException as exc:
                log.critical("ledger commit failed; refusing further work until restart", exc_info=True)
                self._broken = exc
                try:
                    self._abandon()
                except Exception:
                    log.exception("could not close the ledger store after a failed commit")
                for job in batch:
                    job.result = None
                    job.error = LedgerUnavailable("the ledger could not make this change durable")
        for job in batch:
            loop = job.future.get_loop()
            try:
                loop.call_soon_threadsafe(_settle, job)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting
                continue
