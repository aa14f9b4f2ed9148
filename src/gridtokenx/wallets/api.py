"""HTTP routes of the wallets domain (the original platform's `/api/wallets/...`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from solders.pubkey import Pubkey

from gridtokenx.accounts.deps import CurrentUser
from gridtokenx.core.deps import Ctx, DbSession
from gridtokenx.core.errors import Unprocessable
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.interface import Ledger
from gridtokenx.wallets import service
from gridtokenx.wallets.balances import balances_of
from gridtokenx.wallets.schemas import BalancesOut, WalletOut
from gridtokenx.wallets.sealing import Sealer

router = APIRouter(tags=["wallets"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    422: {"description": "Not a wallet address"},
}


async def ledger_of(ctx: Ctx) -> Ledger:
    return await ctx.services.get(LedgerHandle).get()


LedgerDep = Annotated[Ledger, Depends(ledger_of)]


@router.get("/api/wallets/me", responses=ERRORS)
async def my_wallet(ctx: Ctx, user: CurrentUser, session: DbSession, ledger: LedgerDep) -> WalletOut:
    """The caller's wallet (created on first need unless they linked their own) and its balances."""
    wallet = await service.wallet_of(session, ctx.services.get(Sealer), user.id)
    await session.commit()
    balances = await balances_of(ledger, wallet.pubkey)
    return WalletOut(address=wallet.address, custodial=wallet.custodial, balances=balances)


@router.get("/api/wallets/{address}/balance", responses=ERRORS)
async def address_balance(address: str, ledger: LedgerDep) -> BalancesOut:
    """Public balances of any address, read from the ledger."""
    try:
        owner = Pubkey.from_string(address)
    except ValueError:
        raise Unprocessable(
            f"{address!r} is not a base58 Solana address", code="WALLET_ADDRESS_INVALID"
        ) from None
    return BalancesOut(address=address, balances=await balances_of(ledger, owner))
