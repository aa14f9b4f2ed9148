"""The wallets domain as the app composes it: the sealer of custodial keys and its start-up check."""

from __future__ import annotations

from collections.abc import Sequence

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.core.settings import SettingsError
from gridtokenx.wallets.api import router
from gridtokenx.wallets.sealing import Sealer, WalletKeyError, wallet_key
from gridtokenx.wallets.service import verify_key


class KeyCheck:
    """Refuses to start with an encryption key that does not open the stored wallets."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        async with self.ctx.db.session() as session:
            try:
                await verify_key(session, self.ctx.services.get(Sealer))
            except WalletKeyError:
                raise SettingsError(
                    "invalid configuration: GRIDTOKENX_WALLET_ENCRYPTION_KEY: "
                    "does not open the stored custodial wallets (wrong key)"
                ) from None

    async def stop(self) -> None:
        """Nothing to release."""


def _wire(ctx: AppContext) -> None:
    ctx.services.add(Sealer(wallet_key(ctx.settings)))


def _background(ctx: AppContext) -> Sequence[BackgroundService]:
    return (KeyCheck(ctx),)


domain = Domain(name="wallets", routers=(router,), wire=_wire, background=_background)
