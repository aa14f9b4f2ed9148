"""The meters domain as the app composes it."""

from __future__ import annotations

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import Domain
from gridtokenx.events.hub import Authority
from gridtokenx.meters.api import router
from gridtokenx.meters.watch import WatchAuthority


def _wire(ctx: AppContext) -> None:
    ctx.services.add(WatchAuthority(ctx), as_type=Authority)


domain = Domain(name="meters", routers=(router,), wire=_wire)
