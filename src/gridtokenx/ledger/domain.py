"""The ledger as the app composes it: one `Ledger` per process, opened on first use.

The embedded ledger holds a writer's lock on its directory, so only the process that runs the
duties (the gateway, in embedded mode) should open it; opening lazily keeps every other process,
and every app that never touches the chain, from paying for it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.core.settings import Settings
from gridtokenx.ledger.factory import build_ledger
from gridtokenx.ledger.interface import Ledger


class LedgerHandle:
    """Opens the configured ledger when first asked for it and closes it with the app."""

    def __init__(self, settings: Settings, ledger: Ledger | None = None) -> None:
        self.settings = settings
        self._ledger = ledger
        self._started = False
        self._lock = asyncio.Lock()

    async def get(self) -> Ledger:
        async with self._lock:
            if self._ledger is None:
                self._ledger = build_ledger(self.settings)
            if not self._started:
                await self._ledger.start()
                self._started = True
            return self._ledger

    @property
    def opened(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Nothing to do until a duty or route asks for the ledger."""

    async def stop(self) -> None:
        async with self._lock:
            if self._ledger is not None and self._started:
                await self._ledger.close()
            self._started = False
            self._ledger = None


def _wire(ctx: AppContext) -> None:
    ctx.services.add(LedgerHandle(ctx.settings))


def _background(ctx: AppContext) -> Sequence[BackgroundService]:
    return (ctx.services.get(LedgerHandle),)


domain = Domain(name="ledger", wire=_wire, background=_background)
