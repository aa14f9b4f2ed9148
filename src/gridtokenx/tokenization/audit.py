"""Reconcile the mint outbox with the ledger (`gridtokenx audit`): one line per difference.

- the energy mint's supply equals the confirmed mints minus the confirmed burns;
- each wallet holds what its confirmed mints and burns say, for wallets no other domain moved
  energy in or out of (a trader's balance is the market's to explain: its audit checks that the
  escrow holds exactly the open orders and unsettled fills and that every settlement landed);
- every confirmed transaction is on the ledger and succeeded;
- no transaction the database gave up on (expired, failed) landed after all: that would be a
  reading minted twice once its rows were signed again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable

from solders.pubkey import Pubkey
from solders.signature import Signature
from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.tokenization.models import EntryState, Kind, MintEntry, MintTx, TxState
from gridtokenx.tokenization.tokens import energy_mint

MovedWallets = Callable[[AppContext], Awaitable[set[str]]]
_movers: list[MovedWallets] = []


def energy_moved_by(finder: MovedWallets) -> None:
    """Register a domain's query for the wallets whose energy it moved (the market's traders)."""
    if finder not in _movers:
        _movers.append(finder)


async def audit(ctx: AppContext) -> list[str]:
    ledger = await ctx.services.get(LedgerHandle).get()
    mint = await energy_mint(ledger, ctx.settings)
    problems: list[str] = []
    async with ctx.db.session() as session:
        txs = (
            await session.execute(select(MintTx.kind, MintTx.state, MintTx.signature, MintTx.amount_units))
        ).all()
        entries = (
            await session.execute(
                select(MintEntry.wallet, MintEntry.kind, MintEntry.ledger_units).where(
                    MintEntry.state == EntryState.CONFIRMED.value
                )
            )
        ).all()
    expected_supply = sum(
        units if kind == Kind.MINT.value else -units
        for kind, state, _, units in txs
        if state == TxState.CONFIRMED.value
    )
    supply = await ledger.get_supply(mint)
    if supply != expected_supply:
        problems.append(f"energy supply {supply} != confirmed mints - burns {expected_supply}")
    per_wallet: dict[str, int] = defaultdict(int)
    for wallet, kind, units in entries:
        if wallet is not None:
            per_wallet[wallet] += (units or 0) * (1 if kind == Kind.MINT.value else -1)
    moved = set().union(*[await finder(ctx) for finder in _movers])
    for wallet, expected in sorted(per_wallet.items()):
        if wallet in moved:
            continue
        held = await ledger.get_token_balance(Pubkey.from_string(wallet), mint)
        if held != expected:
            problems.append(f"wallet {wallet} holds {held}, the database says {expected}")
    for _, state, signature, _ in txs:
        status = await ledger.get_signature_status(Signature.from_string(signature))
        landed = status is not None and status.err is None
        if state == TxState.CONFIRMED.value and not landed:
            problems.append(f"confirmed transaction {signature} is not on the ledger")
        if state in (TxState.EXPIRED.value, TxState.FAILED.value) and landed:
            problems.append(f"transaction {signature} was given up ({state}) but landed: minted twice")
    return problems
