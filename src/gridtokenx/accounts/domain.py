"""The accounts domain as the app composes it."""

from __future__ import annotations

from gridtokenx.accounts.api import router
from gridtokenx.core.domain import Domain

domain = Domain(name="accounts", routers=(router,))
