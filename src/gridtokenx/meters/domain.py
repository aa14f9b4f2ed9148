"""The meters domain as the app composes it."""

from __future__ import annotations

from gridtokenx.core.domain import Domain
from gridtokenx.meters.api import router

domain = Domain(name="meters", routers=(router,))
