"""Wire types of the wallets domain. Amounts travel as strings: integer base units beside the exact
decimal, since token amounts outgrow the integers a JavaScript client can hold."""

from __future__ import annotations

from pydantic import BaseModel


class TokenBalance(BaseModel):
    token: str
    mint: str
    decimals: int
    amount: str
    amount_decimal: str


class BalancesOut(BaseModel):
    address: str
    balances: list[TokenBalance]


class WalletOut(BalancesOut):
    custodial: bool
