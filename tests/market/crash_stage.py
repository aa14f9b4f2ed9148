"""One stage of the market's work in its own process, stopped dead by the test (SIGKILL) once it
prints what it did. Settings come from the environment, as for `gridtokenx worker`.

  clear:  close the open epoch's gate and clear it, then wait (killed between clear and settle)
  settle: land the first settlement, sign and store the second without sending it, then wait
          (killed between two settlement transactions, with stored bytes not yet sent)
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.core.settings import Settings
from gridtokenx.domains import wire
from gridtokenx.market import scheduler, settlement
from gridtokenx.market.models import MarketSettlement
from gridtokenx.market.vault import Vaults


async def main(stage: str) -> None:
    ctx = AppContext.from_settings(Settings())
    wire(ctx)
    if stage == "clear":
        print("cleared", await scheduler.close_current(ctx), flush=True)
    else:
        vault = await ctx.services.get(Vaults).get()
        async with ctx.db.session() as session:
            first, second = list(
                await session.scalars(select(MarketSettlement.id).order_by(MarketSettlement.seq).limit(2))
            )
        print("first", await settlement.settle_one(ctx, vault, first), flush=True)
        await settlement._sign(ctx, vault, second, None)
        print("signed", second, flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
