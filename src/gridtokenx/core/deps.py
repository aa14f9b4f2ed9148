"""FastAPI dependencies shared by every router.

Even those that do no I/O are `async def`: FastAPI runs a plain `def` dependency in a worker
thread, a thread hop (and two GIL hand-overs) on every request for a dictionary lookup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.context import AppContext


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_session(ctx: Annotated[AppContext, Depends(get_ctx)]) -> AsyncIterator[AsyncSession]:
    """A session per request; handlers commit explicitly so that events follow the commit."""
    async with ctx.db.sessionmaker() as session:
        try:
            yield session
        finally:
            if session.in_transaction():
                await session.rollback()


async def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


Ctx = Annotated[AppContext, Depends(get_ctx)]
DbSession = Annotated[AsyncSession, Depends(get_session)]
ClientIp = Annotated[str, Depends(client_ip)]
