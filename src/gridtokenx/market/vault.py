"""The platform escrow on the ledger: its two token accounts, deposits into them and payments out.

Every transfer carries a memo naming the order or settlement it belongs to, so no two of our
transactions have the same bytes (the embedded chain's blockhashes repeat after a restart, and an
identical transaction would be taken for one already sent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from gridtokenx.core.context import AppContext
from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.records import TransferLeg
from gridtokenx.ledger.signing import TransactionSigner
from gridtokenx.market.rules import Asset, Leg
from gridtokenx.market.tokens import energy_mint, escrow_keypair, payment_mint


@dataclass(frozen=True)
class Token:
    mint: Pubkey
    program: Pubkey
    decimals: int
    escrow_account: Pubkey


@dataclass(frozen=True)
class Vault:
    ledger: Ledger
    owner: Keypair
    owner_key: Pubkey
    tokens: dict[Asset, Token]

    def account_of(self, asset: Asset, owner: Pubkey) -> Pubkey:
        token = self.tokens[asset]
        return ix.associated_address(owner, token.mint, token.program)

    async def balance(self, asset: Asset, owner: Pubkey) -> int:
        return await self.ledger.get_token_account_balance(self.account_of(asset, owner)) or 0

    async def escrow_balance(self, asset: Asset) -> int:
        return await self.ledger.get_token_account_balance(self.tokens[asset].escrow_account) or 0

    async def open_accounts(self, owner: Pubkey) -> None:
        """Both token accounts of a trader, so settlement never has to create one."""
        for token in self.tokens.values():
            await self.ledger.create_associated_token_accounts(token.mint, [owner])

    async def deposit(self, order_id: str, asset: Asset, owner: Keypair, amount: int) -> Signature:
        """A custodial trader's escrow; the order id makes a retry land at most once."""
        leg = TransferLeg(mint=self.tokens[asset].mint, owner=owner, to=self.owner_key, amount=amount)
        return await self.ledger.transfer_atomic(
            [leg], memo=f"gtx-order:{order_id}", idempotency_key=f"market-escrow:{order_id}"
        )

    async def refund(self, order_id: str, asset: Asset, to: Pubkey, amount: int) -> Signature:
        leg = TransferLeg(mint=self.tokens[asset].mint, owner=self.owner, to=to, amount=amount)
        return await self.ledger.transfer_atomic(
            [leg], memo=f"gtx-refund:{order_id}", idempotency_key=f"market-refund:{order_id}"
        )

    async def approval_message(self, order_id: str, asset: Asset, owner: Pubkey, amount: int) -> bytes:
        """The unsigned deposit a self-custody trader signs: fee paid by the platform."""
        token = self.tokens[asset]
        instructions = [
            ix.transfer_checked(
                self.account_of(asset, owner),
                token.mint,
                token.escrow_account,
                owner,
                amount,
                token.decimals,
                token.program,
            ),
            ix.memo(self.ledger.fee_payer.pubkey(), f"gtx-order:{order_id}"),
        ]
        blockhash, _ = await self.ledger.latest_blockhash()
        return bytes(Message.new_with_blockhash(instructions, self.ledger.fee_payer.pubkey(), blockhash))

    def approved(self, message: bytes, signature: Signature) -> Transaction:
        """The trader's deposit with their signature and the fee payer's."""
        parsed = Message.from_bytes(message)
        payer = self.ledger.fee_payer.sign_message(message)
        return Transaction.populate(parsed, [payer, signature])

    def settlement_tx(self, legs: list[Leg], memo: str, blockhash: Hash) -> Transaction:
        """One atomic transaction paying `legs` out of escrow, signed by the fee payer and the escrow."""
        instructions: list[Instruction] = list(self.ledger.limits().prefix)
        for leg in legs:
            token = self.tokens[leg.asset]
            instructions.append(
                ix.transfer_checked(
                    token.escrow_account,
                    token.mint,
                    self.account_of(leg.asset, Pubkey.from_string(leg.to)),
                    self.owner_key,
                    leg.amount,
                    token.decimals,
                    token.program,
                )
            )
        instructions.append(ix.memo(self.ledger.fee_payer.pubkey(), memo))
        return TransactionSigner(self.ledger.fee_payer, self.owner).sign(
            instructions, [self.owner], blockhash
        )


class Vaults:
    """Opens the vault once per process (mints and escrow accounts are created on first use)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._vault: Vault | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Vault:
        async with self._lock:
            if self._vault is None or self._vault.ledger is not await self._ledger():
                self._vault = await self._open()
            return self._vault

    async def _ledger(self) -> Ledger:
        return await self.ctx.services.get(LedgerHandle).get()

    async def _open(self) -> Vault:
        ledger = await self._ledger()
        owner = escrow_keypair(ledger)
        owner_key = owner.pubkey()
        tokens = {}
        for asset, mint in (
            (Asset.ENERGY, await energy_mint(ledger, self.ctx.settings)),
            (Asset.PAYMENT, await payment_mint(ledger, self.ctx.settings)),
        ):
            info = await ledger.get_mint(mint)
            (account,) = await ledger.create_associated_token_accounts(mint, [owner_key])
            tokens[asset] = Token(mint, info.token_program, info.decimals, account)
        return Vault(ledger, owner, owner_key, tokens)
