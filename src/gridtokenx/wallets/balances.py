"""Balances of one address in every token the platform's ledger knows (energy, payment, ...)."""

from __future__ import annotations

from solders.pubkey import Pubkey

from gridtokenx.ledger.interface import Ledger
from gridtokenx.wallets.rules import base_units_to_decimal
from gridtokenx.wallets.schemas import TokenBalance


async def balances_of(ledger: Ledger, owner: Pubkey) -> list[TokenBalance]:
    records = await ledger.mints()
    result = []
    for record in records:
        amount = await ledger.get_token_balance(owner, record.address)
        result.append(
            TokenBalance(
                token=record.label,
                mint=str(record.address),
                decimals=record.decimals,
                amount=str(amount),
                amount_decimal=base_units_to_decimal(amount, record.decimals),
            )
        )
    return result
