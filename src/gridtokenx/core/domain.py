"""The contract between a domain package and the app that composes it.

Each domain exposes one `Domain`: its HTTP routers and, where it has background work, the
services to start with the app and stop with it. `app.py` composes the list, so a new domain
(the mint worker, the epoch scheduler, the WebSocket hub, the certificate issuer) plugs in by
adding one line there instead of a special case in the lifespan.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from fastapi import APIRouter

if TYPE_CHECKING:
    from gridtokenx.core.context import AppContext


class BackgroundService(Protocol):
    """Long-running work owned by the app: started after migrations, stopped before the engine."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Domain:
    """What one domain brings to the app.

    `wire` runs once when the app (or a worker) is built: it registers the domain's services on the
    context (typed, by class) so routes and other domains can find them.

    `background` is what a gateway process runs beside its routes (the MQTT consumer, the
    WebSocket hub). `duties` is the leased background work (minting, epochs, certificate
    issuance, jobs): `gridtokenx worker` runs every domain's duties, and `serve` runs them too
    when `GRIDTOKENX_RUN_DUTIES` is on (the embedded default). Either may return nothing when a
    setting turned the work off.

    `audit` reconciles the domain's rows with the ledger for `gridtokenx audit`: it returns one
    line per difference found, none when all agrees."""

    name: str
    routers: Sequence[APIRouter] = ()
    wire: Callable[[AppContext], None] | None = None
    background: Callable[[AppContext], Sequence[BackgroundService]] | None = None
    duties: Callable[[AppContext], Sequence[BackgroundService]] | None = None
    audit: Callable[[AppContext], Awaitable[list[str]]] | None = None
